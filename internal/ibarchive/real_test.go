package ibarchive

import (
	"archive/tar"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/torwrt/torwrt/internal/testfixture"
)

// realIBAbsLinks are the absolute symlinks upstream ships in
// staging_dir/host/bin, with their targets.
var realIBAbsLinks = map[string]string{
	"staging_dir/host/bin/awk":    "/usr/bin/gawk",
	"staging_dir/host/bin/bash":   "/bin/bash",
	"staging_dir/host/bin/bzip2":  "/bin/bzip2",
	"staging_dir/host/bin/cp":     "/bin/cp",
	"staging_dir/host/bin/diff":   "/usr/bin/diff",
	"staging_dir/host/bin/file":   "/usr/bin/file",
	"staging_dir/host/bin/g++":    "/usr/bin/g++",
	"staging_dir/host/bin/gcc":    "/usr/bin/gcc",
	"staging_dir/host/bin/getopt": "/usr/bin/getopt",
	"staging_dir/host/bin/git":    "/usr/bin/git",
	"staging_dir/host/bin/grep":   "/bin/grep",
	"staging_dir/host/bin/perl":   "/usr/bin/perl",
	"staging_dir/host/bin/python": "/usr/bin/python2.7",
	"staging_dir/host/bin/seq":    "/usr/bin/seq",
	"staging_dir/host/bin/stat":   "/usr/bin/stat",
	"staging_dir/host/bin/unzip":  "/usr/bin/unzip",
	"staging_dir/host/bin/wget":   "/usr/bin/wget",
}

// TestExtractRealImageBuilder imports the real ImageBuilder as
// imgbuild ib import does: ExtractFile against a sha256sums file, then
// WriteLayerFile. It must run everywhere, so a missing fixture fails.
func TestExtractRealImageBuilder(t *testing.T) {
	// The real LEDE 17.01.4 ramips/mt7620 ImageBuilder described in its
	// README, beside SHA256SUMS.
	dir, err := testfixture.RealIBDir()
	if err != nil {
		t.Fatal(err)
	}
	realIB := filepath.Join(dir, testfixture.RealIBArchive)
	sumsFile, err := os.ReadFile(filepath.Join(filepath.Dir(realIB), "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	sums, err := ParseSums(sumsFile)
	if err != nil {
		t.Fatal(err)
	}
	want, ok := sums.Lookup(filepath.Base(realIB))
	if !ok {
		t.Fatalf("SHA256SUMS does not list %s", filepath.Base(realIB))
	}
	opts := LayerOptions{Epoch: 1528768560, Prefix: "builder"}

	var digests []string
	for _, mask := range []int{0o022, 0o002} {
		parent := t.TempDir()
		dest := filepath.Join(parent, "tree")
		old := syscall.Umask(mask)
		res, err := ExtractFile(t.Context(), realIB, sums, dest, Limits{})
		syscall.Umask(old)
		if err != nil {
			t.Fatalf("umask %03o: %v", mask, err)
		}
		if res.SHA256 != want || res.Compression != Zstd || res.TopDir != "openwrt-imagebuilder-ramips-mt7620.Linux-x86_64" {
			t.Errorf("result %+v", res)
		}
		// 2,710 entries with the top directory; 54,659,202 bytes in 2,123
		// regular files.
		if res.Files != 2710 || res.Bytes != 54659202 {
			t.Errorf("%d entries, %d bytes; want 2710, 54659202", res.Files, res.Bytes)
		}
		if want := slices.Sorted(maps.Keys(realIBAbsLinks)); !slices.Equal(res.AbsoluteSymlinks, want) {
			t.Errorf("absolute symlinks\n%q\nwant\n%q", res.AbsoluteSymlinks, want)
		}
		if ents, _ := os.ReadDir(parent); len(ents) != 1 || ents[0].Name() != "tree" {
			t.Errorf("the destination's parent holds %v, want only tree", ents)
		}
		checkRealTree(t, dest)

		// The same tree packs to the same image twice, and under either
		// umask.
		for range 2 {
			d, layer, err := packLayer(t, dest, opts)
			if err != nil {
				t.Fatal(err)
			}
			digests = append(digests, d)
			if len(digests) > 1 {
				continue
			}
			rc, err := os.Open(layer)
			if err != nil {
				t.Fatal(err)
			}
			links := map[string]string{}
			var makefile bool
			tr := tar.NewReader(rc)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				makefile = makefile || h.Name == "builder/Makefile"
				if h.Typeflag == tar.TypeSymlink && strings.HasPrefix(h.Linkname, "/") {
					links[strings.TrimPrefix(h.Name, "builder/")] = h.Linkname
				}
			}
			rc.Close()
			if !makefile {
				t.Error("the image has no /builder/Makefile")
			}
			if !maps.Equal(links, realIBAbsLinks) {
				t.Errorf("absolute symlinks in the image: %v", links)
			}
		}
	}
	if len(slices.Compact(slices.Clone(digests))) != 1 {
		t.Errorf("layer digests differ (umask 022 twice, then umask 002 twice): %v", digests)
	}
}

// checkRealTree checks the extracted real ImageBuilder without following
// any absolute symlink.
func checkRealTree(t *testing.T, dest string) {
	t.Helper()
	for _, p := range []string{"Makefile", "repositories.conf", "packages", "staging_dir/host/bin/awk", "target/linux/ramips"} {
		if _, err := os.Lstat(filepath.Join(dest, p)); err != nil {
			t.Errorf("not at the top of the destination: %v", err)
		}
	}
	counts := map[string]int{}
	err := filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dest, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch m := fi.Mode(); {
		case m.IsDir():
			counts["dir"]++
		case m.IsRegular():
			counts["file"]++
		case m&fs.ModeSymlink != 0:
			counts["symlink"]++
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if strings.HasPrefix(target, "/") {
				if realIBAbsLinks[rel] != target {
					t.Errorf("%s -> %s is not one of the known absolute symlinks", rel, target)
				}
				return nil
			}
			// A relative one resolves inside the tree, to a file.
			real, err := filepath.EvalSymlinks(p)
			if err != nil {
				return err
			}
			if !strings.HasPrefix(real, dest+"/") {
				t.Errorf("%s -> %s resolves to %s", rel, target, real)
			}
		default:
			t.Errorf("%s: unexpected %v", rel, m)
		}
		if m := fi.Mode(); m&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
			t.Errorf("%s: mode %v", rel, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The top directory became dest itself; 36 symlinks, 17 absolute.
	if want := map[string]int{"dir": 551, "file": 2123, "symlink": 36}; !maps.Equal(counts, want) {
		t.Errorf("tree holds %v, want %v", counts, want)
	}
}
