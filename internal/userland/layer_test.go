package userland

import (
	"archive/tar"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// tinyRepo serves a small, Debian-like package set: base-files with /tmp
// and a setgid directory, a dash that ships /bin/sh, mawk and gawk, a
// coreutils with a setuid file and a hard link, and a later package that
// replaces one of coreutils' files.
func tinyRepo(t *testing.T) (*repo, *Lock) {
	r := newRepo(t)
	l := lockOf(
		r.add("a-base", "1", debOf(t, "a-base", ".xz",
			dir("./bin/", 0o755), dir("./etc/", 0o755), dir("./tmp/", 0o1777),
			dir("./usr/", 0o755), dir("./usr/bin/", 0o755), dir("./usr/share/", 0o755),
			dir("./var/", 0o755), dir("./var/local/", 0o2775), dir("./var/tmp/", 0o1777), dir("./srv/", 0o1777),
			dir("./root/", 0o700),
			dir("./usr/share/base-files/", 0o755), file("./usr/share/base-files/profile", "PATH=/usr/bin\n"),
			file("./etc/issue", "Debian\n"),
		)),
		r.add("b-shells", "2", debOf(t, "b-shells", ".gz",
			dir("./bin/", 0o755), exe("./bin/dash", "dash"), symlink("./bin/sh", "dash"),
			dir("./usr/", 0o755), dir("./usr/bin/", 0o755), exe("./usr/bin/gawk", "gawk"), exe("./usr/bin/mawk", "mawk"),
		)),
		r.add("c-coreutils", "3", debOf(t, "c-coreutils", ".zst",
			dir("./bin/", 0o755), exe("./bin/zcat", "zcat"), hardlink("./bin/bzcat", "./bin/zcat"),
			withMode(exe("./bin/su", "su"), 0o4755),
			dir("./usr/", 0o700), dir("./usr/bin/", 0o755), exe("./usr/bin/old", "old from c"),
		)),
		r.add("d-later", "4", debOf(t, "d-later", "",
			dir("./usr/", 0o755), dir("./usr/bin/", 0o755), exe("./usr/bin/old", "new from d"),
			file("./usr/share/doc/d", "doc"), // parents not listed
		)),
	)
	return r, l
}

func buildLayer(t *testing.T, l *Lock, cache string) (digest, diffID string, ents []layerEntry) {
	t.Helper()
	if err := Fetch(t.Context(), l, cache, nil); err != nil {
		t.Fatal(err)
	}
	layer, err := Layer(t.Context(), l, cache, 1234567890)
	if err != nil {
		t.Fatal(err)
	}
	d, err := layer.Digest()
	if err != nil {
		t.Fatal(err)
	}
	id, err := layer.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	return d.String(), id.String(), readLayer(t, layer)
}

func TestLayerDeterministic(t *testing.T) {
	_, l := tinyRepo(t)
	old := syscall.Umask(0o077)
	d1, id1, e1 := buildLayer(t, l, filepath.Join(t.TempDir(), "cache-one"))
	syscall.Umask(0o002)
	t.Setenv("TZ", "Pacific/Kiritimati")
	procs := runtime.GOMAXPROCS(1) // one worker reads every package
	d2, id2, e2 := buildLayer(t, l, filepath.Join(t.TempDir(), "deeper", "cache-two"))
	runtime.GOMAXPROCS(procs)
	syscall.Umask(old)
	if d1 != d2 || id1 != id2 {
		t.Fatalf("two builds differ: digest %s vs %s, DiffID %s vs %s", d1, d2, id1, id2)
	}
	if len(e1) != len(e2) {
		t.Fatalf("entry counts differ")
	}

	// Cache files are 0644 and directories 0755 whatever the umask.
	cache := filepath.Join(t.TempDir(), "c")
	syscall.Umask(0o077)
	buildLayer(t, l, cache)
	syscall.Umask(old)
	filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := d.Info()
		want := fs.FileMode(0o644)
		if d.IsDir() {
			want = 0o755 | fs.ModeDir
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode(), want)
		}
		return nil
	})

	// Entries: sorted, 0:0 with no names, the epoch, PAX, no setuid.
	prev := ""
	for _, e := range e1 {
		h := e.h
		name := strings.TrimSuffix(h.Name, "/")
		if name <= prev {
			t.Errorf("%s comes after %s", name, prev)
		}
		prev = name
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d:%d %q:%q", name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if h.ModTime.Unix() != 1234567890 || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("%s: times %v %v %v", name, h.ModTime, h.AccessTime, h.ChangeTime)
		}
		if h.Mode&0o6000 != 0 {
			t.Errorf("%s: mode %o keeps setuid/setgid", name, h.Mode)
		}
		if h.Mode&0o1000 != 0 && !stickyDirs[name] {
			t.Errorf("%s: mode %o keeps the sticky bit", name, h.Mode)
		}
		if len(h.PAXRecords) != 0 {
			t.Errorf("%s: PAX records %v", name, h.PAXRecords)
		}
	}
}

func TestLayerContents(t *testing.T) {
	_, l := tinyRepo(t)
	_, _, ents := buildLayer(t, l, t.TempDir())
	m := byName(ents)
	check := func(name string, typ byte, mode int64, body, link string) {
		t.Helper()
		e, ok := m[name]
		switch {
		case !ok:
			t.Errorf("/%s is missing", name)
		case e.h.Typeflag != typ || e.h.Mode != mode || e.body != body || e.h.Linkname != link:
			t.Errorf("/%s: type %q mode %o body %q link %q; want %q %o %q %q", name, e.h.Typeflag, e.h.Mode, e.body, e.h.Linkname, typ, mode, body, link)
		}
	}
	// Merged /usr.
	check("bin", tar.TypeSymlink, 0o777, "", "usr/bin")
	check("sbin", tar.TypeSymlink, 0o777, "", "usr/sbin")
	check("usr/bin/dash", tar.TypeReg, 0o755, "dash", "")
	check("usr/bin/sh", tar.TypeSymlink, 0o777, "", "dash")
	// Modes: setuid and setgid dropped, sticky only on the listed dirs.
	check("usr/bin/su", tar.TypeReg, 0o755, "su", "")
	check("var/local", tar.TypeDir, 0o775, "", "")
	check("tmp", tar.TypeDir, 0o1777, "", "")
	check("var/tmp", tar.TypeDir, 0o1777, "", "")
	check("srv", tar.TypeDir, 0o777, "", "")
	check("root", tar.TypeDir, 0o700, "", "")
	// A directory seen twice keeps its first entry; a later package's
	// file replaces an earlier one's.
	check("usr", tar.TypeDir, 0o755, "", "")
	check("usr/bin/old", tar.TypeReg, 0o755, "new from d", "")
	// Hard links point to the first name in the layer's order.
	check("usr/bin/bzcat", tar.TypeReg, 0o755, "zcat", "")
	check("usr/bin/zcat", tar.TypeLink, 0o755, "", "usr/bin/bzcat")
	// Synthesized entries.
	check("usr/bin/awk", tar.TypeSymlink, 0o777, "", "gawk")
	check("etc/passwd", tar.TypeReg, 0o644, passwd, "")
	check("etc/group", tar.TypeReg, 0o644, group, "")
	check("etc/profile", tar.TypeReg, 0o644, "PATH=/usr/bin\n", "")
	check("usr/local/bin", tar.TypeDir, 0o755, "", "")
	if !strings.Contains(m["etc/passwd"].body, "buildbot:*:1000:1000:buildbot:/builder:/bin/bash") {
		t.Errorf("no buildbot in /etc/passwd")
	}
	for _, absent := range []string{"usr/bin/cc", "usr/bin/which", "usr/bin/python", "etc/shadow", "etc/nsswitch.conf"} {
		if _, ok := m[absent]; ok {
			t.Errorf("/%s is there though its package is not", absent)
		}
	}
	// Parents a package did not list exist.
	check("usr/share/doc", tar.TypeDir, 0o755, "", "")
}

func TestLayerCache(t *testing.T) {
	r, l := tinyRepo(t)
	cache := t.TempDir()
	d1, id1, _ := buildLayer(t, l, cache)
	hits := r.hits.Load()
	d2, id2, _ := buildLayer(t, l, cache)
	if d1 != d2 || id1 != id2 {
		t.Fatalf("cached build differs")
	}
	if r.hits.Load() != hits {
		t.Errorf("second Fetch downloaded again")
	}
	tars, _ := filepath.Glob(filepath.Join(cache, "layers", l.Sum()+"-1234567890-"+layerFormat+".tar"))
	if len(tars) != 1 {
		t.Fatalf("cached tar: %v", tars)
	}
	// A damaged cached tar is noticed and rebuilt.
	b, _ := os.ReadFile(tars[0])
	b[len(b)/2] ^= 1
	writeFile(t, tars[0], b)
	if d3, id3, _ := buildLayer(t, l, cache); d3 != d1 || id3 != id1 {
		t.Fatalf("rebuilt layer differs")
	}
	// So is a damaged cached .deb, by Fetch (which replaces it) and by Layer.
	deb := debPath(cache, l.Entries[0])
	writeFile(t, deb, []byte("garbage"))
	os.RemoveAll(filepath.Join(cache, "layers"))
	if _, err := Layer(t.Context(), l, cache, 0); !errors.Is(err, ErrHashMismatch) || !strings.Contains(err.Error(), l.Entries[0].SHA256) {
		t.Fatalf("Layer with a damaged .deb: %v", err)
	}
	if err := Fetch(t.Context(), l, cache, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Layer(t.Context(), l, cache, 0); err != nil {
		t.Fatal(err)
	}
	os.Remove(deb)
	os.RemoveAll(filepath.Join(cache, "layers"))
	if _, err := Layer(t.Context(), l, cache, 0); err == nil || !strings.Contains(err.Error(), "run Fetch") {
		t.Fatalf("Layer without the .deb: %v", err)
	}
}

func TestLayerRefuses(t *testing.T) {
	base := debOf(t, "base", ".gz", dir("./usr/", 0o755), dir("./usr/bin/", 0o755), exe("./usr/bin/x", "x"))
	tests := []struct {
		name string
		debs [][]byte
		want error
		msg  string
	}{
		{"dot dot", [][]byte{debOf(t, "p", ".gz", file("./usr/../../x", "x"))}, ErrUnsafePath, ".."},
		{"absolute", [][]byte{debOf(t, "p", ".xz", file("/etc/x", "x"))}, ErrUnsafePath, "/etc/x"},
		{"device", [][]byte{debOf(t, "p", ".xz", special("./dev/null", tar.TypeChar))}, ErrSpecialFile, "dev/null"},
		{"hard link to nothing", [][]byte{debOf(t, "p", ".gz", hardlink("./a", "./b"))}, ErrUnsafePath, "hard link"},
		{"hard link to a directory", [][]byte{debOf(t, "p", ".gz", dir("./b/", 0o755), hardlink("./a", "./b"))}, ErrUnsafePath, "hard link"},
		{"below a symlink", [][]byte{debOf(t, "p", ".gz", symlink("./etc", "/"), file("./etc/x", "x"))}, ErrUnsafePath, "lies below /etc"},
		{"below a file", [][]byte{base, debOf(t, "q", ".gz", file("./usr/bin/x/y", "y"))}, ErrUnsafePath, "lies below /usr/bin/x"},
		{"dir over file", [][]byte{base, debOf(t, "q", ".gz", dir("./usr/bin/x/", 0o755))}, ErrConflict, "/usr/bin/x is a file in p0 and a directory in p1"},
		{"file over dir", [][]byte{base, debOf(t, "q", ".gz", file("./usr/bin", "x"))}, ErrConflict, ""},
		{"merged usr", [][]byte{base, debOf(t, "q", ".gz", exe("./bin/x", "x"))}, ErrConflict, "p0 ships /usr/bin/x and p1 ships /bin/x"},
		{"passwd is a directory", [][]byte{debOf(t, "p", ".gz", dir("./etc/passwd/", 0o755))}, ErrConflict, "etc/passwd"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRepo(t)
			l := lockOf()
			for i, d := range tc.debs {
				l.Entries = append(l.Entries, r.add("p"+string(rune('0'+i)), "1", d))
			}
			cache := t.TempDir()
			err := Fetch(t.Context(), l, cache, nil)
			if err == nil {
				_, err = Layer(t.Context(), l, cache, 0)
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v containing %q", err, tc.want, tc.msg)
			}
		})
	}
}

func TestLayerTruncatedPinned(t *testing.T) {
	// A lock that pins a truncated .deb (both hashes agree) still fails.
	r := newRepo(t)
	deb := debOf(t, "pkg", ".xz", file("./a", strings.Repeat("b", 5000)))
	l := lockOf(r.add("pkg", "1", deb[:len(deb)-20]))
	cache := t.TempDir()
	if err := Fetch(t.Context(), l, cache, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Layer(t.Context(), l, cache, 0); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated .deb: %v, want ErrCorrupt", err)
	}
}

func TestFetchErrors(t *testing.T) {
	r := newRepo(t)
	deb := debOf(t, "pkg", ".gz", file("./a", "b"))
	good := r.add("pkg", "1", deb)

	bad := good
	bad.SHA256 = sha1
	var progress bytes.Buffer
	err := Fetch(t.Context(), lockOf(bad), t.TempDir(), &progress)
	if !errors.Is(err, ErrHashMismatch) || !strings.Contains(err.Error(), sha1) || !strings.Contains(err.Error(), good.SHA256) || !strings.Contains(err.Error(), "pkg 1") {
		t.Fatalf("wrong hash: %v", err)
	}

	short := good
	short.Size--
	if err := Fetch(t.Context(), lockOf(short), t.TempDir(), nil); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("wrong size: %v", err)
	}

	gone := good
	gone.URL = strings.Replace(good.URL, "/pkg_1_", "/pkg_0_", 1)
	gone.Version = "0"
	err = Fetch(t.Context(), lockOf(gone), t.TempDir(), nil)
	if !errors.Is(err, ErrGone) || !strings.Contains(err.Error(), "scripts/userland-lock.sh") || !strings.Contains(err.Error(), "404") {
		t.Fatalf("404: %v", err)
	}

	// Nothing but the verified file is left behind.
	cache := t.TempDir()
	Fetch(t.Context(), lockOf(bad), cache, nil)
	if err := Fetch(t.Context(), lockOf(good), cache, &progress); err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(filepath.Join(cache, "sha256"))
	if len(left) != 1 || left[0].Name() != good.SHA256 {
		t.Errorf("cache holds %v", left)
	}
	if !strings.Contains(progress.String(), "1/1 packages") {
		t.Errorf("progress: %q", progress.String())
	}
}
