package updater

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/updater/updatertest"
	"github.com/torwrt/torwrt/internal/usign"
)

const (
	mirrorHost = "torwrtmirror7exampleexampleexampleexampleexamplexxxxxxx.onion"
	mirror     = "http://" + mirrorHost + "/stable/"
	imageName  = "torwrt-24.10.3-ath79-generic-glinet_gl-ar150-squashfs-sysupgrade.bin"
)

// request is what the test server saw.
type request struct {
	Path, Range, UserAgent, Cookie string
	Written                        int64
}

// testEnv is one router and one mirror: keys, a server behind a recording
// SOCKS proxy, a sysupgrade stand-in and a state file.
type testEnv struct {
	t       *testing.T
	dir     string
	keys    []*usign.SecretKey
	kr      *usign.Keyring
	srv     *httptest.Server
	socks   *updatertest.SOCKS
	sysup   string
	sysLog  string
	state   string
	meminfo string
	now     time.Time

	mu       sync.Mutex
	handlers map[string]http.HandlerFunc
	requests []request
	conns    atomic.Int64
}

// routeHost sends SOCKS connections for host to srv and every other one
// to the environment's good mirror.
func (e *testEnv) routeHost(host string, srv *httptest.Server) {
	good := e.srv.Listener.Addr().String()
	e.socks.Route = func(h string, _ uint16) string {
		if h == host {
			return srv.Listener.Addr().String()
		}
		return good
	}
}

func newEnv(t *testing.T) *testEnv {
	e := &testEnv{t: t, dir: t.TempDir(), handlers: map[string]http.HandlerFunc{}, now: updatertest.T0.Add(time.Hour)}
	e.keys, e.kr = updatertest.Keys(t, 3, "release keys")
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(e.serve))
	e.srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			e.conns.Add(1)
		}
	}
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	target := e.srv.Listener.Addr().String()
	e.socks = updatertest.StartSOCKS(t, func(host string, port uint16) string { return target })
	e.sysup, e.sysLog = updatertest.Sysupgrade(t, e.dir, 0)
	e.state = filepath.Join(e.dir, "etc", "state.json")
	e.meminfo = updatertest.MemInfo(t, e.dir, 48<<20)
	return e
}

type countWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countWriter) Flush() { c.ResponseWriter.(http.Flusher).Flush() }

func (c *countWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (e *testEnv) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	h := e.handlers[r.URL.Path]
	if h == nil {
		// Images live in a directory per profile, as in dist/.
		h = e.handlers[strings.Replace(r.URL.Path, "/stable/gl-ar150/", "/stable/", 1)]
	}
	e.mu.Unlock()
	cw := &countWriter{ResponseWriter: w}
	if h == nil {
		http.NotFound(cw, r)
	} else {
		h(cw, r)
	}
	e.mu.Lock()
	e.requests = append(e.requests, request{Path: r.URL.Path, Range: r.Header.Get("Range"), UserAgent: r.UserAgent(), Cookie: r.Header.Get("Cookie"), Written: cw.n})
	e.mu.Unlock()
}

func (e *testEnv) handle(name string, h http.HandlerFunc) {
	e.mu.Lock()
	e.handlers["/stable/"+name] = h
	e.mu.Unlock()
}

func (e *testEnv) serveBytes(name string, b []byte) {
	e.handle(name, func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(b))
	})
}

func (e *testEnv) requestsFor(name string) []request {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []request
	for _, r := range e.requests {
		if r.Path == "/stable/"+name || r.Path == "/stable/gl-ar150/"+name {
			out = append(out, r)
		}
	}
	return out
}

func (e *testEnv) config() Config {
	return Config{
		Mirrors: []string{mirror}, Keys: e.kr, Threshold: 2, Board: updatertest.Board, Channel: "stable",
		SOCKSAddr: e.socks.Addr, DownloadDir: filepath.Join(e.dir, "tmp"), StatePath: e.state,
		Sysupgrade: e.sysup, MemInfoPath: e.meminfo, RAMMargin: 4 << 20,
		RequestTimeout: 5 * time.Second, StallTimeout: 2 * time.Second,
		InstalledBuild: 41, InstalledVersion: "24.10.3-torwrt41",
		Clock:  func() time.Time { return e.now },
		Logger: slog.New(slog.NewTextHandler(testWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (e *testEnv) check(cfg Config) (*Result, error) {
	u, err := New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(e.t.Context(), 60*time.Second)
	defer cancel()
	return u.Check(ctx)
}

func (e *testEnv) image(spec updatertest.ImageSpec) []byte {
	if spec.Key == nil {
		spec.Key = e.keys[0]
	}
	if spec.PayloadSize == 0 {
		spec.PayloadSize = 64 << 10
	}
	return updatertest.Image(e.t, spec)
}

// publish serves img under imageName and a manifest for it signed by the
// first two keys.
func (e *testEnv) publish(img []byte, build uint64) manifest.Release {
	rel := updatertest.Release(img, imageName, build)
	e.serveBytes(imageName, img)
	e.serveBytes("release.json", updatertest.Envelope(e.t, updatertest.Manifest(10, rel), e.keys[0], e.keys[1]))
	return rel
}

func TestAttacks(t *testing.T) {
	type tc struct {
		name  string
		setup func(e *testEnv, cfg *Config)
		want  error
		// after runs extra assertions.
		after func(e *testEnv, res *Result)
	}
	tests := []tc{
		{name: "unsigned image", want: imagesig.ErrUnsigned, setup: func(e *testEnv, cfg *Config) {
			e.publish(e.image(updatertest.ImageSpec{Sig: updatertest.Unsigned}), 42)
		}},
		{name: "image signed by unknown key", want: usign.ErrUnknownKey, setup: func(e *testEnv, cfg *Config) {
			stranger, _ := updatertest.Keys(e.t, 1, "stranger")
			e.publish(e.image(updatertest.ImageSpec{Key: stranger[0]}), 42)
		}},
		{name: "image all-zero signature", want: usign.ErrBadSignature, setup: func(e *testEnv, cfg *Config) {
			e.publish(e.image(updatertest.ImageSpec{Sig: updatertest.ZeroSig}), 42)
		}},
		{name: "image fake certificate", want: imagesig.ErrUnsigned, setup: func(e *testEnv, cfg *Config) {
			e.publish(e.image(updatertest.ImageSpec{Sig: updatertest.FakeCert}), 42)
		}},
		{name: "manifest all-zero signature", want: manifest.ErrThreshold, setup: func(e *testEnv, cfg *Config) {
			img := e.image(updatertest.ImageSpec{})
			e.serveBytes(imageName, img)
			m := updatertest.Manifest(10, updatertest.Release(img, imageName, 42))
			p, _ := manifest.Encode(m)
			good, _ := e.keys[0].Sign(p)
			e.serveBytes("release.json", updatertest.RawEnvelope(e.t, m, good, &usign.Signature{Fingerprint: e.keys[1].Fingerprint}))
		}},
		{name: "manifest same key twice", want: manifest.ErrThreshold, setup: func(e *testEnv, cfg *Config) {
			img := e.image(updatertest.ImageSpec{})
			e.serveBytes(imageName, img)
			m := updatertest.Manifest(10, updatertest.Release(img, imageName, 42))
			p, _ := manifest.Encode(m)
			s, _ := e.keys[0].Sign(p)
			e.serveBytes("release.json", updatertest.RawEnvelope(e.t, m, s, s))
		}},
		{name: "manifest one of two signatures", want: manifest.ErrThreshold, setup: func(e *testEnv, cfg *Config) {
			img := e.image(updatertest.ImageSpec{})
			e.serveBytes(imageName, img)
			e.serveBytes("release.json", updatertest.Envelope(e.t, updatertest.Manifest(10, updatertest.Release(img, imageName, 42)), e.keys[0]))
		}},
		{name: "manifest signed by unknown keys", want: manifest.ErrThreshold, setup: func(e *testEnv, cfg *Config) {
			stranger, _ := updatertest.Keys(e.t, 2, "stranger")
			img := e.image(updatertest.ImageSpec{})
			e.serveBytes(imageName, img)
			e.serveBytes("release.json", updatertest.Envelope(e.t, updatertest.Manifest(10, updatertest.Release(img, imageName, 42)), e.keys[0], stranger[0], stranger[1]))
		}},
		{name: "expired manifest", want: manifest.ErrExpired, setup: func(e *testEnv, cfg *Config) {
			e.publish(e.image(updatertest.ImageSpec{}), 42)
			e.now = updatertest.T0.Add(8 * 24 * time.Hour)
		}},
		{name: "expired manifest, clock behind, tor consensus ahead", want: manifest.ErrExpired, setup: func(e *testEnv, cfg *Config) {
			e.publish(e.image(updatertest.ImageSpec{}), 42)
			e.now = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC) // no RTC: boot time
			cfg.TorTime = func(context.Context) (time.Time, error) { return updatertest.T0.Add(8 * 24 * time.Hour), nil }
		}},
		{name: "replay of an older manifest", want: manifest.ErrReplay, setup: func(e *testEnv, cfg *Config) {
			e.publish(e.image(updatertest.ImageSpec{}), 42) // sequence 10
			st, _, _ := LoadState(e.state)
			st.Manifest = manifest.State{Sequence: 11, IssuedAt: updatertest.T0}
			SaveState(e.state, st)
		}},
		{name: "rollback to an older build", want: manifest.ErrRollback, setup: func(e *testEnv, cfg *Config) {
			e.publish(e.image(updatertest.ImageSpec{}), 42)
			cfg.InstalledBuild = 50
		}},
		{name: "below the remembered floor", want: manifest.ErrRollback, setup: func(e *testEnv, cfg *Config) {
			e.publish(e.image(updatertest.ImageSpec{}), 42)
			cfg.InstalledBuild = 0
			st, _, _ := LoadState(e.state)
			st.Floor = 45
			SaveState(e.state, st)
		}},
		{name: "no release for this board", want: manifest.ErrWrongBoard, setup: func(e *testEnv, cfg *Config) {
			e.publish(e.image(updatertest.ImageSpec{}), 42)
			cfg.Board = "glinet,gl-mt300a"
		}},
		{name: "image for another board", want: imagesig.ErrWrongBoard, setup: func(e *testEnv, cfg *Config) {
			e.publish(e.image(updatertest.ImageSpec{Boards: []string{"glinet,gl-mt300a"}}), 42)
		}},
		{name: "image hash differs from manifest", want: ErrHashMismatch, setup: func(e *testEnv, cfg *Config) {
			a := e.image(updatertest.ImageSpec{Version: "24.10.3-a"})
			b := e.image(updatertest.ImageSpec{Version: "24.10.3-b"}) // validly signed, same size
			if len(a) != len(b) {
				e.t.Fatal("test images differ in size")
			}
			e.publish(a, 42)
			e.serveBytes(imageName, b)
		}},
		{name: "server sends endless image data", want: ErrTooLarge, setup: func(e *testEnv, cfg *Config) {
			e.publish(e.image(updatertest.ImageSpec{}), 42)
			e.handle(imageName, endless)
		}, after: func(e *testEnv, res *Result) {
			size := res.Release.Size
			if res.BytesReceived > size+64<<10 {
				e.t.Errorf("read %d bytes for a %d byte image", res.BytesReceived, size)
			}
			if _, err := os.Stat(filepath.Join(e.dir, "tmp", PrivateDirName, "torwrt-"+res.Release.SHA256+".unverified")); err == nil {
				e.t.Error("oversized partial download left behind")
			}
		}},
		{name: "content-length larger than the manifest size", want: ErrTooLarge, setup: func(e *testEnv, cfg *Config) {
			img := e.image(updatertest.ImageSpec{})
			e.publish(img, 42)
			e.handle(imageName, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(img)+1))
				w.Write(append(img, 0))
			})
		}, after: func(e *testEnv, res *Result) {
			if res.BytesReceived > 8<<10+manifest.MaxSize {
				e.t.Errorf("read %d bytes; the body should not have been read", res.BytesReceived)
			}
		}},
		{name: "server sends endless manifest data", want: manifest.ErrTooLarge, setup: func(e *testEnv, cfg *Config) {
			e.handle("release.json", endless)
		}, after: func(e *testEnv, res *Result) {
			if res.BytesReceived > manifest.MaxSize+16<<10 {
				e.t.Errorf("read %d bytes for a %d byte manifest limit", res.BytesReceived, manifest.MaxSize)
			}
		}},
		{name: "manifest too large", want: manifest.ErrTooLarge, setup: func(e *testEnv, cfg *Config) {
			e.serveBytes("release.json", bytes.Repeat([]byte(" "), manifest.MaxSize+1))
		}},
		{name: "malformed manifest json", want: manifest.ErrMalformed, setup: func(e *testEnv, cfg *Config) {
			e.serveBytes("release.json", []byte(`{"signed":"e30=","signatures":[`))
		}},
		{name: "slow image server", want: ErrTimeout, setup: func(e *testEnv, cfg *Config) {
			e.publish(e.image(updatertest.ImageSpec{}), 42)
			e.handle(imageName, stall(e.t))
			cfg.StallTimeout = 300 * time.Millisecond
		}},
		{name: "slow manifest server", want: ErrTimeout, setup: func(e *testEnv, cfg *Config) {
			e.handle("release.json", stall(e.t))
			cfg.StallTimeout = 300 * time.Millisecond
		}},
		{name: "not enough RAM", want: ErrNoMemory, setup: func(e *testEnv, cfg *Config) {
			e.publish(e.image(updatertest.ImageSpec{}), 42)
			cfg.MemInfoPath = updatertest.MemInfo(e.t, e.t.TempDir(), 4<<20)
		}, after: func(e *testEnv, res *Result) {
			if n := len(e.requestsFor(imageName)); n != 0 {
				e.t.Errorf("image fetched %d times despite too little RAM", n)
			}
		}},
		{name: "sysupgrade --test refuses", want: ErrSysupgrade, setup: func(e *testEnv, cfg *Config) {
			e.publish(e.image(updatertest.ImageSpec{}), 42)
			cfg.Sysupgrade, _ = updatertest.Sysupgrade(e.t, e.dir, 1)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			cfg := e.config()
			tc.setup(e, &cfg)
			start := time.Now()
			res, err := e.check(cfg)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Check: %v\nwant %v", err, tc.want)
			}
			if time.Since(start) > 20*time.Second {
				t.Errorf("check took %v", time.Since(start))
			}
			if res.Status != StatusRefused && res.Status != StatusFailed {
				t.Errorf("status %q", res.Status)
			}
			if f := updatertest.FlashCalls(t, e.sysLog); len(f) != 0 {
				t.Fatalf("sysupgrade flashed in a failing case: %q", f)
			}
			if tc.want != ErrSysupgrade {
				if c := updatertest.Calls(t, e.sysLog); len(c) != 0 {
					t.Errorf("sysupgrade called: %q", c)
				}
			}
			left, _ := filepath.Glob(filepath.Join(e.dir, "tmp", PrivateDirName, "torwrt-update-*"))
			if len(left) != 0 {
				t.Errorf("verified image left after refusal: %v", left)
			}
			st, _, err := LoadState(e.state)
			if err != nil {
				t.Fatal(err)
			}
			if st.LastResult != res.Status || st.LastError == "" {
				t.Errorf("state records %q %q", st.LastResult, st.LastError)
			}
			if st.InstalledBuild != 0 {
				t.Errorf("state says build %d installed", st.InstalledBuild)
			}
			if tc.after != nil {
				tc.after(e, res)
			}
			t.Logf("refused as expected: %v", err)
		})
	}
}

// endless streams zeros until the client goes away, without a length.
func endless(w http.ResponseWriter, r *http.Request) {
	buf := make([]byte, 32<<10)
	for {
		if _, err := w.Write(buf); err != nil {
			return
		}
	}
}

// stall sends headers and one byte, then nothing until the client hangs
// up or the test ends.
func stall(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.WriteHeader(200)
		w.Write([]byte{0})
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-t.Context().Done():
		case <-time.After(30 * time.Second):
		}
	}
}

func TestHappyPath(t *testing.T) {
	e := newEnv(t)
	img := e.image(updatertest.ImageSpec{PayloadSize: 1 << 20})
	rel := e.publish(img, 42)
	cfg := e.config()
	res, err := e.check(cfg)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if res.Status != StatusInstalled || res.Release.Build != 42 {
		t.Fatalf("result %+v", res)
	}
	final := filepath.Join(e.dir, "tmp", PrivateDirName, "torwrt-update-"+imageName)
	calls := updatertest.Calls(t, e.sysLog)
	want := []string{"--test " + final, final}
	if fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Fatalf("sysupgrade calls %q, want %q", calls, want)
	}
	got, err := os.ReadFile(final)
	if err != nil || updatertest.Sum(got) != rel.SHA256 {
		t.Fatalf("flashed file: %v", err)
	}

	// Every HTTP connection went through the SOCKS proxy, with the host
	// name unresolved.
	connects := e.socks.Connects()
	if len(connects) == 0 || int64(len(connects)) != e.conns.Load() {
		t.Fatalf("%d SOCKS connects, %d server connections", len(connects), e.conns.Load())
	}
	for _, c := range connects {
		if c.AddrType != 3 || c.Host != mirrorHost || c.Port != 80 {
			t.Errorf("CONNECT %+v: want the host name %s:80", c, mirrorHost)
		}
		if c.User != "torwrt-update" {
			t.Errorf("SOCKS user %q", c.User)
		}
	}
	var paths []string
	for _, r := range e.requests {
		if r.UserAgent != UserAgent || r.Cookie != "" {
			t.Errorf("request %+v", r)
		}
		paths = append(paths, r.Path)
	}
	// The mirror layout is dist/ as built: release.json at the top, each
	// image in its profile's directory.
	if len(paths) != 2 || paths[0] != "/stable/release.json" || !strings.HasPrefix(paths[1], "/stable/gl-ar150/") {
		t.Errorf("request paths %v", paths)
	}

	// The state was replaced atomically and records the install.
	st, _, err := LoadState(e.state)
	if err != nil {
		t.Fatal(err)
	}
	if st.InstalledBuild != 42 || st.Manifest.Sequence != 10 || st.LastResult != StatusInstalled || st.Pending != nil {
		t.Fatalf("state %+v", st)
	}
	entries, _ := os.ReadDir(filepath.Dir(e.state))
	if len(entries) != 1 {
		t.Errorf("state dir holds %d files (temp files left?)", len(entries))
	}
	if fi, _ := os.Stat(e.state); fi.Mode().Perm() != 0o600 {
		t.Errorf("state mode %v", fi.Mode())
	}

	// The next check sees the same manifest and nothing newer.
	cfg.InstalledBuild = 42
	res, err = e.check(cfg)
	if err != nil || res.Status != StatusUpToDate {
		t.Fatalf("second check: %+v %v", res, err)
	}
	if n := len(updatertest.Calls(t, e.sysLog)); n != 2 {
		t.Fatalf("sysupgrade called again")
	}
}

func TestResumeWithRange(t *testing.T) {
	e := newEnv(t)
	img := e.image(updatertest.ImageSpec{PayloadSize: 512 << 10})
	rel := e.publish(img, 42)
	var calls atomic.Int64
	cut := len(img) / 3
	e.handle(imageName, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			// Announce the whole image, send a third, drop the
			// connection: what a Tor circuit failing mid-download
			// looks like.
			w.Header().Set("Content-Length", strconv.Itoa(len(img)))
			w.WriteHeader(200)
			w.Write(img[:cut])
			w.(http.Flusher).Flush()
			conn, _, _ := http.NewResponseController(w).Hijack()
			conn.Close()
			return
		}
		http.ServeContent(w, r, imageName, time.Time{}, bytes.NewReader(img))
	})
	res, err := e.check(e.config())
	if err != nil || res.Status != StatusInstalled {
		t.Fatalf("Check: %+v %v", res, err)
	}
	reqs := e.requestsFor(imageName)
	if len(reqs) != 2 {
		t.Fatalf("%d image requests", len(reqs))
	}
	if reqs[0].Range != "" {
		t.Errorf("first request had Range %q", reqs[0].Range)
	}
	if want := fmt.Sprintf("bytes=%d-", cut); reqs[1].Range != want {
		t.Errorf("second request Range %q, want %q", reqs[1].Range, want)
	}
	if reqs[1].Written != int64(len(img)-cut) {
		t.Errorf("second response carried %d bytes, want %d", reqs[1].Written, len(img)-cut)
	}
	got, _ := os.ReadFile(filepath.Join(e.dir, "tmp", PrivateDirName, "torwrt-update-"+imageName))
	if updatertest.Sum(got) != rel.SHA256 {
		t.Fatal("final hash differs")
	}
	if n := len(updatertest.FlashCalls(t, e.sysLog)); n != 1 {
		t.Fatalf("%d flash calls", n)
	}
}

func TestResumeAcrossChecks(t *testing.T) {
	// A partial file from an earlier, interrupted check is continued.
	e := newEnv(t)
	img := e.image(updatertest.ImageSpec{PayloadSize: 256 << 10})
	rel := e.publish(img, 42)
	dl := filepath.Join(e.dir, "tmp", PrivateDirName)
	os.MkdirAll(dl, 0o700)
	os.WriteFile(filepath.Join(dl, "torwrt-"+rel.SHA256+".unverified"), img[:1000], 0o600)
	os.WriteFile(filepath.Join(dl, "torwrt-"+strings.Repeat("0", 64)+".unverified"), []byte("stale"), 0o600)
	res, err := e.check(e.config())
	if err != nil || res.Status != StatusInstalled {
		t.Fatalf("Check: %+v %v", res, err)
	}
	if r := e.requestsFor(imageName); len(r) != 1 || r[0].Range != "bytes=1000-" {
		t.Fatalf("requests %+v", r)
	}
	if _, err := os.Stat(filepath.Join(dl, "torwrt-"+strings.Repeat("0", 64)+".unverified")); err == nil {
		t.Error("stale partial download not removed")
	}
}

func TestMirrorFallback(t *testing.T) {
	e := newEnv(t)
	img := e.image(updatertest.ImageSpec{})
	e.publish(img, 42)
	cfg := e.config()
	// The first mirror serves an old manifest; the second is good.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(updatertest.Envelope(t, updatertest.Manifest(10, updatertest.Release(img, imageName, 42)), e.keys[0]))
	}))
	defer other.Close()
	e.routeHost("bad.example", other)
	cfg.Mirrors = []string{"http://bad.example/stable/", mirror}
	res, err := e.check(cfg)
	if err != nil || res.Status != StatusInstalled {
		t.Fatalf("Check: %+v %v", res, err)
	}
}

func TestRolloutDeferred(t *testing.T) {
	e := newEnv(t)
	img := e.image(updatertest.ImageSpec{})
	rel := updatertest.Release(img, imageName, 42)
	rel.Rollout = manifest.Rollout{Group: "default", Priority: 0, SpreadHours: 48}
	e.serveBytes(imageName, img)
	e.serveBytes("release.json", updatertest.Envelope(t, updatertest.Manifest(10, rel), e.keys[0], e.keys[1]))
	// Find a seed whose delay is well above zero, deterministically.
	st, _, _ := LoadState(e.state)
	for i := 0; rolloutFraction(st.Seed, &rel) < 0.1; i++ {
		st.Seed = fmt.Sprintf("%064x", i)
	}
	SaveState(e.state, st)
	res, err := e.check(e.config())
	if err != nil || res.Status != StatusDeferred || !res.DeferredUntil.After(e.now) {
		t.Fatalf("Check: %+v %v", res, err)
	}
	if len(e.requestsFor(imageName)) != 0 || len(updatertest.Calls(t, e.sysLog)) != 0 {
		t.Fatal("deferred release was fetched or installed")
	}
	// After the delay, the router installs it. The first-seen time is
	// kept, so re-signed manifests do not restart the delay.
	e.now = res.DeferredUntil.Add(time.Second)
	res, err = e.check(e.config())
	if err != nil || res.Status != StatusInstalled {
		t.Fatalf("Check after delay: %+v %v", res, err)
	}
}

func TestHTTPSMirror(t *testing.T) {
	e := newEnv(t)
	img := e.image(updatertest.ImageSpec{})
	e.publish(img, 42)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(e.serve))
	defer tlsSrv.Close()
	e.socks.Route = func(string, uint16) string { return tlsSrv.Listener.Addr().String() }
	cfg := e.config()
	cfg.Mirrors = []string{"https://example.com/stable/"} // the test certificate's name
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if u.tlsWrap == nil {
		// Built with torwrt_nohttps: https mirrors are refused.
		if _, err := u.Check(t.Context()); err == nil || !strings.Contains(err.Error(), "https is not built") {
			t.Fatalf("https mirror without TLS support: %v", err)
		}
		return
	}
	roots := tlsSrv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	u.tlsWrap = func(ctx context.Context, c net.Conn, name string) (net.Conn, error) {
		tc := tls.Client(c, &tls.Config{ServerName: name, RootCAs: roots})
		return tc, tc.HandshakeContext(ctx)
	}
	res, err := u.Check(t.Context())
	if err != nil || res.Status != StatusInstalled {
		t.Fatalf("Check: %+v %v", res, err)
	}
	// The production wrapper refuses the test certificate.
	u.tlsWrap = wrapTLS
	os.Remove(e.state)
	res, err = u.Check(t.Context())
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate accepted: %+v %v", res, err)
	}
}

func TestBusy(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := lockDir(dir); !errors.Is(err, ErrBusy) {
		t.Fatalf("second lock: %v", err)
	}
}

func TestStateCorrupt(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.json")
	st, note, err := LoadState(p)
	if err != nil || note == "" || !validSeed(st.Seed) {
		t.Fatalf("fresh: %+v %q %v", st, note, err)
	}
	again, note, err := LoadState(p)
	if err != nil || note != "" || again.Seed != st.Seed {
		t.Fatalf("reload: seed changed or %q %v", note, err)
	}
	os.WriteFile(p, []byte(`{"manifest":`), 0o600)
	st, note, err = LoadState(p)
	if err != nil || !strings.Contains(note, "corrupt") {
		t.Fatalf("corrupt: %q %v", note, err)
	}
	if _, err := os.Stat(p + ".corrupt"); err != nil {
		t.Fatal("corrupt state not kept for inspection")
	}
	b, _ := json.Marshal(st)
	if !bytes.Contains(b, []byte(st.Seed)) {
		t.Fatal("seed")
	}
}

func TestMemAvailable(t *testing.T) {
	p := updatertest.MemInfo(t, t.TempDir(), 30<<20)
	n, err := MemAvailable(p)
	if err != nil || n != 30<<20 {
		t.Fatalf("%d %v", n, err)
	}
	bad := filepath.Join(t.TempDir(), "m")
	os.WriteFile(bad, []byte("MemFree: 1 kB\n"), 0o644)
	if _, err := MemAvailable(bad); err == nil {
		t.Fatal("no MemAvailable accepted")
	}
}

func TestConfigRefusesHostnameProxy(t *testing.T) {
	_, kr := updatertest.Keys(t, 1, "k")
	_, err := New(Config{Mirrors: []string{mirror}, Keys: kr, Threshold: 1, Board: "b", Channel: "stable", SOCKSAddr: "localhost:9050", StatePath: "/x"})
	if !errors.Is(err, ErrConfiguration) {
		t.Fatalf("New: %v", err)
	}
	for _, m := range []string{"ftp://x/", "http://user@x/", "http://x/?id=1", "http:///"} {
		_, err := New(Config{Mirrors: []string{m}, Keys: kr, Threshold: 1, Board: "b", Channel: "stable", SOCKSAddr: "127.0.0.1:9050", StatePath: "/x"})
		if !errors.Is(err, ErrConfiguration) {
			t.Errorf("mirror %q: %v", m, err)
		}
	}
}

func TestCancelStopsDownload(t *testing.T) {
	e := newEnv(t)
	e.publish(e.image(updatertest.ImageSpec{}), 42)
	e.handle(imageName, stall(t))
	cfg := e.config()
	cfg.StallTimeout = time.Minute
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := u.Check(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Check: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancellation took %v", d)
	}
	if f := updatertest.FlashCalls(t, e.sysLog); len(f) != 0 {
		t.Fatal("flashed")
	}
}
