package ibarchive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// FuzzExtract feeds arbitrary archives to Extract, with and without
// StripTopDir. Nothing may panic; a refused archive leaves nothing behind;
// an accepted one holds only directories, regular files and symlinks, its
// relative symlinks resolve inside it, and Result.AbsoluteSymlinks lists
// exactly its absolute ones.
func FuzzExtract(f *testing.F) {
	seeds := [][]ent{
		{{name: "ib/", typ: tar.TypeDir}, {name: "ib/Makefile", body: []byte("image:\n")}, {name: "ib/bin/", typ: tar.TypeDir}, {name: "ib/bin/awk", link: "/usr/bin/gawk", typ: tar.TypeSymlink}, {name: "ib/bin/xz", body: []byte("xz")}, {name: "ib/bin/unxz", link: "xz", typ: tar.TypeSymlink}, {name: "ib/bin/xz.hard", link: "ib/bin/xz", typ: tar.TypeLink}},
		{{name: "ib/a", body: []byte("a")}, {name: "ib/l", link: "../ib/a", typ: tar.TypeSymlink}},
		{{name: "e", link: "/etc", typ: tar.TypeSymlink}, {name: "p", link: "e/passwd", typ: tar.TypeSymlink}},
		{{name: "e", link: "/etc", typ: tar.TypeSymlink}, {name: "e/evil", body: []byte("x")}},
		{{name: "a/", typ: tar.TypeDir}, {name: "a/self", link: ".", typ: tar.TypeSymlink}, {name: "up", link: "a/self/..", typ: tar.TypeSymlink}},
		{{name: "x", link: "y", typ: tar.TypeSymlink}, {name: "y", link: "x", typ: tar.TypeSymlink}},
		{{name: "a/", typ: tar.TypeDir}, {name: "b/", typ: tar.TypeDir}},
		{{name: "Makefile", body: []byte("x")}},
		{{name: "./", typ: tar.TypeDir}, {name: "./ib/", typ: tar.TypeDir}, {name: "./ib/f", body: []byte("f")}},
		{{name: "ib/h", link: "other/a", typ: tar.TypeLink}},
		{{name: "ib/dev", typ: tar.TypeChar}},
		{},
	}
	for _, s := range seeds {
		b := tarOf(f, s)
		f.Add(b, true)
		f.Add(b, false)
	}
	f.Add(zstdOf(f, tarOf(f, seeds[0])), true)
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xff}, false)
	f.Add([]byte{0xfd, '7', 'z', 'X', 'Z', 0, 0, 1}, false)
	f.Add([]byte{0x1f, 0x8b, 8, 0}, false)

	lim := Limits{MaxBytes: 1 << 20, MaxFileBytes: 256 << 10, MaxFiles: 64, MaxWindow: 1 << 20}
	f.Fuzz(func(t *testing.T, arch []byte, strip bool) {
		parent := t.TempDir()
		dest := filepath.Join(parent, "out")
		res, err := Extract(t.Context(), bytes.NewReader(arch), Auto, dest, lim, ExtractOptions{StripTopDir: strip})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "ibarchive: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Fatalf("refused archive (%v) left %v", err, ents)
			}
			return
		}
		if strip != (res.TopDir != "") || strings.Contains(res.TopDir, "/") {
			t.Errorf("StripTopDir %v, TopDir %q", strip, res.TopDir)
		}
		if !slices.IsSorted(res.AbsoluteSymlinks) {
			t.Errorf("AbsoluteSymlinks not sorted: %q", res.AbsoluteSymlinks)
		}
		root, err := os.OpenRoot(dest)
		if err != nil {
			t.Fatal(err)
		}
		defer root.Close()
		var abs []string
		err = filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
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
				// Let the walk and the cleanup in, whatever the mode.
				return os.Chmod(p, 0755)
			case m.IsRegular():
			case m&fs.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil {
					return err
				}
				if strings.HasPrefix(target, "/") {
					abs = append(abs, filepath.ToSlash(rel))
					return nil
				}
				// os.Root follows the link but refuses to leave dest.
				_, err = root.Stat(rel)
				if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
					t.Errorf("accepted symlink %s -> %s: %v", rel, target, err)
				}
			default:
				t.Errorf("accepted %s: %v", rel, m)
			}
			if fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
				t.Errorf("%s: mode %v", rel, fi.Mode())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(abs)
		if !slices.Equal(abs, res.AbsoluteSymlinks) {
			t.Errorf("absolute symlinks %q, Result says %q", abs, res.AbsoluteSymlinks)
		}
	})
}
