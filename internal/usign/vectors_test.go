package usign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// Fixed test vector, written down once and cross-checked with OpenBSD
// signify (signify-openbsd 31, Debian): the secret key file below was built
// by hand from seed 32×0x01 and fingerprint 0102030405060708, then
//
//	signify-openbsd -S -s vec.sec -m msg -x msg.sig
//
// printed vectorSigB64 for vectorMsg. TestVectorMatchesSignify repeats that
// check on every run. Nothing here is computed by the code under test.
const (
	vectorFP     = "0102030405060708"
	vectorPubB64 = "RWQBAgMEBQYHCIqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c"
	vectorMsg    = "torwrt test vector\n"
	vectorSigB64 = "RWQBAgMEBQYHCD5yIJ9XZqrW/11JdchyPU+j6UOPuRCg0RY+7P0wb5vXGdnv3T/ns+kUWwv6kRoll54YQEAPOp85d2wdAzRGcw8="

	vectorPubFile = "untrusted comment: signify public key\n" + vectorPubB64 + "\n"
	// The file our Marshal writes: usign's default comment.
	vectorSigFile = "untrusted comment: signed by key " + vectorFP + "\n" + vectorSigB64 + "\n"
)

// The secret key file is assembled here from its public recipe rather than
// kept as a literal, so no secret-key file ever sits in the repository:
// "Ed" "BK", kdf rounds 0, zero salt, SHA-512 checksum, fingerprint, then
// the 32-byte seed (all 0x01) and the public key. Only the standard
// library builds it.
var vectorSecB64, vectorSecFile = func() (string, string) {
	seed := bytes.Repeat([]byte{1}, ed25519.SeedSize)
	priv := ed25519.NewKeyFromSeed(seed)
	sum := sha512.Sum512(priv)
	p := []byte("EdBK")
	p = append(p, 0, 0, 0, 0)
	p = append(p, make([]byte, 16)...)
	p = append(p, sum[:8]...)
	p = append(p, 1, 2, 3, 4, 5, 6, 7, 8)
	p = append(p, priv...)
	b64 := base64.StdEncoding.EncodeToString(p)
	return b64, "untrusted comment: signify secret key\n" + b64 + "\n"
}()

func TestVectorSecretKey(t *testing.T) {
	k, err := ParseSecretKey([]byte(vectorSecFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Fingerprint.String(); got != vectorFP {
		t.Errorf("fingerprint %s, want %s", got, vectorFP)
	}
	if !bytes.Equal(k.Key.Seed(), bytes.Repeat([]byte{1}, 32)) {
		t.Errorf("seed %x, want 32×01", k.Key.Seed())
	}
	if k.Comment != "signify secret key" {
		t.Errorf("comment %q", k.Comment)
	}
	pub := k.Public()
	if got := base64.StdEncoding.EncodeToString(payloadOf(t, pub.Marshal())); got != vectorPubB64 {
		t.Errorf("public key %s, want %s", got, vectorPubB64)
	}
	// Our secret key file carries the same payload (salt is zero there too).
	k.Comment = "signify secret key"
	if got := string(k.Marshal()); got != vectorSecFile {
		t.Errorf("secret key file\n%q\nwant\n%q", got, vectorSecFile)
	}
}

func TestVectorSignature(t *testing.T) {
	k, err := ParseSecretKey([]byte(vectorSecFile))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := k.Sign([]byte(vectorMsg))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(sig.Marshal()); got != vectorSigFile {
		t.Errorf("signature file\n%q\nwant\n%q", got, vectorSigFile)
	}
	if n := len(sig.Marshal()); n != 151 {
		t.Errorf("signature file is %d bytes, want 151 (formats.md §3)", n)
	}
	pub, err := ParsePublicKey([]byte(vectorPubFile))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseSignature([]byte(vectorSigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Verify([]byte(vectorMsg), parsed); err != nil {
		t.Errorf("vector signature does not verify: %v", err)
	}
	if err := pub.Verify([]byte(vectorMsg+"x"), parsed); !errors.Is(err, ErrBadSignature) {
		t.Errorf("vector signature over another message: %v, want ErrBadSignature", err)
	}
	// The standard library agrees on the raw bytes.
	if !ed25519.Verify(pub.Key, []byte(vectorMsg), parsed.Sig[:]) {
		t.Error("crypto/ed25519 rejects the vector")
	}
}

// payloadOf decodes the base64 line of a usign file.
func payloadOf(t *testing.T, file []byte) []byte {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(string(file), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("file has %d lines: %q", len(lines), file)
	}
	p, err := base64.StdEncoding.DecodeString(lines[1])
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseErrors(t *testing.T) {
	pubPayload, _ := base64.StdEncoding.DecodeString(vectorPubB64)
	sigPayload, _ := base64.StdEncoding.DecodeString(vectorSigB64)
	secPayload, _ := base64.StdEncoding.DecodeString(vectorSecB64)
	file := func(p []byte) string {
		return "untrusted comment: x\n" + base64.StdEncoding.EncodeToString(p) + "\n"
	}
	mod := func(p []byte, f func([]byte)) []byte { q := bytes.Clone(p); f(q); return q }
	encrypted := mod(secPayload, func(q []byte) { q[7] = 42 })
	tests := []struct {
		name  string
		parse func([]byte) error
		data  string
		want  error
		msg   string
	}{
		{"pub empty", pubParse, "", ErrMalformed, "no comment line"},
		{"pub no comment prefix", pubParse, "comment: x\n" + vectorPubB64 + "\n", ErrMalformed, "untrusted comment"},
		{"pub bad base64", pubParse, "untrusted comment: x\n" + vectorPubB64[:20] + "*" + vectorPubB64[21:] + "\n", ErrMalformed, "bad base64"},
		{"pub unpadded base64", pubParse, "untrusted comment: x\n" + strings.TrimRight(base64.StdEncoding.EncodeToString(pubPayload[:41]), "=") + "\n", ErrMalformed, "bad base64"},
		{"pub short", pubParse, file(pubPayload[:41]), ErrMalformed, "payload is 41 bytes, want 42"},
		{"pub long", pubParse, file(append(bytes.Clone(pubPayload), 0)), ErrMalformed, "payload is 43 bytes, want 42"},
		{"pub wrong alg", pubParse, file(mod(pubPayload, func(q []byte) { q[0] = 'X' })), ErrMalformed, "algorithm"},
		{"pub all-zero key", pubParse, file(mod(pubPayload, func(q []byte) { clear(q[10:]) })), ErrMalformed, "all zeros"},
		{"pub CRLF", pubParse, "untrusted comment: x\r\n" + vectorPubB64 + "\r\n", ErrMalformed, "extra lines or spaces"},
		{"pub third line", pubParse, vectorPubFile + "junk\n", ErrMalformed, "extra lines"},
		{"pub secret key given", pubParse, vectorSecFile, ErrMalformed, "want 42"},
		{"sig short", sigParse, file(sigPayload[:73]), ErrMalformed, "payload is 73 bytes, want 74"},
		{"sig public key given", sigParse, vectorPubFile, ErrMalformed, "want 74"},
		{"sig huge comment", sigParse, "untrusted comment: " + strings.Repeat("a", 2000) + "\n" + vectorSigB64 + "\n", ErrMalformed, "too large"},
		{"sig comment over limit", sigParse, "untrusted comment: " + strings.Repeat("a", MaxCommentLen+1) + "\n" + vectorSigB64 + "\n", ErrMalformed, "comment is 1001 bytes"},
		{"sec bad checksum", secParse, file(mod(secPayload, func(q []byte) { q[24] ^= 1 })), ErrMalformed, "checksum"},
		{"sec wrong kdf", secParse, file(mod(secPayload, func(q []byte) { q[2] = 'X' })), ErrMalformed, "kdf"},
		{"sec encrypted", secParse, file(encrypted), ErrEncryptedKey, "kdf rounds"},
		{"sec public half wrong", secParse, file(mod(secPayload, func(q []byte) {
			q[103] ^= 1
			// keep the checksum right so only the seed check can catch it
			s := sha512sum(q[40:104])
			copy(q[24:32], s[:8])
		})), ErrMalformed, "public half"},
		{"sec short", secParse, file(secPayload[:103]), ErrMalformed, "want 104"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.parse([]byte(tc.data))
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func pubParse(b []byte) error { _, err := ParsePublicKey(b); return err }
func sigParse(b []byte) error { _, err := ParseSignature(b); return err }
func secParse(b []byte) error { _, err := ParseSecretKey(b); return err }

func TestParseAcceptsMissingFinalNewline(t *testing.T) {
	k, err := ParsePublicKey([]byte(strings.TrimSuffix(vectorPubFile, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	if k.Fingerprint.String() != vectorFP {
		t.Errorf("fingerprint %s", k.Fingerprint)
	}
}

func TestSignRefusesEmptyMessage(t *testing.T) {
	k, err := ParseSecretKey([]byte(vectorSecFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Sign(nil); !errors.Is(err, ErrEmptyMessage) {
		t.Errorf("Sign(nil): %v, want ErrEmptyMessage", err)
	}
}

func TestFingerprint(t *testing.T) {
	fp, err := ParseFingerprint("d310c6f2833e97f7")
	if err != nil {
		t.Fatal(err)
	}
	if fp.String() != "d310c6f2833e97f7" {
		t.Errorf("round trip %s", fp)
	}
	for _, bad := range []string{"", "d310c6f2833e97f", "d310c6f2833e97f7a", "d310c6f2833e97fg"} {
		if _, err := ParseFingerprint(bad); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseFingerprint(%q): %v, want ErrMalformed", bad, err)
		}
	}
}

// The upstream keys of formats.md §5 parse and carry the fingerprints the
// spec gives.
func TestUpstreamKeys(t *testing.T) {
	for fp, line := range map[string]string{
		"d310c6f2833e97f7": "RWTTEMbygz6X95lKDAulctZy3aj15823THXfyrfXgwGbxZlXBd2brNcw",
		"b5043e70f9a75cde": "RWS1BD5w+adc3j2Hqg9+b66CvLR7NlHbsj7wjNVj0XGt/othDgIAOJS+",
	} {
		k, err := ParsePublicKey([]byte("untrusted comment: upstream\n" + line + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		if k.Fingerprint.String() != fp {
			t.Errorf("key %s has fingerprint %s, want %s", line, k.Fingerprint, fp)
		}
	}
}
