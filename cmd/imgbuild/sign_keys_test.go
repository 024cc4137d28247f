package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/signer/signertest"
)

// countingSigner records Close on the real key it wraps.
type countingSigner struct {
	signer.Signer
	closes *int
}

var _ signer.Signer = countingSigner{}

func (c countingSigner) Close() error {
	*c.closes++
	return c.Signer.Close()
}

// countKeys makes openKey count for the rest of the test: the keys it
// opened, and how many times they were closed.
func countKeys(t *testing.T) (opens, closes *int) {
	opens, closes = new(int), new(int)
	orig := openSigner
	openSigner = func(ctx context.Context, ref string, opt signer.Options) (signer.Signer, error) {
		s, err := orig(ctx, ref, opt)
		if err != nil {
			return nil, err
		}
		*opens++
		return countingSigner{s, closes}, nil
	}
	t.Cleanup(func() { openSigner = orig })
	return opens, closes
}

// softHSMRelease puts one Ed25519 key both in a PEM file and, imported,
// in a fresh SoftHSM2 token.
func softHSMRelease(t *testing.T, dir string) (pemPath, uri string, env map[string]string) {
	t.Helper()
	hsm := signertest.NewSoftHSM(t)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pemPath = filepath.Join(dir, "release.pem")
	if err := signer.WritePEMPrivateKey(pemPath, priv); err != nil {
		t.Fatal(err)
	}
	hsm.ImportKey(t, "release", "0a", pemPath)
	return pemPath, hsm.URI("release"), map[string]string{signer.PINEnv: hsm.PIN}
}

// `imgbuild sign` takes a pkcs11: URI like `build` does, and a key in a
// real token signs exactly as the same key from its file: the image, its
// signature chunk and IMAGE.sig are byte-identical (Ed25519 is
// deterministic), with or without a build key, and signify-openbsd
// accepts the token's detached signature.
func TestSignPKCS11SameAsKeyFile(t *testing.T) {
	signertest.Need(t, "signify-openbsd")
	dir := t.TempDir()
	pemPath, uri, hsmEnv := softHSMRelease(t, dir)
	unsigned := fndUnsigned(5000)
	// One not-before for both signatures, an hour ago so that `verify`
	// (which checks the certificate against the clock) accepts the chain.
	notBefore := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"release key", nil},
		{"build key", []string{"--build-key-hours", "6", "--build-key-not-before", notBefore}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if err := os.MkdirAll(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			fromFile := fndWrite(t, filepath.Join(sub, "file.bin"), unsigned, 0o644)
			fromToken := fndWrite(t, filepath.Join(sub, "token.bin"), unsigned, 0o644)
			mustRun(t, hsmEnv, append(append([]string{"sign"}, tc.flags...), "--key", pemPath, fromFile)...)
			code, out, errs := relRun(t, hsmEnv, append(append([]string{"sign"}, tc.flags...), "--key", uri, fromToken)...)
			mustOK(t, code, out, errs)
			if strings.Contains(out+errs, hsmEnv[signer.PINEnv]) {
				t.Fatal("sign printed the PIN")
			}
			if !bytes.Equal(fndRead(t, fromFile), fndRead(t, fromToken)) {
				t.Fatal("the image signed through PKCS#11 differs from the one signed with the key file")
			}
			if !bytes.Equal(fndRead(t, fromFile+".sig"), fndRead(t, fromToken+".sig")) {
				t.Fatal("IMAGE.sig made through PKCS#11 differs from the key file's")
			}
			if bytes.Equal(fndRead(t, fromToken), unsigned) {
				t.Fatal("sign left the image unsigned")
			}
			pubDir := filepath.Join(sub, "pub")
			mustRun(t, hsmEnv, "release", "pubkey", "--key", uri, "--out", pubDir)
			pubs, _ := filepath.Glob(filepath.Join(pubDir, "*.pub"))
			if len(pubs) != 1 {
				t.Fatalf("release pubkey wrote %v", pubs)
			}
			if out, err := exec.Command("signify-openbsd", "-V", "-p", pubs[0], "-x", fromToken+".sig", "-m", fromToken).CombinedOutput(); err != nil {
				t.Fatalf("signify-openbsd refuses the token's signature: %v\n%s", err, out)
			}
			mustRun(t, hsmEnv, "verify", "--keys", pubDir, "--board", "glinet,gl-ar150", fromToken)
		})
	}
}

// Every key openKey opens is closed, on success and on failure, by every
// verb that signs: sign, build, release sign (envelope and detached),
// release attest and release pubkey; for key files and for keys in a
// real PKCS#11 token.
func TestEveryOpenedKeyIsClosed(t *testing.T) {
	dir := t.TempDir()
	pemPath, uri, hsmEnv := softHSMRelease(t, dir)
	pub, ks := relKeys(t, dir, "alice")
	ecPriv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPath := filepath.Join(dir, "attest.pem")
	if err := signer.WritePEMPrivateKey(ecPath, ecPriv); err != nil {
		t.Fatal(err)
	}
	tokenPub := filepath.Join(dir, "token-pub")
	mustRun(t, hsmEnv, "release", "pubkey", "--key", uri, "--out", tokenPub)
	opens, closes := countKeys(t)

	for _, key := range []struct{ name, ref, keys string }{
		{"usign file", ks[0].sec, pub},
		{"pem file", pemPath, tokenPub},
		{"pkcs11", uri, tokenPub},
	} {
		t.Run(key.name, func(t *testing.T) {
			sub := t.TempDir()
			img := fndWrite(t, filepath.Join(sub, "image.bin"), fndUnsigned(3000), 0o644)
			plain := fndWrite(t, filepath.Join(sub, "plain.bin"), fndPayload(3000), 0o644)
			distDir := relDist(t, ks[0].key)
			man := filepath.Join(distDir, "release.json")
			mustRun(t, hsmEnv, "release", "prepare", "--dist", distDir, "--sequence", "1", "--issued-at", "2025-06-01T00:00:00Z")
			cases := []struct {
				args []string
				ok   bool
			}{
				{[]string{"sign", "--key", key.ref, img}, true},
				{[]string{"sign", "--key", key.ref, plain}, false}, // no metadata: refused after opening
				{[]string{"sign", "--key", ecPath, img}, false},    // P-256 cannot sign images: refused after opening
				{[]string{"release", "sign", "--key", key.ref, man}, true},
				{[]string{"release", "sign", "--key", key.ref, "--keys", key.keys, man}, false}, // signed already
				{[]string{"release", "sign", "--detached", "--key", key.ref, "--keys", key.keys, man}, true},
				// relDist's report has no daemon section: attest fails after
				// opening both keys.
				{[]string{"release", "attest", "--dist", distDir, "--keys", pub, "--key", key.ref, "--key", ecPath}, false},
				{[]string{"release", "pubkey", "--key", key.ref}, true},
				{[]string{"build", "--root", "../..", "--profile", "gl-ar150", "--key", key.ref, "--release-keys", key.keys}, false}, // no lock
			}
			for _, c := range cases {
				before := *opens
				code, out, errs := relRun(t, hsmEnv, c.args...)
				if (code == exitOK) != c.ok {
					t.Fatalf("imgbuild %s: exit %d, want success %v\nstdout: %s\nstderr: %s", strings.Join(c.args, " "), code, c.ok, out, errs)
				}
				if *opens == before {
					t.Fatalf("imgbuild %s opened no key; the test no longer covers it\nstderr: %s", strings.Join(c.args, " "), errs)
				}
				if *closes != *opens {
					t.Fatalf("imgbuild %s: %d keys opened so far, %d closes", strings.Join(c.args, " "), *opens, *closes)
				}
			}
		})
	}
}
