package ucert

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/usign"
)

// A 151-byte usign signature file (the fixed vector of internal/usign,
// cross-checked with signify there).
const sigFile = "untrusted comment: signed by key 0102030405060708\n" +
	"RWQBAgMEBQYHCD5yIJ9XZqrW/11JdchyPU+j6UOPuRCg0RY+7P0wb5vXGdnv3T/ns+kUWwv6kRoll54YQEAPOp85d2wdAzRGcw8=\n"

func be32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// formats.md §3: outer list attribute (id 0, 4 + padded inner), signature
// attribute (id 0, 4 + 151), the file, one zero byte of padding: 160 bytes.
func TestEncodeSignatureGolden(t *testing.T) {
	if len(sigFile) != 151 {
		t.Fatalf("vector is %d bytes, want 151", len(sigFile))
	}
	want := cat([]byte{0x00, 0x00, 0x00, 0xa0}, []byte{0x00, 0x00, 0x00, 0x9b}, []byte(sigFile), []byte{0})
	got, err := EncodeSignature([]byte(sigFile))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 160 {
		t.Errorf("blob is %d bytes, want 160", len(got))
	}
	if !bytes.Equal(got, want) {
		t.Errorf("blob\n%x\nwant\n%x", got, want)
	}
	chain, err := Decode(got)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 1 || string(chain[0].Signature) != sigFile || chain[0].Payload != nil {
		t.Fatalf("decoded %+v", chain)
	}
	s, err := SigningSignature(chain)
	if err != nil || string(s) != sigFile {
		t.Errorf("SigningSignature: %q, %v", s, err)
	}
}

// Padding for every residue of the signature length.
func TestEncodePadding(t *testing.T) {
	for n := 1; n <= 8; n++ {
		sig := bytes.Repeat([]byte{'s'}, n)
		padded := (n + 3) / 4 * 4
		want := cat(be32(uint32(4+4+padded)), be32(uint32(4+n)), sig, make([]byte, padded-n))
		got, err := EncodeSignature(sig)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("len %d: %x, want %x", n, got, want)
		}
	}
}

// A certificate chain as official build servers make it: a certificate
// (signature + payload) then the bare signature. The image-covering
// signature is the last one, not the root's.
func TestChain(t *testing.T) {
	root := []byte("untrusted comment: root\nROOT\n")
	payload := []byte{0, 0, 0, 8, 1, 2, 3, 4}
	build := []byte(sigFile)
	b, err := Encode(Element{Signature: root, Payload: payload}, Element{Signature: build})
	if err != nil {
		t.Fatal(err)
	}
	inner1 := cat(be32(uint32(4+len(root))), root, make([]byte, (4-len(root)%4)%4), be32(1<<24|uint32(4+len(payload))), payload)
	want := cat(be32(uint32(4+len(inner1))), inner1, be32(160), be32(155), build, []byte{0})
	if !bytes.Equal(b, want) {
		t.Fatalf("chain\n%x\nwant\n%x", b, want)
	}
	chain, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(chain) != 2 || !bytes.Equal(chain[0].Payload, payload) || !bytes.Equal(chain[0].Signature, root) {
		t.Fatalf("decoded %+v", chain)
	}
	s, err := SigningSignature(chain)
	if err != nil {
		t.Fatal(err)
	}
	if string(s) != sigFile {
		t.Errorf("SigningSignature picked %q, want the build key's signature", s)
	}
	// A certificate after the final signature, or no bare signature.
	if _, err := SigningSignature([]Element{{Signature: build}, {Signature: root, Payload: payload}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("certificate last: %v", err)
	}
	if _, err := SigningSignature([]Element{{Signature: root, Payload: payload}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("only a certificate: %v", err)
	}
	if _, err := SigningSignature(nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty chain: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	good, _ := EncodeSignature([]byte(sigFile))
	mod := func(f func([]byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name string
		in   []byte
		msg  string
	}{
		{"empty", nil, "empty"},
		{"short header", []byte{0, 0, 0}, "stray bytes"},
		{"trailing garbage", append(bytes.Clone(good), 1, 2), "stray bytes"},
		{"trailing zero word", append(bytes.Clone(good), 0, 0, 0, 0), "less than its header"},
		{"outer too long", mod(func(b []byte) []byte { b[3] = 0xa4; return b }), "overruns"},
		{"inner too long", mod(func(b []byte) []byte { b[7] = 0xa0; return b }), "overruns"},
		{"length below header", mod(func(b []byte) []byte { b[3] = 2; return b }), "less than its header"},
		{"non-zero padding", mod(func(b []byte) []byte { b[159] = 1; return b }), "non-zero padding"},
		{"extended header", mod(func(b []byte) []byte { b[0] = 0x80; return b }), "extended"},
		{"top-level id", mod(func(b []byte) []byte { b[0] = 0x01; return b }), "has id 1"},
		{"unknown attribute", mod(func(b []byte) []byte { b[4] = 0x05; return b }), "unknown attribute id 5"},
		{"payload without signature", mod(func(b []byte) []byte { b[4] = 0x01; return b }), "no signature attribute"},
		{"repeated signature", cat(be32(4+8+8), be32(8), []byte("abcd"), be32(8), []byte("efgh")), "repeated"},
		{"empty signature", cat(be32(8), be32(4)), "signature"},
		{"too long for ucert", make([]byte, MaxLen+1), "more than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			chain, err := Decode(tc.in)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode: %+v, %v; want ErrMalformed", chain, err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	if _, err := Encode(Element{}); err == nil {
		t.Error("element without signature encoded")
	}
	if _, err := EncodeSignature(make([]byte, MaxLen)); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("oversized chain: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := EncodeSignature([]byte(sigFile))
	f.Add(good)
	chain, _ := Encode(Element{Signature: []byte("root sig"), Payload: []byte("payload")}, Element{Signature: []byte(sigFile)})
	f.Add(chain)
	f.Add(cat(be32(4+8+8), be32(1<<24|8), []byte("pppp"), be32(7), []byte("sss\x00")))
	f.Add([]byte{})
	f.Add([]byte("# fake certificate"))
	f.Add(cat(be32(8), be32(4)))
	// Chains: the stock vector, one of ours, and its truncations.
	f.Add(readVector(f, "chain.ucert"))
	fuzzKey := chainKey(f, 1)
	ours := fuzzChain(f, fuzzKey)
	f.Add(ours)
	f.Add(ours[:len(ours)/2])
	trusted := ring(f, pubOf(f, readVector(f, "release.pub")), fuzzKey.Public())
	f.Fuzz(func(t *testing.T, data []byte) {
		checkChain(t, data, trusted)
		chain, err := Decode(data)
		if err != nil {
			if chain != nil {
				t.Fatal("chain returned with an error")
			}
			return
		}
		if len(chain) == 0 {
			t.Fatal("empty chain without an error")
		}
		for i, e := range chain {
			if len(e.Signature) == 0 {
				t.Fatalf("element %d has an empty signature", i)
			}
		}
		out, err := Encode(chain...)
		if err != nil {
			t.Fatalf("Encode(Decode(x)): %v", err)
		}
		// Same attributes, same padding: same length; in canonical order
		// (signature before payload) the same bytes.
		if len(out) != len(data) {
			t.Fatalf("re-encoded %d bytes from %d", len(out), len(data))
		}
		again, err := Decode(out)
		if err != nil {
			t.Fatalf("Decode(Encode(Decode(x))): %v", err)
		}
		if len(again) != len(chain) {
			t.Fatalf("%d elements became %d", len(chain), len(again))
		}
		for i := range chain {
			if !bytes.Equal(again[i].Signature, chain[i].Signature) || !bytes.Equal(again[i].Payload, chain[i].Payload) || (again[i].Payload == nil) != (chain[i].Payload == nil) {
				t.Fatalf("element %d changed in the round trip", i)
			}
		}
		if canonicalOrder(data) && !bytes.Equal(out, data) {
			t.Fatalf("canonical blob re-encoded differently:\n%x\n%x", data, out)
		}
		// SigningSignature never panics and returns a signature of the chain.
		if s, err := SigningSignature(chain); err == nil && !bytes.Equal(s, chain[len(chain)-1].Signature) {
			t.Fatal("SigningSignature is not the last element's")
		}
	})
}

// fuzzChain is a valid chain: a certificate by root for a build key at
// stockNow, and the build key's signature over "message".
func fuzzChain(t testing.TB, root *usign.SecretKey) []byte {
	build := chainKey(t, 2)
	cert, err := Issue(&Certificate{Type: CertTypeAuth, ValidFrom: stockNow.Unix() - 1, ExpiresAt: stockNow.Unix() + 1, PublicKey: build.Public().Marshal()}, root.Sign)
	if err != nil {
		t.Fatal(err)
	}
	sig, _ := build.Sign([]byte("message"))
	b, err := Encode(cert, Element{Signature: sig.Marshal()})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkChain: VerifyChain and ParseCertificate never panic; a chain that
// VerifyChain accepts has at most MaxChain elements, a certificate that
// crypto/ed25519 verifies with a trusted key, a delegation valid at
// stockNow, and a final signature naming the certified key; a payload that
// parses re-encodes to the same bytes.
func checkChain(t *testing.T, data []byte, trusted *usign.Keyring) {
	chain, err := Decode(data)
	if err != nil {
		return
	}
	for _, e := range chain {
		if e.Payload == nil {
			continue
		}
		if c, err := ParseCertificate(e.Payload); err == nil {
			if b, err := c.Marshal(); err != nil || !bytes.Equal(b, e.Payload) {
				t.Fatalf("certificate payload does not round-trip: %v", err)
			}
		}
	}
	v, err := VerifyChain(chain, trusted, stockNow)
	if err != nil {
		if v != nil {
			t.Fatal("result returned with an error")
		}
		return
	}
	if len(chain) > MaxChain {
		t.Fatalf("accepted %d elements", len(chain))
	}
	sig, err := usign.ParseSignature(chain[len(chain)-1].Signature)
	if err != nil || sig.Fingerprint != v.Key.Fingerprint {
		t.Fatal("accepted a final signature not by the returned key")
	}
	if len(chain) == 1 {
		if k, ok := trusted.Lookup(sig.Fingerprint); !ok || !k.Key.Equal(v.Key.Key) {
			t.Fatal("accepted a bare signature by an untrusted key")
		}
		return
	}
	csig, err := usign.ParseSignature(chain[0].Signature)
	if err != nil {
		t.Fatal(err)
	}
	k, ok := trusted.Lookup(csig.Fingerprint)
	if !ok || !ed25519.Verify(k.Key, chain[0].Payload, csig.Sig[:]) {
		t.Fatal("accepted a certificate that crypto/ed25519 rejects")
	}
	c := v.Certificate
	if c.Type != CertTypeAuth || stockNow.Unix() < c.ValidFrom || stockNow.Unix() >= c.ExpiresAt {
		t.Fatalf("accepted certificate %+v at %d", c, stockNow.Unix())
	}
	if ck, err := usign.ParsePublicKey(c.PublicKey); err != nil || !ck.Key.Equal(v.Key.Key) {
		t.Fatal("returned key is not the certified one")
	}
}

// canonicalOrder reports whether every element of a well-formed blob lists
// its signature attribute first.
func canonicalOrder(b []byte) bool {
	for off := 0; off < len(b); {
		n := int(binary.BigEndian.Uint32(b[off:]) & lenMask)
		if binary.BigEndian.Uint32(b[off+4:])>>24 != attrSignature {
			return false
		}
		off += pad4(n)
	}
	return true
}
