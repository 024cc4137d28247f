package overlay

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/brand"
	"github.com/torwrt/torwrt/internal/routerconf"
	"github.com/torwrt/torwrt/internal/uci"
	"github.com/torwrt/torwrt/internal/updater"
	"github.com/torwrt/torwrt/internal/updater/updatertest"
	"github.com/torwrt/torwrt/internal/usign"
)

// TestBrandCountryAndChannel follows a brand's country and channel from
// brand.yaml into the image and on to the router: the wireless config of
// the rendered tree carries the country on its radio, verify.json carries
// the channel, and the updater configured from that verify.json (as
// torwrt-verify daemon does) refuses a validly signed manifest of another
// channel without fetching the image, then accepts its own channel's.
func TestBrandCountryAndChannel(t *testing.T) {
	// brands/acme, moved to another channel and country.
	root := filepath.Join(t.TempDir(), "brands")
	copyTree(t, filepath.Join("..", "..", "brands", "acme"), filepath.Join(root, "acme"))
	yml := filepath.Join(root, "acme", "brand.yaml")
	data, err := os.ReadFile(yml)
	if err != nil {
		t.Fatal(err)
	}
	for old, new := range map[string]string{"channel: stable": "channel: beta", "country: GB": "country: BR"} {
		if !bytes.Contains(data, []byte(old)) {
			t.Fatalf("brands/acme/brand.yaml has no %q", old)
		}
		data = bytes.Replace(data, []byte(old), []byte(new), 1)
	}
	if err := os.WriteFile(yml, data, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := brand.Load(root, "acme")
	if err != nil {
		t.Fatal(err)
	}

	// The overlay input as internal/build fills it from the brand.
	in := testInput(t, "gl-ar150")
	in.Channel = b.Channel
	in.Radio.Country = b.Country
	tree, _ := renderTo(t, in)

	// Wireless: the country on the radio, parsed as uci would.
	wf, err := os.Open(filepath.Join(tree, "etc/config/wireless"))
	if err != nil {
		t.Fatal(err)
	}
	defer wf.Close()
	f, err := uci.Parse("wireless", wf)
	if err != nil {
		t.Fatal(err)
	}
	radios := 0
	for _, s := range f.Sections {
		if s.Type != "wifi-device" {
			continue
		}
		radios++
		var got []string
		for _, o := range s.Options {
			if o.Name == "country" {
				got = append(got, o.Values...)
			}
		}
		if len(got) != 1 || got[0] != "BR" {
			t.Errorf("wifi-device %s: country %q, want BR", s.Name, got)
		}
	}
	if radios == 0 {
		t.Fatal("no wifi-device in the rendered wireless config")
	}

	// verify.json: the channel, through the daemon's own decoding.
	raw, err := os.ReadFile(filepath.Join(tree, strings.TrimPrefix(routerconf.Path, "/")))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := routerconf.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	rc.ApplyDefaults()
	if err := rc.Validate(); err != nil {
		t.Fatal(err)
	}
	if rc.Channel != "beta" {
		t.Fatalf("verify.json channel %q, want beta", rc.Channel)
	}

	// The router's updater, configured from the rendered files.
	keys, err := usign.LoadKeyDir(filepath.Join(tree, strings.TrimPrefix(rc.KeysDir, "/")))
	if err != nil {
		t.Fatal(err)
	}
	signers := []*usign.SecretKey{testKey(t, "release-1"), testKey(t, "release-2")}
	img := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 16 << 10, Key: signers[0]})
	rel := updatertest.Release(img, "image.bin", in.FirmwareBuild) // the installed build
	var mu sync.Mutex
	var manifestBody []byte
	var paths []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		paths = append(paths, r.URL.Path)
		if strings.HasSuffix(r.URL.Path, "/release.json") {
			w.Write(manifestBody)
			return
		}
		w.Write(img)
	}))
	t.Cleanup(srv.Close)
	socks := updatertest.StartSOCKS(t, func(string, uint16) string { return srv.Listener.Addr().String() })
	var onion string
	for _, m := range rc.Mirrors {
		if u, err := url.Parse(m); err == nil && strings.HasSuffix(u.Hostname(), ".onion") {
			onion = m
		}
	}
	dir := t.TempDir()
	sys, sysLog := updatertest.Sysupgrade(t, dir, 0)
	u, err := updater.New(updater.Config{
		Mirrors: []string{onion}, Keys: keys, Threshold: rc.Threshold, Board: rc.Board, Channel: rc.Channel,
		SOCKSAddr: socks.Addr, DownloadDir: filepath.Join(dir, "tmp"), StatePath: filepath.Join(dir, "state.json"),
		Sysupgrade: sys, MemInfoPath: updatertest.MemInfo(t, dir, 64<<20),
		RequestTimeout: 10 * time.Second, StallTimeout: 10 * time.Second,
		InstalledBuild: in.FirmwareBuild, InstalledVersion: in.FirmwareVersion,
		Clock:  func() time.Time { return updatertest.T0.Add(time.Hour) },
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	publish := func(channel string, seq uint64) {
		m := updatertest.Manifest(seq, rel)
		m.Channel = channel
		mu.Lock()
		manifestBody, paths = updatertest.Envelope(t, m, signers...), nil
		mu.Unlock()
	}

	// The stable manifest, validly signed by the brand's keys: refused.
	publish("stable", 10)
	_, err = u.Check(t.Context())
	if !errors.Is(err, updater.ErrWrongChannel) {
		t.Fatalf("stable manifest on a beta router: %v", err)
	}
	mu.Lock()
	if len(paths) != 1 || !strings.HasSuffix(paths[0], "/release.json") {
		t.Errorf("requests %v: only the manifest may be fetched", paths)
	}
	mu.Unlock()
	if f := updatertest.FlashCalls(t, sysLog); len(f) != 0 {
		t.Fatalf("flashed: %v", f)
	}
	// Its own channel's manifest (a lower sequence: the refused one did
	// not move the replay floor) is accepted.
	publish("beta", 9)
	if res, err := u.Check(t.Context()); err != nil || res.Status != updater.StatusUpToDate {
		t.Fatalf("beta manifest on a beta router: %v %+v", err, res)
	}
}
