package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/ucert"
)

// `imgbuild keygen` + `imgbuild sign`: the detached IMAGE.sig verifies with
// signify over the published file, and the signature inside the chunk
// verifies with signify over the image cut before the signature chunk.
func TestFoundationSignifyVerifiesOurSignatures(t *testing.T) {
	sfy := fndSignify(t)
	dir := t.TempDir()
	base, fp, keys := fndKeygen(t, dir, "release")
	unsigned := fndUnsigned(300 << 10)
	img := fndWrite(t, filepath.Join(dir, "image.bin"), unsigned, 0o644)
	fndMust(t, "sign", "--key", base+".sec", img)
	fndMust(t, "verify", "--keys", keys, img)

	out := fndTool(t, sfy, "-V", "-p", base+".pub", "-x", img+".sig", "-m", img)
	if !strings.Contains(out, "Signature Verified") {
		t.Errorf("signify -V on the detached signature: %s", out)
	}

	signed := fndRead(t, img)
	chain, err := ucert.Decode(fndLastChunk(t, signed))
	if err != nil {
		t.Fatal(err)
	}
	sigFile := filepath.Join(dir, "chunk.sig")
	fndWrite(t, sigFile, chain[0].Signature, 0o644)
	if !strings.Contains(string(chain[0].Signature), fp) {
		t.Errorf("chunk signature does not name key %s: %q", fp, chain[0].Signature)
	}
	prefix := fndWrite(t, filepath.Join(dir, "unsigned.bin"), signed[:len(unsigned)], 0o644)
	out = fndTool(t, sfy, "-V", "-p", base+".pub", "-x", sigFile, "-m", prefix)
	if !strings.Contains(out, "Signature Verified") {
		t.Errorf("signify -V on the chunk signature: %s", out)
	}
	// Not vacuous: signify refuses the chunk signature over the whole file
	// and the detached one over the unsigned image.
	if o, err := exec.Command(sfy, "-V", "-p", base+".pub", "-x", sigFile, "-m", img).CombinedOutput(); err == nil {
		t.Errorf("signify accepted the chunk signature over the signed file: %s", o)
	}
	if o, err := exec.Command(sfy, "-V", "-p", base+".pub", "-x", img+".sig", "-m", prefix).CombinedOutput(); err == nil {
		t.Errorf("signify accepted the detached signature over the unsigned image: %s", o)
	}
	// signify reads our secret key and signs the unsigned image to the
	// same bytes as the chunk signature.
	fndTool(t, sfy, "-S", "-s", base+".sec", "-m", prefix, "-x", filepath.Join(dir, "again.sig"))
	lastLine := func(b []byte) string {
		l := strings.Split(strings.TrimSpace(string(b)), "\n")
		return l[len(l)-1]
	}
	if a, b := lastLine(fndRead(t, filepath.Join(dir, "again.sig"))), lastLine(chain[0].Signature); a != b {
		t.Errorf("signify with our key signs %s, chunk holds %s", a, b)
	}
}

// A key made by signify signs images with imgbuild, and imgbuild verify
// trusts its public key file as is.
func TestFoundationSignifyKeySignsImages(t *testing.T) {
	sfy := fndSignify(t)
	dir := t.TempDir()
	pub, sec := filepath.Join(dir, "X.pub"), filepath.Join(dir, "X.sec")
	fndTool(t, sfy, "-G", "-n", "-p", pub, "-s", sec)
	img := fndWrite(t, filepath.Join(dir, "image.bin"), fndUnsigned(5000), 0o644)
	r := fndMust(t, "sign", "--key", sec, "--json", img)
	res := jsonDoc[signResult](t, r, "sign").Result
	if res.Signature.Key == nil {
		t.Fatalf("sign --json: %s", r.stdout)
	}
	fndTool(t, sfy, "-V", "-p", pub, "-x", img+".sig", "-m", img)
	// Name the key file by its fingerprint, as /etc/opkg/keys does.
	fp := res.Signature.Key.Fingerprint
	keys := filepath.Join(dir, "keys")
	os.Mkdir(keys, 0o755)
	fndWrite(t, filepath.Join(keys, fp), fndRead(t, pub), 0o644)
	fndMust(t, "verify", "--keys", keys, "--board", "glinet,gl-ar150", img)
}
