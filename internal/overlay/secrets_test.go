package overlay

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/overlay/device"

	"github.com/torwrt/torwrt/internal/uci"
)

// TestNoSharedSecretsInTree renders every variant and greps the tree the
// way a reviewer would, independently of the checks inside Render: no
// private keys, no password hashes, no Wi-Fi keys, no files that only ever
// hold per-device secrets.
func TestNoSharedSecretsInTree(t *testing.T) {
	type variant struct {
		name string
		in   Input
	}
	var variants []variant
	for _, p := range deviceProfiles(t) {
		variants = append(variants, variant{p, testInput(t, p)})
		in := testInput(t, p)
		if in.RAMMB > device.MinBridgeRAMMB {
			in.BridgeRelay = true
			in.TorMaxMemMB = 64
		}
		in.SSHAuthorizedKeys = []string{testSSHKey}
		variants = append(variants, variant{p + "-bridge-ssh", in})
	}
	forbiddenPath := regexp.MustCompile(`^etc/(shadow|passwd|dropbear/dropbear_.*_host_key|torwrt/device-secrets)$|secret|\.sec$|/keys/.*(secret|private)`)
	grep := []struct {
		what string
		re   *regexp.Regexp
	}{
		{"PEM private key", regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY-----`)},
		{"usign secret key", regexp.MustCompile(`(?m)^RWRCSw`)},
		{"crypt password hash", regexp.MustCompile(`\$(1|5|6|y|2[aby])\$`)},
		{"tor control password", regexp.MustCompile(`HashedControlPassword`)},
		{"wireless key with a value", regexp.MustCompile(`(?m)^\s*option\s+(key|sae_password|password)\s+'[^']+'`)},
		{"root password in a script", regexp.MustCompile(`(?m)^\s*ROOT_PASSWORD=[A-Za-z0-9]`)},
	}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			dir, _ := renderTo(t, v.in)
			err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return err
				}
				rel, _ := filepath.Rel(dir, p)
				rel = filepath.ToSlash(rel)
				if forbiddenPath.MatchString(rel) {
					t.Errorf("%s: this path only ever holds per-device secrets", rel)
				}
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				for _, g := range grep {
					if m := g.re.Find(b); m != nil {
						t.Errorf("%s: %s: %q", rel, g.what, m)
					}
				}
				if strings.HasPrefix(rel, "etc/config/") {
					f, err := uci.ParseBytes(rel, b)
					if err != nil {
						return err
					}
					for _, s := range f.SectionsOfType("wifi-iface") {
						if _, ok := s.Get("key"); ok {
							t.Errorf("%s: wifi-iface %s carries a key", rel, s.Name)
						}
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestRenderRefusesSecrets passes secrets in through the only door that
// takes arbitrary bytes, ExtraFiles, and wants Render to refuse each.
func TestRenderRefusesSecrets(t *testing.T) {
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), &detReader{seed: "ec"})
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
	for _, tc := range []struct {
		name, path string
		data       []byte
		want       string
	}{
		{"pem in a text file", "/etc/ssl/device.pem", pemKey, "contains a PEM EC PRIVATE KEY"},
		{"pem inside a binary", "/usr/bin/tool", append([]byte("\x7fELF\x01\x02junk"), pemKey...), "contains a PEM EC PRIVATE KEY"},
		{"usign secret key", "/etc/torwrt/release.txt", testKey(t, "leak").Marshal(), "contains a usign secret key"},
		{"shadow file", "/etc/shadow", []byte("root:::0:99999:7:::\n"), "is a path that holds per-device secrets"},
		{"password hash", "/etc/passwd-extra", []byte("root:$6$saltsalt$abcdefgh:0:0\n"), "contains what looks like a password hash"},
		{"dropbear host key", "/etc/dropbear/dropbear_ed25519_host_key", []byte("binary"), "is a path that holds per-device secrets"},
		{"tor identity", "/etc/tor/keys/ed25519_master_id_secret_key", []byte("x"), "is a path that holds per-device secrets"},
		{"tor control password", "/etc/tor/torrc.d/x", []byte("HashedControlPassword 16:ABC\n"), "sets a Tor control password"},
		{"uci credential", "/etc/config/uhttpd", []byte("config uhttpd 'main'\n\toption key 'hunter2'\n"), "sets option key at line 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testInput(t, "gl-ar150")
			in.ExtraFiles = append(in.ExtraFiles, ExtraFile{Path: tc.path, Mode: 0o644, Data: tc.data})
			dest := filepath.Join(t.TempDir(), "out")
			_, err := Render(t.Context(), in, dest)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "never shipped in an image") {
				t.Fatalf("Render: %v\nwant an error containing %q", err, tc.want)
			}
			if _, serr := os.Stat(dest); serr == nil {
				t.Errorf("Render wrote %s before refusing", dest)
			}
		})
	}
}

// A Go binary is full of byte strings like "-----BEGIN "; only a real
// key block may trip the check.
func TestSecretsCheckIgnoresBinaryNoise(t *testing.T) {
	data := []byte("\x7fELF-----BEGIN \x00PRIVATE KEY-----\x00$6$\x00HashedControlPassword\x00RWRCS")
	if err := checkNoSecrets(renderedFile{path: "/usr/sbin/torwrt-verify", mode: 0o755, data: data}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data, []byte("$6$")) {
		t.Fatal("test data lost its noise")
	}
}
