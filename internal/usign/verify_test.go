package usign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
	"testing"
	"testing/iotest"
)

func sha512sum(b []byte) [64]byte { return sha512.Sum512(b) }

// testKey returns a deterministic key whose seed is n repeated.
func testKey(t testing.TB, n byte) *SecretKey {
	t.Helper()
	seed := bytes.Repeat([]byte{n}, ed25519.SeedSize)
	k := &SecretKey{Key: ed25519.NewKeyFromSeed(seed)}
	for i := range k.Fingerprint {
		k.Fingerprint[i] = n + byte(i)
	}
	return k
}

func TestVerifyRejects(t *testing.T) {
	k := testKey(t, 7)
	other := testKey(t, 9)
	msg := []byte("sysupgrade image bytes")
	good, err := k.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	pub := k.Public()
	if err := pub.Verify(msg, good); err != nil {
		t.Fatalf("good signature: %v", err)
	}

	zero := &Signature{Fingerprint: k.Fingerprint}
	byOther, _ := other.Sign(msg)
	// Same fingerprint, different key: the fingerprint check passes, the
	// arithmetic must not.
	impostor := *byOther
	impostor.Fingerprint = k.Fingerprint
	flipped := *good
	flipped.Sig[5] ^= 0x20
	// S + L is the same point arithmetic but not canonical: RFC 8032
	// and crypto/ed25519 reject it (signature malleability).
	malleable := *good
	setS(&malleable, new(big.Int).Add(getS(good), ed25519L))
	highBits := *good
	highBits.Sig[63] |= 0xe0

	tests := []struct {
		name string
		sig  *Signature
		msg  []byte
		want error
		text string
	}{
		{"all-zero signature", zero, msg, ErrBadSignature, "all-zero"},
		{"unknown fingerprint", byOther, msg, ErrUnknownKey, other.Fingerprint.String()},
		{"other key same fingerprint", &impostor, msg, ErrBadSignature, "does not verify"},
		{"bit flip", &flipped, msg, ErrBadSignature, "does not verify"},
		{"different message", good, []byte("sysupgrade image byteS"), ErrBadSignature, "does not verify"},
		{"empty message", good, nil, ErrBadSignature, "does not verify"},
		{"non-canonical S", &malleable, msg, ErrBadSignature, "does not verify"},
		{"high bits of S", &highBits, msg, ErrBadSignature, "does not verify"},
	}
	kr, err := NewKeyring(pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := pub.Verify(tc.msg, tc.sig)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("Verify: %v, want %v mentioning %q", err, tc.want, tc.text)
			}
			if ed25519.Verify(pub.Key, tc.msg, tc.sig.Sig[:]) && tc.sig.Fingerprint == pub.Fingerprint {
				t.Errorf("crypto/ed25519 accepts a signature we reject")
			}
			k, err := kr.VerifyReader(bytes.NewReader(tc.msg), tc.sig)
			if k != nil || !errors.Is(err, tc.want) {
				t.Errorf("Keyring.VerifyReader: %v, %v; want nil, %v", k, err, tc.want)
			}
		})
	}
}

var ed25519L, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)

func getS(s *Signature) *big.Int {
	le := bytes.Clone(s.Sig[32:])
	for i, j := 0, len(le)-1; i < j; i, j = i+1, j-1 {
		le[i], le[j] = le[j], le[i]
	}
	return new(big.Int).SetBytes(le)
}

func setS(s *Signature, v *big.Int) {
	be := v.FillBytes(make([]byte, 32))
	for i := 0; i < 32; i++ {
		s.Sig[32+i] = be[31-i]
	}
}

// The streaming verifier must agree with crypto/ed25519 everywhere,
// including on edge cases: small-order public keys and R values, the
// identity, non-canonical encodings.
func TestVerifyStreamAgreesWithStdlib(t *testing.T) {
	msg := []byte("m")
	// Small-order points (encodings from the "Taming the many EdDSAs"
	// test vectors) and a non-canonical y.
	smallOrder := []string{
		"0100000000000000000000000000000000000000000000000000000000000000", // identity
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // order 2
		"0000000000000000000000000000000000000000000000000000000000000080", // order 4
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05", // order 8
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f", // y = p, non-canonical
	}
	k := testKey(t, 3)
	good := ed25519.Sign(k.Key, msg)
	var pubs [][]byte
	pubs = append(pubs, k.Key.Public().(ed25519.PublicKey))
	for _, h := range smallOrder {
		b, _ := hex.DecodeString(h)
		pubs = append(pubs, b)
	}
	var sigs [][]byte
	sigs = append(sigs, good)
	for _, h := range smallOrder {
		r, _ := hex.DecodeString(h)
		sigs = append(sigs, append(r, make([]byte, 32)...)) // R small order, S = 0
		sigs = append(sigs, append(bytes.Clone(r), good[32:]...))
	}
	for i, pub := range pubs {
		for j, sig := range sigs {
			want := ed25519.Verify(pub, msg, sig)
			got, err := verifyStream(pub, sig, bytes.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("pub %d sig %d: verifyStream %v, crypto/ed25519 %v", i, j, got, want)
			}
		}
	}
}

func TestVerifyReaderError(t *testing.T) {
	k := testKey(t, 4)
	sig, _ := k.Sign([]byte("abc"))
	err := k.Public().VerifyReader(iotest.ErrReader(errors.New("disk on fire")), sig)
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("VerifyReader with a failing reader: %v", err)
	}
}

func TestKeyring(t *testing.T) {
	a, b := testKey(t, 1).Public(), testKey(t, 2).Public()
	kr, err := NewKeyring(b, a, a)
	if err != nil {
		t.Fatal(err)
	}
	if kr.Len() != 2 {
		t.Errorf("Len %d, want 2", kr.Len())
	}
	keys := kr.Keys()
	if keys[0].Fingerprint != a.Fingerprint || keys[1].Fingerprint != b.Fingerprint {
		t.Errorf("Keys not sorted by fingerprint: %s %s", keys[0].Fingerprint, keys[1].Fingerprint)
	}
	clash := testKey(t, 5).Public()
	clash.Fingerprint = a.Fingerprint
	if _, err := NewKeyring(a, clash); err == nil || !strings.Contains(err.Error(), "share fingerprint") {
		t.Errorf("two keys with one fingerprint: %v", err)
	}
	if _, ok := kr.Lookup(clash.Fingerprint); !ok {
		t.Error("Lookup misses a trusted key")
	}
}

func TestNewSignature(t *testing.T) {
	k := testKey(t, 6)
	raw := ed25519.Sign(k.Key, []byte("x"))
	s, err := NewSignature(k.Fingerprint, raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Public().Verify([]byte("x"), s); err != nil {
		t.Error(err)
	}
	if _, err := NewSignature(k.Fingerprint, raw[:63]); !errors.Is(err, ErrMalformed) {
		t.Errorf("63-byte raw signature: %v", err)
	}
}

func TestGenerateKey(t *testing.T) {
	r := bytes.NewReader(bytes.Repeat([]byte{0xaa}, 40))
	k, err := GenerateKey(r, "c")
	if err != nil {
		t.Fatal(err)
	}
	if k.Fingerprint.String() != "aaaaaaaaaaaaaaaa" {
		t.Errorf("fingerprint %s", k.Fingerprint)
	}
	if _, err := GenerateKey(bytes.NewReader(make([]byte, 39)), "c"); err == nil {
		t.Error("GenerateKey with too little randomness succeeded")
	}
	if _, err := GenerateKey(bytes.NewReader(make([]byte, 40)), "two\nlines"); err == nil {
		t.Error("GenerateKey accepted a two-line comment")
	}
	// Marshal→Parse round trip of a generated key.
	k2, err := ParseSecretKey(k.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if !k2.Key.Equal(k.Key) || k2.Fingerprint != k.Fingerprint || k2.Comment != "c" {
		t.Errorf("round trip changed the key")
	}
}
