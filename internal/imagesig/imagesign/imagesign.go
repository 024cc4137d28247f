// Package imagesign signs sysupgrade images with a signer.Signer the way
// stock OpenWrt does (see package imagesig, which verifies them): a usign
// Ed25519 signature over the image and its metadata chunk, wrapped in a
// ucert blob and appended as an fwtool signature chunk, optionally through
// a short-lived build key the release key certifies; and the detached
// usign signature over the final file.
//
// It is host only: the router imports imagesig to verify and never links a
// signer.
package imagesign

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/ucert"
	"github.com/torwrt/torwrt/internal/usign"
)

// Signed is what Sign produces.
type Signed struct {
	// Chunk is the signature chunk data (a ucert blob) to append.
	Chunk []byte
	// Signature is the usign signature over the image that the chunk
	// holds.
	Signature *usign.Signature
	// SignedLen is how many bytes of the input the signature covers: any
	// existing signature chunk is excluded.
	SignedLen int64
	// BuildKey and ExpiresAt are set by SignWithBuildKey: the certified
	// key's fingerprint and the certificate's expiry (unix seconds).
	BuildKey  string
	ExpiresAt int64
}

// Sign signs the image r (size bytes) with s, an Ed25519 key. An existing
// signature chunk (the ImageBuilder's own) is left out of what is signed;
// the caller truncates the file to SignedLen before appending Chunk.
// Ed25519 needs the whole message, so the signed range is read into
// memory; this runs on the build host, never on the router.
func Sign(ctx context.Context, r io.ReaderAt, size int64, s signer.Signer) (*Signed, error) {
	msg, err := readSigned(r, size)
	if err != nil {
		return nil, err
	}
	sig, err := signer.SignUsign(ctx, s, msg)
	if err != nil {
		return nil, err
	}
	chunk, err := ucert.EncodeSignature(sig.Marshal())
	if err != nil {
		return nil, err
	}
	return &Signed{Chunk: chunk, Signature: sig, SignedLen: int64(len(msg))}, nil
}

// readSigned reads what a signature chunk covers: the image up to any
// existing signature chunk, which must have a metadata chunk.
func readSigned(r io.ReaderAt, size int64) ([]byte, error) {
	layout, err := fwimage.Parse(r, size)
	if err != nil {
		return nil, err
	}
	end := layout.SignedEnd()
	if _, ok := layout.Last(fwimage.TypeMetadata); !ok {
		return nil, fmt.Errorf("%w: refusing to sign; stock sysupgrade on ath79/ramips requires metadata", imagesig.ErrNoMetadata)
	}
	msg := make([]byte, end)
	// A short read (the file shrank after Parse) must not leave zeros in
	// what gets signed; io.EOF is only fine when every byte arrived.
	if n, err := r.ReadAt(msg, 0); int64(n) != end || (err != nil && !errors.Is(err, io.EOF)) {
		return nil, fmt.Errorf("reading image: read %d of %d bytes: %v", n, end, err)
	}
	return msg, nil
}

// buildKeyContext starts the message the release key signs to derive a
// build key. The NUL bytes and the trailing newline keep it from being a
// sysupgrade image (which ends in a fwtool trailer), a manifest (JSON) or a
// ucert payload (a blobmsg table), so no signature the release key makes
// for anything else can equal it.
const buildKeyContext = "torwrt build key derivation v1\x00"

// DeriveBuildKey returns the build key for an image whose signed bytes hash
// to imageSHA256, certified for [from, to).
//
// The key is derived, not drawn at random, so that signing the same image
// twice gives byte-identical output: the release signer signs a
// domain-separated message naming the image hash and the window, and the
// Ed25519 seed is SHA-256 of that signature. Ed25519 signatures are
// deterministic (RFC 8032), and nobody without the release key can make
// that signature, so nobody else can compute the seed; the signature itself
// is never written anywhere. A signer that randomizes its signatures still
// gets an unpredictable key, just not a reproducible one.
func DeriveBuildKey(ctx context.Context, release signer.Signer, imageSHA256 [sha256.Size]byte, from, to int64) (*usign.SecretKey, error) {
	msg := []byte(buildKeyContext)
	msg = append(msg, fmt.Sprintf("%x\x00", imageSHA256)...)
	msg = strconv.AppendInt(msg, from, 10)
	msg = append(msg, 0)
	msg = strconv.AppendInt(msg, to, 10)
	msg = append(msg, '\n')
	sig, err := signer.SignUsign(ctx, release, msg)
	if err != nil {
		return nil, fmt.Errorf("deriving build key: %w", err)
	}
	seed := sha256.Sum256(append([]byte("torwrt build key seed v1\x00"), sig.Sig[:]...))
	k := &usign.SecretKey{Key: ed25519.NewKeyFromSeed(seed[:])}
	fp := sha256.Sum256(append([]byte("torwrt build key fingerprint v1\x00"), k.Key.Public().(ed25519.PublicKey)...))
	copy(k.Fingerprint[:], fp[:])
	k.Comment = "torwrt build key " + k.Fingerprint.String()
	return k, nil
}

// SignWithBuildKey is Sign with a delegation chain in the chunk: a build
// key derived by DeriveBuildKey signs the image, and the chunk holds the
// release key's certificate for it followed by that signature. Stock
// `ucert -V` with the release key in /etc/opkg/keys accepts it while the
// certificate is valid. Signed.Signature is the build key's signature.
func SignWithBuildKey(ctx context.Context, r io.ReaderAt, size int64, release signer.Signer, opt imagesig.BuildKeyOptions) (*Signed, error) {
	from, to, err := opt.Window()
	if err != nil {
		return nil, err
	}
	msg, err := readSigned(r, size)
	if err != nil {
		return nil, err
	}
	bk, err := DeriveBuildKey(ctx, release, sha256.Sum256(msg), from, to)
	if err != nil {
		return nil, err
	}
	pub := bk.Public()
	pub.Comment = bk.Comment
	cert, err := ucert.Issue(&ucert.Certificate{
		Type: ucert.CertTypeAuth, ValidFrom: from, ExpiresAt: to, PublicKey: pub.Marshal(),
	}, func(m []byte) (*usign.Signature, error) { return signer.SignUsign(ctx, release, m) })
	if err != nil {
		return nil, err
	}
	sig, err := bk.Sign(msg)
	if err != nil {
		return nil, err
	}
	chunk, err := ucert.Encode(cert, ucert.Element{Signature: sig.Marshal()})
	if err != nil {
		return nil, err
	}
	if len(chunk) > fwimage.MaxSignature {
		return nil, fmt.Errorf("%w: chain is %d bytes, stock fwtool appends at most %d", fwimage.ErrTooLarge, len(chunk), fwimage.MaxSignature)
	}
	return &Signed{Chunk: chunk, Signature: sig, SignedLen: int64(len(msg)), BuildKey: bk.Fingerprint.String(), ExpiresAt: to}, nil
}

// FileResult is what SignFile wrote.
type FileResult struct {
	Image    string `json:"image"`
	Detached string `json:"detached_signature"`
	// Key is the release key's id (its usign fingerprint), from the
	// signer itself.
	Key       string `json:"key"`
	SHA256    string `json:"sha256"`
	SignedLen int64  `json:"signed_len"`
	// BuildKey and ExpiresAt are set when the chunk is a delegation
	// chain (SignFileWithBuildKey).
	BuildKey  string `json:"build_key,omitempty"`
	ExpiresAt int64  `json:"build_key_expires_at,omitempty"`
	// Signature is the detached signature written to Detached, so that
	// callers (the cosign-style copy in dist/) need not read it back.
	Signature *usign.Signature `json:"-"`
}

// SignFile signs the image at in and writes the signed image to out (which
// may equal in) and its detached usign signature to out+".sig".
//
// The chunk signature covers the image without its signature chunk (what
// ucert -V checks on the router); the detached signature covers the final
// file, so `signify -V -m IMAGE` and `usign -V` work on the published file
// as it is. Ed25519 is deterministic, so both are reproducible. Outputs are
// written to temporary files and renamed into place only when complete:
// a failure leaves the previous files untouched.
func SignFile(ctx context.Context, in, out string, s signer.Signer) (*FileResult, error) {
	return signFile(ctx, in, out, s, func(r io.ReaderAt, size int64) (*Signed, error) { return Sign(ctx, r, size, s) })
}

// SignFileWithBuildKey is SignFile with a delegation chain in the signature
// chunk (see SignWithBuildKey). The detached signature is still the
// release key's, over the final file.
func SignFileWithBuildKey(ctx context.Context, in, out string, s signer.Signer, opt imagesig.BuildKeyOptions) (*FileResult, error) {
	return signFile(ctx, in, out, s, func(r io.ReaderAt, size int64) (*Signed, error) { return SignWithBuildKey(ctx, r, size, s, opt) })
}

func signFile(ctx context.Context, in, out string, s signer.Signer, sign func(io.ReaderAt, int64) (*Signed, error)) (*FileResult, error) {
	src, err := os.Open(in)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return nil, err
	}
	signed, err := sign(src, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in, err)
	}
	var final bytes.Buffer
	if err := fwimage.AppendChunk(&final, io.NewSectionReader(src, 0, signed.SignedLen), fwimage.TypeSignature, signed.Chunk); err != nil {
		return nil, err
	}
	detached, err := signer.SignUsign(ctx, s, final.Bytes())
	if err != nil {
		return nil, err
	}
	if err := imagesig.WriteFileAtomic(out, final.Bytes(), 0o644); err != nil {
		return nil, err
	}
	if err := imagesig.WriteFileAtomic(out+".sig", detached.Marshal(), 0o644); err != nil {
		return nil, err
	}
	sum, _ := fwimage.SHA256Range(bytes.NewReader(final.Bytes()), int64(final.Len()))
	return &FileResult{
		Image: out, Detached: out + ".sig", Key: detached.Fingerprint.String(),
		SHA256: fmt.Sprintf("%x", sum), SignedLen: signed.SignedLen,
		BuildKey: signed.BuildKey, ExpiresAt: signed.ExpiresAt, Signature: detached,
	}, nil
}
