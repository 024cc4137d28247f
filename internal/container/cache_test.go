package container

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestParseDigest(t *testing.T) {
	good := []string{
		"ghcr.io/openwrt/imagebuilder@sha256:" + hex64,
		"ghcr.io/openwrt/imagebuilder:ath79-generic-v24.10.3@sha256:" + hex64,
		"127.0.0.1:5000/openwrt/imagebuilder@sha256:" + hex64,
		"localhost/x@sha256:" + hex64,
	}
	for _, ref := range good {
		d, err := ParseDigest(ref)
		if err != nil {
			t.Errorf("ParseDigest(%q): %v", ref, err)
			continue
		}
		if d.DigestStr() != "sha256:"+hex64 {
			t.Errorf("ParseDigest(%q) digest = %s", ref, d.DigestStr())
		}
	}
	bad := map[string]string{
		"ghcr.io/openwrt/imagebuilder:ath79-generic-v24.10.3":           "imgbuild lock",
		"ghcr.io/openwrt/imagebuilder":                                  "not pinned by digest",
		"ghcr.io/openwrt/imagebuilder@sha256:" + hex64[:63]:             "malformed digest",
		"ghcr.io/openwrt/imagebuilder@sha256:" + strings.ToUpper(hex64): "malformed digest",
		"ghcr.io/openwrt/imagebuilder@sha512:" + hex64 + hex64:          "malformed digest",
		"ghcr.io/openwrt/imagebuilder@sha256:" + hex64 + "00":           "malformed digest",
		"openwrt/imagebuilder@sha256:" + hex64:                          "registry host",
		"@sha256:" + hex64:                                              "no repository",
		"":                                                              "empty",
		"ghcr.io/Open Wrt/x@sha256:" + hex64:                            "ghcr.io/Open Wrt",
	}
	for ref, want := range bad {
		_, err := ParseDigest(ref)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseDigest(%q) = %v, want error containing %q", ref, err, want)
		}
	}
}

func TestPullCacheAndVerify(t *testing.T) {
	ctx := context.Background()
	img := tinyImage(t)
	ref, srv := serve(t, img)
	var progress bytes.Buffer
	c := &Cache{Dir: t.TempDir(), Insecure: true, Progress: &progress}

	// Without Insecure, plain http to the test registry is refused.
	strict := &Cache{Dir: t.TempDir()}
	if _, err := strict.Pull(ctx, ref); err == nil || !strings.Contains(err.Error(), "plain-http") {
		t.Errorf("pull over plain http without Insecure: %v", err)
	}

	// A tag is refused before any network access.
	if _, err := c.Pull(ctx, strings.Split(ref, "@")[0]+":latest"); err == nil || !strings.Contains(err.Error(), "imgbuild lock") {
		t.Errorf("pull by tag: %v", err)
	}

	if _, err := c.Load(ctx, ref); !errors.Is(err, ErrNotCached) {
		t.Fatalf("Load before Pull: %v, want ErrNotCached", err)
	}
	got, err := c.Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	cfg, _ := img.ConfigName()
	if got.Digest != d.String() || got.ConfigDigest != cfg.String() || got.User != "buildbot" || got.WorkingDir != "/work" || got.LayoutDir != c.Dir {
		t.Errorf("pulled image = %+v", got)
	}
	if !strings.Contains(progress.String(), "1 layers") || !strings.Contains(progress.String(), "pulled") {
		t.Errorf("progress output:\n%s", progress.String())
	}
	t.Logf("progress:\n%s", progress.String())

	// Second pull: no network (the registry is gone) and verified.
	srv.Close()
	progress.Reset()
	again, err := c.Pull(ctx, ref)
	if err != nil {
		t.Fatalf("second pull with the registry down: %v", err)
	}
	if again.Digest != got.Digest || !strings.Contains(progress.String(), "already cached") {
		t.Errorf("second pull: %+v, progress %q", again, progress.String())
	}
	if _, err := c.Load(ctx, ref); err != nil {
		t.Fatal(err)
	}

	// The cache is a valid OCI layout that go-containerregistry reads.
	vimg, err := got.OpenImage()
	if err != nil {
		t.Fatal(err)
	}
	if d2, _ := vimg.Digest(); d2 != d {
		t.Errorf("layout image digest %s, want %s", d2, d)
	}

	// Tamper with the layer blob: both Load and Pull refuse it.
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	p := filepath.Join(c.Dir, "blobs", "sha256", ld.Hex)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []func(context.Context, string) (*Image, error){c.Load, c.Pull} {
		_, err := f(ctx, ref)
		if err == nil || !strings.Contains(err.Error(), "cache was modified") || !strings.Contains(err.Error(), p) {
			t.Errorf("tampered blob: %v", err)
		}
	}
}

// A registry that answers the pinned digest with a different manifest is
// refused, as is one that serves a different layer blob.
func TestPullRefusesWrongContent(t *testing.T) {
	ctx := context.Background()
	img := tinyImage(t)
	ref, srv := serve(t, img)
	other, err := mutate.Config(img, v1.Config{User: "root", Env: []string{"EVIL=1"}})
	if err != nil {
		t.Fatal(err)
	}
	otherRef, _ := serve(t, other)
	otherManifest, _ := other.RawManifest()
	_ = otherRef

	target, _ := url.Parse(srv.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	d, _ := img.Digest()
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/manifests/"+d.String()) {
			mt, _ := other.MediaType()
			w.Header().Set("Content-Type", string(mt))
			w.Header().Set("Docker-Content-Digest", d.String()) // lies
			if r.Method != http.MethodHead {
				w.Write(otherManifest)
			}
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer bad.Close()
	badRef := strings.TrimPrefix(bad.URL, "http://") + "/test/tiny@" + d.String()
	c := &Cache{Dir: t.TempDir(), Insecure: true}
	_, err = c.Pull(ctx, badRef)
	if err == nil || !strings.Contains(err.Error(), "digest") {
		t.Fatalf("pull of a substituted manifest: %v", err)
	}
	t.Logf("substituted manifest refused: %v", err)

	// Substituted layer bytes.
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	badBlob := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/blobs/"+ld.String()) {
			rc, _ := layers[0].Compressed()
			b, _ := io.ReadAll(rc)
			b[len(b)-20] ^= 1
			w.Write(b)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	defer badBlob.Close()
	c2 := &Cache{Dir: t.TempDir(), Insecure: true}
	_, err = c2.Pull(ctx, strings.TrimPrefix(badBlob.URL, "http://")+"/test/tiny@"+d.String())
	if err == nil {
		t.Fatal("pull of a substituted layer succeeded")
	}
	t.Logf("substituted layer refused: %v", err)
	if _, err := os.Stat(filepath.Join(c2.Dir, "blobs", "sha256", ld.Hex)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused blob was left in the cache: %v", err)
	}
	if _, err := c2.Load(ctx, ref); !errors.Is(err, ErrNotCached) {
		t.Errorf("after a refused pull, Load: %v", err)
	}
}

// A pin may name a multi-platform index: the cache keeps the index manifest
// and the linux/GOARCH image it lists.
func TestPullIndex(t *testing.T) {
	ctx := context.Background()
	img := tinyImage(t)
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{
		Add:        img,
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}},
	})
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	tag, _ := name.NewTag(host + "/test/multi:latest")
	if err := remote.WriteIndex(tag, idx); err != nil {
		t.Fatal(err)
	}
	id, _ := idx.Digest()
	ref := host + "/test/multi@" + id.String()
	c := &Cache{Dir: t.TempDir(), Insecure: true}
	got, err := c.Pull(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	d, _ := img.Digest()
	if got.Digest != d.String() || got.Ref != ref {
		t.Errorf("pulled %+v, want image digest %s", got, d)
	}
	srv.Close()
	if again, err := c.Load(ctx, ref); err != nil || again.Digest != d.String() {
		t.Errorf("Load of the index pin: %+v %v", again, err)
	}
	if _, err := os.Stat(filepath.Join(c.Dir, "blobs", "sha256", id.Hex)); err != nil {
		t.Errorf("index manifest not kept: %v", err)
	}
}
