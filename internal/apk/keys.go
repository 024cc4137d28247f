package apk

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
)

// KeyID is apk's intrinsic key id: the first 16 bytes of SHA-512 over the
// key's i2d_PublicKey encoding (for EC keys the uncompressed point).
type KeyID [16]byte

func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// PublicKey is an apk signing key (ECDSA P-256, as OpenWrt uses).
type PublicKey struct {
	Key *ecdsa.PublicKey
	ID  KeyID
}

func newPublicKey(k *ecdsa.PublicKey) (*PublicKey, error) {
	if k.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: only ECDSA P-256 keys", ErrUnsupported)
	}
	pt, err := k.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	sum := sha512.Sum512(pt)
	p := &PublicKey{Key: k}
	copy(p.ID[:], sum[:16])
	return p, nil
}

// ParsePublicKeyPEM parses a "PUBLIC KEY" PEM file as found in /etc/apk/keys.
func ParsePublicKeyPEM(b []byte) (*PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: no PUBLIC KEY PEM block", ErrMalformed)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %v", ErrMalformed, err)
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: key type %T", ErrUnsupported, k)
	}
	return newPublicKey(ek)
}

// MarshalPEM returns the key as a PUBLIC KEY PEM block.
func (p *PublicKey) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(p.Key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// Keyring is a set of trusted public keys, looked up by key id.
type Keyring struct {
	keys map[KeyID]*PublicKey
}

// NewKeyring returns a keyring trusting keys.
func NewKeyring(keys ...*PublicKey) *Keyring {
	k := &Keyring{keys: map[KeyID]*PublicKey{}}
	for _, p := range keys {
		k.Add(p)
	}
	return k
}

// Add trusts p.
func (k *Keyring) Add(p *PublicKey) { k.keys[p.ID] = p }

// SecretKey is an apk signing key.
type SecretKey struct {
	key *ecdsa.PrivateKey
	pub *PublicKey
}

// ParseSecretKeyPEM parses an "EC PRIVATE KEY" (SEC 1) or "PRIVATE KEY"
// (PKCS #8) PEM file, as openssl ecparam -genkey writes.
func ParseSecretKeyPEM(b []byte) (*SecretKey, error) {
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%w: no private key PEM block", ErrMalformed)
		}
		var k any
		var err error
		switch blk.Type {
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(blk.Bytes)
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
		default:
			continue // e.g. EC PARAMETERS
		}
		if err != nil {
			return nil, fmt.Errorf("%w: private key: %v", ErrMalformed, err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("%w: key type %T", ErrUnsupported, k)
		}
		return newSecretKey(ek)
	}
}

func newSecretKey(k *ecdsa.PrivateKey) (*SecretKey, error) {
	p, err := newPublicKey(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	return &SecretKey{key: k, pub: p}, nil
}

// GenerateKey makes a new P-256 key (tests, simulator). Since Go 1.26
// crypto/ecdsa ignores rand (unless GODEBUG=cryptocustomrand=1), so every
// call returns a fresh random key.
func GenerateKey(rand io.Reader) (*SecretKey, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand)
	if err != nil {
		return nil, err
	}
	return newSecretKey(k)
}

// Public returns the public half.
func (s *SecretKey) Public() *PublicKey { return s.pub }

// MarshalPEM returns the key as an "EC PRIVATE KEY" PEM block.
func (s *SecretKey) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(s.key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

// signedMessage is what a v0 signature covers: le32(schema), the 18-byte
// signature header {sign_ver 0, hash_alg, key id} and the digest of the
// ADB block. It is then hashed with SHA-512 and signed.
func signedMessage(schema uint32, hdr []byte, md []byte) []byte {
	m := binary.LittleEndian.AppendUint32(nil, schema)
	m = append(m, hdr...)
	return append(m, md...)
}

// sign returns a SIG block payload. ECDSA with a nil random source is
// deterministic (RFC 6979) in Go's crypto/ecdsa.
func (s *SecretKey) sign(schema uint32, adb []byte) ([]byte, error) {
	md := sha512.Sum512(adb)
	hdr := append([]byte{0, digestSHA512}, s.pub.ID[:]...)
	h := sha512.Sum512(signedMessage(schema, hdr, md[:]))
	sig, err := s.key.Sign(nil, h[:], crypto.SHA512)
	if err != nil {
		return nil, err
	}
	return append(hdr, sig...), nil
}

// verifySigs checks c's signature blocks against keys.
func verifySigs(c *container, keys *Keyring) (KeyID, error) {
	if len(c.sigs) == 0 {
		return KeyID{}, ErrUnsigned
	}
	if keys == nil {
		keys = NewKeyring()
	}
	var md512 *[64]byte
	bad := false
	var lastID KeyID
	for _, s := range c.sigs {
		if len(s) < 18 || s[0] != 0 {
			continue
		}
		var id KeyID
		copy(id[:], s[2:18])
		lastID = id
		p, ok := keys.keys[id]
		if !ok {
			continue
		}
		var md []byte
		switch s[1] {
		case digestSHA512:
			if md512 == nil {
				d := sha512.Sum512(c.adb)
				md512 = &d
			}
			md = md512[:]
		default:
			bad = true
			continue
		}
		h := sha512.Sum512(signedMessage(c.schema, s[:18], md))
		if ecdsa.VerifyASN1(p.Key, h[:], s[18:]) {
			return id, nil
		}
		bad = true
	}
	if bad {
		return KeyID{}, ErrBadSignature
	}
	return KeyID{}, fmt.Errorf("%w (key id %s)", ErrUntrustedKey, lastID)
}
