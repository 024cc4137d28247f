package ibarchive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

func TestExtractAbsoluteSymlinks(t *testing.T) {
	// outside stands for the host: links point into it, and nothing may
	// appear in it.
	outside := t.TempDir()
	arch := tarOf(t, []ent{
		{name: "ib/", typ: tar.TypeDir},
		{name: "ib/staging_dir/host/bin/", typ: tar.TypeDir},
		{name: "ib/staging_dir/host/bin/bash", link: "/bin/bash", typ: tar.TypeSymlink},
		{name: "ib/staging_dir/host/bin/awk", link: "/usr/bin/gawk", typ: tar.TypeSymlink},
		{name: "ib/staging_dir/host/bin/xz", body: []byte("xz")},
		{name: "ib/staging_dir/host/bin/unxz", link: "xz", typ: tar.TypeSymlink},
		{name: "ib/host", link: outside, typ: tar.TypeSymlink},
		{name: "ib/hostfile", link: outside + "/file", typ: tar.TypeSymlink},
	})
	parent := t.TempDir()
	dest := filepath.Join(parent, "out")
	res, err := Extract(t.Context(), bytes.NewReader(arch), None, dest, Limits{}, ExtractOptions{StripTopDir: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"host", "hostfile", "staging_dir/host/bin/awk", "staging_dir/host/bin/bash"}
	if !slices.Equal(res.AbsoluteSymlinks, want) {
		t.Errorf("AbsoluteSymlinks = %q, want %q", res.AbsoluteSymlinks, want)
	}
	for name, target := range map[string]string{
		"staging_dir/host/bin/bash": "/bin/bash",
		"staging_dir/host/bin/awk":  "/usr/bin/gawk",
		"staging_dir/host/bin/unxz": "xz",
		"host":                      outside,
		"hostfile":                  outside + "/file",
	} {
		if got, err := os.Readlink(filepath.Join(dest, name)); err != nil || got != target {
			t.Errorf("%s -> %q (%v), want %q", name, got, err, target)
		}
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("extraction wrote %v outside the destination", ents)
	}

	// Nothing is ever written through an absolute symlink, whatever the
	// entry after it.
	for _, tc := range []struct {
		name string
		ents []ent
		want error
	}{
		{"file", []ent{{name: "l/file", body: []byte("x")}}, ErrUnsafePath},
		{"directory", []ent{{name: "l/dir/", typ: tar.TypeDir}}, ErrUnsafePath},
		{"symlink", []ent{{name: "l/link", link: "/etc/passwd", typ: tar.TypeSymlink}}, ErrUnsafePath},
		{"hard link", []ent{{name: "l/hard", link: "f", typ: tar.TypeLink}}, ErrUnsafePath},
		{"hard link from outside", []ent{{name: "h", link: "l/file", typ: tar.TypeLink}}, ErrUnsafePath},
		{"replace the link", []ent{{name: "l", body: []byte("x")}}, ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.WriteFile(filepath.Join(outside, "file"), []byte("host"), 0644)
			t.Cleanup(func() { os.Remove(filepath.Join(outside, "file")) })
			ents := append([]ent{{name: "f", body: []byte("f")}, {name: "l", link: outside, typ: tar.TypeSymlink}}, tc.ents...)
			parent := t.TempDir()
			_, err := Extract(t.Context(), bytes.NewReader(tarOf(t, ents)), None, filepath.Join(parent, "out"), Limits{}, ExtractOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Extract: %v, want %v", err, tc.want)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 1 {
				t.Errorf("outside now holds %v", ents)
			}
			if b, _ := os.ReadFile(filepath.Join(outside, "file")); string(b) != "host" {
				t.Errorf("outside file now holds %q", b)
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Errorf("left behind %v", ents)
			}
		})
	}
}

func TestExtractStripTopDir(t *testing.T) {
	reg := func(name string) ent { return ent{name: name, body: []byte(name)} }
	dir := func(name string) ent { return ent{name: name, typ: tar.TypeDir} }
	for _, tc := range []struct {
		name  string
		ents  []ent
		top   string
		files []string // regular files expected in the destination
	}{
		{"listed top directory", []ent{dir("ib/"), reg("ib/Makefile"), dir("ib/packages/"), reg("ib/packages/Packages")}, "ib", []string{"Makefile", "packages/Packages"}},
		{"unlisted top directory", []ent{reg("ib/Makefile"), reg("ib/packages/Packages")}, "ib", []string{"Makefile", "packages/Packages"}},
		{"dot slash and root entry", []ent{dir("./"), dir("./ib/"), reg("./ib/Makefile")}, "ib", []string{"Makefile"}},
		{"top directory listed twice", []ent{dir("ib/"), reg("ib/Makefile"), dir("ib/")}, "ib", []string{"Makefile"}},
		{"hard link below the top", []ent{dir("ib/"), reg("ib/a"), {name: "ib/b", link: "ib/a", typ: tar.TypeLink}}, "ib", []string{"a", "b"}},
		{"empty top directory", []ent{dir("ib/")}, "ib", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "out")
			res, err := Extract(t.Context(), bytes.NewReader(tarOf(t, tc.ents)), None, dest, Limits{}, ExtractOptions{StripTopDir: true})
			if err != nil {
				t.Fatal(err)
			}
			if res.TopDir != tc.top {
				t.Errorf("TopDir %q, want %q", res.TopDir, tc.top)
			}
			var files []string
			filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() {
					rel, _ := filepath.Rel(dest, p)
					files = append(files, filepath.ToSlash(rel))
				}
				return err
			})
			if !slices.Equal(files, tc.files) {
				t.Errorf("destination holds %q, want %q", files, tc.files)
			}
			if fi, err := os.Stat(dest); err != nil || fi.Mode().Perm() != 0755 {
				t.Errorf("destination: %v, want mode 0755", err)
			}
		})
	}

	for _, tc := range []struct {
		name string
		ents []ent
		want error
		msg  string
	}{
		{"two top directories", []ent{dir("a/"), reg("a/x"), dir("b/"), reg("b/y")}, ErrTopDir, `"a" and "b" are both at the top level`},
		{"file beside the top directory", []ent{dir("ib/"), reg("ib/Makefile"), reg("README")}, ErrTopDir, `"ib" and "README"`},
		{"file at the top level", []ent{reg("Makefile")}, ErrTopDir, `"Makefile" at the top level is not a directory`},
		{"symlink at the top level", []ent{{name: "ib", link: "/", typ: tar.TypeSymlink}}, ErrTopDir, "not a directory"},
		{"top directory after a file of its name", []ent{reg("ib"), reg("ib/x")}, ErrTopDir, "not a directory"},
		{"empty archive", nil, ErrTopDir, "no top-level entry"},
		{"only the root", []ent{dir("./")}, ErrTopDir, "no top-level entry"},
		{"file below a second top directory", []ent{dir("ib/"), reg("x/a")}, ErrTopDir, `"ib" and "x"`},
		{"hard link outside the top directory", []ent{dir("ib/"), {name: "ib/h", link: "other/a", typ: tar.TypeLink}}, ErrUnsafePath, "hard link"},
		{"hard link to the top directory", []ent{dir("ib/"), {name: "ib/h", link: "ib", typ: tar.TypeLink}}, ErrUnsafePath, "hard link"},
		// Inside the archive, but outside once the top is stripped.
		{"symlink through the stripped top", []ent{dir("ib/"), reg("ib/a"), {name: "ib/l", link: "../ib/a", typ: tar.TypeSymlink}}, ErrUnsafePath, "outside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			_, err := Extract(t.Context(), bytes.NewReader(tarOf(t, tc.ents)), None, filepath.Join(parent, "out"), Limits{}, ExtractOptions{StripTopDir: true})
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Extract: %v, want %v with %q", err, tc.want, tc.msg)
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Errorf("left behind %v", ents)
			}
		})
	}

	// Without the option, the same archives keep their layout.
	dest := filepath.Join(t.TempDir(), "out")
	res, err := Extract(t.Context(), bytes.NewReader(tarOf(t, []ent{dir("a/"), reg("a/x"), reg("README")})), None, dest, Limits{}, ExtractOptions{})
	if err != nil || res.TopDir != "" {
		t.Fatalf("Extract without StripTopDir: %+v, %v", res, err)
	}
	if _, err := os.Stat(filepath.Join(dest, "a/x")); err != nil {
		t.Error(err)
	}
}

// hostile returns archives whose first bytes announce a compression and
// whose rest makes its decompressor fail.
func hostile(t *testing.T) []struct {
	name string
	arch []byte
} {
	good := zstdOf(t, tarOf(t, []ent{{name: "ib/", typ: tar.TypeDir}, {name: "ib/a", body: []byte("x")}}))
	garbage := bytes.Repeat([]byte{0xff, 0x00, 0x41}, 4000)
	return []struct {
		name string
		arch []byte
	}{
		{"xz", append([]byte{0xfd, '7', 'z', 'X', 'Z', 0, 0, 1}, garbage...)},
		{"zstd", append([]byte{0x28, 0xb5, 0x2f, 0xfd}, garbage...)},
		{"gzip", append([]byte{0x1f, 0x8b, 8, 0}, garbage...)},
		{"zstd window", append([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, 0xff}, garbage...)}, // a 2^41 byte window
		{"tar", append(make([]byte, 257), append([]byte("ustar\x0000"), garbage...)...)},
		{"zstd tail", append(good[:len(good)-3:len(good)-3], garbage...)},
	}
}

// spoolWatcher is an archive reader that, at its end, checks that the
// private copy sits beside the destination with mode 0600.
type spoolWatcher struct {
	t      *testing.T
	r      io.Reader
	parent string
	seen   bool
}

func (w *spoolWatcher) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if err == io.EOF && !w.seen {
		w.seen = true
		ents, _ := os.ReadDir(w.parent)
		if len(ents) != 1 || !strings.HasPrefix(ents[0].Name(), ".out.archive-") {
			w.t.Errorf("while copying, the parent holds %v, want one .out.archive-*", ents)
		} else if fi, err := ents[0].Info(); err != nil || fi.Mode() != 0600 {
			w.t.Errorf("private copy: %v, %v", fi.Mode(), err)
		}
	}
	return n, err
}

// TestExtractVerifiedHashFirst checks that an archive is authenticated
// before any of it is parsed: bytes that would make the decompressor fail
// give ErrHashMismatch, not ErrCorrupt, when their hash is wrong.
func TestExtractVerifiedHashFirst(t *testing.T) {
	wrong := hexSHA([]byte("the archive sha256sums lists"))
	for _, tc := range hostile(t) {
		arch := tc.arch
		t.Run(tc.name, func(t *testing.T) {
			// With the right hash the decompressor does see the
			// bytes, and fails: they are hostile.
			if _, err := ExtractVerified(t.Context(), bytes.NewReader(arch), hexSHA(arch), Auto, filepath.Join(t.TempDir(), "out"), Limits{}, ExtractOptions{}); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("right hash: %v, want ErrCorrupt or ErrTooLarge", err)
			}

			parent := t.TempDir()
			w := &spoolWatcher{t: t, r: bytes.NewReader(arch), parent: parent}
			res, err := ExtractVerified(t.Context(), w, wrong, Auto, filepath.Join(parent, "out"), Limits{}, ExtractOptions{})
			if !errors.Is(err, ErrHashMismatch) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTooLarge) {
				t.Fatalf("ExtractVerified: %v, want only ErrHashMismatch", err)
			}
			if !strings.Contains(err.Error(), hexSHA(arch)) || !strings.Contains(err.Error(), wrong) || res.SHA256 != hexSHA(arch) {
				t.Errorf("error %q (result %q) does not name both hashes", err, res.SHA256)
			}
			if !w.seen {
				t.Error("the archive was not read to its end")
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Errorf("left behind %v", ents)
			}

			// ExtractFile, as imgbuild ib import calls it.
			file := filepath.Join(t.TempDir(), "openwrt-imagebuilder-x.tar.zst")
			os.WriteFile(file, arch, 0644)
			sums, _ := ParseSums([]byte(wrong + " *openwrt-imagebuilder-x.tar.zst\n"))
			_, err = ExtractFile(t.Context(), file, sums, filepath.Join(parent, "out"), Limits{})
			if !errors.Is(err, ErrHashMismatch) || errors.Is(err, ErrCorrupt) {
				t.Fatalf("ExtractFile: %v, want only ErrHashMismatch", err)
			}
			if want := "ibarchive: openwrt-imagebuilder-x.tar.zst: sha256 mismatch: archive is " + hexSHA(arch) + ", pinned " + wrong; err.Error() != want {
				t.Errorf("error %q\nwant  %q", err, want)
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Errorf("left behind %v", ents)
			}
		})
	}

	// The private copy is bounded too.
	parent := t.TempDir()
	big := io.LimitReader(zeroReader{}, 3<<20)
	if _, err := ExtractVerified(t.Context(), big, wrong, Auto, filepath.Join(parent, "out"), Limits{MaxBytes: 1 << 20, MaxFiles: 1}, ExtractOptions{}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized archive: %v, want ErrTooLarge", err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Errorf("left behind %v", ents)
	}
	// An existing destination is refused before anything is copied.
	if _, err := ExtractVerified(t.Context(), failReader{t}, wrong, Auto, parent, Limits{}, ExtractOptions{}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("existing destination: %v", err)
	}
	if _, err := ExtractVerified(t.Context(), strings.NewReader("x"), "abc", Auto, filepath.Join(parent, "out"), Limits{}, ExtractOptions{}); err == nil || !strings.Contains(err.Error(), "not 64 hex digits") {
		t.Errorf("short pin: %v", err)
	}
}

type zeroReader struct{}

type failReader struct{ t *testing.T }

func (r failReader) Read([]byte) (int, error) {
	r.t.Error("the archive was read")
	return 0, io.EOF
}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestExtractUmask checks that directories the archive does not list get
// 0755 under any umask, so the tree (and the layer made of it) does not depend on
// the umask.
func TestExtractUmask(t *testing.T) {
	arch := tarOf(t, []ent{{name: "ib/staging_dir/host/bin/mkhash", body: []byte("x")}, {name: "ib/listed/", typ: tar.TypeDir}})
	for _, mask := range []int{0o022, 0o002, 0o077} {
		dest := filepath.Join(t.TempDir(), "out")
		old := syscall.Umask(mask)
		_, err := Extract(t.Context(), bytes.NewReader(arch), None, dest, Limits{}, ExtractOptions{StripTopDir: true})
		syscall.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{".", "staging_dir", "staging_dir/host/bin", "listed"} {
			fi, err := os.Stat(filepath.Join(dest, d))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0755 {
				t.Errorf("umask %03o: %s has mode %v, want 0755", mask, d, fi.Mode())
			}
		}
	}
}
