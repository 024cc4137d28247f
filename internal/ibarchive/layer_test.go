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
)

func TestWriteLayerFileReproducible(t *testing.T) {
	needTool(t, "zstd", "zstd")
	src := ibTree(t)
	arch := shOut(t, src, "tar -cf - "+ibDir+" | zstd -q -1")
	opts := LayerOptions{Epoch: 1758316778, Prefix: "builder"}
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
		d, layer, err := packLayer(t, dest, opts)
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
		if i > 0 {
			continue
		}
		rc, err := os.Open(layer)
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
	}
	if digests[0] != digests[1] {
		t.Fatalf("two packs of the same tree differ: %s vs %s", digests[0], digests[1])
	}

	// Contents matter; special files are refused.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a"), []byte("1"), 0644)
	d1, _, _ := packLayer(t, dir, LayerOptions{})
	os.WriteFile(filepath.Join(dir, "a"), []byte("2"), 0644)
	d2, _, _ := packLayer(t, dir, LayerOptions{})
	if d1 == d2 {
		t.Error("changing a file did not change the digest")
	}
	syscall.Mkfifo(filepath.Join(dir, "fifo"), 0644)
	if _, _, err := packLayer(t, dir, LayerOptions{}); !errors.Is(err, ErrSpecialFile) {
		t.Errorf("fifo: %v", err)
	}
	if _, _, err := packLayer(t, dir, LayerOptions{Prefix: "../x"}); !errors.Is(err, ErrUnsafePath) {
		t.Errorf("prefix ../x: %v", err)
	}
}

// packLayer writes the layer of dir to a fresh file and returns its
// sha256 digest (what an uncompressed OCI layer's digest is) and path.
func packLayer(t *testing.T, dir string, o LayerOptions) (string, string, error) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "layer.tar")
	if err := WriteLayerFile(t.Context(), dir, p, o); err != nil {
		return "", "", err
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), p, nil
}
