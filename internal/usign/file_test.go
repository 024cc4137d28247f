package usign

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestReadSecretKeyFilePermissions(t *testing.T) {
	dir := t.TempDir()
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o601} {
		p := filepath.Join(dir, "k.sec")
		os.Remove(p)
		if err := os.WriteFile(p, []byte(vectorSecFile), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		_, err := ReadSecretKeyFile(p)
		if !errors.Is(err, ErrInsecureKeyFile) {
			t.Errorf("mode %04o: %v, want ErrInsecureKeyFile", mode, err)
			continue
		}
		if !strings.Contains(err.Error(), "chmod 600 "+p) {
			t.Errorf("mode %04o: error %q lacks the chmod hint", mode, err)
		}
	}
	p := filepath.Join(dir, "ok.sec")
	if err := os.WriteFile(p, []byte(vectorSecFile), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := ReadSecretKeyFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if k.Fingerprint.String() != vectorFP {
		t.Errorf("fingerprint %s", k.Fingerprint)
	}
	if _, err := ReadSecretKeyFile(filepath.Join(dir, "missing.sec")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.sec")
	os.WriteFile(big, []byte(strings.Repeat("x", 5000)), 0o600)
	if _, err := ReadSecretKeyFile(big); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized file: %v", err)
	}
}

func TestWriteKeyPairModesAndNoOverwrite(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	for _, umask := range []int{0, 0o022, 0o077} {
		syscall.Umask(umask)
		base := filepath.Join(t.TempDir(), "release")
		k := testKey(t, 8)
		k.Comment = "private key for tests"
		if err := WriteKeyPair(base, k); err != nil {
			t.Fatal(err)
		}
		for path, want := range map[string]os.FileMode{base + ".sec": 0o600, base + ".pub": 0o644} {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != want {
				t.Errorf("umask %04o: %s has mode %04o, want %04o", umask, path, fi.Mode().Perm(), want)
			}
		}
		pub, err := ReadPublicKeyFile(base + ".pub")
		if err != nil {
			t.Fatal(err)
		}
		if pub.Comment != "public key for tests" {
			t.Errorf("public key comment %q", pub.Comment)
		}
		sec, err := ReadSecretKeyFile(base + ".sec")
		if err != nil {
			t.Fatal(err)
		}
		if !sec.Key.Equal(k.Key) || !pub.Key.Equal(k.Key.Public()) {
			t.Error("written keys differ from the generated one")
		}
		before, _ := os.ReadFile(base + ".sec")
		err = WriteKeyPair(base, testKey(t, 9))
		if err == nil || !strings.Contains(err.Error(), "refusing to overwrite") {
			t.Errorf("second WriteKeyPair: %v, want a refusal", err)
		}
		after, _ := os.ReadFile(base + ".sec")
		if string(before) != string(after) {
			t.Error("existing secret key was changed")
		}
	}
	// Only the .pub exists: still refused, and no .sec is left behind.
	base := filepath.Join(t.TempDir(), "half")
	os.WriteFile(base+".pub", []byte("x"), 0o644)
	if err := WriteKeyPair(base, testKey(t, 1)); err == nil {
		t.Error("WriteKeyPair overwrote an existing .pub")
	}
	if _, err := os.Lstat(base + ".sec"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf(".sec created although .pub existed: %v", err)
	}
}

func TestLoadKeyDir(t *testing.T) {
	dir := t.TempDir()
	a, b := testKey(t, 1).Public(), testKey(t, 2).Public()
	os.WriteFile(filepath.Join(dir, a.Fingerprint.String()), a.Marshal(), 0o644)
	os.WriteFile(filepath.Join(dir, b.Fingerprint.String()), b.Marshal(), 0o644)
	os.WriteFile(filepath.Join(dir, "README"), []byte("not a key"), 0o644)
	os.Mkdir(filepath.Join(dir, "0000000000000000"), 0o755)
	kr, err := LoadKeyDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if kr.Len() != 2 {
		t.Errorf("loaded %d keys, want 2", kr.Len())
	}

	// A key file under another key's name.
	bad := t.TempDir()
	os.WriteFile(filepath.Join(bad, "ffffffffffffffff"), a.Marshal(), 0o644)
	if _, err := LoadKeyDir(bad); err == nil || !strings.Contains(err.Error(), "holds key "+a.Fingerprint.String()) {
		t.Errorf("misnamed key file: %v", err)
	}
	// A malformed key file is an error naming the file, not skipped.
	broken := t.TempDir()
	os.WriteFile(filepath.Join(broken, a.Fingerprint.String()), []byte("untrusted comment: x\n!!!!\n"), 0o644)
	if _, err := LoadKeyDir(broken); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), a.Fingerprint.String()) {
		t.Errorf("malformed key file: %v", err)
	}
	if _, err := LoadKeyDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no public keys") {
		t.Errorf("empty directory: %v", err)
	}
	if _, err := LoadKeyDir(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing directory loaded")
	}
}
