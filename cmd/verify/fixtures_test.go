package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/updater"
	"github.com/torwrt/torwrt/internal/updater/updatertest"
	"github.com/torwrt/torwrt/internal/usign"
)

// verdictCase is one file and the exit code every build of verify must
// give for it.
type verdictCase struct {
	name string
	args []string // after "verify"
	want int
}

// writeFixtures writes keys, the attack table's images and manifests into
// dir and returns the cases that check them offline. Paths in args are
// relative to dir, so the same cases run under qemu.
func writeFixtures(t testing.TB, dir string) []verdictCase {
	t.Helper()
	keys, _ := updatertest.Keys(t, 3, "release keys")
	stranger, _ := updatertest.Keys(t, 1, "stranger")
	updatertest.WriteKeyDir(t, filepath.Join(dir, "keys"), keys...)
	write := func(name string, b []byte) string {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return name
	}
	img := func(spec updatertest.ImageSpec) []byte {
		if spec.Key == nil {
			spec.Key = keys[0]
		}
		spec.PayloadSize = 32 << 10
		return updatertest.Image(t, spec)
	}
	good := img(updatertest.ImageSpec{})
	corrupt := bytes.Clone(good)
	corrupt[100] ^= 1 // breaks the chunk CRCs
	imageArgs := func(file string) []string {
		return []string{"image", "--keys", "keys", "--board", updatertest.Board, file}
	}
	cases := []verdictCase{
		{"image ok", imageArgs(write("good.bin", good)), exitOK},
		{"image unsigned", imageArgs(write("unsigned.bin", img(updatertest.ImageSpec{Sig: updatertest.Unsigned}))), exitUnsigned},
		{"image fake certificate", imageArgs(write("fakecert.bin", img(updatertest.ImageSpec{Sig: updatertest.FakeCert}))), exitUnsigned},
		{"image unknown key", imageArgs(write("stranger.bin", img(updatertest.ImageSpec{Key: stranger[0]}))), exitBadSig},
		{"image all-zero signature", imageArgs(write("zerosig.bin", img(updatertest.ImageSpec{Sig: updatertest.ZeroSig}))), exitBadSig},
		{"image other board", imageArgs(write("otherboard.bin", img(updatertest.ImageSpec{Boards: []string{"glinet,gl-mt300a"}}))), exitWrongBoard},
		{"image corrupt", imageArgs(write("corrupt.bin", corrupt)), exitMalformed},
	}

	rel := updatertest.Release(good, "good.bin", 42)
	m := updatertest.Manifest(10, rel)
	p, _ := manifest.Encode(m)
	s0, _ := keys[0].Sign(p)
	sx, _ := stranger[0].Sign(p)
	now := updatertest.T0.Add(time.Hour).Format(time.RFC3339)
	mArgs := func(file string, extra ...string) []string {
		return append(append([]string{"manifest", "verify", "--keys", "keys", "--threshold", "2", "--now", now}, extra...), file)
	}
	b, _ := json.Marshal(&updater.State{Manifest: manifest.State{Sequence: 11, IssuedAt: updatertest.T0}, Seed: string(bytes.Repeat([]byte("ab"), 32))})
	write("state.json", b)
	cases = append(cases,
		verdictCase{"manifest ok", mArgs(write("m-good.json", updatertest.Envelope(t, m, keys[0], keys[1])), "--board", updatertest.Board, "--installed", "41"), exitOK},
		verdictCase{"manifest 3 of 3", mArgs(write("m-all.json", updatertest.Envelope(t, m, keys...))), exitOK},
		verdictCase{"manifest one signature", mArgs(write("m-one.json", updatertest.Envelope(t, m, keys[0]))), exitThreshold},
		verdictCase{"manifest same key twice", mArgs(write("m-twice.json", updatertest.RawEnvelope(t, m, s0, s0))), exitThreshold},
		verdictCase{"manifest all-zero signature", mArgs(write("m-zero.json", updatertest.RawEnvelope(t, m, s0, &usign.Signature{Fingerprint: keys[1].Fingerprint}))), exitThreshold},
		verdictCase{"manifest unknown key", mArgs(write("m-stranger.json", updatertest.RawEnvelope(t, m, s0, sx))), exitThreshold},
		verdictCase{"manifest expired", []string{"manifest", "verify", "--keys", "keys", "--threshold", "2", "--now", updatertest.T0.Add(30 * 24 * time.Hour).Format(time.RFC3339), "m-good.json"}, exitExpired},
		verdictCase{"manifest replay", mArgs("m-good.json", "--state", "state.json"), exitReplay},
		verdictCase{"manifest rollback", mArgs("m-good.json", "--board", updatertest.Board, "--installed", "50"), exitRollback},
		verdictCase{"manifest wrong board", mArgs("m-good.json", "--board", "glinet,gl-mt300a"), exitWrongBoard},
		verdictCase{"manifest too large", mArgs(write("m-large.json", bytes.Repeat([]byte(" "), manifest.MaxSize+1))), exitTooLarge},
		verdictCase{"manifest malformed", mArgs(write("m-malformed.json", []byte(`{"signed":"e30=","signatures":[`))), exitMalformed},
	)
	return cases
}

// mirrorEnv is a mirror behind a recording SOCKS proxy, for running the
// real binary's `check --once` against.
type mirrorEnv struct {
	dir   string
	keys  []*usign.SecretKey
	socks *updatertest.SOCKS
	srv   *httptest.Server
	mu    sync.Mutex
	files map[string][]byte
}

func newMirror(t testing.TB) *mirrorEnv {
	m := &mirrorEnv{dir: t.TempDir(), files: map[string][]byte{}}
	m.keys, _ = updatertest.Keys(t, 3, "release keys")
	updatertest.WriteKeyDir(t, filepath.Join(m.dir, "keys"), m.keys...)
	m.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.mu.Lock()
		b, ok := m.files[filepath.Base(r.URL.Path)]
		m.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
	}))
	t.Cleanup(m.srv.Close)
	target := m.srv.Listener.Addr().String()
	m.socks = updatertest.StartSOCKS(t, func(string, uint16) string { return target })
	return m
}

func (m *mirrorEnv) publish(t testing.TB, name string, img []byte, build, seq uint64) {
	rel := updatertest.Release(img, name, build)
	man := updatertest.Manifest(seq, rel)
	// Valid around the real clock: the binary judges expiry by it.
	man.IssuedAt = time.Now().UTC().Truncate(time.Second).Add(-time.Hour)
	man.NotAfter = man.IssuedAt.Add(7 * 24 * time.Hour)
	m.mu.Lock()
	m.files[name] = img
	m.files["release.json"] = updatertest.Envelope(t, man, m.keys[0], m.keys[1])
	m.mu.Unlock()
}

// writeConfig writes a verify.json for this mirror and returns its path
// and the sysupgrade stand-in's log.
func (m *mirrorEnv) writeConfig(t testing.TB, extra map[string]any) (cfgPath, sysLog string) {
	sys, sysLog := updatertest.Sysupgrade(t, m.dir, 0)
	cfg := map[string]any{
		"mirrors":         []string{"http://torwrtmirror2example.onion/stable/"},
		"keys_dir":        filepath.Join(m.dir, "keys"),
		"threshold":       2,
		"board":           updatertest.Board,
		"channel":         "stable",
		"socks":           m.socks.Addr,
		"state":           filepath.Join(m.dir, "state", "state.json"),
		"download_dir":    filepath.Join(m.dir, "tmp"),
		"sysupgrade":      sys,
		"meminfo":         updatertest.MemInfo(t, m.dir, 512<<20),
		"release_file":    filepath.Join(m.dir, "release.json"),
		"request_timeout": "10s",
		"stall_timeout":   "10s",
	}
	for k, v := range extra {
		cfg[k] = v
	}
	os.WriteFile(filepath.Join(m.dir, "release.json"), []byte(`{"product":"torwrt","version":"24.10.3-torwrt41","build":41}`), 0o644)
	b, _ := json.MarshalIndent(cfg, "", "  ")
	cfgPath = filepath.Join(m.dir, "verify.json")
	if err := os.WriteFile(cfgPath, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return cfgPath, sysLog
}
