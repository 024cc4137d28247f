package signer_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/usign"
)

// A wrong file passed as a signing key gets advice that fits it: a public
// key is named as such (not "chmod 600"), and a key type torwrt cannot use
// gets the list of the types it can, with what each may sign.
func TestWrongKeyFileAdvice(t *testing.T) {
	dir := t.TempDir()
	k, err := usign.GenerateKey(rand.Reader, "test")
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(dir, "release")
	if err := usign.WriteKeyPair(base, k); err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPub, err := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b *pem.Block, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(b), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Both RSA messages must tell the truth about ECDSA P-256: it opens, but
	// cannot sign images.
	supported := []string{"RSA", "Ed25519", "ECDSA P-256", "only detached manifest signatures and provenance", "routers verify images with Ed25519 only"}
	tests := []struct {
		name    string
		path    string
		is      error
		want    []string
		notWant string
	}{
		{"usign .pub at 0644", base + ".pub", signer.ErrBadURI, []string{"is a usign public key", "pass " + base + ".sec"}, "chmod"},
		{"PEM public key", write("ec.pub.pem", &pem.Block{Type: "PUBLIC KEY", Bytes: ecPub}, 0o644), signer.ErrBadURI, []string{"public key", "private key file"}, "chmod"},
		{"RSA PKCS#1", write("rsa1.pem", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}, 0o600), signer.ErrUnsupportedKey, supported, "no \"PRIVATE KEY\""},
		{"RSA PKCS#8", write("rsa8.pem", &pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}, 0o600), signer.ErrUnsupportedKey, supported, "*rsa.PrivateKey"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := signer.Open(t.Context(), tc.path, signer.Options{Getenv: noEnv})
			if !errors.Is(err, tc.is) {
				t.Fatalf("err = %v, want %v", err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), tc.notWant) {
				t.Errorf("error %q contains %q", err, tc.notWant)
			}
		})
	}

	// The secret key at 0644 still gets the chmod advice.
	if err := os.Chmod(base+".sec", 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = signer.Open(t.Context(), base+".sec", signer.Options{Getenv: noEnv})
	if !errors.Is(err, signer.ErrInsecureKeyFile) || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("secret key at 0644: %v", err)
	}
}
