package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// keygen makes .sec 0600 and .pub 0644 whatever the umask: 0 would
// otherwise leave the secret key world-writable, 077 the public key
// unreadable by the web server that publishes it.
func TestKeygenModes(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	for _, umask := range []int{0, 0o077} {
		syscall.Umask(umask)
		base := filepath.Join(t.TempDir(), "release")
		r := fndMust(t, "keygen", "-o", base)
		if !strings.Contains(r.stdout, "fingerprint ") || !strings.Contains(r.stdout, base+".sec") {
			t.Errorf("keygen output: %s", r.stdout)
		}
		for path, want := range map[string]os.FileMode{base + ".sec": 0o600, base + ".pub": 0o644} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := fi.Mode().Perm(); got != want {
				t.Errorf("umask %04o: %s has mode %04o, want %04o", umask, filepath.Base(path), got, want)
			}
		}
	}
}

func TestKeygenRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "release")
	fndMust(t, "keygen", "-o", base)
	sec, pub := fndRead(t, base+".sec"), fndRead(t, base+".pub")
	r := fndRun(t, "keygen", "-o", base)
	fndExpect(t, r, exitFailure, base+".pub already exists; refusing to overwrite a key")
	if string(fndRead(t, base+".sec")) != string(sec) || string(fndRead(t, base+".pub")) != string(pub) {
		t.Error("a refused keygen changed the existing key")
	}
	// Only the .sec exists (the .pub was deleted): still refused.
	os.Remove(base + ".pub")
	fndExpect(t, fndRun(t, "keygen", "-o", base), exitFailure, base+".sec already exists")
	if string(fndRead(t, base+".sec")) != string(sec) {
		t.Error("secret key overwritten")
	}
}

func TestKeygenUsageAndComment(t *testing.T) {
	fndExpect(t, fndRun(t, "keygen"), exitUsage, "want -o PATH")
	fndExpect(t, fndRun(t, "keygen", "-o", filepath.Join(t.TempDir(), "k"), "extra"), exitUsage, "want -o PATH")
	base := filepath.Join(t.TempDir(), "k")
	fndMust(t, "keygen", "-o", base, "--comment", "private key of test")
	if !strings.HasPrefix(string(fndRead(t, base+".pub")), "untrusted comment: public key of test\n") {
		t.Errorf("public key comment: %q", fndRead(t, base+".pub"))
	}
	fndExpect(t, fndRun(t, "keygen", "-o", filepath.Join(t.TempDir(), "k"), "--comment", "two\nlines"), exitFailure, "comment must be one line")
}
