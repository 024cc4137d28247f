// Package signertest sets up a real SoftHSM2 token for tests: a fresh
// token directory, a token with a random PIN, and keys generated inside the
// token with OpenSC's pkcs11-tool. Nothing is mocked; a missing tool fails
// the test with the Debian package to install.
package signertest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Module is Debian's SoftHSM2 PKCS#11 library (package softhsm2).
const Module = "/usr/lib/softhsm/libsofthsm2.so"

// HSM is one initialized SoftHSM2 token.
type HSM struct {
	Module string
	Conf   string // SOFTHSM2_CONF
	Token  string
	PIN    string
}

// Need fails t unless the named tools are on PATH, naming their Debian
// packages.
func Need(t testing.TB, tools ...string) {
	t.Helper()
	pkgs := map[string]string{
		"softhsm2-util": "softhsm2", "pkcs11-tool": "opensc", "signify-openbsd": "signify-openbsd",
		"podman": "podman", "cosign": "cosign (run scripts/install-cosign.sh)",
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found on PATH; install the Debian package %s (scripts/install-deps.sh does)", tool, pkgs[tool])
		}
	}
}

// NewSoftHSM makes a token labelled "torwrt" in a temporary directory and
// points SOFTHSM2_CONF at it for the rest of the test.
func NewSoftHSM(t testing.TB) *HSM {
	t.Helper()
	Need(t, "softhsm2-util", "pkcs11-tool")
	if _, err := os.Stat(Module); err != nil {
		t.Fatalf("SoftHSM2 module %s missing; install the Debian package softhsm2: %v", Module, err)
	}
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.MkdirAll(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "softhsm2.conf")
	body := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", conf)
	h := &HSM{Module: Module, Conf: conf, Token: "torwrt", PIN: randomPIN(t)}
	run(t, "softhsm2-util", "--init-token", "--free", "--label", h.Token, "--pin", h.PIN, "--so-pin", randomPIN(t))
	return h
}

// GenerateKey makes a key pair in the token. keyType is pkcs11-tool's:
// "EC:edwards25519" or "EC:prime256v1". id is the CKA_ID in hex.
func (h *HSM) GenerateKey(t testing.TB, label, id, keyType string) {
	t.Helper()
	run(t, "pkcs11-tool", "--module", h.Module, "--token-label", h.Token, "--login", "--pin", h.PIN,
		"--keypairgen", "--key-type", keyType, "--label", label, "--id", id)
}

// ImportKey imports the private key in the PKCS#8 PEM file pemPath (as
// signer.WritePEMPrivateKey writes it) into the token with its public half,
// so that one key can sign both from the file and through PKCS#11. id is
// the CKA_ID in hex.
func (h *HSM) ImportKey(t testing.TB, label, id, pemPath string) {
	t.Helper()
	run(t, "softhsm2-util", "--import", pemPath, "--token", h.Token, "--label", label, "--id", id, "--pin", h.PIN)
}

// URI names the key labelled label, without the PIN (tests pass it through
// TORWRT_PKCS11_PIN or pin-value).
func (h *HSM) URI(label string) string {
	return fmt.Sprintf("pkcs11:token=%s;object=%s?module-path=%s", h.Token, label, h.Module)
}

func run(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		// The output can echo arguments; the PINs are throwaway ones
		// made for this test, but keep them out of logs anyway.
		t.Fatalf("%s %s: %v\n%s", name, args[0], err, redact(string(out), args))
	}
}

func redact(s string, args []string) string {
	for i, a := range args {
		if (a == "--pin" || a == "--so-pin") && i+1 < len(args) {
			s = strings.ReplaceAll(s, args[i+1], "REDACTED")
		}
	}
	return s
}

func randomPIN(t testing.TB) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
