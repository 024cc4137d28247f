package signer

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sigstore/sigstore/pkg/signature"

	"github.com/torwrt/torwrt/internal/usign"
)

// maxKeyFile bounds what is read of a key file.
const maxKeyFile = 16 << 10

// FromUsign wraps a usign secret key held in memory as a Signer whose key
// id is the key's own fingerprint. Closing it releases nothing.
func FromUsign(k *usign.SecretKey) (Signer, error) {
	sv, err := signature.LoadED25519SignerVerifier(k.Key)
	if err != nil {
		return nil, fmt.Errorf("signer: usign key %s: %w", k.Fingerprint, err)
	}
	pub := bytes.Clone(k.Key.Public().(ed25519.PublicKey))
	return newKey("usign key", ed25519.PublicKey(pub), sv, k.Fingerprint.String(), nil)
}

// openFile opens a usign .sec file or a PEM private key file. Both are
// refused when group or others may read them.
func openFile(path string) (Signer, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty file path", ErrBadURI)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("opening key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrBadURI, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening key: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("reading key %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes; not a key file", ErrBadURI, path, maxKeyFile)
	}
	// A public key is the likeliest wrong file; say so before the mode
	// check would advise making it private.
	if err := notPublicKey(path, data); err != nil {
		return nil, err
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run: chmod 600 %s", ErrInsecureKeyFile, path, perm, path)
	}
	switch {
	case bytes.HasPrefix(data, []byte("untrusted comment:")):
		k, err := usign.ReadSecretKeyFile(path)
		if err != nil {
			return nil, err
		}
		s, err := FromUsign(k)
		if err != nil {
			return nil, err
		}
		s.(*key).desc = "usign file " + filepath.Base(path)
		return s, nil
	case bytes.Contains(data, []byte("-----BEGIN ")):
		return parsePEMKey(path, data)
	default:
		// usign's own parser says what is wrong with a usign key file
		// that lost its comment line or was emptied.
		_, uerr := usign.ParseSecretKey(data)
		return nil, fmt.Errorf("%w: %s is neither a usign secret key nor a PEM private key (as a usign key: %v)", ErrBadURI, path, uerr)
	}
}

// supportedKeys is the truth about which private keys torwrt signs with.
const supportedKeys = "supported: Ed25519 (usign .sec from imgbuild keygen, or PEM), which signs images, manifests and provenance; " +
	"ECDSA P-256 (PEM), which signs only detached manifest signatures and provenance, since routers verify images with Ed25519 only"

// notPublicKey refuses a public key file given where a private key belongs.
func notPublicKey(path string, data []byte) error {
	secret := "the matching secret key"
	if base, ok := strings.CutSuffix(path, ".pub"); ok {
		secret = base + ".sec"
	}
	if bytes.HasPrefix(data, []byte("untrusted comment:")) {
		if _, err := usign.ParsePublicKey(data); err == nil {
			return fmt.Errorf("%w: %s is a usign public key; signing needs the secret key: pass %s", ErrBadURI, path, secret)
		}
		return nil
	}
	if b, _ := pem.Decode(data); b != nil && strings.HasSuffix(b.Type, "PUBLIC KEY") {
		return fmt.Errorf("%w: %s holds a PEM %q block, a public key; signing needs the private key file", ErrBadURI, path, b.Type)
	}
	return nil
}

func parsePEMKey(path string, data []byte) (Signer, error) {
	var priv crypto.PrivateKey
	for rest := data; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if _, enc := b.Headers["DEK-Info"]; enc || b.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, fmt.Errorf("%w: %s is passphrase-protected; decrypt it onto an offline medium (mode 0600) or use an HSM/KMS key", ErrUnsupportedKey, path)
		}
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			priv, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			priv, err = x509.ParseECPrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			return nil, fmt.Errorf("%w: %s holds an RSA key; %s", ErrUnsupportedKey, path, supportedKeys)
		case "DSA PRIVATE KEY", "OPENSSH PRIVATE KEY":
			return nil, fmt.Errorf("%w: %s holds a %q block; %s", ErrUnsupportedKey, path, b.Type, supportedKeys)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		break
	}
	if priv == nil {
		return nil, fmt.Errorf("%w: %s holds no \"PRIVATE KEY\" or \"EC PRIVATE KEY\" PEM block", ErrBadURI, path)
	}
	var pub crypto.PublicKey
	switch k := priv.(type) {
	case ed25519.PrivateKey:
		pub = k.Public()
	case *ecdsa.PrivateKey:
		pub = &k.PublicKey
	case *rsa.PrivateKey:
		return nil, fmt.Errorf("%w: %s holds an RSA key; %s", ErrUnsupportedKey, path, supportedKeys)
	default:
		return nil, fmt.Errorf("%w: %s holds a %T key; %s", ErrUnsupportedKey, path, priv, supportedKeys)
	}
	if _, err := AlgorithmOf(pub); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sv, err := signature.LoadSignerVerifier(priv, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return newKey("PEM file "+filepath.Base(path), pub, sv, "", nil)
}

// WritePEMPrivateKey writes priv (Ed25519 or ECDSA) as PKCS#8 PEM to path
// with mode 0600, refusing to replace an existing file.
func WritePEMPrivateKey(path string, priv crypto.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("signer: encoding private key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// Redact returns ref with PINs, tokens and other secrets in URI query or
// attribute values replaced by "REDACTED", for logs and errors.
func Redact(ref string) string {
	secretKeys := []string{"pin-value", "pin", "secret", "password", "access_key", "client_secret"}
	out := []byte(ref)
	lower := strings.ToLower(ref)
	for _, k := range secretKeys {
		for from := 0; ; {
			i := strings.Index(lower[from:], k+"=")
			if i < 0 {
				break
			}
			i += from
			// Only whole attribute names: preceded by a separator.
			if i > 0 && !strings.ContainsRune("?&;:", rune(lower[i-1])) {
				from = i + len(k)
				continue
			}
			start := i + len(k) + 1
			end := start
			for end < len(ref) && !strings.ContainsRune("&;#", rune(ref[end])) {
				end++
			}
			repl := "REDACTED"
			out = append(append(append([]byte{}, out[:start]...), repl...), out[end:]...)
			ref = string(out)
			lower = strings.ToLower(ref)
			from = start + len(repl)
		}
	}
	return ref
}
