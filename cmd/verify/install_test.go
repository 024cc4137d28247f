package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/updater/updatertest"
)

// installEnv is a root helper with its own keys, board file and stand-in
// sysupgrade, in a temporary directory.
type installEnv struct {
	h      installHelper
	sysLog string
	good   []byte
	dir    string
}

func newInstallEnv(t *testing.T) *installEnv {
	t.Helper()
	dir := t.TempDir()
	keys, _ := updatertest.Keys(t, 2, "install")
	keysDir := filepath.Join(dir, "keys")
	updatertest.WriteKeyDir(t, keysDir, keys[0])
	board := filepath.Join(dir, "board_name")
	if err := os.WriteFile(board, []byte(updatertest.Board+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sys, log := updatertest.Sysupgrade(t, dir, 0)
	return &installEnv{
		h: installHelper{KeysDir: keysDir, BoardFile: board, Sysupgrade: sys,
			Dir: filepath.Join(dir, "helper"), MaxBytes: 1 << 20, PeerUID: os.Getuid()},
		sysLog: log,
		good:   updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 32 << 10, Key: keys[0]}),
		dir:    dir,
	}
}

// TestInstallHelperRefuses hands the root helper images the daemon might
// have "verified" (a compromised daemon says yes to anything): the helper
// checks them itself and never runs sysupgrade on a bad one.
func TestInstallHelperRefuses(t *testing.T) {
	e := newInstallEnv(t)
	keys, _ := updatertest.Keys(t, 2, "install")
	other, _ := updatertest.Keys(t, 1, "someone else")
	for _, tc := range []struct {
		name string
		img  []byte
		want string
	}{
		{"unsigned", updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 1024, Key: keys[0], Sig: updatertest.Unsigned}), "refused"},
		{"all-zero signature", updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 1024, Key: keys[0], Sig: updatertest.ZeroSig}), "refused"},
		{"fake certificate", updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 1024, Key: keys[0], Sig: updatertest.FakeCert}), "refused"},
		{"untrusted key", updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 1024, Key: other[0]}), "refused"},
		{"key the helper does not trust", updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 1024, Key: keys[1]}), "refused"},
		{"wrong board", updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 1024, Key: keys[0], Boards: []string{"glinet,gl-mt300a"}}), "refused"},
		{"too large", updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 2 << 20, Key: keys[0]}), "larger than"},
		{"garbage", []byte("not an image"), "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, test := range []bool{true, false} {
				err := e.h.install(t.Context(), bytes.NewReader(tc.img), test)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("test=%v: install = %v, want an error containing %q", test, err, tc.want)
				}
			}
			if calls := updatertest.Calls(t, e.sysLog); len(calls) != 0 {
				t.Errorf("sysupgrade ran on a refused image: %q", calls)
			}
			if _, err := os.Stat(e.h.Dir); !os.IsNotExist(err) {
				t.Errorf("refused copy left behind: %v", err)
			}
		})
	}
}

// TestInstallHelperNoBoard: without a board of its own the helper refuses,
// whatever the image says.
func TestInstallHelperNoBoard(t *testing.T) {
	e := newInstallEnv(t)
	for _, body := range []string{"", "\n"} {
		if err := os.WriteFile(e.h.BoardFile, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := e.h.install(t.Context(), bytes.NewReader(e.good), true); err == nil || !strings.Contains(err.Error(), "no board") {
			t.Errorf("board file %q: install = %v, want a refusal", body, err)
		}
	}
	if calls := updatertest.Calls(t, e.sysLog); len(calls) != 0 {
		t.Errorf("sysupgrade ran: %q", calls)
	}
}

// TestInstallHelperAccepts: a good image is flashed from the helper's own
// copy, never from a path the daemon controls.
func TestInstallHelperAccepts(t *testing.T) {
	e := newInstallEnv(t)
	if err := e.h.install(t.Context(), bytes.NewReader(e.good), true); err != nil {
		t.Fatalf("install --test: %v", err)
	}
	if _, err := os.Stat(e.h.Dir); !os.IsNotExist(err) {
		t.Errorf("test copy left behind: %v", err)
	}
	if err := e.h.install(t.Context(), bytes.NewReader(e.good), false); err != nil {
		t.Fatalf("install: %v", err)
	}
	copyPath := filepath.Join(e.h.Dir, "image.bin")
	want := []string{"--test " + copyPath, copyPath}
	if got := updatertest.Calls(t, e.sysLog); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("sysupgrade calls %q, want %q", got, want)
	}
	b, err := os.ReadFile(copyPath)
	if err != nil || !bytes.Equal(b, e.good) {
		t.Errorf("flashed copy differs from the image sent: %v", err)
	}
	fi, err := os.Lstat(e.h.Dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Errorf("helper directory %v, %v: want a 0700 directory", fi, err)
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
	if err := e.h.install(t.Context(), bytes.NewReader(e.good), false); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Errorf("helper wrote through a planted symlink: %v", ents)
	}
}

// TestInstallRequest runs the daemon's side (install-request, what the
// updater calls as sysupgrade) against the helper over a unix socket.
func TestInstallRequest(t *testing.T) {
	for _, tc := range []struct {
		name     string
		peerUID  func() int
		img      func(e *installEnv) []byte
		wantCode int
		flashes  int
	}{
		{"good", os.Getuid, func(e *installEnv) []byte { return e.good }, exitOK, 1},
		{"unsigned", os.Getuid, func(e *installEnv) []byte {
			return updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 1024, Sig: updatertest.Unsigned})
		}, exitInstall, 0},
		{"other uid", func() int { return os.Getuid() + 1 }, func(e *installEnv) []byte { return e.good }, exitInstall, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newInstallEnv(t)
			e.h.PeerUID = tc.peerUID()
			sock := filepath.Join(e.dir, "s")
			ctx := t.Context()
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			go e.h.serve(ctx, ln)
			img := filepath.Join(e.dir, "download.bin")
			if err := os.WriteFile(img, tc.img(e), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"--test", img}, {img}} {
				var stdout, stderr bytes.Buffer
				argv := append([]string{"install-request", "--socket", sock}, args...)
				if code := run(ctx, &stdout, &stderr, argv); code != tc.wantCode {
					t.Errorf("%v: exit %d, want %d; stderr: %s", args, code, tc.wantCode, stderr.String())
				}
				if tc.wantCode != exitOK && stderr.Len() == 0 {
					t.Errorf("%v: refused without a reason", args)
				}
			}
			if f := updatertest.FlashCalls(t, e.sysLog); len(f) != tc.flashes {
				t.Errorf("flash calls %q, want %d", f, tc.flashes)
			}
		})
	}
}
