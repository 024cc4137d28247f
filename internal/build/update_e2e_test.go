package build_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/brand"
	"github.com/torwrt/torwrt/internal/build"
	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/release"
	"github.com/torwrt/torwrt/internal/routerconf"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/squashfs"
	"github.com/torwrt/torwrt/internal/updater"
	"github.com/torwrt/torwrt/internal/updater/updatertest"
	"github.com/torwrt/torwrt/internal/usign"
)

// These tests join the two halves of torwrt with real artifacts: images
// built by Run against the simulated ImageBuilder, a manifest made by
// release.Prepare and threshold-signed by release.Sign, and on the other
// side the router's updater (in process) and the router's own MIPS binary
// taken out of the image (under qemu). Everything the router side is
// configured with comes out of the built image: /etc/torwrt/verify.json,
// /etc/torwrt/keys and /etc/torwrt/release.json.

// releaseSetup is what both tests build with: the image is signed by the
// fixture key, the image trusts the fixture key and a second manifest key,
// and the brand asks for 2 of them on every manifest.
type releaseSetup struct {
	f       *fixture
	p       *profile.Profile // gl-ar150
	brand   *brand.Brand
	second  *usign.SecretKey
	keys    []*usign.PublicKey
	trusted *usign.Keyring
}

func newReleaseSetup(t *testing.T) *releaseSetup {
	t.Helper()
	f := setup(t)
	var p *profile.Profile
	for _, q := range f.profiles {
		if q.ID == "gl-ar150" {
			p = q
		}
	}
	if p == nil {
		t.Fatal("the fixture has no gl-ar150 profile")
	}
	second, err := usign.GenerateKey(rand.Reader, "e2e second manifest key")
	if err != nil {
		t.Fatal(err)
	}
	keys := []*usign.PublicKey{f.key.Public(), second.Public()}
	trusted, err := usign.NewKeyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	b := *f.brand
	b.Threshold = 2
	return &releaseSetup{f: f, p: p, brand: &b, second: second, keys: keys, trusted: trusted}
}

// builtDist is one build of the profile into a dist directory of its own,
// laid out as imgbuild build writes it: DIST/<profile>/<image>, and
// DIST/release.json once a manifest is prepared.
type builtDist struct {
	dist  string
	rep   *build.Result
	image string
}

func (s *releaseSetup) build(t *testing.T, number uint64, version string) *builtDist {
	t.Helper()
	dist := t.TempDir()
	o := s.f.options(t, s.p, dist, t.TempDir())
	o.Brand, o.ReleaseKeys, o.Build, o.Version = s.brand, s.keys, number, version
	rep, err := build.Run(t.Context(), o)
	if err != nil {
		t.Fatalf("build %d: %v", number, err)
	}
	if rep.Build != number || rep.SignedBy != s.f.key.Fingerprint.String() {
		t.Fatalf("report: build %d signed by %s", rep.Build, rep.SignedBy)
	}
	return &builtDist{dist: dist, rep: rep, image: filepath.Join(dist, s.p.ID, rep.Image)}
}

// prepare writes DIST/release.json as `imgbuild release prepare` (without
// --build: the build number comes from the build report) followed by one
// `imgbuild release sign --expect-sha256` per key holder would, checks it
// as `imgbuild release verify --dist` does, and returns the file.
func (s *releaseSetup) prepare(t *testing.T, d *builtDist, seq uint64, issued time.Time, signers ...*usign.SecretKey) []byte {
	t.Helper()
	ctx := t.Context()
	m, data, err := release.Prepare(ctx, release.PrepareOptions{
		Dist: d.dist, Channel: "stable", Sequence: seq, IssuedAt: issued, Lifetime: 48 * time.Hour,
		RolloutGroup: "default", Priority: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Releases) != 1 || m.Releases[0].Build != d.rep.Build || m.Releases[0].SHA256 != d.rep.ImageSHA256 {
		t.Fatalf("prepared manifest %+v; want build %d sha256 %s", m.Releases, d.rep.Build, d.rep.ImageSHA256)
	}
	in, err := release.Inspect(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range signers {
		sg, err := signer.FromUsign(k)
		if err != nil {
			t.Fatal(err)
		}
		data, _, err = release.Sign(ctx, data, sg, release.SignOptions{Trusted: s.trusted, ExpectSHA256: in.Digest})
		sg.Close()
		if err != nil {
			t.Fatalf("sign with %s: %v", k.Fingerprint, err)
		}
	}
	if _, err := release.Verify(ctx, data, release.VerifyOptions{Keys: s.trusted, Threshold: len(signers), Now: time.Now(), Dist: d.dist}); err != nil {
		t.Fatalf("release verify --threshold %d --dist: %v", len(signers), err)
	}
	if err := os.WriteFile(filepath.Join(d.dist, "release.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return data
}

// routerImage is the router's view of itself, read out of a built image.
type routerImage struct {
	conf    *routerconf.Config // /etc/torwrt/verify.json, defaulted and validated as the daemon does
	release routerconf.Release // /etc/torwrt/release.json
	keysDir string             // a copy of the image's keys_dir
	keys    *usign.Keyring     // loaded from it as the daemon does
	verify  []byte             // /usr/sbin/torwrt-verify
	// payloadEnd and squashfsOff locate the root filesystem in the image.
	payloadEnd, squashfsOff int64
}

func readRouterImage(t *testing.T, img string) *routerImage {
	t.Helper()
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	layout, err := fwimage.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	fsys, off, err := squashfs.OpenInImage(bytes.NewReader(data), layout.PayloadEnd)
	if err != nil {
		t.Fatal(err)
	}
	file := func(abs string) []byte {
		t.Helper()
		s, err := readAll(fsys, strings.TrimPrefix(abs, "/"))
		if err != nil {
			t.Fatalf("%s in the image: %v", abs, err)
		}
		return []byte(s)
	}
	conf, err := routerconf.Decode(file(routerconf.Path))
	if err != nil {
		t.Fatalf("the image's %s: %v", routerconf.Path, err)
	}
	conf.ApplyDefaults()
	if err := conf.Validate(); err != nil {
		t.Fatalf("the image's %s: %v", routerconf.Path, err)
	}
	rel, err := routerconf.DecodeRelease(file(conf.ReleaseFile))
	if err != nil {
		t.Fatalf("the image's %s: %v", conf.ReleaseFile, err)
	}
	keysDir := t.TempDir()
	entries, err := fsys.ReadDir(strings.TrimPrefix(conf.KeysDir, "/"))
	if err != nil {
		t.Fatalf("the image's %s: %v", conf.KeysDir, err)
	}
	for _, e := range entries {
		if err := os.WriteFile(filepath.Join(keysDir, e.Name()), file(conf.KeysDir+"/"+e.Name()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := usign.LoadKeyDir(keysDir)
	if err != nil {
		t.Fatalf("the image's %s: %v", conf.KeysDir, err)
	}
	return &routerImage{conf: conf, release: rel, keysDir: keysDir, keys: keys,
		verify: file("/usr/sbin/torwrt-verify"), payloadEnd: layout.PayloadEnd, squashfsOff: off}
}

// mirror serves a dist directory to the router exactly as built, the way
// an operator publishes it: <mirror>/release.json and
// <mirror>/<profile>/<image>. It records every request.
type mirror struct {
	manifestName string
	bases        map[string]string // onion host → mirror path, ending in "/"

	mu   sync.Mutex
	dist string
	reqs []mirrorRequest
}

type mirrorRequest struct {
	Host, Name, Range, UserAgent, Query string
	Status                              int
}

func (m *mirror) serve(dist string) {
	m.mu.Lock()
	m.dist = dist
	m.mu.Unlock()
}

func (m *mirror) requests() []mirrorRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]mirrorRequest(nil), m.reqs...)
}

func (m *mirror) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	dist := m.dist
	m.mu.Unlock()
	rec := mirrorRequest{Host: r.Host, Range: r.Header.Get("Range"), UserAgent: r.UserAgent(), Query: r.URL.RawQuery, Status: 404}
	defer func() {
		m.mu.Lock()
		m.reqs = append(m.reqs, rec)
		m.mu.Unlock()
	}()
	base, ok := m.bases[r.Host]
	if !ok {
		http.NotFound(w, r)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, base)
	rec.Name = name
	if !ok || name == "" || strings.Contains(name, "..") || strings.ContainsAny(name, `\*?[`) || strings.HasPrefix(name, ".") {
		http.NotFound(w, r)
		return
	}
	path := filepath.Join(dist, filepath.FromSlash(name))
	if fi, err := os.Stat(path); err != nil || !fi.Mode().IsRegular() {
		http.NotFound(w, r)
		return
	}
	rec.Status = 200
	if rec.Range != "" {
		rec.Status = 206
	}
	http.ServeFile(w, r, path)
}

// startMirror serves the router's own mirrors (the onion addresses in
// the image's verify.json) from an httptest server on 127.0.0.1, and a
// SOCKS5 stand-in for Tor that routes exactly those hosts, port 80, to
// it and refuses anything else.
func startMirror(t *testing.T, rc *routerconf.Config) (*mirror, *updatertest.SOCKS) {
	t.Helper()
	m := &mirror{manifestName: rc.ManifestName, bases: map[string]string{}}
	if m.manifestName == "" {
		m.manifestName = updater.DefaultManifestName
	}
	for _, raw := range rc.Mirrors {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if u.Scheme != "http" || !strings.HasSuffix(u.Hostname(), ".onion") || u.Port() != "" {
			t.Fatalf("the image's mirror %q is not an http onion service on port 80", raw)
		}
		base := u.EscapedPath()
		if !strings.HasSuffix(base, "/") {
			base += "/"
		}
		m.bases[u.Host] = base
	}
	srv := httptest.NewServer(m)
	t.Cleanup(srv.Close)
	socks := updatertest.StartSOCKS(t, func(host string, port uint16) string {
		if _, ok := m.bases[host]; ok && port == 80 {
			return srv.Listener.Addr().String()
		}
		return "127.0.0.1:1" // refused: the router asked for something else
	})
	return m, socks
}

// routerUpdater is the updater as `torwrt-verify daemon` configures it
// from the image's verify.json (cmd/verify's updaterConfig), with the
// router's paths moved under root and Tor, sysupgrade and /proc/meminfo
// replaced by stand-ins.
func routerUpdater(t *testing.T, ri *routerImage, root, socks, sysupgrade, meminfo string) *updater.Updater {
	t.Helper()
	rc := ri.conf
	u, err := updater.New(updater.Config{
		Mirrors: rc.Mirrors, ManifestName: rc.ManifestName, Keys: ri.keys, Threshold: rc.Threshold, Board: rc.Board,
		Channel: rc.Channel, SOCKSAddr: socks, DownloadDir: filepath.Join(root, rc.DownloadDir), StatePath: filepath.Join(root, rc.State),
		Sysupgrade: sysupgrade, MemInfoPath: meminfo, RAMMargin: rc.RAMMargin,
		RequestTimeout: 30 * time.Second, StallTimeout: 30 * time.Second,
		InstalledBuild: ri.release.Build, InstalledVersion: ri.release.Version,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

// TestBuiltReleaseInstallsThroughTor: a router running build 2 (config,
// keys and release file out of the build-2 image) checks the mirror: with
// the build-2 release it is up to date; with a build-3 release signed by
// fewer keys than its image demands it installs nothing; with the build-3
// release signed 2-of-2 it downloads it through Tor, verifies it and
// hands it to sysupgrade. Then, running build 3, it refuses the build-2
// manifest as a replay and a newer manifest pointing at build 2 as a
// rollback.
func TestBuiltReleaseInstallsThroughTor(t *testing.T) {
	s := newReleaseSetup(t)
	ctx := t.Context()
	b2 := s.build(t, 2, "0.1.0")
	b3 := s.build(t, 3, "0.1.1")
	issued := time.Now().Add(-time.Hour)
	s.prepare(t, b2, 1, issued, s.f.key, s.second)
	s.prepare(t, b3, 2, issued, s.f.key, s.second)

	// The router, as the build-2 image describes it.
	r2 := readRouterImage(t, b2.image)
	rc := r2.conf
	if r2.release.Build != 2 || r2.release.Version != "0.1.0" {
		t.Fatalf("build 2's release.json says %+v", r2.release)
	}
	if rc.Board != s.p.Board || rc.Threshold != 2 || r2.keys.Len() != 2 {
		t.Fatalf("verify.json: board %q threshold %d, %d keys in %s", rc.Board, rc.Threshold, r2.keys.Len(), rc.KeysDir)
	}
	for _, k := range s.keys {
		if _, ok := r2.keys.Lookup(k.Fingerprint); !ok {
			t.Fatalf("%s lacks release key %s", rc.KeysDir, k.Fingerprint)
		}
	}
	mir, socks := startMirror(t, rc)
	t.Logf("router: board %s, mirrors %v, manifest %q, threshold %d, running build %d",
		rc.Board, rc.Mirrors, mir.manifestName, rc.Threshold, r2.release.Build)

	root := t.TempDir()
	sysupgrade, sysLog := updatertest.Sysupgrade(t, t.TempDir(), 0)
	meminfo := updatertest.MemInfo(t, t.TempDir(), 64<<20)
	statePath := filepath.Join(root, rc.State)
	router := routerUpdater(t, r2, root, socks.Addr, sysupgrade, meminfo)

	// 1. The mirror serves the build the router runs: nothing to do. The
	// image's release.json and the manifest agree on the build number.
	mir.serve(b2.dist)
	res, err := router.Check(ctx)
	if err != nil || res.Status != updater.StatusUpToDate {
		t.Fatalf("build 2 on build 2: %v %+v", err, res)
	}
	if calls := updatertest.Calls(t, sysLog); len(calls) != 0 {
		t.Fatalf("up to date, yet sysupgrade ran: %q", calls)
	}

	// 2. Build 3 signed by one key: the image demands two.
	oneSig := filepath.Join(t.TempDir(), "dist-one-signature")
	if err := os.CopyFS(oneSig, os.DirFS(b3.dist)); err != nil {
		t.Fatal(err)
	}
	s.prepare(t, &builtDist{dist: oneSig, rep: b3.rep}, 2, issued, s.f.key)
	mir.serve(oneSig)
	res, err = router.Check(ctx)
	if !errors.Is(err, manifest.ErrThreshold) || res.Status != updater.StatusRefused {
		t.Fatalf("1-of-2 manifest: want ErrThreshold, got %v %+v", err, res)
	}
	if calls := updatertest.Calls(t, sysLog); len(calls) != 0 {
		t.Fatalf("refused, yet sysupgrade ran: %q", calls)
	}

	// 3. Build 3, 2-of-2: installed.
	mir.serve(b3.dist)
	before := len(mir.requests())
	res, err = router.Check(ctx)
	if err != nil || res.Status != updater.StatusInstalled {
		t.Fatalf("build 3 on build 2: %v %+v", err, res)
	}
	if res.Release == nil || res.Release.Build != 3 || res.Release.Image != b3.rep.Image {
		t.Fatalf("installed release %+v", res.Release)
	}
	file := res.Image
	if want := filepath.Join(root, rc.DownloadDir, updater.PrivateDirName, "torwrt-update-"+b3.rep.Image); file != want {
		t.Fatalf("image handed to sysupgrade is %s, want %s", file, want)
	}
	if calls := updatertest.Calls(t, sysLog); len(calls) != 2 || calls[0] != "--test "+file || calls[1] != file {
		t.Fatalf("sysupgrade calls %q; want [--test %s, %s]", calls, file, file)
	}
	if got, want := sha256File(t, file), sha256File(t, b3.image); got != want || got != b3.rep.ImageSHA256 {
		t.Fatalf("flashed file sha256 %s; dist image %s, report %s", got, want, b3.rep.ImageSHA256)
	}
	st, err := updater.ReadState(statePath)
	if err != nil {
		t.Fatal(err)
	}
	if st.InstalledBuild != 3 || st.InstalledVersion != "0.1.1" || st.Manifest.Sequence != 2 || st.LastResult != updater.StatusInstalled {
		t.Fatalf("state after install: %+v", st)
	}
	var names []string
	for _, q := range mir.requests()[before:] {
		names = append(names, q.Name)
	}
	if strings.Join(names, " ") != mir.manifestName+" "+b3.rep.Profile+"/"+b3.rep.Image {
		t.Fatalf("install fetched %q; want the manifest, then the image", names)
	}

	// 4. After the flash the router runs build 3: its release.json comes
	// from the build-3 image, its state survived (keep.d).
	r3 := readRouterImage(t, b3.image)
	if r3.release.Build != 3 {
		t.Fatalf("build 3's release.json says %+v", r3.release)
	}
	router = routerUpdater(t, r3, root, socks.Addr, sysupgrade, meminfo)
	before = len(mir.requests())
	// The mirror falls back to the build-2 manifest: a replay.
	mir.serve(b2.dist)
	res, err = router.Check(ctx)
	if !errors.Is(err, manifest.ErrReplay) || res.Status != updater.StatusRefused {
		t.Fatalf("old manifest after install: want ErrReplay, got %v %+v", err, res)
	}
	// A newer, properly signed manifest that points at build 2: rollback.
	s.prepare(t, b2, 3, issued, s.f.key, s.second)
	res, err = router.Check(ctx)
	if !errors.Is(err, manifest.ErrRollback) || res.Status != updater.StatusRefused {
		t.Fatalf("build 2 on build 3: want ErrRollback, got %v %+v", err, res)
	}
	for _, q := range mir.requests()[before:] {
		if q.Name != mir.manifestName {
			t.Errorf("a refused check fetched %q", q.Name)
		}
	}
	if flashes := updatertest.FlashCalls(t, sysLog); len(flashes) != 1 {
		t.Fatalf("flashed %d times: %q", len(flashes), flashes)
	}
	if st, err := updater.ReadState(statePath); err != nil || st.InstalledBuild != 3 || st.Manifest.Sequence != 3 {
		t.Fatalf("state after the refusals: %+v %v", st, err)
	}

	// Every connection went through the SOCKS port, by host name (never
	// an address the router resolved), to one of the image's onion
	// mirrors, port 80, as the updater's SOCKS user; every request carried
	// the fixed User-Agent and no query. Five checks: one manifest fetch
	// each, and one image download.
	connects := socks.Connects()
	if len(connects) != 6 {
		t.Fatalf("%d SOCKS connections for five checks and one download: %+v", len(connects), connects)
	}
	for _, c := range connects {
		if _, ok := mir.bases[c.Host]; c.AddrType != 3 || !ok || c.Port != 80 || c.User != "torwrt-update" {
			t.Errorf("SOCKS CONNECT %+v: want a domain-name request for an onion mirror of the image, port 80, with the updater's credentials", c)
		}
	}
	reqs := mir.requests()
	if len(reqs) != len(connects) {
		t.Errorf("%d HTTP requests over %d SOCKS connections", len(reqs), len(connects))
	}
	for _, q := range reqs {
		if _, ok := mir.bases[q.Host]; !ok || q.UserAgent != updater.UserAgent || q.Query != "" {
			t.Errorf("request %+v", q)
		}
	}
}

// TestRouterBinaryVerifiesItsOwnRelease runs the torwrt-verify binary out
// of a built gl-ar150 image under qemu, against that image, its keys and
// the signed manifest of its release.
func TestRouterBinaryVerifiesItsOwnRelease(t *testing.T) {
	s := newReleaseSetup(t)
	d := s.build(t, 2, "0.1.0")
	s.prepare(t, d, 1, time.Now().Add(-time.Hour), s.f.key, s.second)
	ri := readRouterImage(t, d.image)

	qemu := map[string]string{"mips": "qemu-mips-static", "mipsle": "qemu-mipsel-static"}[s.p.Daemon.GOARCH]
	if s.p.Daemon.GOARCH != "mips" {
		t.Fatalf("gl-ar150's daemon is %s; the test expects big-endian MIPS", s.p.Daemon.GOARCH)
	}
	bin := filepath.Join(t.TempDir(), "torwrt-verify")
	if err := os.WriteFile(bin, ri.verify, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, qemu, append([]string{bin}, args...)...).CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, string(out)
		case errors.As(err, &ee) && ee.Exited():
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("%s torwrt-verify %q: %v\n%s", qemu, args, err, out)
		return 0, ""
	}
	expect := func(want []int, args ...string) string {
		t.Helper()
		code, out := run(args...)
		for _, w := range want {
			if code == w {
				t.Logf("verify %s: exit %d: %s", strings.Join(args, " "), code, strings.TrimSpace(out))
				return out
			}
		}
		t.Errorf("verify %s: exit %d, want %v\n%s", strings.Join(args, " "), code, want, out)
		return out
	}

	keys := ri.keysDir
	expect([]int{0}, "image", "--keys", keys, "--board", "glinet,gl-ar150", d.image)
	expect([]int{5}, "image", "--keys", keys, "--board", "glinet,gl-mt300a", d.image)

	// One flipped byte in the middle of the root filesystem: fwtool's
	// chunk CRCs, which cover the payload, or the signature catch it.
	orig, err := os.ReadFile(d.image)
	if err != nil {
		t.Fatal(err)
	}
	i := ri.squashfsOff + (ri.payloadEnd-ri.squashfsOff)/2
	flip := func(name string, data []byte) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	data := bytes.Clone(orig)
	data[i] ^= 0x40
	flipped := flip(filepath.Base(d.image), data)
	if out := expect([]int{4, 6}, "image", "--keys", keys, "--board", "glinet,gl-ar150", flipped); !strings.Contains(out, "REJECTED") {
		t.Errorf("no REJECTED in %q", out)
	}
	// The same flip with the CRCs recomputed, as an attacker would: the
	// chunk chain is sound, only the signature can refuse it.
	rechain := func(payload []byte) []byte {
		t.Helper()
		layout, err := fwimage.Parse(bytes.NewReader(orig), int64(len(orig)))
		if err != nil {
			t.Fatal(err)
		}
		meta, ok1 := layout.Last(fwimage.TypeMetadata)
		sig, ok2 := layout.Last(fwimage.TypeSignature)
		if !ok1 || !ok2 || len(layout.Chunks) != 2 {
			t.Fatalf("image chunks %+v; want metadata and signature", layout.Chunks)
		}
		var withMeta, out bytes.Buffer
		if err := fwimage.AppendChunk(&withMeta, bytes.NewReader(payload), fwimage.TypeMetadata, orig[meta.Offset:meta.Offset+meta.Len]); err != nil {
			t.Fatal(err)
		}
		if err := fwimage.AppendChunk(&out, &withMeta, fwimage.TypeSignature, orig[sig.Offset:sig.Offset+sig.Len]); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	if !bytes.Equal(rechain(orig[:ri.payloadEnd]), orig) {
		t.Fatal("re-chaining the untouched payload does not give the image back")
	}
	payload := bytes.Clone(orig[:ri.payloadEnd])
	payload[i] ^= 0x40
	resigned := flip("rechained-"+filepath.Base(d.image), rechain(payload))
	expect([]int{4}, "image", "--keys", keys, "--board", "glinet,gl-ar150", resigned)

	m := filepath.Join(d.dist, "release.json")
	expect([]int{0}, "manifest", "verify", "--keys", keys, "--threshold", "1", m)
	// The threshold the image itself enforces.
	expect([]int{0}, "manifest", "verify", "--keys", keys, "--threshold", fmt.Sprint(ri.conf.Threshold), m)
	expect([]int{0}, "manifest", "verify", "--keys", keys, "--threshold", "2", "--board", "glinet,gl-ar150", "--installed", "1", m)
	expect([]int{10}, "manifest", "verify", "--keys", keys, "--threshold", "2", "--board", "glinet,gl-ar150", "--installed", "3", m)
	expect([]int{5}, "manifest", "verify", "--keys", keys, "--threshold", "2", "--board", "glinet,gl-mt300a", m)

	// Signed by one key only: not enough for 2, and a key the image does
	// not trust does not count.
	one := filepath.Join(t.TempDir(), "one")
	if err := os.CopyFS(one, os.DirFS(d.dist)); err != nil {
		t.Fatal(err)
	}
	s.prepare(t, &builtDist{dist: one, rep: d.rep}, 1, time.Now().Add(-time.Hour), s.f.key)
	expect([]int{7}, "manifest", "verify", "--keys", keys, "--threshold", "2", filepath.Join(one, "release.json"))
	stranger, err := usign.GenerateKey(rand.Reader, "not a release key")
	if err != nil {
		t.Fatal(err)
	}
	strangerDir := t.TempDir()
	updatertest.WriteKeyDir(t, strangerDir, stranger)
	expect([]int{7}, "manifest", "verify", "--keys", strangerDir, "--threshold", "1", m)
	expect([]int{4}, "image", "--keys", strangerDir, "--board", "glinet,gl-ar150", d.image)
}
