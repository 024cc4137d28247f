// Package signer opens release signing keys, wherever they live, behind one
// interface built on github.com/sigstore/sigstore:
//
//	/path/release.sec                   usign/signify secret key (Ed25519)
//	/path/key.pem, file:///path/key.pem PKCS#8 or SEC 1 PEM (Ed25519 or ECDSA P-256)
//	pkcs11:token=…;object=…?module-path=…   a key in a PKCS#11 token (HSM)
//	hashivault://KEY, awskms://…, gcpkms://…, azurekms://…   sigstore KMS providers
//
// Every signature a Signer makes is checked against its public key before it
// is returned, so a misbehaving HSM or KMS (wrong key, prehashed Ed25519,
// truncated answer) fails the signing step instead of producing a file that
// routers would refuse later.
//
// Images can only be signed by Ed25519 keys: OpenWrt's usign and ucert verify
// nothing else. An ECDSA P-256 key (common in cloud KMS) may sign the update
// manifest's detached cosign-style signature and build provenance;
// UsignFingerprint and SignUsign refuse it for images and manifests.
// docs/releasing.md describes the combinations.
//
// KMS providers register themselves when their module is linked in; the
// imgbuild command links all four (blank imports in cmd/imgbuild). A binary
// without a provider names the module it lacks.
package signer

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"

	"github.com/torwrt/torwrt/internal/usign"
)

// Algorithm names a key's signature scheme.
type Algorithm string

const (
	// Ed25519 is pure Ed25519 (RFC 8032) over the raw message, as usign,
	// signify and cosign's Ed25519 keys use it.
	Ed25519 Algorithm = "ed25519"
	// ECDSAP256 is ECDSA on P-256 over SHA-256 of the message, signatures
	// ASN.1 DER encoded, as cosign writes them.
	ECDSAP256 Algorithm = "ecdsa-p256-sha256"
)

// Errors callers branch on.
var (
	// ErrNotEd25519: the key cannot sign images (usign/ucert are Ed25519 only).
	ErrNotEd25519 = errors.New("signer: key is not Ed25519; OpenWrt images can only be signed with Ed25519 (usign) keys")
	// ErrUnsupportedKey: a key type other than Ed25519 or ECDSA P-256.
	ErrUnsupportedKey = errors.New("signer: unsupported key type")
	// ErrBadURI: the key reference cannot be parsed.
	ErrBadURI = errors.New("signer: bad key reference")
	// ErrInsecureKeyFile: a secret key file readable by group or others.
	ErrInsecureKeyFile = errors.New("signer: secret key file is readable by other users")
	// ErrBackend: the HSM or KMS failed or is unreachable.
	ErrBackend = errors.New("signer: signing backend failed")
	// ErrBadSignature: the backend returned a signature that does not
	// verify with the key's public key.
	ErrBadSignature = errors.New("signer: backend returned a signature that does not verify")
)

// Signer is one signing key: the one interface every signature torwrt
// makes goes through (image chunk and detached .sig, manifest and key list
// signatures, DSSE provenance, cosign-style detached signatures). Open
// returns one for every key kind; FromUsign wraps a key held in memory.
// Implementations hold no context: each Sign gets its own.
type Signer interface {
	// KeyID names the key in key lists, logs and signatures: 16 lowercase
	// hex digits. For usign keys it is the usign fingerprint; for other
	// keys see DerivedKeyID. Image and manifest signatures carry it as
	// their usign key number (UsignFingerprint).
	KeyID() string
	// Public is the public key (ed25519.PublicKey or *ecdsa.PublicKey).
	Public() crypto.PublicKey
	// Sign signs msg (pure Ed25519, or ECDSA P-256 over SHA-256(msg) in
	// ASN.1 DER) and checks the result against Public before returning.
	Sign(ctx context.Context, msg []byte) ([]byte, error)
	// Close releases HSM sessions and modules and KMS clients. The code
	// that opened the key closes it, once; Sign after Close fails.
	Close() error
}

// Options configure Open.
type Options struct {
	// Getenv looks up TORWRT_PKCS11_PIN and the KMS providers' settings.
	// Nil means os.Getenv.
	Getenv func(string) string
}

// PINEnv is the environment variable a PKCS#11 PIN is read from when the
// URI carries none. The PIN is never logged or written anywhere.
const PINEnv = "TORWRT_PKCS11_PIN"

// kmsSchemes maps the sigstore KMS URI schemes to the Go module that
// provides each.
var kmsSchemes = []struct{ prefix, module string }{
	{"hashivault://", "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"},
	{"awskms://", "github.com/sigstore/sigstore/pkg/signature/kms/aws"},
	{"gcpkms://", "github.com/sigstore/sigstore/pkg/signature/kms/gcp"},
	{"azurekms://", "github.com/sigstore/sigstore/pkg/signature/kms/azure"},
}

// Open opens the key that ref names (see the package comment). The caller
// closes it.
func Open(ctx context.Context, ref string, opt Options) (Signer, error) {
	if opt.Getenv == nil {
		opt.Getenv = os.Getenv
	}
	switch {
	case ref == "":
		return nil, fmt.Errorf("%w: empty key reference; want a .sec or .pem file, a pkcs11: URI or a KMS URI", ErrBadURI)
	case strings.HasPrefix(ref, "pkcs11:"):
		return openPKCS11(ctx, ref, opt)
	case strings.HasPrefix(ref, "file://"):
		return openFile(strings.TrimPrefix(ref, "file://"))
	}
	for _, k := range kmsSchemes {
		if strings.HasPrefix(ref, k.prefix) {
			return openKMS(ctx, ref, k.module)
		}
	}
	if i := strings.Index(ref, "://"); i > 0 && !strings.ContainsAny(ref[:i], "/.") {
		return nil, fmt.Errorf("%w: unknown scheme %q in %s; supported: a file path, file://, pkcs11:, hashivault://, awskms://, gcpkms://, azurekms://",
			ErrBadURI, ref[:i]+"://", Redact(ref))
	}
	return openFile(ref)
}

// AlgorithmOf is the scheme of a public key: Ed25519, ECDSA P-256, or an
// ErrUnsupportedKey error.
func AlgorithmOf(pub crypto.PublicKey) (Algorithm, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return "", fmt.Errorf("%w: Ed25519 public key of %d bytes", ErrUnsupportedKey, len(k))
		}
		return Ed25519, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("%w: ECDSA on %s; only P-256 is supported", ErrUnsupportedKey, k.Curve.Params().Name)
		}
		return ECDSAP256, nil
	default:
		return "", fmt.Errorf("%w: %T; %s", ErrUnsupportedKey, pub, supportedKeys)
	}
}

// UsignFingerprint is s's key id as a usign key number, the one image and
// manifest signatures carry. Only Ed25519 keys have one: usign and ucert
// verify nothing else.
func UsignFingerprint(s Signer) (usign.Fingerprint, error) {
	if _, ok := s.Public().(ed25519.PublicKey); !ok {
		alg, _ := AlgorithmOf(s.Public())
		return usign.Fingerprint{}, fmt.Errorf("%w (key %s is %s)", ErrNotEd25519, s.KeyID(), alg)
	}
	return usign.ParseFingerprint(s.KeyID())
}

// SignUsign signs msg with s and returns it as a usign signature under
// s's key id. An empty message is refused, as usign does.
func SignUsign(ctx context.Context, s Signer, msg []byte) (*usign.Signature, error) {
	fp, err := UsignFingerprint(s)
	if err != nil {
		return nil, err
	}
	if len(msg) == 0 {
		return nil, usign.ErrEmptyMessage
	}
	raw, err := s.Sign(ctx, msg)
	if err != nil {
		return nil, err
	}
	return usign.NewSignature(fp, raw)
}

// UsignPublicKey returns s's public key as a usign public key file value
// (for /etc/opkg/keys and key lists). Only Ed25519 keys have one.
func UsignPublicKey(s Signer) (*usign.PublicKey, error) {
	fp, err := UsignFingerprint(s)
	if err != nil {
		return nil, err
	}
	return &usign.PublicKey{Fingerprint: fp, Key: bytes.Clone(s.Public().(ed25519.PublicKey))}, nil
}

// DerivedKeyID is the key id of a key that has no usign fingerprint of its
// own (PEM files, HSM and KMS keys): the first 8 bytes, in hex, of SHA-256
// over the raw 32-byte public key for Ed25519, and over the PKIX (DER
// SubjectPublicKeyInfo) encoding for ECDSA. It is deterministic, so every
// key holder computes the same id from the public key alone.
func DerivedKeyID(pub crypto.PublicKey) (string, error) {
	var sum [32]byte
	switch k := pub.(type) {
	case ed25519.PublicKey:
		sum = sha256.Sum256(k)
	case *ecdsa.PublicKey:
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return "", fmt.Errorf("signer: encoding public key: %w", err)
		}
		sum = sha256.Sum256(der)
	default:
		return "", fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
	}
	return hex.EncodeToString(sum[:8]), nil
}

// PublicKeyPEM encodes pub as a PKIX "PUBLIC KEY" PEM block, the form
// `cosign verify-blob --key` and openssl read.
func PublicKeyPEM(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("signer: encoding public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// Verify checks a signature made by a key of the given public key with the
// same scheme Sign uses.
func Verify(pub crypto.PublicKey, msg, sig []byte) error {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(sig) != ed25519.SignatureSize || !ed25519.Verify(k, msg, sig) {
			return ErrBadSignature
		}
	case *ecdsa.PublicKey:
		sum := sha256.Sum256(msg)
		if !ecdsa.VerifyASN1(k, sum[:], sig) {
			return ErrBadSignature
		}
	default:
		return fmt.Errorf("%w: %T", ErrUnsupportedKey, pub)
	}
	return nil
}

// key is the one Signer implementation: every backend is a sigstore
// SignerVerifier (files, KMS providers, p11Key for PKCS#11) plus what Close
// releases.
type key struct {
	id     string
	pub    crypto.PublicKey
	sv     signature.SignerVerifier
	desc   string
	close  func() error
	closed bool
}

func newKey(desc string, pub crypto.PublicKey, sv signature.SignerVerifier, id string, closeFn func() error) (*key, error) {
	if _, err := AlgorithmOf(pub); err != nil {
		return nil, fmt.Errorf("%s: %w", desc, err)
	}
	if id == "" {
		var err error
		if id, err = DerivedKeyID(pub); err != nil {
			return nil, err
		}
	}
	return &key{id: id, pub: pub, sv: sv, desc: desc, close: closeFn}, nil
}

func (k *key) KeyID() string            { return k.id }
func (k *key) Public() crypto.PublicKey { return k.pub }

// String describes the key without secrets (PINs and tokens redacted).
func (k *key) String() string { return fmt.Sprintf("key %s (%s)", k.id, k.desc) }

func (k *key) Close() error {
	if k.closed {
		return nil
	}
	k.closed = true
	if k.close == nil {
		return nil
	}
	return k.close()
}

func (k *key) Sign(ctx context.Context, msg []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if k.closed {
		return nil, fmt.Errorf("signing with %s: %w: the key was closed", k, ErrBackend)
	}
	sig, err := k.sv.SignMessage(bytes.NewReader(msg), options.WithContext(ctx))
	if err != nil {
		if errors.Is(err, ErrBackend) {
			return nil, fmt.Errorf("signing with %s: %w", k, err)
		}
		return nil, fmt.Errorf("signing with %s: %w: %v", k, ErrBackend, err)
	}
	if err := Verify(k.pub, msg, sig); err != nil {
		return nil, fmt.Errorf("signing with %s: %w (the backend may have prehashed the message or used another key)", k, err)
	}
	return sig, nil
}

var _ Signer = (*key)(nil)
