package usign

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ReadSecretKeyFile reads a secret key and refuses one that group or others
// can read: a release key that leaked through a world-readable file on a CI
// runner must not be used silently.
func ReadSecretKeyFile(path string) (*SecretKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run: chmod 600 %s", ErrInsecureKeyFile, path, perm, path)
	}
	data, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	k, err := ParseSecretKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ReadPublicKeyFile reads one public key file.
func ReadPublicKeyFile(path string) (*PublicKey, error) {
	data, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	k, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// ReadSignatureFile reads one signature file.
func ReadSignatureFile(path string) (*Signature, error) {
	data, err := readSmall(path)
	if err != nil {
		return nil, err
	}
	s, err := ParseSignature(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// ReadAll, not one Read: a single read may return less than the file,
	// and an empty file must reach the parser ("no comment line"), not
	// fail with a bare EOF.
	buf, err := io.ReadAll(io.LimitReader(f, int64(maxFileLen)+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(buf) > maxFileLen {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrMalformed, path, maxFileLen)
	}
	return buf, nil
}

// LoadKeyDir loads every public key in dir, the /etc/opkg/keys layout:
// one file per key, named by its fingerprint. A file whose name disagrees
// with its content is an error, because usign -P looks keys up by name.
// Files whose names are not 16 hex digits are ignored, as usign does.
func LoadKeyDir(dir string) (*Keyring, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading key directory: %w", err)
	}
	kr := &Keyring{keys: map[Fingerprint]*PublicKey{}}
	for _, e := range entries {
		if !e.Type().IsRegular() && e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		fp, err := ParseFingerprint(e.Name())
		if err != nil {
			continue
		}
		k, err := ReadPublicKeyFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		if k.Fingerprint != fp {
			return nil, fmt.Errorf("key directory %s: file %s holds key %s", dir, e.Name(), k.Fingerprint)
		}
		if err := kr.Add(k); err != nil {
			return nil, err
		}
	}
	if kr.Len() == 0 {
		return nil, fmt.Errorf("key directory %s holds no public keys (files named by 16-hex-digit fingerprint)", dir)
	}
	return kr, nil
}

// WriteKeyPair writes base.pub (0644) and base.sec (0600). It refuses to
// overwrite either file, and creates the secret file exclusively so the key
// never exists with wider permissions, even briefly.
func WriteKeyPair(base string, k *SecretKey) error {
	pubPath, secPath := base+".pub", base+".sec"
	for _, p := range []string{pubPath, secPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s already exists; refusing to overwrite a key", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if err := writeExclusive(secPath, k.Marshal(), 0o600); err != nil {
		return err
	}
	pub := k.Public()
	pub.Comment = strings.Replace(k.Comment, "private key", "public key", 1)
	if err := writeExclusive(pubPath, pub.Marshal(), 0o644); err != nil {
		os.Remove(secPath)
		return err
	}
	return nil
}

func writeExclusive(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	// The umask may have narrowed mode; the explicit chmod makes the public
	// key world-readable as intended and keeps the secret key 0600.
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
