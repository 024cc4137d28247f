package updater

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/updater/updatertest"
)

// nobody is the uid of the local attacker: an unprivileged process on the
// router (tests run as root and plant files as this uid).
const nobody = 65534

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root (as CI runs it): plants files owned by another uid")
	}
}

// publicTmp makes the download directory look like the router's /tmp:
// world-writable with the sticky bit, so any local user can create names
// in it.
func publicTmp(t *testing.T, e *testEnv) string {
	t.Helper()
	tmp := filepath.Join(e.dir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(tmp, os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	return tmp
}

// plant creates path as the attacker would: owned by nobody, writable by
// everyone.
func plant(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
}

// plantDir creates the updater's fixed private directory name before the
// updater does, as the attacker.
func plantDir(t *testing.T, path string) {
	t.Helper()
	if err := os.Mkdir(path, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o777)
	if err := os.Chown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
}

// TestLocalAttackerForeignPartial: a local user pre-creates the partial
// download under every name it can predict (torwrt-<sha256>.unverified in
// /tmp, and inside a torwrt-verify directory it made itself), with a prefix
// the updater would happily resume from. The updater must not continue,
// open or rename any of them.
func TestLocalAttackerForeignPartial(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	img := e.image(updatertest.ImageSpec{PayloadSize: 256 << 10})
	rel := e.publish(img, 42)
	tmp := publicTmp(t, e)
	name := "torwrt-" + rel.SHA256 + ".unverified"
	plant(t, filepath.Join(tmp, name), img[:1000])
	plantDir(t, filepath.Join(tmp, PrivateDirName))
	plant(t, filepath.Join(tmp, PrivateDirName, name), img[:1000])
	planted, err := os.Stat(filepath.Join(tmp, name))
	if err != nil {
		t.Fatal(err)
	}

	res, err := e.check(e.config())
	if err != nil || res.Status != StatusInstalled {
		t.Fatalf("Check: %+v %v", res, err)
	}
	for _, r := range e.requestsFor(imageName) {
		if r.Range != "" {
			t.Errorf("the updater resumed a file another user planted (request with Range %q)", r.Range)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(tmp, name)); !bytes.Equal(got, img[:1000]) {
		t.Errorf("the planted file was written to (%d bytes now)", len(got))
	}
	fi, err := os.Stat(res.Image)
	if err != nil {
		t.Fatal(err)
	}
	if os.SameFile(fi, planted) {
		t.Errorf("sysupgrade got the attacker's file %s", res.Image)
	}
	checkPrivate(t, tmp, res.Image)
}

// checkPrivate asserts that the image handed to sysupgrade sits in a
// directory of ours with mode 0700 and is a file of ours no one else may
// open.
func checkPrivate(t *testing.T, tmp, image string) {
	t.Helper()
	dir := filepath.Join(tmp, PrivateDirName)
	if filepath.Dir(image) != dir {
		t.Errorf("image %s is not in the private directory %s", image, dir)
	}
	if why := checkPrivateDir(dir); why != "" {
		t.Errorf("private directory %s %s", dir, why)
	}
	f, err := openPrivate(image, os.O_RDONLY)
	if err != nil {
		t.Errorf("image: %v", err)
	} else {
		f.Close()
	}
}

// TestLocalAttackerSymlinks: a local user plants a symlink at every name
// the updater uses in /tmp (the partial download, the verified image, the
// lock, the private directory), each pointing at a file root cares about.
// None of the victims may change.
func TestLocalAttackerSymlinks(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	img := e.image(updatertest.ImageSpec{PayloadSize: 256 << 10})
	rel := e.publish(img, 42)
	tmp := publicTmp(t, e)
	victims := filepath.Join(e.dir, "victims")
	os.MkdirAll(filepath.Join(victims, "dir"), 0o700)
	want := map[string][]byte{}
	link := func(name, victim string) {
		t.Helper()
		v := filepath.Join(victims, victim)
		want[v] = []byte("root:secret:" + victim + "\n")
		if err := os.WriteFile(v, want[v], 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(v, filepath.Join(tmp, name)); err != nil {
			t.Fatal(err)
		}
		os.Lchown(filepath.Join(tmp, name), nobody, nobody)
	}
	for _, n := range []string{"torwrt-" + rel.SHA256 + ".unverified", "torwrt-update-" + imageName, ".torwrt-verify.lock"} {
		link(n, "victim-"+n)
	}
	// The private directory's name, as a symlink to a directory of root's.
	if err := os.Symlink(filepath.Join(victims, "dir"), filepath.Join(tmp, PrivateDirName)); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"torwrt-" + rel.SHA256 + ".unverified", "torwrt-update-" + imageName, lockName} {
		v := filepath.Join(victims, "dir", n)
		want[v] = []byte("root:secret:in-dir\n")
		os.WriteFile(v, want[v], 0o600)
	}

	res, err := e.check(e.config())
	if err != nil || res.Status != StatusInstalled {
		t.Fatalf("Check: %+v %v", res, err)
	}
	for v, b := range want {
		got, err := os.ReadFile(v)
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("victim %s overwritten through a symlink: %d bytes now (%v)", v, len(got), err)
		}
	}
	entries, _ := os.ReadDir(filepath.Join(victims, "dir"))
	if len(entries) != 3 {
		t.Errorf("files created in the symlinked directory: %v", entries)
	}
	checkPrivate(t, tmp, res.Image)
}

// TestLocalAttackerRewritesAfterVerify: a local user pre-creates the
// predictable partial download and keeps it open, and also grabs an fd to
// every partial download it can find while the image streams in (as root
// here, standing in for any fd that leaks). Once the image is verified and
// `sysupgrade --test` runs, it rewrites the bytes through all of them. The
// flash call must never get anything but the verified image.
func TestLocalAttackerRewritesAfterVerify(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	img := e.image(updatertest.ImageSpec{PayloadSize: 256 << 10})
	rel := e.publish(img, 42)
	tmp := publicTmp(t, e)

	// A sysupgrade stand-in that signals --test, waits for the attacker,
	// and copies what it is asked to flash.
	sig := filepath.Join(e.dir, "sig")
	os.MkdirAll(sig, 0o755)
	flashed := filepath.Join(sig, "flashed")
	script := "#!/bin/sh\necho \"$*\" >> '" + e.sysLog + "'\n" +
		"if [ \"$1\" = --test ]; then : > '" + sig + "/testing'\n" +
		"  i=0; while [ ! -e '" + sig + "/go' ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i+1)); done; exit 0; fi\n" +
		"cp \"$1\" '" + flashed + "'\n"
	if err := os.WriteFile(e.sysup, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}

	// The attacker's file, opened before the check starts.
	name := "torwrt-" + rel.SHA256 + ".unverified"
	plant(t, filepath.Join(tmp, name), nil)
	held, err := os.OpenFile(filepath.Join(tmp, name), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fds := []*os.File{held}

	// The mirror sends half the image, waits for the attacker, sends the rest.
	resume := make(chan struct{})
	e.handle(imageName, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(img)))
		w.WriteHeader(200)
		w.Write(img[:len(img)/2])
		w.(http.Flusher).Flush()
		select {
		case <-resume:
		case <-r.Context().Done():
			return
		}
		w.Write(img[len(img)/2:])
	})

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(resume)
		// While the download is half done, open every partial download.
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			found := false
			filepath.WalkDir(tmp, func(p string, d fs.DirEntry, err error) error {
				if err == nil && strings.HasSuffix(p, ".unverified") && p != filepath.Join(tmp, name) {
					if f, err := os.OpenFile(p, os.O_RDWR, 0); err == nil {
						fds = append(fds, f)
						found = true
					}
				}
				return nil
			})
			fi, _ := held.Stat()
			if found || fi.Size() > 0 {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		// After verification, while sysupgrade --test runs: rewrite.
		for {
			if _, err := os.Stat(filepath.Join(sig, "testing")); err == nil {
				break
			}
			select {
			case <-t.Context().Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
		wg.Wait()
		evil := bytes.Repeat([]byte{0xEE}, 4096)
		for _, f := range fds {
			f.WriteAt(evil, 1024)
			f.Close()
		}
		os.WriteFile(filepath.Join(sig, "go"), nil, 0o644)
	}()

	res, err := e.check(e.config())
	<-done
	t.Logf("Check: %+v %v", res, err)
	if got, rerr := os.ReadFile(flashed); rerr == nil {
		if !bytes.Equal(got, img) {
			t.Fatalf("sysupgrade flashed %d bytes that are not the verified image (sha256 %s, want %s)", len(got), updatertest.Sum(got), rel.SHA256)
		}
	} else if !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("nothing flashed, but the check says %v", err)
	}
	if len(fds) < 2 {
		// The attacker only ever held its own file: it was not used.
		if err != nil || res.Status != StatusInstalled {
			t.Fatalf("Check: %+v %v", res, err)
		}
	}
}

// TestLocalAttackerHoldsLock: another user creates the lock file under
// every name it can predict and holds a lock on it. Checks must go on.
func TestLocalAttackerHoldsLock(t *testing.T) {
	needRoot(t)
	e := newEnv(t)
	e.publish(e.image(updatertest.ImageSpec{}), 42)
	tmp := publicTmp(t, e)
	plantDir(t, filepath.Join(tmp, PrivateDirName))
	for _, p := range []string{filepath.Join(tmp, ".torwrt-verify.lock"), filepath.Join(tmp, PrivateDirName, lockName)} {
		plant(t, p, nil)
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			t.Fatal(err)
		}
	}
	res, err := e.check(e.config())
	if err != nil || res.Status != StatusInstalled {
		t.Fatalf("a lock file held by another user blocked the check: %+v %v", res, err)
	}
	checkPrivate(t, tmp, res.Image)
}

// TestPrivateDirRefusesUnsafeParent: a download directory anyone can write
// without the sticky bit would let another user rename the private
// directory away; it is refused.
func TestPrivateDirRefusesUnsafeParent(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "dl")
	os.Mkdir(parent, 0o777)
	os.Chmod(parent, 0o777)
	if _, err := privateDir(parent, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("world-writable download directory without sticky bit accepted")
	}
}

// TestSlowRetrieval: the first mirror serves the manifest and then
// trickles the image one byte every 50 ms. The updater gives up on it
// after DownloadBase + size/MinRate and installs from the second mirror.
func TestSlowRetrieval(t *testing.T) {
	e := newEnv(t)
	img := e.image(updatertest.ImageSpec{})
	rel := e.publish(img, 42)
	manifestBytes := updatertest.Envelope(t, updatertest.Manifest(10, rel), e.keys[0], e.keys[1])
	var slowImage sync.WaitGroup
	slowImage.Add(1)
	var once sync.Once
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/release.json") {
			w.Write(manifestBytes)
			return
		}
		once.Do(slowImage.Done)
		updatertest.Trickle(t, len(img))(w, r)
	}))
	defer slow.Close()
	e.routeHost("slow.example", slow)
	cfg := e.config()
	cfg.Mirrors = []string{"http://slow.example/stable/", mirror}
	cfg.StallTimeout = 2 * time.Second
	cfg.DownloadBase = 500 * time.Millisecond
	cfg.MinRate = 1 << 20 // the test image is ~70 KB: ~70 ms more
	u, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := time.Now()
	res, err := u.Check(ctx)
	took := time.Since(start)
	if err != nil || res.Status != StatusInstalled {
		t.Fatalf("Check after %v: %+v %v", took, res, err)
	}
	slowImage.Wait() // the slow mirror was tried first
	if limit := u.downloadLimit(&rel); took > limit+5*time.Second {
		t.Errorf("check took %v; the slow mirror's limit is %v", took, limit)
	}
	if n := len(e.requestsFor(imageName)); n == 0 {
		t.Errorf("good mirror got no image request")
	}
	got, _ := os.ReadFile(res.Image)
	if updatertest.Sum(got) != rel.SHA256 {
		t.Fatal("installed image differs")
	}
}

// TestSlowManifest: a mirror trickling the manifest is abandoned after
// RequestTimeout and the next mirror is used.
func TestSlowManifest(t *testing.T) {
	e := newEnv(t)
	e.publish(e.image(updatertest.ImageSpec{}), 42)
	slow := httptest.NewServer(updatertest.Trickle(t, 60<<10))
	defer slow.Close()
	e.routeHost("slow.example", slow)
	cfg := e.config()
	cfg.Mirrors = []string{"http://slow.example/stable/", mirror}
	cfg.RequestTimeout = time.Second
	cfg.DownloadBase, cfg.MinRate = 300*time.Millisecond, 1<<20 // it trickles the image too
	start := time.Now()
	res, err := e.check(cfg)
	if err != nil || res.Status != StatusInstalled {
		t.Fatalf("Check: %+v %v", res, err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("check took %v", d)
	}
}
