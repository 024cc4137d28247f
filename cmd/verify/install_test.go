package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/manifest"
	"github.com/torwrt/torwrt/internal/updater"
	"github.com/torwrt/torwrt/internal/updater/updatertest"
	"github.com/torwrt/torwrt/internal/usign"
)

// daemonUID is the unprivileged uid the tests' "daemon" runs as: a real
// second uid (the tests run as root), as on the router.
const daemonUID = 64123

// installEnv is a root install helper with its own keys, board, release
// file, state and stand-in sysupgrade, serving on a unix socket in a
// directory the daemon's uid can reach; and the daemon's side: a download
// directory of daemonUID's and the real torwrt-verify binary to run as it.
type installEnv struct {
	h      *installHelper
	dir    string
	sock   string
	sysLog string // argv of every sysupgrade call
	sums   string // sha256 of the file each sysupgrade call was given
	dl     string // the daemon's download directory
	bin    string // torwrt-verify, executable by daemonUID
	keys   []*usign.SecretKey
	good   []byte // signed image of build 43 for the board
	evil   string // what the swapping sysupgrade stand-in writes over the daemon's file
}

func newInstallEnv(t *testing.T) *installEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the install helper tests run the daemon's side as a second uid and need root (as the router's helper does)")
	}
	dir, err := os.MkdirTemp("", "torwrt-install-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	keys, _ := updatertest.Keys(t, 2, "install")
	keysDir := filepath.Join(dir, "keys")
	updatertest.WriteKeyDir(t, keysDir, keys[0])
	release := filepath.Join(dir, "release.json")
	writeFile(t, release, `{"product":"torwrt","version":"24.10.3-torwrt42","build":42}`+"\n", 0o644)
	e := &installEnv{dir: dir, sock: filepath.Join(dir, "install.sock"), sysLog: filepath.Join(dir, "sysupgrade.log"),
		sums: filepath.Join(dir, "sysupgrade.sums"), dl: filepath.Join(dir, "download"), keys: keys, evil: filepath.Join(dir, "evil")}
	e.good = updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 32 << 10, Key: keys[0], Version: "43"})
	// The sysupgrade stand-in logs its argv and the sha256 of the file
	// it was given; with a swap target set, `--test` first rewrites the
	// daemon's file, the worst moment for the daemon to swap the bytes.
	sys := filepath.Join(dir, "sysupgrade")
	writeFile(t, sys, "#!/bin/sh\necho \"$*\" >> '"+e.sysLog+"'\n"+
		"if [ \"$1\" = --test ]; then\n  [ -s '"+dir+"/swap' ] && cat '"+e.evil+"' > \"$(cat '"+dir+"/swap')\"\n"+
		"  sha256sum \"$2\" >> '"+e.sums+"'\n  exit 0\nfi\nsha256sum \"$1\" >> '"+e.sums+"'\n", 0o755)
	e.h = &installHelper{KeysDir: keysDir, Threshold: 1, Channel: "stable", Board: updatertest.Board, ReleaseFile: release,
		StatePath: filepath.Join(dir, "install-state.json"), Sysupgrade: sys, Dir: filepath.Join(dir, "helper"),
		MaxBytes: 1 << 20, PeerUID: daemonUID, Clock: func() time.Time { return updatertest.T0.Add(time.Hour) }}
	if err := os.Mkdir(e.dl, 0o700); err != nil {
		t.Fatal(err)
	}
	chown(t, e.dl)
	e.bin = filepath.Join(dir, "torwrt-verify")
	b, err := os.ReadFile(buildVerify(t, runtime.GOARCH))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, e.bin, string(b), 0o755)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var stderr syncBuffer
	go func() { done <- runInstallHelperWith(ctx, e.h, e.sock, &stderr) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("install helper exited %d: %s", code, stderr.String())
		}
	})
	for i := 0; ; i++ {
		if _, err := os.Stat(e.sock); err == nil {
			break
		} else if i == 500 {
			t.Fatalf("install helper did not start: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return e
}

func writeFile(t *testing.T, path, body string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func chown(t *testing.T, path string) {
	t.Helper()
	if err := os.Lchown(path, daemonUID, daemonUID); err != nil {
		t.Fatal(err)
	}
}

// download puts img where the daemon keeps its verified image: a file of
// daemonUID's, mode 0600, in its private directory.
func (e *installEnv) download(t *testing.T, name string, img []byte) string {
	t.Helper()
	p := filepath.Join(e.dl, name)
	writeFile(t, p, string(img), 0o600)
	chown(t, p)
	return p
}

// manifest writes a signed manifest (readable by the daemon) listing rels.
func (e *installEnv) manifest(t *testing.T, m *manifest.Manifest, keys ...*usign.SecretKey) string {
	t.Helper()
	if len(keys) == 0 {
		keys = e.keys[:1]
	}
	p := filepath.Join(e.dir, "release-"+strconv.FormatUint(m.Sequence, 10)+".json")
	writeFile(t, p, string(updatertest.Envelope(t, m, keys...)), 0o644)
	return p
}

// ask runs `torwrt-verify install-request` for real, as uid, the way the
// daemon's updater asks (same client code), and returns its exit code and
// stderr.
func (e *installEnv) ask(t *testing.T, uid int, sum, mf, img string) (int, string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), e.bin, "install-request", "--socket", e.sock, "--sha256", sum, "--manifest", mf, img)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	code, err := exitCode(cmd.Run())
	if err != nil {
		t.Fatal(err)
	}
	return code, stderr.String()
}

func (e *installEnv) flashed(t *testing.T) []string { return updatertest.FlashCalls(t, e.sysLog) }
func (e *installEnv) calls(t *testing.T) []string   { return updatertest.Calls(t, e.sysLog) }

// TestInstallBoundaryRefuses performs each attack an unprivileged daemon
// (compromised: it says yes to anything) can make on the root helper,
// through the real socket and client, as a second uid. Every one is
// refused and nothing is flashed.
func TestInstallBoundaryRefuses(t *testing.T) {
	other, _ := updatertest.Keys(t, 1, "someone else")
	for _, tc := range []struct {
		name string
		// setup returns the request: sha256, manifest file, image path,
		// and the uid that asks.
		setup func(t *testing.T, e *installEnv) (sum, mf, img string, uid int)
		want  string
	}{
		{"unsigned image, listed by a signed manifest", func(t *testing.T, e *installEnv) (string, string, string, int) {
			img := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 4096, Version: "43", Sig: updatertest.Unsigned})
			return updatertest.Sum(img), e.manifest(t, updatertest.Manifest(10, updatertest.Release(img, "x.bin", 43))), e.download(t, "x.bin", img), daemonUID
		}, "not signed"},
		{"all-zero signature", func(t *testing.T, e *installEnv) (string, string, string, int) {
			img := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 4096, Version: "43", Key: e.keys[0], Sig: updatertest.ZeroSig})
			return updatertest.Sum(img), e.manifest(t, updatertest.Manifest(10, updatertest.Release(img, "x.bin", 43))), e.download(t, "x.bin", img), daemonUID
		}, "refused: image"},
		{"image signed by a key the helper does not trust", func(t *testing.T, e *installEnv) (string, string, string, int) {
			img := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 4096, Version: "43", Key: e.keys[1]})
			return updatertest.Sum(img), e.manifest(t, updatertest.Manifest(10, updatertest.Release(img, "x.bin", 43))), e.download(t, "x.bin", img), daemonUID
		}, "refused: image"},
		{"image for another board", func(t *testing.T, e *installEnv) (string, string, string, int) {
			img := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 4096, Version: "43", Key: e.keys[0], Boards: []string{"glinet,gl-mt300a"}})
			return updatertest.Sum(img), e.manifest(t, updatertest.Manifest(10, updatertest.Release(img, "x.bin", 43))), e.download(t, "x.bin", img), daemonUID
		}, "not for this board"},
		{"manifest for another board only", func(t *testing.T, e *installEnv) (string, string, string, int) {
			rel := updatertest.Release(e.good, "x.bin", 43)
			rel.Board = []string{"glinet,gl-mt300a"}
			return updatertest.Sum(e.good), e.manifest(t, updatertest.Manifest(10, rel)), e.download(t, "x.bin", e.good), daemonUID
		}, "not in any of the"},
		{"downgrade below the running firmware", func(t *testing.T, e *installEnv) (string, string, string, int) {
			img := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 4096, Version: "41", Key: e.keys[0]})
			return updatertest.Sum(img), e.manifest(t, updatertest.Manifest(10, updatertest.Release(img, "x.bin", 41))), e.download(t, "x.bin", img), daemonUID
		}, "not newer than the installed firmware"},
		{"reinstall of the running build", func(t *testing.T, e *installEnv) (string, string, string, int) {
			img := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 4096, Version: "42", Key: e.keys[0]})
			return updatertest.Sum(img), e.manifest(t, updatertest.Manifest(10, updatertest.Release(img, "x.bin", 42))), e.download(t, "x.bin", img), daemonUID
		}, "installed firmware is the newest release"},
		{"below the floor the helper remembers", func(t *testing.T, e *installEnv) (string, string, string, int) {
			if err := updater.SaveState(e.h.StatePath, &updater.State{Floor: 50, Seed: strings.Repeat("ab", 32)}); err != nil {
				t.Fatal(err)
			}
			return updatertest.Sum(e.good), e.manifest(t, updatertest.Manifest(10, updatertest.Release(e.good, "x.bin", 43))), e.download(t, "x.bin", e.good), daemonUID
		}, "below the floor 50"},
		{"replay of an older manifest", func(t *testing.T, e *installEnv) (string, string, string, int) {
			st := &updater.State{Manifest: manifest.State{Sequence: 11, IssuedAt: updatertest.T0}, Seed: strings.Repeat("ab", 32)}
			if err := updater.SaveState(e.h.StatePath, st); err != nil {
				t.Fatal(err)
			}
			return updatertest.Sum(e.good), e.manifest(t, updatertest.Manifest(10, updatertest.Release(e.good, "x.bin", 43))), e.download(t, "x.bin", e.good), daemonUID
		}, "replay"},
		{"manifest signed by an untrusted key", func(t *testing.T, e *installEnv) (string, string, string, int) {
			return updatertest.Sum(e.good), e.manifest(t, updatertest.Manifest(10, updatertest.Release(e.good, "x.bin", 43)), other[0]), e.download(t, "x.bin", e.good), daemonUID
		}, "manifest"},
		{"expired manifest", func(t *testing.T, e *installEnv) (string, string, string, int) {
			e.h.Clock = func() time.Time { return updatertest.T0.Add(30 * 24 * time.Hour) }
			return updatertest.Sum(e.good), e.manifest(t, updatertest.Manifest(10, updatertest.Release(e.good, "x.bin", 43))), e.download(t, "x.bin", e.good), daemonUID
		}, "expired"},
		{"sha256 the manifest does not list", func(t *testing.T, e *installEnv) (string, string, string, int) {
			img := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 4096, Version: "44", Key: e.keys[0]})
			return updatertest.Sum(img), e.manifest(t, updatertest.Manifest(10, updatertest.Release(e.good, "x.bin", 43))), e.download(t, "x.bin", img), daemonUID
		}, "not the requested"},
		{"image swapped after the request", func(t *testing.T, e *installEnv) (string, string, string, int) {
			// Asked for the good image's hash; by the time root reads the
			// file, it holds an unsigned image of the same size.
			bad := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 32 << 10, Version: "43", Sig: updatertest.Unsigned})
			return updatertest.Sum(e.good), e.manifest(t, updatertest.Manifest(10, updatertest.Release(e.good, "x.bin", 43))), e.download(t, "x.bin", bad), daemonUID
		}, "the manifest lists"},
		{"symlink to a root-owned image", func(t *testing.T, e *installEnv) (string, string, string, int) {
			root := filepath.Join(e.dir, "root.bin")
			writeFile(t, root, string(e.good), 0o600)
			link := filepath.Join(e.dl, "x.bin")
			if err := os.Symlink(root, link); err != nil {
				t.Fatal(err)
			}
			chown(t, link)
			return updatertest.Sum(e.good), e.manifest(t, updatertest.Manifest(10, updatertest.Release(e.good, "x.bin", 43))), link, daemonUID
		}, "opening"},
		{"file of another user", func(t *testing.T, e *installEnv) (string, string, string, int) {
			root := filepath.Join(e.dl, "x.bin")
			writeFile(t, root, string(e.good), 0o644)
			return updatertest.Sum(e.good), e.manifest(t, updatertest.Manifest(10, updatertest.Release(e.good, "x.bin", 43))), root, daemonUID
		}, "not owned by uid"},
		{"hard link", func(t *testing.T, e *installEnv) (string, string, string, int) {
			p := e.download(t, "x.bin", e.good)
			if err := os.Link(p, filepath.Join(e.dl, "y.bin")); err != nil {
				t.Fatal(err)
			}
			return updatertest.Sum(e.good), e.manifest(t, updatertest.Manifest(10, updatertest.Release(e.good, "x.bin", 43))), p, daemonUID
		}, "2 links"},
		{"fifo", func(t *testing.T, e *installEnv) (string, string, string, int) {
			p := filepath.Join(e.dl, "x.bin")
			if err := syscall.Mkfifo(p, 0o600); err != nil {
				t.Fatal(err)
			}
			chown(t, p)
			return updatertest.Sum(e.good), e.manifest(t, updatertest.Manifest(10, updatertest.Release(e.good, "x.bin", 43))), p, daemonUID
		}, "not a regular file"},
		{"peer with another uid", func(t *testing.T, e *installEnv) (string, string, string, int) {
			return updatertest.Sum(e.good), e.manifest(t, updatertest.Manifest(10, updatertest.Release(e.good, "x.bin", 43))), e.download(t, "x.bin", e.good), daemonUID + 1
		}, "peer uid 64124 is not 64123"},
		{"manifest of another channel", func(t *testing.T, e *installEnv) (string, string, string, int) {
			m := updatertest.Manifest(10, updatertest.Release(e.good, "x.bin", 43))
			m.Channel = "beta"
			return updatertest.Sum(e.good), e.manifest(t, m), e.download(t, "x.bin", e.good), daemonUID
		}, `is for channel "beta", this router follows channel "stable"`},
		{"root is not the daemon either", func(t *testing.T, e *installEnv) (string, string, string, int) {
			return updatertest.Sum(e.good), e.manifest(t, updatertest.Manifest(10, updatertest.Release(e.good, "x.bin", 43))), e.download(t, "x.bin", e.good), 0
		}, "peer uid 0 is not 64123"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newInstallEnv(t)
			sum, mf, img, uid := tc.setup(t, e)
			code, stderr := e.ask(t, uid, sum, mf, img)
			if code != exitInstall || !strings.Contains(stderr, "refused") || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q: want %d and a refusal naming %q", code, stderr, exitInstall, tc.want)
			}
			if calls := e.calls(t); len(calls) != 0 {
				t.Errorf("sysupgrade ran on a refused request: %q", calls)
			}
			if _, err := os.Stat(e.h.Dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("refused copy left behind: %v", err)
			}
			if tc.name == "manifest of another channel" {
				// Its sequence numbers are its own: it must not move the
				// helper's replay floor.
				if st, _, err := updater.LoadState(e.h.StatePath); err != nil || st.Manifest.Sequence != 0 {
					t.Errorf("another channel's manifest was recorded: %+v, %v", st.Manifest, err)
				}
			}
		})
	}
}

// TestInstallBoundaryFlashesRootsCopy: a good request is flashed, from
// root's own copy; the daemon rewriting its file at the worst moment
// (while sysupgrade --test runs) changes nothing that is flashed.
func TestInstallBoundaryFlashesRootsCopy(t *testing.T) {
	e := newInstallEnv(t)
	img := e.download(t, "x.bin", e.good)
	writeFile(t, e.evil, string(updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 32 << 10, Version: "43", Sig: updatertest.Unsigned})), 0o644)
	writeFile(t, filepath.Join(e.dir, "swap"), img, 0o644)
	mf := e.manifest(t, updatertest.Manifest(10, updatertest.Release(e.good, "x.bin", 43)))
	if code, stderr := e.ask(t, daemonUID, updatertest.Sum(e.good), mf, img); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	copyPath := filepath.Join(e.h.Dir, "image.bin")
	if got, want := strings.Join(e.calls(t), "\n"), "--test "+copyPath+"\n"+copyPath; got != want {
		t.Errorf("sysupgrade calls %q, want %q", got, want)
	}
	b, err := os.ReadFile(e.sums)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if !strings.HasPrefix(line, updatertest.Sum(e.good)+" ") {
			t.Errorf("sysupgrade was given other bytes than the verified image: %q", line)
		}
	}
	if swapped, _ := os.ReadFile(img); bytes.Equal(swapped, e.good) {
		t.Error("the stand-in did not swap the daemon's file; the test proves nothing")
	}
	fi, err := os.Lstat(e.h.Dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 || fi.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Errorf("helper directory %v, %v: want root's 0700 directory", fi, err)
	}
	// The helper remembers the manifest: the same request again is fine
	// (same sequence, same payload), an older manifest is not.
	st, _, err := updater.LoadState(e.h.StatePath)
	if err != nil || st.Manifest.Sequence != 10 || st.Floor != 1 {
		t.Errorf("helper state %+v, %v: want sequence 10, floor 1", st, err)
	}
}

// TestInstallHelperNoTrustedFloor: without its own board or release file
// the helper refuses, whatever the daemon says.
func TestInstallHelperNoTrustedFloor(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(e *installEnv)
		want string
	}{
		{"no board", func(e *installEnv) { e.h.Board, e.h.BoardFile = "", filepath.Join(e.dir, "missing") }, "no board"},
		{"no release file", func(e *installEnv) { e.h.ReleaseFile = filepath.Join(e.dir, "missing") }, "no trusted installed build"},
		{"no channel", func(e *installEnv) { e.h.Channel = "" }, "no release channel"},
		{"release file without a build", func(e *installEnv) {
			writeFile(t, e.h.ReleaseFile, `{"product":"torwrt","version":"x","build":0}`, 0o644)
		}, "no trusted installed build"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newInstallEnv(t)
			tc.edit(e)
			img := e.download(t, "x.bin", e.good)
			mf := e.manifest(t, updatertest.Manifest(10, updatertest.Release(e.good, "x.bin", 43)))
			code, stderr := e.ask(t, daemonUID, updatertest.Sum(e.good), mf, img)
			if code != exitInstall || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, stderr %q: want a refusal naming %q", code, stderr, tc.want)
			}
			if calls := e.calls(t); len(calls) != 0 {
				t.Errorf("sysupgrade ran: %q", calls)
			}
		})
	}
}

// TestInstallHelperReplacesPlantedDir: a symlink planted where the helper
// works is removed, not followed.
func TestInstallHelperReplacesPlantedDir(t *testing.T) {
	e := newInstallEnv(t)
	target := filepath.Join(e.dir, "elsewhere")
	if err := os.Mkdir(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, e.h.Dir); err != nil {
		t.Fatal(err)
	}
	img := e.download(t, "x.bin", e.good)
	mf := e.manifest(t, updatertest.Manifest(10, updatertest.Release(e.good, "x.bin", 43)))
	if code, stderr := e.ask(t, daemonUID, updatertest.Sum(e.good), mf, img); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Errorf("helper wrote through a planted symlink: %v", ents)
	}
	if len(e.flashed(t)) != 1 {
		t.Errorf("flash calls %q, want one", e.flashed(t))
	}
}

// TestCheckThroughInstallHelper: `verify check --install-socket` (what
// the daemon runs with) downloads and verifies, then hands the image to
// the helper, which flashes its own copy; when the helper refuses, the
// check fails with the sysupgrade exit code and the state does not claim
// the new build.
func TestCheckThroughInstallHelper(t *testing.T) {
	for _, tc := range []struct {
		name     string
		helperAt uint64 // the build in the helper's own release file
		wantCode int
	}{
		{"installed", 41, exitOK},
		{"helper sees a downgrade the daemon was told was not", 44, exitInstall},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMirror(t)
			img := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 64 << 10, Key: m.keys[0]})
			m.publish(t, "image.bin", img, 42, 10)
			cfgPath, _ := m.writeConfig(t, map[string]any{"channel": "stable"})
			cfg, err := loadConfig(cfgPath)
			if err != nil {
				t.Fatal(err)
			}
			sys, sysLog := updatertest.Sysupgrade(t, t.TempDir(), 0)
			rel := filepath.Join(t.TempDir(), "release.json")
			writeFile(t, rel, `{"product":"torwrt","version":"x","build":`+strconv.FormatUint(tc.helperAt, 10)+`}`, 0o644)
			h := &installHelper{KeysDir: cfg.KeysDir, Threshold: cfg.Threshold, Channel: cfg.Channel, Board: cfg.Board, ReleaseFile: rel,
				StatePath: filepath.Join(t.TempDir(), "install-state.json"), Sysupgrade: sys,
				Dir: filepath.Join(t.TempDir(), "helper"), MaxBytes: 1 << 20, PeerUID: os.Getuid()}
			sock := filepath.Join(t.TempDir(), "install.sock")
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan int, 1)
			go func() { done <- runInstallHelperWith(ctx, h, sock, os.Stderr) }()
			defer func() { cancel(); <-done }()
			for i := 0; ; i++ {
				if _, err := os.Stat(sock); err == nil {
					break
				} else if i == 500 {
					t.Fatal("install helper did not start")
				}
				time.Sleep(10 * time.Millisecond)
			}

			code, out, errs := runIn(t, m.dir, "check", "--config", cfgPath, "--install-socket", sock)
			if code != tc.wantCode {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, tc.wantCode, out, errs)
			}
			st, _, err := updater.LoadState(cfg.State)
			if err != nil {
				t.Fatal(err)
			}
			copyPath := filepath.Join(h.Dir, "image.bin")
			if tc.wantCode == exitOK {
				if got, want := strings.Join(updatertest.Calls(t, sysLog), "\n"), "--test "+copyPath+"\n"+copyPath; got != want {
					t.Errorf("sysupgrade calls %q, want %q (root's copy, never the daemon's file)", got, want)
				}
				if st.InstalledBuild != 42 {
					t.Errorf("state installed build %d, want 42", st.InstalledBuild)
				}
				return
			}
			if calls := updatertest.Calls(t, sysLog); len(calls) != 0 {
				t.Errorf("sysupgrade ran: %q", calls)
			}
			if st.InstalledBuild == 42 || !strings.Contains(errs, "not newer than the installed firmware") {
				t.Errorf("state installed build %d, stderr %s: want the helper's refusal and no claim of build 42", st.InstalledBuild, errs)
			}
		})
	}
}
