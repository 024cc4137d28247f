package feed

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/torwrt/torwrt/internal/profile"
)

// pkgFile is the content of a fake package: its own control fields, which
// fakeControl reads back.
func pkgFile(name, version string, extra ...string) []byte {
	s := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: mips_24kc\n", name, version)
	for _, e := range extra {
		s += e + "\n"
	}
	return []byte(s)
}

// fakeControl is a ControlReader for pkgFile contents.
func fakeControl(_ context.Context, r io.Reader) ([]Field, error) {
	var out []Field
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			return nil, fmt.Errorf("bad control line %q", sc.Text())
		}
		out = append(out, Field{Name: k, Value: v})
	}
	return out, sc.Err()
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// locked pins data as package name/version.
func locked(name, version string, data []byte) profile.LockedPackage {
	return profile.LockedPackage{
		Name: name, Version: version, Arch: "mips_24kc",
		Filename: name + "_" + version + "_mips_24kc.ipk",
		Size:     int64(len(data)), SHA256: hexSHA(data),
	}
}

func lockOf(pkgs ...profile.LockedPackage) *profile.Lock {
	return &profile.Lock{
		LockVersion: profile.LockVersion, Profile: "test",
		ProfileSHA256: strings.Repeat("a", 64),
		Image:         profile.LockedImage{Ref: "registry.example/ib@sha256:" + strings.Repeat("b", 64)},
		Packages:      pkgs,
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// cacheEntries lists what is in the cache's sha256 directory, including
// leftover temporary files.
func cacheEntries(t *testing.T, c *Cache) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(c.Dir, "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func checkCached(t *testing.T, c *Cache, p profile.LockedPackage, want []byte) {
	t.Helper()
	got, err := os.ReadFile(filepath.Join(c.Dir, "sha256", p.SHA256))
	if err != nil {
		t.Fatalf("%s not cached: %v", p.Name, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("cache entry of %s holds %q, want %q", p.Name, got, want)
	}
}

func TestFetchFromSource(t *testing.T) {
	src := t.TempDir()
	tor, lib := pkgFile("tor", "0.4.8.13-r1"), pkgFile("libevent2-7", "2.1.12-r1")
	ptor, plib := locked("tor", "0.4.8.13-r1", tor), locked("libevent2-7", "2.1.12-r1", lib)
	writeFile(t, filepath.Join(src, ptor.Filename), tor)
	// The second package is found in the second source directory.
	src2 := t.TempDir()
	writeFile(t, filepath.Join(src2, plib.Filename), lib)
	var progress bytes.Buffer
	c := &Cache{Dir: t.TempDir(), Sources: []string{src, src2}, Progress: &progress}
	if err := c.Fetch(t.Context(), lockOf(ptor, plib)); err != nil {
		t.Fatal(err)
	}
	checkCached(t, c, ptor, tor)
	checkCached(t, c, plib, lib)
	if n := len(cacheEntries(t, c)); n != 2 {
		t.Fatalf("cache holds %d entries, want 2: %q", n, cacheEntries(t, c))
	}
	if !strings.Contains(progress.String(), "tor 0.4.8.13-r1") || !strings.Contains(progress.String(), "2/2 libevent2-7") {
		t.Errorf("progress %q", progress.String())
	}

	// A second Fetch uses the cache: the sources may be gone.
	c2 := &Cache{Dir: c.Dir}
	if err := c2.Fetch(t.Context(), lockOf(ptor, plib)); err != nil {
		t.Fatalf("fetch from a warm cache with no sources: %v", err)
	}
	f, err := c2.Open(ptor)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if !bytes.Equal(got, tor) {
		t.Fatalf("Open returned %q", got)
	}
}

func TestFetchSourceHashMismatch(t *testing.T) {
	src := t.TempDir()
	good := pkgFile("tor", "0.4.8.13-r1")
	p := locked("tor", "0.4.8.13-r1", good)
	// Same name, other bytes: the mirror changed, or the lock is stale.
	writeFile(t, filepath.Join(src, p.Filename), pkgFile("tor", "0.4.8.13-r1", "Description: tampered"))
	c := &Cache{Dir: t.TempDir(), Sources: []string{src}}
	err := c.Fetch(t.Context(), lockOf(p))
	if !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("Fetch: %v, want ErrHashMismatch", err)
	}
	for _, want := range []string{p.Filename, p.SHA256, "run: imgbuild lock"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "sha256", p.SHA256)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file with the wrong hash got the cache name: %v", err)
	}
	if es := cacheEntries(t, c); len(es) != 0 {
		t.Fatalf("cache dir holds %q after a refused file", es)
	}
	// A later source with the file of the locked hash is taken: apk names
	// files <name>-<version>.apk without the architecture, so two
	// targets' feeds hold different files of one name. Every candidate
	// is judged by the hash, never by its name.
	src2 := t.TempDir()
	writeFile(t, filepath.Join(src2, p.Filename), good)
	c.Sources = append(c.Sources, src2)
	if err := c.Fetch(t.Context(), lockOf(p)); err != nil {
		t.Fatalf("Fetch with a wrong file first and the right one second: %v", err)
	}
	checkCached(t, c, p, good)
	if es := cacheEntries(t, c); len(es) != 1 {
		t.Fatalf("cache dir holds %q, want only the locked file", es)
	}
}

func TestFetchReplacesCorruptCacheEntry(t *testing.T) {
	data := pkgFile("tor", "0.4.8.13-r1")
	p := locked("tor", "0.4.8.13-r1", data)
	c := &Cache{Dir: t.TempDir()}
	entry := filepath.Join(c.Dir, "sha256", p.SHA256)
	writeFile(t, entry, []byte("bit rot"))

	// Open notices the corruption.
	if _, err := c.Open(p); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("Open of a corrupt entry: %v, want ErrHashMismatch", err)
	}

	// With nowhere to fetch from, the corrupt entry is dropped and the
	// package reported missing.
	err := c.Fetch(t.Context(), lockOf(p))
	if err == nil || !strings.Contains(err.Error(), p.Filename) {
		t.Fatalf("Fetch with a corrupt entry and no source: %v", err)
	}
	if _, err := os.Stat(entry); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("corrupt entry still there: %v", err)
	}

	// With a source it is fetched again.
	writeFile(t, entry, []byte("bit rot"))
	src := t.TempDir()
	writeFile(t, filepath.Join(src, p.Filename), data)
	c.Sources = []string{src}
	if err := c.Fetch(t.Context(), lockOf(p)); err != nil {
		t.Fatal(err)
	}
	checkCached(t, c, p, data)
}

func TestFetchMissingPackageOffline(t *testing.T) {
	data := pkgFile("obfs4proxy", "0.0.14-r1")
	p := locked("obfs4proxy", "0.0.14-r1", data)
	p.URL = "https://downloads.openwrt.org/releases/24.10.3/packages/mips_24kc/packages/" + p.Filename
	for name, c := range map[string]*Cache{
		// A URL but no HTTP client: the network is off.
		"no client": {Dir: t.TempDir(), Sources: []string{t.TempDir()}},
		// A client but no URL to fetch.
		"no url": {Dir: t.TempDir(), HTTPClient: &http.Client{Transport: failTransport{t}}},
	} {
		t.Run(name, func(t *testing.T) {
			q := p
			if c.HTTPClient != nil {
				q.URL = ""
			}
			err := c.Fetch(t.Context(), lockOf(q))
			if err == nil {
				t.Fatal("Fetch of a package that is nowhere succeeded")
			}
			for _, want := range []string{"obfs4proxy", "0.0.14-r1", p.Filename, "network is off"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

// failTransport fails the test if any request is made.
type failTransport struct{ t *testing.T }

func (f failTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f.t.Errorf("unexpected request to %s", r.URL)
	return nil, errors.New("no network in this test")
}

func TestFetchSkipsBundled(t *testing.T) {
	data := pkgFile("tor", "0.4.8.13-r1")
	p := locked("tor", "0.4.8.13-r1", data)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, p.Filename), data)
	bundled := profile.LockedPackage{Name: "kmod-nft-core", Version: "6.6.93-r1", Arch: "mips_24kc", Bundled: true}
	l := lockOf(bundled, p)
	c := &Cache{Dir: t.TempDir(), Sources: []string{src}, HTTPClient: &http.Client{Transport: failTransport{t}}}
	if err := c.Fetch(t.Context(), l); err != nil {
		t.Fatalf("Fetch with a bundled package: %v", err)
	}
	if es := cacheEntries(t, c); len(es) != 1 || es[0] != p.SHA256 {
		t.Fatalf("cache holds %q, want only %s", es, p.SHA256)
	}
	feedDir := t.TempDir()
	if err := c.Write(t.Context(), l, feedDir, fakeControl); err != nil {
		t.Fatalf("Write with a bundled package: %v", err)
	}
	index, err := os.ReadFile(filepath.Join(feedDir, "Packages"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(index), "kmod-nft-core") {
		t.Fatalf("bundled package in the feed index:\n%s", index)
	}
	es, _ := os.ReadDir(feedDir)
	if len(es) != 2 {
		t.Fatalf("feed dir holds %d files, want the package and Packages", len(es))
	}
}

func TestFetchCanceled(t *testing.T) {
	data := pkgFile("tor", "0.4.8.13-r1")
	p := locked("tor", "0.4.8.13-r1", data)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, p.Filename), data)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	c := &Cache{Dir: t.TempDir(), Sources: []string{src}}
	if err := c.Fetch(ctx, lockOf(p)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch with a canceled context: %v", err)
	}
}

// parseIndex reads an opkg Packages file into one map per entry.
func parseIndex(t *testing.T, data []byte) []map[string]string {
	t.Helper()
	var out []map[string]string
	for _, para := range strings.Split(strings.TrimRight(string(data), "\n"), "\n\n") {
		m := map[string]string{}
		for _, line := range strings.Split(para, "\n") {
			k, v, ok := strings.Cut(line, ": ")
			if !ok {
				t.Fatalf("index line %q", line)
			}
			if _, dup := m[k]; dup {
				t.Fatalf("field %s twice in entry:\n%s", k, para)
			}
			m[k] = v
		}
		out = append(out, m)
	}
	return out
}

func TestWrite(t *testing.T) {
	tor := pkgFile("tor", "0.4.8.13-r1", "Depends: libc, libevent2-7, libopenssl3", "Section: net", "Description: An anonymous Internet communication system", "Maintainer: someone")
	lib := pkgFile("libevent2-7", "2.1.12-r1", "Depends: libc")
	ptor, plib := locked("tor", "0.4.8.13-r1", tor), locked("libevent2-7", "2.1.12-r1", lib)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, ptor.Filename), tor)
	writeFile(t, filepath.Join(src, plib.Filename), lib)
	c := &Cache{Dir: t.TempDir(), Sources: []string{src}}
	l := lockOf(ptor, plib)
	if err := c.Fetch(t.Context(), l); err != nil {
		t.Fatal(err)
	}
	feedDir := filepath.Join(t.TempDir(), "feed")
	if err := c.Write(t.Context(), l, feedDir, fakeControl); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		lp   profile.LockedPackage
		data []byte
	}{{ptor, tor}, {plib, lib}} {
		got, err := os.ReadFile(filepath.Join(feedDir, p.lp.Filename))
		if err != nil || !bytes.Equal(got, p.data) {
			t.Fatalf("feed file %s: %q, %v", p.lp.Filename, got, err)
		}
	}
	data, err := os.ReadFile(filepath.Join(feedDir, "Packages"))
	if err != nil {
		t.Fatal(err)
	}
	entries := parseIndex(t, data)
	if len(entries) != 2 {
		t.Fatalf("index has %d entries:\n%s", len(entries), data)
	}
	for i, p := range l.Packages {
		e := entries[i]
		want := map[string]string{
			"Package": p.Name, "Version": p.Version, "Architecture": "mips_24kc",
			"Filename": p.Filename, "Size": fmt.Sprint(p.Size), "SHA256sum": p.SHA256,
		}
		for k, v := range want {
			if e[k] != v {
				t.Errorf("entry %d %s: %q, lock says %q", i, k, e[k], v)
			}
		}
		// What the index says must be true of the file next to it.
		file, err := os.ReadFile(filepath.Join(feedDir, e["Filename"]))
		if err != nil {
			t.Fatal(err)
		}
		if hexSHA(file) != e["SHA256sum"] || fmt.Sprint(len(file)) != e["Size"] {
			t.Errorf("entry %d: index Size/SHA256sum do not describe %s", i, e["Filename"])
		}
	}
	if entries[0]["Depends"] != "libc, libevent2-7, libopenssl3" || entries[0]["Section"] != "net" || entries[0]["Description"] == "" {
		t.Errorf("tor entry lost control fields: %v", entries[0])
	}
	if _, ok := entries[0]["Maintainer"]; ok {
		t.Errorf("tor entry carries a field Write does not copy: %v", entries[0])
	}
	if entries[1]["Depends"] != "libc" {
		t.Errorf("libevent entry: %v", entries[1])
	}

	// Writing again gives the same index.
	if err := c.Write(t.Context(), l, feedDir, fakeControl); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(filepath.Join(feedDir, "Packages"))
	if !bytes.Equal(again, data) {
		t.Fatalf("second Write changed the index:\n%s\n---\n%s", data, again)
	}
}

func TestWriteRefusesControlMismatch(t *testing.T) {
	for name, tc := range map[string]struct {
		control    []byte
		lockName   string
		lockVer    string
		wantInText []string
	}{
		"version": {pkgFile("tor", "0.4.9.0-r1"), "tor", "0.4.8.13-r1", []string{"0.4.9.0-r1", "0.4.8.13-r1"}},
		"name":    {pkgFile("tor-basic", "0.4.8.13-r1"), "tor", "0.4.8.13-r1", []string{"tor-basic", "lock says tor"}},
		"missing": {[]byte("Architecture: mips_24kc\n"), "tor", "0.4.8.13-r1", []string{"lock says tor 0.4.8.13-r1"}},
	} {
		t.Run(name, func(t *testing.T) {
			p := locked(tc.lockName, tc.lockVer, tc.control)
			src := t.TempDir()
			writeFile(t, filepath.Join(src, p.Filename), tc.control)
			c := &Cache{Dir: t.TempDir(), Sources: []string{src}}
			l := lockOf(p)
			if err := c.Fetch(t.Context(), l); err != nil {
				t.Fatal(err)
			}
			feedDir := t.TempDir()
			err := c.Write(t.Context(), l, feedDir, fakeControl)
			if err == nil {
				t.Fatal("Write accepted a package whose control file disagrees with the lock")
			}
			for _, want := range append(tc.wantInText, p.Filename) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if _, err := os.Stat(filepath.Join(feedDir, "Packages")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a Packages index was written: %v", err)
			}
		})
	}
}

func TestWriteErrors(t *testing.T) {
	data := pkgFile("tor", "0.4.8.13-r1")
	p := locked("tor", "0.4.8.13-r1", data)
	c := &Cache{Dir: t.TempDir()}
	// Not fetched.
	if err := c.Write(t.Context(), lockOf(p), t.TempDir(), fakeControl); err == nil || !strings.Contains(err.Error(), "tor") {
		t.Fatalf("Write of an uncached package: %v", err)
	}
	// Corrupted in the cache after Fetch.
	writeFile(t, filepath.Join(c.Dir, "sha256", p.SHA256), []byte("bit rot"))
	if err := c.Write(t.Context(), lockOf(p), t.TempDir(), fakeControl); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("Write of a corrupt cache entry: %v, want ErrHashMismatch", err)
	}
	// The control reader fails.
	writeFile(t, filepath.Join(c.Dir, "sha256", p.SHA256), data)
	bad := func(context.Context, io.Reader) ([]Field, error) { return nil, errors.New("not an ipk") }
	if err := c.Write(t.Context(), lockOf(p), t.TempDir(), bad); err == nil || !strings.Contains(err.Error(), "not an ipk") || !strings.Contains(err.Error(), p.Filename) {
		t.Fatalf("Write with a failing control reader: %v", err)
	}
}

func TestFetchHTTPS(t *testing.T) {
	good := pkgFile("tor", "0.4.8.13-r1")
	var requests atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		switch r.URL.Path {
		case "/good.ipk":
			w.Write(good)
		case "/tampered.ipk":
			w.Write(append(bytes.Clone(good), "Description: tampered\n"...))
		default:
			http.NotFound(w, r)
		}
	}))
	// The untrusted-client case below makes the server log a handshake
	// error; keep the test output clean.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	defer srv.Close()
	p := locked("tor", "0.4.8.13-r1", good)

	p.URL = srv.URL + "/good.ipk"
	c := &Cache{Dir: t.TempDir(), HTTPClient: srv.Client()}
	if err := c.Fetch(t.Context(), lockOf(p)); err != nil {
		t.Fatal(err)
	}
	checkCached(t, c, p, good)
	// Cached now: no second request.
	if err := c.Fetch(t.Context(), lockOf(p)); err != nil || requests.Load() != 1 {
		t.Fatalf("second Fetch: %v, %d requests", err, requests.Load())
	}

	p.URL = srv.URL + "/tampered.ipk"
	c = &Cache{Dir: t.TempDir(), HTTPClient: srv.Client()}
	err := c.Fetch(t.Context(), lockOf(p))
	if !errors.Is(err, ErrHashMismatch) || !strings.Contains(err.Error(), p.URL) || !strings.Contains(err.Error(), "run: imgbuild lock") {
		t.Fatalf("Fetch of a tampered download: %v", err)
	}
	if es := cacheEntries(t, c); len(es) != 0 {
		t.Fatalf("cache holds %q after a refused download", es)
	}

	p.URL = srv.URL + "/missing.ipk"
	err = c.Fetch(t.Context(), lockOf(p))
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), p.URL) {
		t.Fatalf("Fetch of a 404: %v", err)
	}

	// Without the test server's CA the TLS handshake fails.
	p.URL = srv.URL + "/good.ipk"
	c = &Cache{Dir: t.TempDir(), HTTPClient: &http.Client{}}
	if err := c.Fetch(t.Context(), lockOf(p)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Fetch from an untrusted server: %v", err)
	}
}

func TestFetchRefusesOversizeDownload(t *testing.T) {
	chunk := bytes.Repeat([]byte{0}, 1<<20)
	var sent int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// An endless body: the client must stop reading.
		for sent < 4*maxPackage {
			n, err := w.Write(chunk)
			sent += int64(n)
			if err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	p := locked("tor", "0.4.8.13-r1", []byte("small"))
	p.URL = srv.URL + "/huge.ipk"
	c := &Cache{Dir: t.TempDir(), HTTPClient: srv.Client()}
	err := c.Fetch(t.Context(), lockOf(p))
	if err == nil || !strings.Contains(err.Error(), "larger than") || !strings.Contains(err.Error(), p.URL) {
		t.Fatalf("Fetch of an oversize download: %v", err)
	}
	if errors.Is(err, ErrHashMismatch) {
		t.Fatalf("oversize download reported as a hash mismatch: %v", err)
	}
	if es := cacheEntries(t, c); len(es) != 0 {
		t.Fatalf("cache holds %q after an oversize download", es)
	}
	srv.CloseClientConnections()
}
