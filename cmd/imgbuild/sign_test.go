package main

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sign refuses a secret key that others can read and says how to fix it;
// the image is left untouched and no signature is written.
func TestSignRefusesReadableKey(t *testing.T) {
	dir := t.TempDir()
	base, _, _ := fndKeygen(t, dir, "release")
	unsigned := fndUnsigned(2000)
	img := fndWrite(t, filepath.Join(dir, "image.bin"), unsigned, 0o644)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		if err := os.Chmod(base+".sec", mode); err != nil {
			t.Fatal(err)
		}
		r := fndRun(t, "sign", "--key", base+".sec", img)
		fndExpect(t, r, exitFailure, "run: chmod 600 "+base+".sec")
		if !strings.Contains(r.stderr, "readable by other users") {
			t.Errorf("mode %04o: %s", mode, r.stderr)
		}
	}
	if !bytes.Equal(fndRead(t, img), unsigned) {
		t.Error("refused sign changed the image")
	}
	if _, err := os.Stat(img + ".sig"); !os.IsNotExist(err) {
		t.Errorf("refused sign wrote a signature: %v", err)
	}
	os.Chmod(base+".sec", 0o600)
	fndMust(t, "sign", "--key", base+".sec", img)
}

func TestSignBadKeyFiles(t *testing.T) {
	dir := t.TempDir()
	base, _, _ := fndKeygen(t, dir, "release")
	sec := string(fndRead(t, base+".sec"))
	lines := strings.SplitN(sec, "\n", 2)
	payload, err := base64.StdEncoding.DecodeString(strings.TrimSpace(lines[1]))
	if err != nil {
		t.Fatal(err)
	}
	encrypted := bytes.Clone(payload)
	encrypted[7] = 42 // kdf rounds
	img := fndWrite(t, filepath.Join(dir, "image.bin"), fndUnsigned(2000), 0o644)
	for name, tc := range map[string]struct{ content, text string }{
		"bad base64":   {lines[0] + "\n" + strings.Replace(lines[1], "RW", "R#", 1), "bad base64"},
		"short key":    {lines[0] + "\n" + base64.StdEncoding.EncodeToString(payload[:100]) + "\n", "payload is 100 bytes, want 104"},
		"public key":   {string(fndRead(t, base+".pub")), "is a usign public key; signing needs the secret key"},
		"encrypted":    {lines[0] + "\n" + base64.StdEncoding.EncodeToString(encrypted) + "\n", "passphrase-protected"},
		"no comment":   {lines[1], "first line must start with"},
		"empty file":   {"", "no comment line"},
		"bad checksum": {lines[0] + "\n" + base64.StdEncoding.EncodeToString(append(payload[:24:24], append([]byte{payload[24] ^ 1}, payload[25:]...)...)) + "\n", "checksum mismatch"},
	} {
		t.Run(name, func(t *testing.T) {
			p := fndWrite(t, filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".sec"), []byte(tc.content), 0o600)
			r := fndRun(t, "sign", "--key", p, img)
			fndExpect(t, r, exitFailure, tc.text)
		})
	}
}

func TestSignImages(t *testing.T) {
	dir := t.TempDir()
	base, _, keys := fndKeygen(t, dir, "release")
	// No metadata: refused, because stock sysupgrade on ath79 requires it.
	plain := fndWrite(t, filepath.Join(dir, "plain.bin"), fndPayload(3000), 0o644)
	fndExpect(t, fndRun(t, "sign", "--key", base+".sec", plain), exitFailure, "image has no fwtool metadata")
	// A broken chunk chain is refused before signing.
	bad := fndUnsigned(3000)
	bad[10] ^= 1
	badPath := fndWrite(t, filepath.Join(dir, "bad.bin"), bad, 0o644)
	fndExpect(t, fndRun(t, "sign", "--key", base+".sec", badPath), exitFailure, "crc mismatch")
	// The ImageBuilder's fake certificate is replaced by a real signature,
	// and signing again in place is idempotent.
	unsigned := fndUnsigned(3000)
	fake := fndWrite(t, filepath.Join(dir, "fake.bin"), fndAppend(unsigned, 0, []byte("# fake certificate")), 0o644)
	fndMust(t, "sign", "--key", base+".sec", fake)
	once := fndRead(t, fake)
	if !bytes.Equal(once[:len(unsigned)], unsigned) || bytes.Contains(once, []byte("fake certificate")) {
		t.Error("the fake certificate was not replaced")
	}
	fndMust(t, "verify", "--keys", keys, fake)
	fndMust(t, "sign", "--key", base+".sec", fake)
	if !bytes.Equal(fndRead(t, fake), once) {
		t.Error("signing a signed image again changed it")
	}
	// Usage errors.
	fndExpect(t, fndRun(t, "sign", fake), exitUsage, "want --key KEY.sec and one IMAGE")
	fndExpect(t, fndRun(t, "sign", "--key", base+".sec"), exitUsage, "want --key KEY.sec and one IMAGE")
	fndExpect(t, fndRun(t, "sign", "--key", base+".sec", filepath.Join(dir, "missing.bin")), exitFailure, "no such file")
}
