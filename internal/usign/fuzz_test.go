package usign

import (
	"bytes"
	"crypto/ed25519"
	"strings"
	"testing"
)

func addFileSeeds(f *testing.F, files ...string) {
	for _, s := range files {
		f.Add([]byte(s))
		f.Add([]byte(strings.TrimSuffix(s, "\n")))
	}
	f.Add([]byte{})
	f.Add([]byte("untrusted comment: \n\n"))
	f.Add([]byte("untrusted comment: " + strings.Repeat("c", MaxCommentLen) + "\n" + vectorSigB64))
	// The longest file the parser takes, without its final newline: Marshal
	// adds one and must still produce a file the parser takes.
	f.Add([]byte("untrusted comment: " + strings.Repeat("c", maxFileLen-len("untrusted comment: \n")-len(vectorSigB64)) + "\n" + vectorSigB64))
}

// checkCommentKept asserts that a comment survives Marshal; an empty one
// is replaced by the default, as usign does.
func checkCommentKept(t *testing.T, parsed, reparsed string) {
	t.Helper()
	if parsed != "" && reparsed != parsed {
		t.Fatalf("comment %q came back as %q", parsed, reparsed)
	}
}

func FuzzParsePublicKey(f *testing.F) {
	addFileSeeds(f, vectorPubFile, string(testKey(f, 1).Public().Marshal()),
		"untrusted comment: upstream\nRWTTEMbygz6X95lKDAulctZy3aj15823THXfyrfXgwGbxZlXBd2brNcw\n")
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParsePublicKey(data)
		if err != nil {
			if k != nil {
				t.Fatal("non-nil key with an error")
			}
			return
		}
		if len(k.Key) != ed25519.PublicKeySize {
			t.Fatalf("key of %d bytes", len(k.Key))
		}
		out := k.Marshal()
		k2, err := ParsePublicKey(out)
		if err != nil {
			t.Fatalf("re-parsing our own output %q: %v", out, err)
		}
		if k2.Fingerprint != k.Fingerprint || !k2.Key.Equal(k.Key) {
			t.Fatal("round trip changed the key")
		}
		checkCommentKept(t, k.Comment, k2.Comment)
		if !bytes.Equal(k2.Marshal(), out) {
			t.Fatal("Marshal is not a fixed point")
		}
		// The parsed key must not alias the input (parse a copy, since the
		// fuzz input itself must not be modified).
		c := bytes.Clone(data)
		k3, err := ParsePublicKey(c)
		if err != nil {
			t.Fatal(err)
		}
		for i := range c {
			c[i] ^= 0xff
		}
		if !k3.Key.Equal(k.Key) {
			t.Fatal("key aliases the input buffer")
		}
	})
}

func FuzzParseSignature(f *testing.F) {
	zero := &Signature{}
	addFileSeeds(f, vectorSigFile, string(zero.Marshal()))
	pub, err := ParsePublicKey([]byte(vectorPubFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSignature(data)
		if err != nil {
			return
		}
		out := s.Marshal()
		s2, err := ParseSignature(out)
		if err != nil {
			t.Fatalf("re-parsing our own output %q: %v", out, err)
		}
		if s2.Fingerprint != s.Fingerprint || s2.Sig != s.Sig {
			t.Fatal("round trip changed the signature")
		}
		checkCommentKept(t, s.Comment, s2.Comment)
		if !bytes.Equal(s2.Marshal(), out) {
			t.Fatal("Marshal is not a fixed point")
		}
		// Whatever parses, only the real signature verifies the vector
		// message, and our verifier agrees with crypto/ed25519.
		err = pub.Verify([]byte(vectorMsg), s)
		std := s.Fingerprint == pub.Fingerprint && ed25519.Verify(pub.Key, []byte(vectorMsg), s.Sig[:])
		if (err == nil) != std {
			t.Fatalf("Verify: %v, crypto/ed25519: %v", err, std)
		}
		if err == nil && lastLine(out) != vectorSigB64 {
			t.Fatalf("a signature other than the vector's verifies: %s", lastLine(out))
		}
	})
}

func FuzzParseSecretKey(f *testing.F) {
	k1 := testKey(f, 1)
	addFileSeeds(f, vectorSecFile, string(k1.Marshal()))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParseSecretKey(data)
		if err != nil {
			return
		}
		if len(k.Key) != ed25519.PrivateKeySize {
			t.Fatalf("key of %d bytes", len(k.Key))
		}
		out := k.Marshal()
		k2, err := ParseSecretKey(out)
		if err != nil {
			t.Fatalf("re-parsing our own output %q: %v", out, err)
		}
		if k2.Fingerprint != k.Fingerprint || !k2.Key.Equal(k.Key) {
			t.Fatal("round trip changed the key")
		}
		checkCommentKept(t, k.Comment, k2.Comment)
		if !bytes.Equal(k2.Marshal(), out) {
			t.Fatal("Marshal is not a fixed point")
		}
		// A key that parses signs like crypto/ed25519 and verifies with
		// its public half.
		msg := []byte("m")
		s, err := k.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(s.Sig[:], ed25519.Sign(ed25519.NewKeyFromSeed(k.Key.Seed()), msg)) {
			t.Fatal("signature differs from crypto/ed25519")
		}
		if err := k.Public().Verify(msg, s); err != nil {
			t.Fatal(err)
		}
	})
}
