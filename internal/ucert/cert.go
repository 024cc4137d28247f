package ucert

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/torwrt/torwrt/internal/usign"
)

// Errors a verifier branches on. The validity and type errors also match
// usign.ErrBadSignature (errors.Is), and ErrChainTooLong matches
// ErrMalformed, so callers that map those to exit codes or "refused"
// verdicts classify them without knowing about chains.
var (
	// ErrExpired: now is at or after the certificate's expiresat.
	ErrExpired error = &kindError{"ucert: certificate expired", usign.ErrBadSignature}
	// ErrNotYetValid: now is before the certificate's validfrom. On a
	// router this usually means its clock is wrong (no RTC, no NTP yet).
	ErrNotYetValid error = &kindError{"ucert: certificate not yet valid", usign.ErrBadSignature}
	// ErrCertType: the certificate is not a delegation (certtype 1).
	ErrCertType error = &kindError{"ucert: certificate is not a delegation", usign.ErrBadSignature}
	// ErrChainTooLong: more links than MaxChain.
	ErrChainTooLong error = &kindError{"ucert: certificate chain too long", ErrMalformed}
)

// kindError is a sentinel that also matches a broader sentinel.
type kindError struct {
	msg  string
	kind error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.kind }

// Certificate types, as in ucert.c's enum certtype_id.
const (
	CertTypeAuth   = 1 // delegation: the issuer vouches for PublicKey
	CertTypeRevoke = 2 // revoker: refused by VerifyChain
)

// MaxChain is the longest chain VerifyChain accepts: one delegation
// certificate and the message signature, what OpenWrt's build (`ucert -I`
// then `ucert -A`) produces. Stock ucert walks any number of certificates
// up to its 4 KiB buffer; accepting fewer is safe.
const MaxChain = 2

// Names and blobmsg types of the payload, from ucert.c (cert_cont_policy
// and cert_payload_policy) and libubox blobmsg.h.
const (
	containerName = "ucert"

	blobmsgTable  = 2
	blobmsgString = 3
	blobmsgInt64  = 4
	blobmsgInt32  = 5

	// maxPublicKeyLen is the buffer `ucert -I` reads the public key file
	// into (512 bytes less one for the NUL).
	maxPublicKeyLen = 511
)

// Certificate is the signed payload of a ucert certificate: the blobmsg
// table {"ucert": {certtype, validfrom, expiresat, pubkey}} that `ucert -I`
// writes.
type Certificate struct {
	Type      uint32 `json:"certtype"`
	ValidFrom int64  `json:"validfrom"` // unix seconds, inclusive
	ExpiresAt int64  `json:"expiresat"` // unix seconds, exclusive
	// PublicKey is the certified usign public key file, comment line
	// included, without the blobmsg string's NUL terminator.
	PublicKey []byte `json:"pubkey"`
}

// ValidAt checks the validity window the way ucert.c's chain_verify does:
// valid when validfrom <= now < expiresat, in whole seconds.
func (c *Certificate) ValidAt(now time.Time) error {
	t := now.Unix()
	if t < c.ValidFrom {
		return fmt.Errorf("%w: valid from %s, now is %s", ErrNotYetValid, time.Unix(c.ValidFrom, 0).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	if t >= c.ExpiresAt {
		return fmt.Errorf("%w: expired at %s, now is %s", ErrExpired, time.Unix(c.ExpiresAt, 0).UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// Key parses the certified public key.
func (c *Certificate) Key() (*usign.PublicKey, error) {
	k, err := usign.ParsePublicKey(c.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: certified public key: %v", ErrMalformed, err)
	}
	return k, nil
}

// blobmsg attribute: blob header with the extended bit, u16 name length,
// name, NUL, zero padding to 4, then data, zero padding to 4.
func putBlobmsg(dst []byte, typ uint32, name string, data []byte) []byte {
	hdr := pad4(2 + len(name) + 1)
	n := headerLen + hdr + len(data)
	var h [headerLen]byte
	binary.BigEndian.PutUint32(h[:], extended|typ<<24|uint32(n))
	dst = append(dst, h[:]...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(name)))
	dst = append(dst, name...)
	for i := 2 + len(name); i < hdr; i++ {
		dst = append(dst, 0)
	}
	dst = append(dst, data...)
	for i := n; i%4 != 0; i++ {
		dst = append(dst, 0)
	}
	return dst
}

// Marshal returns the payload bytes exactly as `ucert -I` builds them
// (and signs them): the fields in ucert.c's order.
func (c *Certificate) Marshal() ([]byte, error) {
	if len(c.PublicKey) > maxPublicKeyLen || bytes.IndexByte(c.PublicKey, 0) >= 0 {
		return nil, fmt.Errorf("ucert: certified public key must be at most %d bytes without NUL", maxPublicKeyLen)
	}
	if c.ValidFrom < 0 || c.ExpiresAt < 0 {
		return nil, errors.New("ucert: validity times must not be negative")
	}
	var inner []byte
	inner = putBlobmsg(inner, blobmsgInt32, "certtype", binary.BigEndian.AppendUint32(nil, c.Type))
	inner = putBlobmsg(inner, blobmsgInt64, "validfrom", binary.BigEndian.AppendUint64(nil, uint64(c.ValidFrom)))
	inner = putBlobmsg(inner, blobmsgInt64, "expiresat", binary.BigEndian.AppendUint64(nil, uint64(c.ExpiresAt)))
	inner = putBlobmsg(inner, blobmsgString, "pubkey", append(bytes.Clone(c.PublicKey), 0))
	return putBlobmsg(nil, blobmsgTable, containerName, inner), nil
}

// ParseCertificate reads a certificate payload. It is stricter than stock
// ucert (which takes the first attribute of the right name and type and
// ignores the rest): the payload must be one "ucert" table holding
// certtype, validfrom, expiresat and pubkey once each with their stock
// types, an optional certid, and nothing else, with zero padding. So any
// payload accepted here means the same to stock ucert.
func ParseCertificate(payload []byte) (*Certificate, error) {
	typ, name, data, next, err := readBlobmsg(payload, 0)
	if err != nil {
		return nil, fmt.Errorf("certificate payload: %w", err)
	}
	if next != len(payload) {
		return nil, fmt.Errorf("%w: certificate payload: %d bytes after the %q table", ErrMalformed, len(payload)-next, containerName)
	}
	if typ != blobmsgTable || name != containerName {
		return nil, fmt.Errorf("%w: certificate payload: want table %q, got type %d named %q", ErrMalformed, containerName, typ, name)
	}
	c := &Certificate{}
	seen := map[string]bool{}
	for off := 0; off < len(data); {
		typ, name, v, next, err := readBlobmsg(data, off)
		if err != nil {
			return nil, fmt.Errorf("certificate payload: %w", err)
		}
		if seen[name] {
			return nil, fmt.Errorf("%w: certificate payload: field %q repeated", ErrMalformed, name)
		}
		seen[name] = true
		want, ok := map[string]uint32{"certtype": blobmsgInt32, "certid": blobmsgInt32, "validfrom": blobmsgInt64, "expiresat": blobmsgInt64, "pubkey": blobmsgString}[name]
		if !ok {
			return nil, fmt.Errorf("%w: certificate payload: unknown field %q", ErrMalformed, name)
		}
		if typ != want {
			return nil, fmt.Errorf("%w: certificate payload: field %q has blobmsg type %d, want %d", ErrMalformed, name, typ, want)
		}
		switch {
		case typ == blobmsgInt32 && len(v) != 4, typ == blobmsgInt64 && len(v) != 8:
			return nil, fmt.Errorf("%w: certificate payload: field %q is %d bytes", ErrMalformed, name, len(v))
		}
		switch name {
		case "certtype":
			c.Type = binary.BigEndian.Uint32(v)
		case "validfrom", "expiresat":
			u := binary.BigEndian.Uint64(v)
			if u > math.MaxInt64 {
				// ucert stores it in a signed time_t: a negative time.
				return nil, fmt.Errorf("%w: certificate payload: %s out of range", ErrMalformed, name)
			}
			if name == "validfrom" {
				c.ValidFrom = int64(u)
			} else {
				c.ExpiresAt = int64(u)
			}
		case "pubkey":
			if len(v) == 0 || v[len(v)-1] != 0 || bytes.IndexByte(v[:len(v)-1], 0) >= 0 {
				return nil, fmt.Errorf("%w: certificate payload: pubkey is not one NUL-terminated string", ErrMalformed)
			}
			c.PublicKey = v[:len(v)-1]
		}
		off = next
	}
	for _, f := range []string{"certtype", "validfrom", "expiresat", "pubkey"} {
		if !seen[f] {
			return nil, fmt.Errorf("%w: certificate payload: missing %q", ErrMalformed, f)
		}
	}
	return c, nil
}

// readBlobmsg reads the named (extended) blobmsg attribute at off.
func readBlobmsg(b []byte, off int) (typ uint32, name string, data []byte, next int, err error) {
	if len(b)-off < headerLen {
		return 0, "", nil, 0, fmt.Errorf("%w: %d stray bytes at offset %d", ErrMalformed, len(b)-off, off)
	}
	h := binary.BigEndian.Uint32(b[off:])
	if h&extended == 0 {
		return 0, "", nil, 0, fmt.Errorf("%w: blobmsg attribute at offset %d has no name", ErrMalformed, off)
	}
	n := int(h & lenMask)
	if n < headerLen+2 || n > len(b)-off {
		return 0, "", nil, 0, fmt.Errorf("%w: blobmsg attribute at offset %d has length %d, %d bytes left", ErrMalformed, off, n, len(b)-off)
	}
	next = off + pad4(n)
	if next > len(b) || !allZero(b[off+n:next]) {
		return 0, "", nil, 0, fmt.Errorf("%w: blobmsg attribute at offset %d: bad padding", ErrMalformed, off)
	}
	body := b[off+headerLen : off+n]
	nl := int(binary.BigEndian.Uint16(body))
	hdr := pad4(2 + nl + 1)
	if nl == 0 || hdr > len(body) || body[2+nl] != 0 || !allZero(body[2+nl:hdr]) {
		return 0, "", nil, 0, fmt.Errorf("%w: blobmsg attribute at offset %d: bad name", ErrMalformed, off)
	}
	return (h & idMask) >> 24, string(body[2 : 2+nl]), body[hdr:], next, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Issue makes a certificate element: cert's payload signed by sign (the
// issuer's usign key), as `ucert -I` does.
func Issue(cert *Certificate, sign func(msg []byte) (*usign.Signature, error)) (Element, error) {
	payload, err := cert.Marshal()
	if err != nil {
		return Element{}, err
	}
	sig, err := sign(payload)
	if err != nil {
		return Element{}, fmt.Errorf("signing certificate: %w", err)
	}
	return Element{Signature: sig.Marshal(), Payload: payload}, nil
}

// Verified is a chain whose links checked out. The message signature
// itself is left to the caller, which streams the message through
// Key.VerifyReader(r, Signature).
type Verified struct {
	// Signature covers the message; Key must verify it.
	Signature *usign.Signature
	// Key is the certified key for a chain, or the trusted key for a
	// bare signature. Its fingerprint matches Signature's.
	Key *usign.PublicKey
	// Issuer is the trusted key that signed Certificate; nil for a bare
	// signature.
	Issuer      *usign.PublicKey
	Certificate *Certificate
}

// VerifyChain checks a decoded chain against the trusted keys at time now,
// with stock `ucert -V` semantics (ucert.c chain_verify): a certificate is
// verified with a trusted key (its signature covers the payload bytes),
// must be a delegation (certtype 1) valid at now, and certifies the key
// that must have made the final, bare signature. It does not verify that
// final signature over the message; the caller does, with Key.
//
// Chains longer than MaxChain are refused, as are revoker certificates
// and a bare signature anywhere but last. Revocation links in a key
// directory (".revoked." symlinks, `ucert -R`) are not consulted.
func VerifyChain(chain []Element, trusted *usign.Keyring, now time.Time) (*Verified, error) {
	switch {
	case len(chain) == 0:
		return nil, fmt.Errorf("%w: empty chain", ErrMalformed)
	case len(chain) > MaxChain:
		return nil, fmt.Errorf("%w: %d elements, at most %d accepted", ErrChainTooLong, len(chain), MaxChain)
	}
	last := chain[len(chain)-1]
	if last.Payload != nil {
		return nil, fmt.Errorf("%w: chain does not end in a bare signature", ErrMalformed)
	}
	sig, err := usign.ParseSignature(last.Signature)
	if err != nil {
		return nil, fmt.Errorf("message signature: %w", err)
	}
	if len(chain) == 1 {
		k, ok := trusted.Lookup(sig.Fingerprint)
		if !ok {
			return nil, fmt.Errorf("%w: no trusted key has fingerprint %s", usign.ErrUnknownKey, sig.Fingerprint)
		}
		return &Verified{Signature: sig, Key: k}, nil
	}
	e := chain[0]
	if e.Payload == nil {
		return nil, fmt.Errorf("%w: first of %d elements is not a certificate", ErrMalformed, len(chain))
	}
	csig, err := usign.ParseSignature(e.Signature)
	if err != nil {
		return nil, fmt.Errorf("certificate signature: %w", err)
	}
	issuer, err := trusted.VerifyReader(bytes.NewReader(e.Payload), csig)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	// From here the payload is signed by a trusted key, but it is still
	// parsed strictly.
	cert, err := ParseCertificate(e.Payload)
	if err != nil {
		return nil, err
	}
	if cert.Type != CertTypeAuth {
		return nil, fmt.Errorf("%w: certtype %d, want %d", ErrCertType, cert.Type, CertTypeAuth)
	}
	if err := cert.ValidAt(now); err != nil {
		return nil, err
	}
	key, err := cert.Key()
	if err != nil {
		return nil, err
	}
	if sig.Fingerprint != key.Fingerprint {
		return nil, fmt.Errorf("%w: message signed by key %s, certificate is for key %s", usign.ErrUnknownKey, sig.Fingerprint, key.Fingerprint)
	}
	return &Verified{Signature: sig, Key: key, Issuer: issuer, Certificate: cert}, nil
}
