// Package usign reads, writes, signs and verifies OpenWrt usign (and OpenBSD
// signify) Ed25519 key and signature files.
//
// The formats are those of usign/signify: a comment line, then one base64
// line. Payloads are fixed-size, start with the algorithm tag "Ed" and carry
// an 8-byte key fingerprint that is chosen at random when the key is made.
// The package is pure: bytes in, values or errors out. File helpers live in
// file.go and only touch the paths they are given.
package usign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Sentinel errors that callers branch on. Every error the package returns
// wraps one of these or describes a malformed file.
var (
	ErrMalformed       = errors.New("usign: malformed file")
	ErrUnknownKey      = errors.New("usign: signature made by an untrusted key")
	ErrBadSignature    = errors.New("usign: signature does not verify")
	ErrEncryptedKey    = errors.New("usign: secret key is passphrase-protected")
	ErrEmptyMessage    = errors.New("usign: refusing to sign an empty message")
	ErrInsecureKeyFile = errors.New("usign: secret key file is readable by other users")
)

const (
	commentPrefix = "untrusted comment: "
	algEd25519    = "Ed"
	kdfBcrypt     = "BK"

	publicKeyLen = 2 + 8 + ed25519.PublicKeySize   // 42
	signatureLen = 2 + 8 + ed25519.SignatureSize   // 74
	secretKeyLen = 2 + 2 + 4 + 16 + 8 + 8 + 64     // 104
	maxFileLen   = len(commentPrefix) + 1024 + 256 // generous, still tiny

	// MaxCommentLen bounds the comment line. signify uses a 1024-byte
	// buffer for the whole line; staying below it keeps our files readable
	// by signify.
	MaxCommentLen = 1000
)

// Fingerprint is the 8-byte key number that links a signature to its key.
type Fingerprint [8]byte

// String returns the 16 lowercase hex digits usign -F prints and that name
// files in /etc/opkg/keys.
func (f Fingerprint) String() string { return hex.EncodeToString(f[:]) }

// ParseFingerprint reads 16 hex digits.
func ParseFingerprint(s string) (Fingerprint, error) {
	var f Fingerprint
	if len(s) != 16 {
		return f, fmt.Errorf("%w: fingerprint %q: want 16 hex digits", ErrMalformed, s)
	}
	if _, err := hex.Decode(f[:], []byte(s)); err != nil {
		return f, fmt.Errorf("%w: fingerprint %q: %v", ErrMalformed, s, err)
	}
	return f, nil
}

// PublicKey is a usign public key.
type PublicKey struct {
	Fingerprint Fingerprint
	Key         ed25519.PublicKey
	Comment     string
}

// SecretKey is an unencrypted usign secret key.
type SecretKey struct {
	Fingerprint Fingerprint
	Key         ed25519.PrivateKey
	Comment     string
}

// Signature is a usign signature.
type Signature struct {
	Fingerprint Fingerprint
	Sig         [ed25519.SignatureSize]byte
	Comment     string
}

// decodeFile splits a usign file into its comment and payload and checks the
// payload length and algorithm tag. Only "\n" line ends are accepted, as
// usign and signify write them. A missing newline after the base64 line and
// an empty comment are tolerated here, although signify refuses both;
// Marshal always writes the newline and a non-empty default comment.
func decodeFile(kind string, data []byte, wantLen int) (comment string, payload []byte, err error) {
	if len(data) > maxFileLen {
		return "", nil, fmt.Errorf("%w: %s file is %d bytes, too large", ErrMalformed, kind, len(data))
	}
	text := string(data)
	nl := strings.IndexByte(text, '\n')
	if nl < 0 {
		return "", nil, fmt.Errorf("%w: %s file has no comment line", ErrMalformed, kind)
	}
	first, rest := text[:nl], text[nl+1:]
	if !strings.HasPrefix(first, commentPrefix) {
		return "", nil, fmt.Errorf("%w: %s file: first line must start with %q", ErrMalformed, kind, commentPrefix)
	}
	comment = first[len(commentPrefix):]
	// Longer comments than we write are refused: Marshal must always
	// produce a file that parses again (a maximal file without its final
	// newline would otherwise grow past maxFileLen when re-encoded).
	if len(comment) > MaxCommentLen {
		return "", nil, fmt.Errorf("%w: %s file: comment is %d bytes, limit %d", ErrMalformed, kind, len(comment), MaxCommentLen)
	}
	b64 := strings.TrimSuffix(rest, "\n")
	if strings.ContainsAny(b64, "\n\r \t") {
		return "", nil, fmt.Errorf("%w: %s file: base64 line has extra lines or spaces", ErrMalformed, kind)
	}
	payload, err = base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %s file: bad base64: %v", ErrMalformed, kind, err)
	}
	if len(payload) != wantLen {
		return "", nil, fmt.Errorf("%w: %s file: payload is %d bytes, want %d", ErrMalformed, kind, len(payload), wantLen)
	}
	if string(payload[:2]) != algEd25519 {
		return "", nil, fmt.Errorf("%w: %s file: algorithm %q, want %q", ErrMalformed, kind, payload[:2], algEd25519)
	}
	return comment, payload, nil
}

func encodeFile(comment string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString(commentPrefix)
	b.WriteString(comment)
	b.WriteByte('\n')
	b.WriteString(base64.StdEncoding.EncodeToString(payload))
	b.WriteByte('\n')
	return b.Bytes()
}

func checkComment(c string) error {
	if len(c) > MaxCommentLen || strings.ContainsAny(c, "\n\r") {
		return fmt.Errorf("usign: comment must be one line of at most %d bytes", MaxCommentLen)
	}
	return nil
}

// ParsePublicKey reads a public key file.
func ParsePublicKey(data []byte) (*PublicKey, error) {
	comment, p, err := decodeFile("public key", data, publicKeyLen)
	if err != nil {
		return nil, err
	}
	k := &PublicKey{Comment: comment, Key: ed25519.PublicKey(bytes.Clone(p[10:]))}
	copy(k.Fingerprint[:], p[2:10])
	if isZero(k.Key) {
		return nil, fmt.Errorf("%w: public key is all zeros", ErrMalformed)
	}
	return k, nil
}

// Marshal returns the public key file. An empty comment gets usign's default.
func (k *PublicKey) Marshal() []byte {
	c := k.Comment
	if c == "" {
		c = "public key " + k.Fingerprint.String()
	}
	p := make([]byte, 0, publicKeyLen)
	p = append(p, algEd25519...)
	p = append(p, k.Fingerprint[:]...)
	p = append(p, k.Key...)
	return encodeFile(c, p)
}

// ParseSignature reads a signature file.
func ParseSignature(data []byte) (*Signature, error) {
	comment, p, err := decodeFile("signature", data, signatureLen)
	if err != nil {
		return nil, err
	}
	s := &Signature{Comment: comment}
	copy(s.Fingerprint[:], p[2:10])
	copy(s.Sig[:], p[10:])
	return s, nil
}

// Marshal returns the signature file. An empty comment gets usign's default.
func (s *Signature) Marshal() []byte {
	c := s.Comment
	if c == "" {
		c = "signed by key " + s.Fingerprint.String()
	}
	p := make([]byte, 0, signatureLen)
	p = append(p, algEd25519...)
	p = append(p, s.Fingerprint[:]...)
	p = append(p, s.Sig[:]...)
	return encodeFile(c, p)
}

// ParseSecretKey reads an unencrypted secret key file. Passphrase-protected
// keys (kdf rounds > 0) are refused with ErrEncryptedKey rather than
// mis-read: the release pipeline keeps keys unencrypted on an offline medium
// or in a KMS.
func ParseSecretKey(data []byte) (*SecretKey, error) {
	comment, p, err := decodeFile("secret key", data, secretKeyLen)
	if err != nil {
		return nil, err
	}
	if string(p[2:4]) != kdfBcrypt {
		return nil, fmt.Errorf("%w: secret key file: kdf %q, want %q", ErrMalformed, p[2:4], kdfBcrypt)
	}
	rounds := uint32(p[4])<<24 | uint32(p[5])<<16 | uint32(p[6])<<8 | uint32(p[7])
	if rounds != 0 {
		return nil, fmt.Errorf("%w (%d kdf rounds); decrypt it first, e.g. signify -G with -n, or use a KMS key", ErrEncryptedKey, rounds)
	}
	checksum := p[24:32]
	seckey := p[40:104]
	sum := sha512.Sum512(seckey)
	if !bytes.Equal(sum[:8], checksum) {
		return nil, fmt.Errorf("%w: secret key file: checksum mismatch", ErrMalformed)
	}
	priv := ed25519.NewKeyFromSeed(seckey[:32])
	if !bytes.Equal(priv[32:], seckey[32:]) {
		return nil, fmt.Errorf("%w: secret key file: public half does not match the seed", ErrMalformed)
	}
	k := &SecretKey{Comment: comment, Key: priv}
	copy(k.Fingerprint[:], p[32:40])
	return k, nil
}

// Marshal returns the secret key file (unencrypted, salt zero).
func (k *SecretKey) Marshal() []byte {
	c := k.Comment
	if c == "" {
		c = "private key " + k.Fingerprint.String()
	}
	p := make([]byte, secretKeyLen)
	copy(p, algEd25519)
	copy(p[2:], kdfBcrypt)
	sum := sha512.Sum512(k.Key)
	copy(p[24:], sum[:8])
	copy(p[32:], k.Fingerprint[:])
	copy(p[40:], k.Key)
	return encodeFile(c, p)
}

// Public returns the matching public key.
func (k *SecretKey) Public() *PublicKey {
	return &PublicKey{
		Fingerprint: k.Fingerprint,
		Key:         bytes.Clone(k.Key.Public().(ed25519.PublicKey)),
	}
}

// GenerateKey makes a key pair with a random fingerprint, both from rand.
func GenerateKey(rand io.Reader, comment string) (*SecretKey, error) {
	if err := checkComment(comment); err != nil {
		return nil, err
	}
	var seed [ed25519.SeedSize]byte
	if _, err := io.ReadFull(rand, seed[:]); err != nil {
		return nil, fmt.Errorf("usign: reading randomness: %w", err)
	}
	k := &SecretKey{Key: ed25519.NewKeyFromSeed(seed[:]), Comment: comment}
	if _, err := io.ReadFull(rand, k.Fingerprint[:]); err != nil {
		return nil, fmt.Errorf("usign: reading randomness: %w", err)
	}
	return k, nil
}

// Sign signs msg. Ed25519 is deterministic, so equal messages give equal
// signatures: this is what makes two builds byte-identical.
func (k *SecretKey) Sign(msg []byte) (*Signature, error) {
	if len(msg) == 0 {
		return nil, ErrEmptyMessage
	}
	s := &Signature{Fingerprint: k.Fingerprint}
	copy(s.Sig[:], ed25519.Sign(k.Key, msg))
	return s, nil
}

// NewSignature wraps raw Ed25519 signature bytes (from a KMS, say) under a
// fingerprint, refusing anything that cannot be a valid signature.
func NewSignature(fp Fingerprint, raw []byte) (*Signature, error) {
	if len(raw) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: raw signature is %d bytes, want %d", ErrMalformed, len(raw), ed25519.SignatureSize)
	}
	s := &Signature{Fingerprint: fp}
	copy(s.Sig[:], raw)
	return s, nil
}

// Verify checks sig over msg with k. The fingerprint must match before any
// curve arithmetic, as in usign.
func (k *PublicKey) Verify(msg []byte, sig *Signature) error {
	return k.VerifyReader(bytes.NewReader(msg), sig)
}

// VerifyReader is Verify over a stream, in constant memory.
func (k *PublicKey) VerifyReader(r io.Reader, sig *Signature) error {
	if sig.Fingerprint != k.Fingerprint {
		return fmt.Errorf("%w: signature is by key %s, this key is %s", ErrUnknownKey, sig.Fingerprint, k.Fingerprint)
	}
	if isZero(sig.Sig[:]) {
		return fmt.Errorf("%w: all-zero signature", ErrBadSignature)
	}
	ok, err := verifyStream(k.Key, sig.Sig[:], r)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w (key %s)", ErrBadSignature, k.Fingerprint)
	}
	return nil
}

func isZero(b []byte) bool {
	var acc byte
	for _, c := range b {
		acc |= c
	}
	return acc == 0
}
