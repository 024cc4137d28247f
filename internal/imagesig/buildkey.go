package imagesig

import (
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/ucert"
	"github.com/torwrt/torwrt/internal/usign"
)

// MaxBuildKeyLifetime bounds BuildKeyOptions.Lifetime. `ucert -I` issues
// certificates for a year; a build key is meant to live for hours.
const MaxBuildKeyLifetime = 366 * 24 * time.Hour

// BuildKeyOptions asks Sign for a delegation chain: the release key
// certifies a build key for [NotBefore, NotBefore+Lifetime) and the build
// key signs the image, as OpenWrt's own build does with `ucert -I` and
// `ucert -A`.
type BuildKeyOptions struct {
	// NotBefore is the certificate's validfrom (whole seconds). It is an
	// input, not the clock, so that signing is reproducible.
	NotBefore time.Time
	// Lifetime is how long the certificate is valid: at least one second,
	// at most MaxBuildKeyLifetime, whole seconds.
	Lifetime time.Duration
}

func (o BuildKeyOptions) window() (from, to int64, err error) {
	if o.NotBefore.IsZero() || o.NotBefore.Unix() < 0 {
		return 0, 0, errors.New("build key: a not-before time (unix seconds >= 0) is required")
	}
	if o.Lifetime < time.Second || o.Lifetime > MaxBuildKeyLifetime || o.Lifetime%time.Second != 0 {
		return 0, 0, fmt.Errorf("build key: lifetime %s: want whole seconds between 1s and %s", o.Lifetime, MaxBuildKeyLifetime)
	}
	from = o.NotBefore.Unix()
	return from, from + int64(o.Lifetime/time.Second), nil
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
func DeriveBuildKey(release Signer, imageSHA256 [sha256.Size]byte, from, to int64) (*usign.SecretKey, error) {
	msg := []byte(buildKeyContext)
	msg = append(msg, fmt.Sprintf("%x\x00", imageSHA256)...)
	msg = strconv.AppendInt(msg, from, 10)
	msg = append(msg, 0)
	msg = strconv.AppendInt(msg, to, 10)
	msg = append(msg, '\n')
	sig, err := release.SignMessage(msg)
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
func SignWithBuildKey(r io.ReaderAt, size int64, release Signer, opt BuildKeyOptions) (*Signed, error) {
	from, to, err := opt.window()
	if err != nil {
		return nil, err
	}
	msg, err := readSigned(r, size)
	if err != nil {
		return nil, err
	}
	bk, err := DeriveBuildKey(release, sha256.Sum256(msg), from, to)
	if err != nil {
		return nil, err
	}
	pub := bk.Public()
	pub.Comment = bk.Comment
	cert, err := ucert.Issue(&ucert.Certificate{
		Type: ucert.CertTypeAuth, ValidFrom: from, ExpiresAt: to, PublicKey: pub.Marshal(),
	}, release.SignMessage)
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
