package squashfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const epoch = 1758316778 // SOURCE_DATE_EPOCH of OpenWrt 24.10.3

// needTool fails the test (never skips) when a tool is missing, naming
// the Debian package that provides it.
func needTool(t testing.TB, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s (apt-get install -y %s)", tool, pkg, pkg)
	}
	return p
}

func run(t testing.TB, env []string, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out.String(), stderr.String())
	}
	return out.Bytes()
}

// want is what the test put into an image at one path.
type want struct {
	mode         fs.FileMode
	uid, gid     uint32
	data         []byte // regular files
	target       string // symlinks
	major, minor uint32
	hardlinkOf   string
}

// tree is a source directory plus the entries an image built from it holds,
// including pseudo entries (/dev, /dev/console) that only exist in the image.
type tree struct {
	dir     string
	entries map[string]*want
	order   []string // creation order; parents first
}

const manyFiles = 600

func (tr *tree) add(p string, w *want) {
	tr.entries[p] = w
	tr.order = append(tr.order, p)
}

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func textBytes(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %d of a compressible text file inside the root filesystem\n", i)
	}
	return b.Bytes()[:n]
}

// buildTree writes a tree covering the cases the reader must handle:
// multi-block files with and without a short last block, tails in
// fragments, empty and sparse files, symlinks (relative, absolute,
// dangling), a hard link, setuid, private modes, deep nesting, an empty
// directory and a directory large enough to get a directory index.
func buildTree(t testing.TB) *tree {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	tr := &tree{dir: dir, entries: map[string]*want{}}
	tr.add(".", &want{mode: fs.ModeDir | 0755})
	mkdir := func(p string, mode fs.FileMode) {
		if err := os.Mkdir(filepath.Join(dir, p), 0700); err != nil {
			t.Fatal(err)
		}
		tr.add(p, &want{mode: fs.ModeDir | mode})
	}
	file := func(p string, mode fs.FileMode, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, p), data, 0600); err != nil {
			t.Fatal(err)
		}
		tr.add(p, &want{mode: mode, data: data})
	}
	symlink := func(p, target string) {
		if err := os.Symlink(target, filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
		tr.add(p, &want{mode: fs.ModeSymlink | 0777, target: target})
	}
	if err := os.Mkdir(dir, 0755); err != nil {
		t.Fatal(err)
	}
	mkdir("bin", 0755)
	file("bin/big", 0755, randBytes(600<<10, 1))
	file("bin/text", 0755, textBytes(700<<10))
	file("bin/exact", 0644, textBytes(256<<10))
	file("bin/suid", 0755|fs.ModeSetuid, []byte("#!/bin/sh\necho suid\n"))
	mkdir("etc", 0755)
	file("etc/small.txt", 0644, []byte("hello\n"))
	file("etc/empty", 0644, nil)
	file("etc/secret", 0600, []byte("key material stays private\n"))
	file("etc/owned", 0640, []byte("owned by 1000:100\n"))
	tr.entries["etc/owned"].uid, tr.entries["etc/owned"].gid = 1000, 100
	symlink("etc/link", "small.txt")
	symlink("etc/abs", "/bin/big")
	symlink("etc/dangling", "../nowhere")
	if err := os.Link(filepath.Join(dir, "etc/small.txt"), filepath.Join(dir, "etc/hard")); err != nil {
		t.Fatal(err)
	}
	tr.add("etc/hard", &want{mode: 0644, data: []byte("hello\n"), hardlinkOf: "etc/small.txt"})
	mkdir("usr", 0755)
	mkdir("usr/lib", 0755)
	mkdir("usr/lib/a", 0755)
	mkdir("usr/lib/a/b", 0700)
	mkdir("usr/lib/a/b/c", 0755)
	file("usr/lib/a/b/c/deep.txt", 0644, []byte("deep\n"))
	mkdir("var", 0755)
	mkdir("var/empty", 0755)
	mkdir("many", 0755)
	for i := 0; i < manyFiles; i++ {
		file(fmt.Sprintf("many/entry-with-a-fairly-long-name-to-fill-the-listing-%04d", i), 0644, []byte{byte(i)})
	}
	// A sparse file: 1 MiB hole, then data.
	sp := filepath.Join(dir, "sparse")
	if err := os.WriteFile(sp, nil, 0644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(sp, 1<<20); err != nil {
		t.Fatal(err)
	}
	fh, err := os.OpenFile(sp, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteString("end\n")
	fh.Close()
	tr.add("sparse", &want{mode: 0644, data: append(make([]byte, 1<<20), "end\n"...)})
	// Modes last: directories were created writable.
	for _, p := range slices.Backward(tr.order) {
		w := tr.entries[p]
		if w.mode.Type() == fs.ModeSymlink || w.hardlinkOf != "" {
			continue
		}
		if err := os.Chmod(filepath.Join(dir, p), w.mode&(fs.ModePerm|fs.ModeSetuid)); err != nil {
			t.Fatal(err)
		}
	}
	// Pseudo entries, as OpenWrt adds them.
	tr.add("dev", &want{mode: fs.ModeDir | 0755})
	tr.add("dev/console", &want{mode: fs.ModeDevice | fs.ModeCharDevice | 0600, major: 5, minor: 1})
	return tr
}

// mksquashfs builds an image from tr with Debian's mksquashfs.
func mksquashfs(t testing.TB, tr *tree, out string, args ...string) {
	t.Helper()
	needTool(t, "mksquashfs", "squashfs-tools")
	base := []string{tr.dir, out, "-noappend", "-no-progress", "-quiet",
		"-p", "/dev d 755 0 0", "-p", "/dev/console c 600 0 0 5 1",
		"-p", "etc/owned m 640 1000 100",
		"-all-time", fmt.Sprint(epoch), "-mkfs-time", fmt.Sprint(epoch)}
	run(t, nil, "mksquashfs", append(base, args...)...)
}

// gensquashfs builds an image the way OpenWrt's patched mksquashfs does
// (xz preset 9 extreme, lc=0 lp=2 pb=2, 256 KiB blocks). Debian's
// mksquashfs 4.5 lacks -Xpreset/-Xe/-Xlc/-Xlp/-Xpb, squashfs-tools-ng's
// gensquashfs has the same knobs.
func gensquashfs(t testing.TB, tr *tree, out string, extra ...string) {
	t.Helper()
	needTool(t, "gensquashfs", "squashfs-tools-ng")
	var pack strings.Builder
	for _, p := range tr.order {
		w := tr.entries[p]
		if p == "." {
			continue
		}
		abs := "/" + p
		perm := uint32(w.mode.Perm())
		if w.mode&fs.ModeSetuid != 0 {
			perm |= 0o4000
		}
		switch {
		case w.hardlinkOf != "":
			fmt.Fprintf(&pack, "link %s 0777 0 0 /%s\n", abs, w.hardlinkOf)
		case w.mode.IsDir():
			fmt.Fprintf(&pack, "dir %s 0%o %d %d\n", abs, perm, w.uid, w.gid)
		case w.mode.Type() == fs.ModeSymlink:
			fmt.Fprintf(&pack, "slink %s 0777 %d %d %s\n", abs, w.uid, w.gid, w.target)
		case w.mode&fs.ModeDevice != 0:
			fmt.Fprintf(&pack, "nod %s 0%o %d %d c %d %d\n", abs, perm, w.uid, w.gid, w.major, w.minor)
		default:
			fmt.Fprintf(&pack, "file %s 0%o %d %d %s\n", abs, perm, w.uid, w.gid, p)
		}
	}
	packFile := filepath.Join(t.TempDir(), "pack.txt")
	if err := os.WriteFile(packFile, []byte(pack.String()), 0644); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-q", "-f", "-F", packFile, "-D", tr.dir, "-d", fmt.Sprintf("mtime=%d", epoch), "-j", "1"}, extra...)
	run(t, []string{"SOURCE_DATE_EPOCH=" + fmt.Sprint(epoch)}, "gensquashfs", append(args, out)...)
}

// images builds each image variant once per test binary: mksquashfs is
// slow enough with xz that rebuilding per test would dominate run time.
type variant struct {
	name   string
	build  func(t testing.TB, tr *tree, out string)
	owners bool // whether uid/gid of etc/owned survive (not root-owned)
	mtimes bool // whether every mtime is the epoch
}

var variants = []variant{
	{"openwrt-xz", func(t testing.TB, tr *tree, out string) {
		gensquashfs(t, tr, out, "-c", "xz", "-X", "level=9,extreme,lc=0,lp=2,pb=2", "-b", "262144")
	}, true, false},
	{"mksquashfs-xz", func(t testing.TB, tr *tree, out string) {
		// OpenWrt's command line minus the options Debian's mksquashfs lacks.
		mksquashfs(t, tr, out, "-nopad", "-root-owned", "-comp", "xz", "-b", "256k")
	}, false, true},
	{"gzip", func(t testing.TB, tr *tree, out string) {
		mksquashfs(t, tr, out, "-comp", "gzip", "-b", "128k")
	}, true, true},
	{"gzip-uncompressed", func(t testing.TB, tr *tree, out string) {
		mksquashfs(t, tr, out, "-comp", "gzip", "-noI", "-noD", "-noF", "-noX", "-b", "4k")
	}, true, true},
	{"zstd", func(t testing.TB, tr *tree, out string) {
		mksquashfs(t, tr, out, "-comp", "zstd", "-b", "1M", "-always-use-fragments")
	}, true, true},
}

var (
	imagesOnce sync.Once
	imagesTree *tree
	imagePaths map[string]string
	imagesErr  string
)

// testImages returns the shared tree and one image path per variant.
func testImages(t *testing.T) (*tree, map[string]string) {
	t.Helper()
	imagesOnce.Do(func() {
		dir, err := os.MkdirTemp("", "squashfs-test-")
		if err != nil {
			imagesErr = err.Error()
			return
		}
		// Removed by TestMain.
		sharedDir = dir
		ft := &fatalCatcher{TB: t}
		func() {
			defer func() {
				if r := recover(); r != nil && r != errFatal {
					panic(r)
				}
			}()
			imagesTree = buildTree(ft)
			imagePaths = map[string]string{}
			var wg sync.WaitGroup
			for _, v := range variants {
				out := filepath.Join(dir, v.name+".sqfs")
				imagePaths[v.name] = out
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() {
						if r := recover(); r != nil && r != errFatal {
							panic(r)
						}
					}()
					v.build(ft, imagesTree, out)
				}()
			}
			wg.Wait()
		}()
		imagesErr = ft.msg()
	})
	if imagesErr != "" {
		t.Fatal(imagesErr)
	}
	return imagesTree, imagePaths
}

var sharedDir string

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range []string{sharedDir, benchDir} {
		if d != "" {
			os.RemoveAll(d)
		}
	}
	os.Exit(code)
}

var errFatal = fmt.Errorf("fatal")

// fatalCatcher lets shared setup report failures to whichever test runs it
// first, and to every later test, instead of calling Fatal from a goroutine.
type fatalCatcher struct {
	testing.TB
	mu   sync.Mutex
	msgs []string
}

func (f *fatalCatcher) Fatalf(format string, a ...any) {
	f.mu.Lock()
	f.msgs = append(f.msgs, fmt.Sprintf(format, a...))
	f.mu.Unlock()
	panic(errFatal)
}

func (f *fatalCatcher) Fatal(a ...any) {
	f.mu.Lock()
	f.msgs = append(f.msgs, fmt.Sprint(a...))
	f.mu.Unlock()
	panic(errFatal)
}

func (f *fatalCatcher) TempDir() string {
	d, err := os.MkdirTemp(sharedDir, "tmp-")
	if err != nil {
		f.Fatal(err)
	}
	return d
}

func (f *fatalCatcher) Helper() {}

func (f *fatalCatcher) msg() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.msgs, "\n")
}

func openImage(t testing.TB, path string) (*FS, []byte) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("Open(%s): %v", filepath.Base(path), err)
	}
	return fsys, b
}

// lsMode formats a mode as ls -l and unsquashfs -lln do.
func lsMode(m fs.FileMode) string {
	var b [10]byte
	switch {
	case m.IsDir():
		b[0] = 'd'
	case m&fs.ModeSymlink != 0:
		b[0] = 'l'
	case m&fs.ModeCharDevice != 0:
		b[0] = 'c'
	case m&fs.ModeDevice != 0:
		b[0] = 'b'
	case m&fs.ModeNamedPipe != 0:
		b[0] = 'p'
	case m&fs.ModeSocket != 0:
		b[0] = 's'
	default:
		b[0] = '-'
	}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if m&(1<<(8-i)) != 0 {
			b[i+1] = rwx[i]
		} else {
			b[i+1] = '-'
		}
	}
	special := func(i int, on bool, set, unset byte) {
		if on {
			if b[i] == 'x' {
				b[i] = set
			} else {
				b[i] = unset
			}
		}
	}
	special(3, m&fs.ModeSetuid != 0, 's', 'S')
	special(6, m&fs.ModeSetgid != 0, 's', 'S')
	special(9, m&fs.ModeSticky != 0, 't', 'T')
	return string(b[:])
}

// listLine formats an entry like one line of `unsquashfs -lln`, with fields
// separated by single spaces and the root called squashfs-root.
func listLine(e Entry) string {
	p := "squashfs-root"
	if e.Path != "." {
		p += "/" + e.Path
	}
	size := fmt.Sprint(e.Size)
	if e.Mode&fs.ModeDevice != 0 {
		size = fmt.Sprintf("%d, %d", e.Major, e.Minor)
	}
	s := fmt.Sprintf("%s %d/%d %s %s %s", lsMode(e.Mode), e.UID, e.GID, size,
		time.Unix(e.ModTime, 0).UTC().Format("2006-01-02 15:04"), p)
	if e.Mode&fs.ModeSymlink != 0 {
		s += " -> " + e.Target
	}
	return s
}

func unsquashfsList(t testing.TB, img string) []string {
	t.Helper()
	needTool(t, "unsquashfs", "squashfs-tools")
	out := run(t, []string{"TZ=UTC"}, "unsquashfs", "-lln", img)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		lines = append(lines, strings.Join(strings.Fields(l), " "))
	}
	return lines
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func readAllEntry(t testing.TB, fsys *FS, e Entry) []byte {
	t.Helper()
	f, err := fsys.OpenEntry(e)
	if err != nil {
		t.Fatalf("OpenEntry(%s): %v", e.Path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("reading %s: %v", e.Path, err)
	}
	return b
}
