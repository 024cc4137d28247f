package lock

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/usign"
)

const index = `Package: tor
Version: 0.4.8.17-r1
Depends: libc, libevent2-7
Architecture: mips_24kc
Filename: tor_0.4.8.17-r1_mips_24kc.ipk
Size: 1234
SHA256sum: 0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f
Description: An anonymous Internet communication system
 continued description line

Package: ucert
Version: 2020.05.24~00b921d8-r3
Architecture: mips_24kc
Filename: ucert_2020.05.24~00b921d8-r3_mips_24kc.ipk
Size: 99
SHA256sum: 1111111111111111111111111111111111111111111111111111111111111111
`

func TestParseIndex(t *testing.T) {
	es, err := ParseIndex([]byte(index))
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Package != "tor" || es[0].Depends != "libc, libevent2-7" || es[1].Size != 99 {
		t.Fatalf("%+v", es)
	}
	bad := map[string]string{
		"no hash":       strings.Replace(index, "SHA256sum: 0f0f", "X: 0f0f", 1),
		"path filename": strings.Replace(index, "Filename: tor_", "Filename: ../tor_", 1),
		"shell name":    strings.Replace(index, "Package: tor", "Package: tor;id", 1),
		"bad size":      strings.Replace(index, "Size: 1234", "Size: lots", 1),
		"not a field":   strings.Replace(index, "Package: ucert", "garbage", 1),
	}
	for name, b := range bad {
		if _, err := ParseIndex([]byte(b)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func signedFeed(t *testing.T, key *usign.SecretKey, body string) string {
	t.Helper()
	dir := t.TempDir()
	sig, err := key.Sign([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "Packages"), []byte(body), 0o644)
	os.WriteFile(filepath.Join(dir, "Packages.sig"), sig.Marshal(), 0o644)
	return dir
}

func TestFetchIndexChecksSignature(t *testing.T) {
	key, _ := usign.GenerateKey(strings.NewReader(strings.Repeat("f", 64)), "")
	other, _ := usign.GenerateKey(strings.NewReader(strings.Repeat("o", 64)), "")
	kr, _ := usign.NewKeyring(key.Public())
	ctx := context.Background()

	dir := signedFeed(t, key, index)
	es, err := fetchIndex(ctx, Options{Keys: kr}, Feed{"base", "file://" + dir})
	if err != nil || len(es) != 2 || es[0].Feed.Name != "base" {
		t.Fatalf("good feed: %v %v", es, err)
	}
	// Index changed after signing.
	os.WriteFile(filepath.Join(dir, "Packages"), []byte(strings.Replace(index, "0.4.8.17", "0.4.8.18", 1)), 0o644)
	if _, err := fetchIndex(ctx, Options{Keys: kr}, Feed{"base", "file://" + dir}); !errors.Is(err, usign.ErrBadSignature) {
		t.Fatalf("tampered index: %v", err)
	}
	// Signed by a key that is not pinned.
	dir = signedFeed(t, other, index)
	if _, err := fetchIndex(ctx, Options{Keys: kr}, Feed{"base", "file://" + dir}); !errors.Is(err, usign.ErrUnknownKey) {
		t.Fatalf("unknown signer: %v", err)
	}
	// Plain http feeds are never used.
	if _, err := fetchIndex(ctx, Options{Keys: kr}, Feed{"base", "http://127.0.0.1:1/x"}); err == nil || !strings.Contains(err.Error(), "https") {
		t.Fatalf("http feed: %v", err)
	}
}

func TestFetchIndexOverHTTPS(t *testing.T) {
	key, _ := usign.GenerateKey(strings.NewReader(strings.Repeat("h", 64)), "")
	kr, _ := usign.NewKeyring(key.Public())
	sig, _ := key.Sign([]byte(index))
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/feed/Packages":
			w.Write([]byte(index))
		case "/feed/Packages.sig":
			w.Write(sig.Marshal())
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	client := srv.Client()
	client.Transport.(*http.Transport).TLSClientConfig.MinVersion = tls.VersionTLS12
	es, err := fetchIndex(context.Background(), Options{Keys: kr, HTTPClient: client}, Feed{"base", srv.URL + "/feed"})
	if err != nil || len(es) != 2 {
		t.Fatalf("%v %v", es, err)
	}
	if _, err := fetchIndex(context.Background(), Options{Keys: kr, HTTPClient: client}, Feed{"base", srv.URL + "/missing"}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("missing feed: %v", err)
	}
}

func TestUpstreamKeysAndDefaultFeeds(t *testing.T) {
	kr, err := UpstreamKeyring()
	if err != nil || kr.Len() != 2 {
		t.Fatalf("%v %v", kr, err)
	}
	p, err := profile.Load("../../profiles", "gl-ar150-24.10")
	if err != nil {
		t.Fatal(err)
	}
	feeds := DefaultFeeds(p)
	if feeds[0].URL != "https://downloads.openwrt.org/releases/24.10.3/targets/ath79/generic/packages" ||
		feeds[1].URL != "https://downloads.openwrt.org/releases/24.10.3/packages/mips_24kc/base" {
		t.Fatalf("%+v", feeds)
	}
}

func TestParseReposConf(t *testing.T) {
	conf := `src/gz openwrt_core https://downloads.openwrt.org/releases/24.10.3/targets/ath79/generic/packages
src/gz openwrt_base https://downloads.openwrt.org/releases/24.10.3/packages/mips_24kc/base
src/gz openwrt_kmods https://downloads.openwrt.org/releases/24.10.3/targets/ath79/generic/kmods/6.6.102-1-abcdef/
## This is the local package repository, do not remove!
src imagebuilder file:packages
option check_signature
`
	feeds, err := ParseReposConf([]byte(conf))
	if err != nil {
		t.Fatal(err)
	}
	if len(feeds) != 3 || feeds[2].Name != "openwrt_kmods" || strings.HasSuffix(feeds[2].URL, "/") {
		t.Fatalf("%+v", feeds)
	}
	for _, bad := range []string{
		"src/gz x http://downloads.openwrt.org/x\n",
		"src/gz x\n",
		"src imagebuilder file:packages\n",
		"rm -rf /\n",
	} {
		if _, err := ParseReposConf([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestParseAPKRepositories(t *testing.T) {
	repos := `https://downloads.openwrt.org/releases/25.12.5/targets/ath79/generic/packages/packages.adb
https://downloads.openwrt.org/releases/25.12.5/packages/mips_24kc/base/packages.adb
https://downloads.openwrt.org/releases/25.12.5/targets/ath79/generic/kmods/6.12.94-1-abcdef/packages.adb
# a comment
packages/packages.adb
/builder/packages/packages.adb
`
	feeds, err := ParseAPKRepositories([]byte(repos))
	if err != nil || len(feeds) != 3 || feeds[0].Name != "core" || feeds[1].Name != "base" || feeds[2].Name != "kmods" ||
		feeds[1].URL != "https://downloads.openwrt.org/releases/25.12.5/packages/mips_24kc/base" {
		t.Fatalf("%+v %v", feeds, err)
	}
	for _, bad := range []string{"http://downloads.openwrt.org/x/packages.adb\n", "https://downloads.openwrt.org/x/Packages\n", "ftp://x/packages.adb\n"} {
		if _, err := ParseAPKRepositories([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if _, err := ParseAPKRepositories([]byte("packages/packages.adb\n")); !errors.Is(err, ErrNoFeeds) {
		t.Errorf("local only: %v", err)
	}
}

func TestAPKClosure(t *testing.T) {
	entry := func(name string, deps ...string) apkCandidate {
		var c apkCandidate
		c.entry.Name, c.entry.Depends = name, deps
		return c
	}
	byName := map[string]apkCandidate{
		"tor":         entry("tor", "libevent2-7", "so:libc.so", "!tor-basic", "zlib>=1.2"),
		"libevent2-7": entry("libevent2-7", "libc"),
		"libc":        entry("libc"),
		"zlib":        entry("zlib", "libc"),
		"tor-basic":   entry("tor-basic"),
		"unrelated":   entry("unrelated"),
	}
	provides := map[string]string{"so:libc.so": "libc"}
	got := strings.Join(apkClosure([]string{"tor", "kernel"}, byName, provides), " ")
	if got != "libc libevent2-7 tor zlib" {
		t.Fatalf("closure %q", got)
	}
}
