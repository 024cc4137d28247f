// Package imagesig signs and verifies sysupgrade images the way stock
// OpenWrt does: a usign Ed25519 signature over the image and its metadata
// chunk, wrapped in a ucert blob, appended as an fwtool signature chunk.
//
// Both binaries use it: imgbuild to check releases, and the router's verify
// command to refuse anything else. Verify returns nil only after every
// check ran and passed. Signing is host only, in package imagesign, so that
// the router never links a signer.
package imagesig

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/ucert"
	"github.com/torwrt/torwrt/internal/usign"
)

var (
	// ErrUnsigned: the image carries no signature chunk, or only the
	// "# fake certificate" placeholder.
	ErrUnsigned = errors.New("image is not signed")
	// ErrNoMetadata: the image has no metadata chunk before its signature.
	ErrNoMetadata = errors.New("image has no fwtool metadata")
	// ErrWrongBoard: the metadata does not list the expected board.
	ErrWrongBoard = errors.New("image is not for this board")
)

// Result describes a verified image.
type Result struct {
	Layout   *fwimage.Image    `json:"layout"`
	Metadata *fwimage.Metadata `json:"metadata"`
	Key      string            `json:"key"` // fingerprint of the key that signed it
	// For a certificate chain: the trusted key that certified Key, and
	// the certificate's validity window (unix seconds).
	Issuer         string `json:"issuer,omitempty"`
	ValidFrom      int64  `json:"valid_from,omitempty"`
	ExpiresAt      int64  `json:"expires_at,omitempty"`
	SHA256         string `json:"sha256"`
	SHA256Unsigned string `json:"sha256_unsigned"`
}

// Options narrow what Verify accepts.
type Options struct {
	// Board, when set, must appear in the metadata's supported devices.
	Board string
	// Now is the time a delegation certificate's validity window is
	// checked against. Zero means the system clock at the time of the
	// call: on a router with a wrong clock (no RTC and no NTP yet) a
	// chained image is refused as not yet valid or expired; images
	// signed directly by a trusted key do not depend on the clock.
	Now time.Time
}

// Verify checks the image r of the given size against the trusted keys.
func Verify(r io.ReaderAt, size int64, keys *usign.Keyring, opt Options) (*Result, error) {
	layout, err := fwimage.Parse(r, size)
	if err != nil {
		return nil, err
	}
	sigChunk, ok := lastChunkIs(layout, fwimage.TypeSignature)
	if !ok {
		return nil, fmt.Errorf("%w: no signature chunk at the end of the image", ErrUnsigned)
	}
	data, err := fwimage.ReadChunk(r, sigChunk)
	if err != nil {
		return nil, err
	}
	if fwimage.IsFakeCertificate(data) {
		return nil, fmt.Errorf("%w: signature chunk is the %q placeholder", ErrUnsigned, fwimage.FakeCertificate)
	}
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	chain, err := verifyChunkChain(data, keys, now)
	if err != nil {
		return nil, err
	}
	sig := chain.Signature
	// The signed bytes are read once: the same pass hashes them for
	// sha256_unsigned and starts the whole file's sha256, which on a MIPS
	// router is worth not reading a 16 MiB image twice more.
	unsigned, whole := sha256.New(), sha256.New()
	signed := io.TeeReader(io.NewSectionReader(r, 0, sigChunk.Offset), io.MultiWriter(unsigned, whole))
	if err := chain.Key.VerifyReader(signed, sig); err != nil {
		return nil, err
	}
	// The signature covered the metadata, so from here on it is trusted
	// input; it still has to say this image is for this board.
	metaChunk, ok := layout.Last(fwimage.TypeMetadata)
	if !ok || metaChunk.Offset > sigChunk.Offset {
		return nil, ErrNoMetadata
	}
	metaData, err := fwimage.ReadChunk(r, metaChunk)
	if err != nil {
		return nil, err
	}
	meta, _, err := fwimage.ParseMetadataChunk(metaData)
	if err != nil {
		return nil, err
	}
	if opt.Board != "" && !meta.Supports(opt.Board) {
		return nil, fmt.Errorf("%w: board %q, image supports %v", ErrWrongBoard, opt.Board, meta.SupportedDevices)
	}
	res := &Result{Layout: layout, Metadata: meta, Key: sig.Fingerprint.String()}
	if chain.Issuer != nil {
		res.Issuer = chain.Issuer.Fingerprint.String()
		res.ValidFrom, res.ExpiresAt = chain.Certificate.ValidFrom, chain.Certificate.ExpiresAt
	}
	if _, err := io.Copy(whole, io.NewSectionReader(r, sigChunk.Offset, size-sigChunk.Offset)); err != nil {
		return nil, fmt.Errorf("reading the signature chunk: %w", err)
	}
	res.SHA256 = hex.EncodeToString(whole.Sum(nil))
	res.SHA256Unsigned = hex.EncodeToString(unsigned.Sum(nil))
	return res, nil
}

func lastChunkIs(img *fwimage.Image, t fwimage.Type) (fwimage.Chunk, bool) {
	if n := len(img.Chunks); n > 0 && img.Chunks[n-1].Type == t {
		return img.Chunks[n-1], true
	}
	return fwimage.Chunk{}, false
}

// verifyChunkChain decodes the signature chunk and checks its chain: a
// bare signature by a trusted key, or a delegation certificate by a
// trusted key followed by a signature by the key it certifies. The final
// signature over the image is left to the caller.
func verifyChunkChain(data []byte, keys *usign.Keyring, now time.Time) (*ucert.Verified, error) {
	chain, err := ucert.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("signature chunk: %w", err)
	}
	v, err := ucert.VerifyChain(chain, keys, now)
	if err != nil {
		return nil, fmt.Errorf("signature chunk: %w", err)
	}
	return v, nil
}

// ChunkSignature decodes a signature chunk's ucert blob and returns the
// signature that covers the image (the last element without a payload)
// and the chain's length. It verifies nothing.
func ChunkSignature(data []byte) (*usign.Signature, int, error) {
	chain, err := ucert.Decode(data)
	if err != nil {
		return nil, 0, fmt.Errorf("signature chunk: %w", err)
	}
	sigFile, err := ucert.SigningSignature(chain)
	if err != nil {
		return nil, len(chain), fmt.Errorf("signature chunk: %w", err)
	}
	sig, err := usign.ParseSignature(sigFile)
	if err != nil {
		return nil, len(chain), fmt.Errorf("signature chunk: %w", err)
	}
	return sig, len(chain), nil
}
