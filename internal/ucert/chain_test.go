package ucert

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/usign"
)

// Stock vectors: see testdata/vectors/README.md. The certificate in
// chain.ucert is valid for [stockValidFrom, stockExpiresAt).
const (
	stockValidFrom = 1796524892
	stockExpiresAt = 1828060892
)

var stockNow = time.Unix(stockValidFrom+3600, 0)

func readVector(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "vectors", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pubOf(t testing.TB, file []byte) *usign.PublicKey {
	t.Helper()
	k, err := usign.ParsePublicKey(file)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ring(t testing.TB, keys ...*usign.PublicKey) *usign.Keyring {
	t.Helper()
	kr, err := usign.NewKeyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func chainKey(t testing.TB, n byte) *usign.SecretKey {
	t.Helper()
	k := &usign.SecretKey{Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{n}, 32)), Comment: "test key"}
	for i := range k.Fingerprint {
		k.Fingerprint[i] = n<<4 | byte(i)
	}
	return k
}

// TestStockChain: a chain made by stock `ucert -I` + `usign -S` +
// `ucert -A` verifies, and our encoder reproduces its certificate payload
// byte for byte.
func TestStockChain(t *testing.T) {
	data := readVector(t, "chain.ucert")
	release := pubOf(t, readVector(t, "release.pub"))
	build := pubOf(t, readVector(t, "build.pub"))
	chain, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	v, err := VerifyChain(chain, ring(t, release), stockNow)
	if err != nil {
		t.Fatal(err)
	}
	if v.Issuer.Fingerprint != release.Fingerprint || v.Key.Fingerprint != build.Fingerprint || !v.Key.Key.Equal(build.Key) {
		t.Fatalf("issuer %s key %s", v.Issuer.Fingerprint, v.Key.Fingerprint)
	}
	if err := v.Key.Verify(readVector(t, "message"), v.Signature); err != nil {
		t.Fatal(err)
	}
	c := v.Certificate
	if c.Type != CertTypeAuth || c.ValidFrom != stockValidFrom || c.ExpiresAt != stockExpiresAt || !bytes.Equal(c.PublicKey, readVector(t, "build.pub")) {
		t.Fatalf("certificate %+v", c)
	}
	payload, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(payload, chain[0].Payload) {
		t.Fatalf("Marshal differs from ucert -I:\n%x\n%x", payload, chain[0].Payload)
	}
	if again, err := Encode(chain...); err != nil || !bytes.Equal(again, data) {
		t.Fatalf("Encode(Decode(stock)) differs: %v", err)
	}
}

// TestIssueMatchesStockLayout: a chain we issue has the stock layout and
// verifies with VerifyChain.
func TestIssueAndVerify(t *testing.T) {
	root, build := chainKey(t, 1), chainKey(t, 2)
	msg := []byte("image bytes")
	c := &Certificate{Type: CertTypeAuth, ValidFrom: 1000, ExpiresAt: 2000, PublicKey: build.Public().Marshal()}
	cert, err := Issue(c, root.Sign)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := build.Sign(msg)
	data, err := Encode(cert, Element{Signature: sig.Marshal()})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, now := range []int64{1000, 1999} {
		v, err := VerifyChain(chain, ring(t, root.Public()), time.Unix(now, 0))
		if err != nil {
			t.Fatalf("at %d: %v", now, err)
		}
		if err := v.Key.Verify(msg, v.Signature); err != nil {
			t.Fatal(err)
		}
	}
}

func TestVerifyChainRejects(t *testing.T) {
	root, build, other := chainKey(t, 1), chainKey(t, 2), chainKey(t, 3)
	trusted := ring(t, root.Public())
	now := time.Unix(1500, 0)
	msg := []byte("image bytes")
	issue := func(by *usign.SecretKey, c Certificate) Element {
		t.Helper()
		if c.PublicKey == nil {
			c.PublicKey = build.Public().Marshal()
		}
		e, err := Issue(&c, by.Sign)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	sigBy := func(k *usign.SecretKey) Element {
		s, _ := k.Sign(msg)
		return Element{Signature: s.Marshal()}
	}
	good := Certificate{Type: CertTypeAuth, ValidFrom: 1000, ExpiresAt: 2000}
	goodCert := issue(root, good)
	tampered := goodCert
	tampered.Payload = bytes.Clone(goodCert.Payload)
	tampered.Payload[len(tampered.Payload)-20] ^= 1 // inside the pubkey text
	expiresEarly := good
	expiresEarly.ExpiresAt = 1501
	revoker := good
	revoker.Type = CertTypeRevoke
	for _, tc := range []struct {
		name  string
		chain []Element
		now   time.Time
		want  error
	}{
		{"expired", []Element{goodCert, sigBy(build)}, time.Unix(2000, 0), ErrExpired},
		{"expired long ago", []Element{goodCert, sigBy(build)}, time.Unix(1<<40, 0), ErrExpired},
		{"not yet valid", []Element{goodCert, sigBy(build)}, time.Unix(999, 0), ErrNotYetValid},
		{"certificate by an untrusted key", []Element{issue(other, good), sigBy(build)}, now, usign.ErrUnknownKey},
		{"signature by another key than the certified one", []Element{goodCert, sigBy(other)}, now, usign.ErrUnknownKey},
		{"signature by the root key itself", []Element{goodCert, sigBy(root)}, now, usign.ErrUnknownKey},
		{"tampered certificate", []Element{tampered, sigBy(build)}, now, usign.ErrBadSignature},
		{"revoker certificate", []Element{issue(root, revoker), sigBy(build)}, now, ErrCertType},
		{"chain of 3", []Element{goodCert, issue(build, Certificate{Type: CertTypeAuth, ValidFrom: 1000, ExpiresAt: 2000, PublicKey: other.Public().Marshal()}), sigBy(other)}, now, ErrChainTooLong},
		{"certificate last", []Element{sigBy(build), goodCert}, now, ErrMalformed},
		{"two bare signatures", []Element{sigBy(root), sigBy(root)}, now, ErrMalformed},
		{"certificate alone", []Element{goodCert}, now, ErrMalformed},
		{"bare signature by an untrusted key", []Element{sigBy(build)}, now, usign.ErrUnknownKey},
		{"empty", nil, now, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := VerifyChain(tc.chain, trusted, tc.now)
			if !errors.Is(err, tc.want) || v != nil {
				t.Fatalf("VerifyChain = %v, %v; want %v", v, err, tc.want)
			}
		})
	}
	// Expiry is exclusive, validfrom inclusive, as in ucert.c.
	if _, err := VerifyChain([]Element{issue(root, expiresEarly), sigBy(build)}, trusted, time.Unix(1500, 999e6)); err != nil {
		t.Fatalf("last second of validity: %v", err)
	}
	// Validity and type errors are also signature refusals for callers
	// that only know usign's sentinels.
	for _, e := range []error{ErrExpired, ErrNotYetValid, ErrCertType} {
		if !errors.Is(e, usign.ErrBadSignature) {
			t.Errorf("%v does not match usign.ErrBadSignature", e)
		}
	}
	if !errors.Is(ErrChainTooLong, ErrMalformed) {
		t.Error("ErrChainTooLong does not match ErrMalformed")
	}
}

// TestTruncatedStockChain: every proper prefix of the stock chain is
// refused (by Decode, or by VerifyChain when the cut falls between
// elements).
func TestTruncatedStockChain(t *testing.T) {
	data := readVector(t, "chain.ucert")
	trusted := ring(t, pubOf(t, readVector(t, "release.pub")))
	for n := 0; n < len(data); n++ {
		chain, err := Decode(data[:n])
		if err == nil {
			_, err = VerifyChain(chain, trusted, stockNow)
		}
		if err == nil {
			t.Fatalf("prefix of %d bytes accepted", n)
		}
	}
}

func TestParseCertificateRejects(t *testing.T) {
	good, err := (&Certificate{Type: 1, ValidFrom: 1, ExpiresAt: 2, PublicKey: []byte("k")}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseCertificate(good); err != nil {
		t.Fatal(err)
	}
	field := func(typ uint32, name string, v []byte) []byte { return putBlobmsg(nil, typ, name, v) }
	table := func(fields ...[]byte) []byte { return putBlobmsg(nil, blobmsgTable, containerName, cat(fields...)) }
	i32 := field(blobmsgInt32, "certtype", be32(1))
	vf := field(blobmsgInt64, "validfrom", make([]byte, 8))
	ex := field(blobmsgInt64, "expiresat", []byte{0, 0, 0, 0, 0, 0, 0, 9})
	pk := field(blobmsgString, "pubkey", []byte("k\x00"))
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"truncated", good[:len(good)-4]},
		{"trailing bytes", cat(good, be32(0))},
		{"wrong container name", putBlobmsg(nil, blobmsgTable, "ucerT", cat(i32, vf, ex, pk))},
		{"missing pubkey", table(i32, vf, ex)},
		{"missing expiresat", table(i32, vf, pk)},
		{"repeated field", table(i32, vf, ex, pk, field(blobmsgString, "pubkey", []byte("x\x00")))},
		{"unknown field", table(i32, vf, ex, pk, field(blobmsgString, "fingerprint", []byte("x\x00")))},
		{"int32 certtype as int64", table(field(blobmsgInt64, "certtype", make([]byte, 8)), vf, ex, pk)},
		{"short int64", table(i32, field(blobmsgInt64, "validfrom", make([]byte, 4)), ex, pk)},
		{"negative time", table(i32, field(blobmsgInt64, "validfrom", bytes.Repeat([]byte{0xff}, 8)), ex, pk)},
		{"pubkey without NUL", table(i32, vf, ex, field(blobmsgString, "pubkey", []byte("kk")))},
		{"pubkey with inner NUL", table(i32, vf, ex, field(blobmsgString, "pubkey", []byte("k\x00k\x00")))},
		{"unnamed attribute", cat(be32(blobmsgTable<<24|8), be32(0))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := ParseCertificate(tc.payload); !errors.Is(err, ErrMalformed) {
				t.Fatalf("ParseCertificate = %+v, %v", c, err)
			}
		})
	}
}
