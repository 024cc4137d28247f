package usign

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// signify returns the path of OpenBSD signify. The conformance tests must
// run, so a missing tool is a failure, not a skip.
func signify(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("signify-openbsd")
	if err != nil {
		t.Fatal("signify-openbsd not found: install the Debian package signify-openbsd (apt-get install -y signify-openbsd)")
	}
	return p
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// A key made by signify signs a file; we accept the signature with our
// parser and verifier, read signify's secret key, and produce the same
// signature bytes (Ed25519 is deterministic).
func TestSignifyKeyAndSignature(t *testing.T) {
	sfy := signify(t)
	dir := t.TempDir()
	pubPath, secPath := filepath.Join(dir, "X.pub"), filepath.Join(dir, "X.sec")
	runTool(t, sfy, "-G", "-n", "-c", "torwrt test", "-p", pubPath, "-s", secPath)
	msgPath := filepath.Join(dir, "image.bin")
	msg := bytes.Repeat([]byte("torwrt\x00\xff"), 4099)
	os.WriteFile(msgPath, msg, 0o644)
	runTool(t, sfy, "-S", "-s", secPath, "-m", msgPath, "-x", msgPath+".sig")

	pub, err := ReadPublicKeyFile(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := ReadSignatureFile(msgPath + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	if sig.Fingerprint != pub.Fingerprint {
		t.Fatalf("signature fingerprint %s, key %s", sig.Fingerprint, pub.Fingerprint)
	}
	if err := pub.Verify(msg, sig); err != nil {
		t.Fatalf("our verifier rejects a signify signature: %v", err)
	}
	tampered := bytes.Clone(msg)
	tampered[len(tampered)/2] ^= 1
	if err := pub.Verify(tampered, sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("signify signature over a tampered file: %v", err)
	}

	sec, err := ReadSecretKeyFile(secPath) // signify creates it 0600
	if err != nil {
		t.Fatal(err)
	}
	if sec.Fingerprint != pub.Fingerprint || !pub.Key.Equal(sec.Key.Public()) {
		t.Fatal("signify secret key does not match its public key")
	}
	ours, err := sec.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	if ours.Sig != sig.Sig || ours.Fingerprint != sig.Fingerprint {
		t.Errorf("our signature with signify's key differs from signify's:\nours    %x\nsignify %x", ours.Sig, sig.Sig)
	}
	// Same payload line as signify's file.
	if got, want := lastLine(ours.Marshal()), lastLine(mustRead(t, msgPath+".sig")); got != want {
		t.Errorf("base64 line %s, signify wrote %s", got, want)
	}
	// Our public key file re-encodes signify's byte for byte.
	if got, want := string(pub.Marshal()), string(mustRead(t, pubPath)); got != want {
		t.Errorf("public key re-encoded\n%q\nsignify wrote\n%q", got, want)
	}
}

// Keys and signatures we write verify with signify.
func TestOurFilesVerifyWithSignify(t *testing.T) {
	sfy := signify(t)
	dir := t.TempDir()
	k, err := GenerateKey(bytesReader(40, 0x5a), "private key torwrt test")
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "ours")
	if err := WriteKeyPair(base, k); err != nil {
		t.Fatal(err)
	}
	msgPath := filepath.Join(dir, "msg")
	msg := []byte("hello from torwrt\n")
	os.WriteFile(msgPath, msg, 0o644)
	sig, err := k.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(msgPath+".sig", sig.Marshal(), 0o644)
	if out := runTool(t, sfy, "-V", "-p", base+".pub", "-x", msgPath+".sig", "-m", msgPath); !strings.Contains(out, "Signature Verified") {
		t.Errorf("signify -V: %s", out)
	}
	// signify signs with our secret key file and gets our signature.
	runTool(t, sfy, "-S", "-s", base+".sec", "-m", msgPath, "-x", msgPath+".signify")
	if got, want := lastLine(mustRead(t, msgPath+".signify")), lastLine(sig.Marshal()); got != want {
		t.Errorf("signify with our key wrote %s, we wrote %s", got, want)
	}
	// And refuses a tampered message: the check above is not vacuous.
	os.WriteFile(msgPath, []byte("hello from torwrT\n"), 0o644)
	if out, err := exec.Command(sfy, "-V", "-p", base+".pub", "-x", msgPath+".sig", "-m", msgPath).CombinedOutput(); err == nil {
		t.Errorf("signify accepted a tampered message: %s", out)
	}
}

// signify refuses an empty comment; our files never have one.
func TestEmptyCommentFilesVerifyWithSignify(t *testing.T) {
	sfy := signify(t)
	dir := t.TempDir()
	k, err := GenerateKey(bytesReader(40, 0x33), "")
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "k")
	if err := WriteKeyPair(base, k); err != nil {
		t.Fatal(err)
	}
	msg := filepath.Join(dir, "msg")
	os.WriteFile(msg, []byte("x"), 0o644)
	sig, _ := k.Sign([]byte("x"))
	sig.Comment = ""
	os.WriteFile(msg+".sig", sig.Marshal(), 0o644)
	runTool(t, sfy, "-V", "-p", base+".pub", "-x", msg+".sig", "-m", msg)
	runTool(t, sfy, "-S", "-s", base+".sec", "-m", msg, "-x", msg+".sig2")
	for _, p := range []string{base + ".pub", base + ".sec", msg + ".sig"} {
		if strings.HasPrefix(string(mustRead(t, p)), "untrusted comment: \n") {
			t.Errorf("%s has an empty comment", p)
		}
	}
}

// The fixed vector of vectors_test.go, re-derived with signify from a
// secret key file built from the seed.
func TestVectorMatchesSignify(t *testing.T) {
	sfy := signify(t)
	dir := t.TempDir()
	sec := filepath.Join(dir, "vec.sec")
	os.WriteFile(sec, []byte(vectorSecFile), 0o600)
	os.WriteFile(filepath.Join(dir, "vec.pub"), []byte(vectorPubFile), 0o644)
	msg := filepath.Join(dir, "msg")
	os.WriteFile(msg, []byte(vectorMsg), 0o644)
	runTool(t, sfy, "-S", "-s", sec, "-m", msg, "-x", msg+".sig")
	if got := lastLine(mustRead(t, msg+".sig")); got != vectorSigB64 {
		t.Errorf("signify signs the vector as %s, the test says %s", got, vectorSigB64)
	}
	os.WriteFile(msg+".ours", []byte(vectorSigFile), 0o644)
	runTool(t, sfy, "-V", "-p", filepath.Join(dir, "vec.pub"), "-x", msg+".ours", "-m", msg)
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	return lines[len(lines)-1]
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bytesReader(n int, b byte) *bytes.Reader { return bytes.NewReader(bytes.Repeat([]byte{b}, n)) }
