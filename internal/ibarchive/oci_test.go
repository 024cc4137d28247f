package ibarchive

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func TestPackOCIReproducible(t *testing.T) {
	needTool(t, "zstd", "zstd")
	src := ibTree(t)
	arch := shOut(t, src, "tar -cf - "+ibDir+" | zstd -q -1")
	opts := OCIOptions{Epoch: 1758316778, Prefix: "builder", WorkingDir: "/builder", Env: []string{"PATH=/usr/bin:/bin"}}
	var digests []string
	for i, stamp := range []int64{1, 2000000000} {
		dest := filepath.Join(t.TempDir(), "ib")
		if _, err := Extract(t.Context(), bytes.NewReader(arch), Auto, dest, Limits{}, ExtractOptions{StripTopDir: true}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(filepath.Join(dest, "readonly"), 0755) })
		// Different mtimes per run must not change the image. Chtimes
		// follows symlinks: leave them alone (the absolute one points
		// at the host's /usr/bin/gawk).
		filepath.Walk(dest, func(p string, fi os.FileInfo, _ error) error {
			if fi != nil && fi.Mode()&os.ModeSymlink == 0 {
				os.Chtimes(p, time.Unix(stamp, 0), time.Unix(stamp, 0))
			}
			return nil
		})
		img, err := PackOCI(t.Context(), dest, opts)
		if err != nil {
			t.Fatal(err)
		}
		checkLayerDigest(t, img)
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d.String())
		if i > 0 {
			continue
		}
		layers, _ := img.Layers()
		if len(layers) != 1 {
			t.Fatalf("%d layers", len(layers))
		}
		rc, err := layers[0].Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		seen := map[string]*tar.Header{}
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			seen[h.Name] = h
			if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.ModTime.Unix() != opts.Epoch {
				t.Errorf("%s: owner %d:%d %q, mtime %v", h.Name, h.Uid, h.Gid, h.Uname, h.ModTime)
			}
		}
		rc.Close()
		bin := "builder/staging_dir/host/bin/"
		if h := seen[bin+"fwtool.hard"]; h == nil || h.Typeflag != tar.TypeLink || h.Linkname != bin+"fwtool" {
			t.Errorf("hard link entry: %+v", h)
		}
		if h := seen["builder/staging_dir/ipkg"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "hostbin/scripts/ipkg-build" {
			t.Errorf("symlink entry: %+v", h)
		}
		// Absolute symlink targets stay as they are.
		if h := seen[bin+"awk"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/usr/bin/gawk" {
			t.Errorf("absolute symlink entry: %+v", h)
		}
		if seen["builder/Makefile"] == nil {
			t.Error("builder/Makefile missing: top directory not stripped")
		}
		if h := seen[bin+"mkhash"]; h == nil || h.Mode != 0755 || h.Size != 200<<10 {
			t.Errorf("mkhash entry: %+v", h)
		}
		if seen["builder/"] == nil {
			t.Error("prefix directory missing")
		}
		cf, _ := img.ConfigFile()
		if cf.Created.Unix() != opts.Epoch || cf.Config.WorkingDir != "/builder" || cf.OS != "linux" {
			t.Errorf("config: %+v", cf)
		}
	}
	if digests[0] != digests[1] {
		t.Fatalf("two packs of the same tree differ: %s vs %s", digests[0], digests[1])
	}

	// Contents matter; special files are refused.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a"), []byte("1"), 0644)
	img1, _ := PackOCI(t.Context(), dir, OCIOptions{})
	os.WriteFile(filepath.Join(dir, "a"), []byte("2"), 0644)
	img2, _ := PackOCI(t.Context(), dir, OCIOptions{})
	d1, _ := img1.Digest()
	d2, _ := img2.Digest()
	if d1 == d2 {
		t.Error("changing a file did not change the digest")
	}
	syscall.Mkfifo(filepath.Join(dir, "fifo"), 0644)
	if _, err := PackOCI(t.Context(), dir, OCIOptions{}); !errors.Is(err, ErrSpecialFile) {
		t.Errorf("fifo: %v", err)
	}
	if _, err := PackOCI(t.Context(), dir, OCIOptions{Prefix: "../x"}); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("prefix ../x: %v", err)
	}
}

// checkLayerDigest reads the lazily built layer and checks that its bytes
// hash to the digest in the manifest, twice.
func checkLayerDigest(t *testing.T, img v1.Image) {
	t.Helper()
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	layers, _ := img.Layers()
	for i := 0; i < 2; i++ {
		rc, err := layers[0].Compressed()
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		n, err := io.Copy(h, rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != m.Layers[0].Digest.String() || n != m.Layers[0].Size {
			t.Fatalf("layer read %d: %s (%d bytes), manifest says %s (%d bytes)", i, got, n, m.Layers[0].Digest, m.Layers[0].Size)
		}
	}
}
