package container

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"log"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// requireTool fails (never skips) when a host tool is missing, naming the
// Debian package that provides it.
func requireTool(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		if _, err2 := os.Stat(tool); err2 == nil {
			return tool
		}
		t.Fatalf("%s is missing: install it with `apt-get install -y %s`", tool, pkg)
	}
	return p
}

var epoch = time.Unix(1758316778, 0).UTC()

// busyboxLayer is a layer with a static busybox, its applets, a passwd with
// an unprivileged user, and /tmp.
func busyboxLayer(t *testing.T) v1.Layer {
	t.Helper()
	bb := requireTool(t, "/bin/busybox", "busybox-static")
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(n string, mode int64, uid int) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: mode, Uid: uid, Gid: uid, ModTime: epoch})
	}
	file := func(n string, mode int64, b []byte) {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: mode, Size: int64(len(b)), ModTime: epoch})
		tw.Write(b)
	}
	dir("bin/", 0o755, 0)
	file("bin/busybox", 0o755, data)
	for _, a := range []string{"sh", "cat", "echo", "id", "touch", "ls", "sleep", "pwd", "env", "false", "true", "wget", "ip", "stat", "mkdir", "seq", "grep"} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: epoch})
	}
	dir("etc/", 0o755, 0)
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nbuildbot:x:1000:1000:buildbot:/home/buildbot:/bin/sh\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nbuildbot:x:1000:\n"))
	dir("home/", 0o755, 0)
	dir("home/buildbot/", 0o755, 1000)
	dir("work/", 0o755, 1000)
	file("work/hello.txt", 0o644, []byte("hello from the image\n"))
	dir("tmp/", 0o1777, 0)
	tw.Close()
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var (
	tinyOnce sync.Once
	tinyImg  v1.Image
)

// tinyImage is a busybox image running as buildbot (uid 1000) in /work.
func tinyImage(t *testing.T) v1.Image {
	t.Helper()
	tinyOnce.Do(func() {
		img, err := mutate.AppendLayers(empty.Image, busyboxLayer(t))
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", "amd64"
		cf.Config.User = "buildbot"
		cf.Config.WorkingDir = "/work"
		cf.Config.Env = []string{"PATH=/bin", "IMAGE_ENV=yes"}
		img, err = mutate.ConfigFile(img, cf)
		if err != nil {
			t.Fatal(err)
		}
		tinyImg, err = mutate.CreatedAt(img, v1.Time{Time: epoch})
		if err != nil {
			t.Fatal(err)
		}
	})
	if tinyImg == nil {
		t.Fatal("tiny image not built")
	}
	return tinyImg
}

// serve pushes img to an in-process registry and returns its digest ref.
func serve(t *testing.T, img v1.Image) (ref string, srv *httptest.Server) {
	t.Helper()
	srv = httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	tag, err := name.NewTag(host + "/test/tiny:latest")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return host + "/test/tiny@" + d.String(), srv
}

var (
	pulledMu sync.Mutex
	pulled   = map[string]*Image{}
)

// pulledTiny pulls the tiny image into a per-package cache once.
func pulledTiny(t *testing.T) *Image {
	t.Helper()
	pulledMu.Lock()
	defer pulledMu.Unlock()
	if img, ok := pulled["tiny"]; ok {
		return img
	}
	ref, _ := serve(t, tinyImage(t))
	c := &Cache{Dir: sharedCacheDir, Insecure: true}
	img, err := c.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	pulled["tiny"] = img
	return img
}

var sharedCacheDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "torwrt-container-test-")
	if err != nil {
		panic(err)
	}
	sharedCacheDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

func statUID(fi os.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}
