package squashfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func walkAll(t *testing.T, fsys *FS) []Entry {
	t.Helper()
	var got []Entry
	if err := fsys.Walk(t.Context(), func(e Entry) error {
		got = append(got, e)
		return nil
	}); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return got
}

// TestWalkMatchesTree compares every entry of every image variant with what
// the test wrote: type, mode, owner, size, mtime, symlink target, device
// numbers and file contents.
func TestWalkMatchesTree(t *testing.T) {
	tr, imgs := testImages(t)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			fsys, _ := openImage(t, imgs[v.name])
			got := walkAll(t, fsys)
			seen := map[string]bool{}
			var paths []string
			inodes := map[string]uint32{}
			for _, e := range got {
				paths = append(paths, e.Path)
				seen[e.Path] = true
				inodes[e.Path] = e.Inode
				w, ok := tr.entries[e.Path]
				if !ok {
					t.Errorf("unexpected entry %q", e.Path)
					continue
				}
				wantMode := w.mode
				if e.Mode != wantMode {
					t.Errorf("%s: mode %v, want %v", e.Path, e.Mode, wantMode)
				}
				wantUID, wantGID := w.uid, w.gid
				if !v.owners {
					wantUID, wantGID = 0, 0
				}
				if e.UID != wantUID || e.GID != wantGID {
					t.Errorf("%s: owner %d:%d, want %d:%d", e.Path, e.UID, e.GID, wantUID, wantGID)
				}
				if v.mtimes && e.ModTime != epoch {
					t.Errorf("%s: mtime %d, want %d", e.Path, e.ModTime, epoch)
				}
				switch {
				case w.mode.IsRegular():
					if e.Size != int64(len(w.data)) {
						t.Errorf("%s: size %d, want %d", e.Path, e.Size, len(w.data))
					}
					data := readAllEntry(t, fsys, e)
					if !bytes.Equal(data, w.data) {
						t.Errorf("%s: contents differ (%d bytes, sha256 %s; want %d bytes, %s)", e.Path, len(data), sha256Hex(data), len(w.data), sha256Hex(w.data))
					}
				case w.mode.Type() == fs.ModeSymlink:
					if e.Target != w.target || e.Size != int64(len(w.target)) {
						t.Errorf("%s: target %q size %d, want %q", e.Path, e.Target, e.Size, w.target)
					}
				case w.mode&fs.ModeDevice != 0:
					if e.Major != w.major || e.Minor != w.minor {
						t.Errorf("%s: device %d,%d, want %d,%d", e.Path, e.Major, e.Minor, w.major, w.minor)
					}
				}
			}
			for p := range tr.entries {
				if !seen[p] {
					t.Errorf("missing entry %q", p)
				}
			}
			if !slices.IsSortedFunc(paths[1:], func(a, b string) int { return walkOrder(a, b) }) {
				t.Errorf("walk order is not depth-first by name: %v", paths[:10])
			}
			if inodes["etc/hard"] != inodes["etc/small.txt"] {
				t.Errorf("hard link has inode %d, original %d", inodes["etc/hard"], inodes["etc/small.txt"])
			}
			if len(got) != len(tr.entries) {
				t.Errorf("walked %d entries, want %d", len(got), len(tr.entries))
			}
		})
	}
}

// walkOrder compares paths the way a depth-first walk with sorted
// directories orders them: component by component.
func walkOrder(a, b string) int {
	return slices.Compare(strings.Split(a, "/"), strings.Split(b, "/"))
}

// TestUnsquashfsListing checks the walk against squashfs-tools' own view.
func TestUnsquashfsListing(t *testing.T) {
	_, imgs := testImages(t)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			fsys, _ := openImage(t, imgs[v.name])
			var got []string
			for _, e := range walkAll(t, fsys) {
				got = append(got, listLine(e))
			}
			want := unsquashfsList(t, imgs[v.name])
			if !slices.Equal(got, want) {
				for i := 0; i < max(len(got), len(want)); i++ {
					var g, w string
					if i < len(got) {
						g = got[i]
					}
					if i < len(want) {
						w = want[i]
					}
					if g != w {
						t.Errorf("line %d:\n got %q\nwant %q", i, g, w)
						break
					}
				}
				t.Fatalf("walk listing (%d lines) differs from unsquashfs -lln (%d lines)", len(got), len(want))
			}
		})
	}
}

func TestFSInterface(t *testing.T) {
	_, imgs := testImages(t)
	fsys, _ := openImage(t, imgs["openwrt-xz"])
	// fstest opens every symlink, so it gets an image without the dangling
	// one; os.DirFS fails the same way on dangling links.
	src := t.TempDir()
	for p, data := range map[string]string{"a/b/c.txt": "c", "a/big": string(textBytes(300 << 10)), "top": "t"} {
		os.MkdirAll(path.Join(src, path.Dir(p)), 0755)
		if err := os.WriteFile(path.Join(src, p), []byte(data), 0644); err != nil {
			t.Fatal(err)
		}
	}
	os.Symlink("b/c.txt", path.Join(src, "a/link"))
	os.Symlink("/a/b", path.Join(src, "abs"))
	small := path.Join(t.TempDir(), "small.sqfs")
	run(t, nil, "mksquashfs", src, small, "-quiet", "-no-progress", "-comp", "xz", "-b", "64k", "-p", "/dev d 755 0 0", "-p", "/dev/console c 600 0 0 5 1")
	sfs, _ := openImage(t, small)
	if err := fstest.TestFS(sfs, "a/b/c.txt", "a/big", "top", "a/link", "dev/console"); err != nil {
		t.Fatal(err)
	}
	read := func(name string) string {
		t.Helper()
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			t.Fatalf("ReadFile(%s): %v", name, err)
		}
		return string(b)
	}
	if got := read("etc/link"); got != "hello\n" {
		t.Errorf("etc/link reads %q", got)
	}
	if got := read("etc/abs"); got != string(randBytes(600<<10, 1)) {
		t.Errorf("etc/abs (-> /bin/big) reads %d bytes, not bin/big", len(got))
	}
	// Symlink resolution stays inside the image, as in a chroot.
	src2 := t.TempDir()
	os.Mkdir(path.Join(src2, "d"), 0755)
	os.WriteFile(path.Join(src2, "top"), []byte("top\n"), 0644)
	os.Symlink("../top", path.Join(src2, "d/up"))
	os.Symlink("/../../../top", path.Join(src2, "d/escape"))
	os.Symlink("../d/../d/up", path.Join(src2, "d/chain"))
	os.Symlink("loop2", path.Join(src2, "d/loop1"))
	os.Symlink("loop1", path.Join(src2, "d/loop2"))
	links := path.Join(t.TempDir(), "links.sqfs")
	run(t, nil, "mksquashfs", src2, links, "-quiet", "-no-progress", "-comp", "gzip")
	lfs, _ := openImage(t, links)
	for _, name := range []string{"d/up", "d/escape", "d/chain"} {
		if b, err := fs.ReadFile(lfs, name); err != nil || string(b) != "top\n" {
			t.Errorf("ReadFile(%s) = %q, %v", name, b, err)
		}
	}
	if _, err := lfs.Open("d/loop1"); !errors.Is(err, ErrLoop) {
		t.Errorf("Open(symlink loop): %v, want ErrLoop", err)
	}
	if _, err := fsys.Stat("etc/dangling"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(dangling symlink): %v, want ErrNotExist", err)
	}
	if fi, err := fsys.Lstat("etc/dangling"); err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Errorf("Lstat(dangling symlink): %v, %v", fi, err)
	}
	if target, err := fsys.ReadLink("etc/abs"); err != nil || target != "/bin/big" {
		t.Errorf("ReadLink(etc/abs) = %q, %v", target, err)
	}
	if _, err := fsys.Open("etc/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing): %v", err)
	}
	if _, err := fsys.Open("etc/small.txt/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(file/x): %v", err)
	}
	if _, err := fsys.Open("../etc"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Open(../etc): %v", err)
	}
	fi, err := fsys.Stat("etc/owned")
	if err != nil {
		t.Fatal(err)
	}
	if e := fi.Sys().(*Entry); e.UID != 1000 || e.GID != 100 {
		t.Errorf("etc/owned owner %d:%d", e.UID, e.GID)
	}
}

// TestDirectoryIndex looks names up in a directory whose listing spans
// several metadata blocks, so lookups go through the directory index.
func TestDirectoryIndex(t *testing.T) {
	_, imgs := testImages(t)
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			fsys, _ := openImage(t, imgs[v.name])
			in, err := fsys.resolve("stat", "many", true)
			if err != nil {
				t.Fatal(err)
			}
			// squashfs-tools-ng writes no directory index.
			if v.name != "openwrt-xz" && in.dirIndexCount < 2 {
				t.Fatalf("many/ has %d index entries, want a multi-block listing with an index", in.dirIndexCount)
			}
			for i := 0; i < manyFiles; i += 37 {
				name := fmt.Sprintf("many/entry-with-a-fairly-long-name-to-fill-the-listing-%04d", i)
				b, err := fs.ReadFile(fsys, name)
				if err != nil || len(b) != 1 || b[0] != byte(i) {
					t.Fatalf("ReadFile(%s) = %v, %v", name, b, err)
				}
			}
			for _, name := range []string{"many/a", "many/entry", "many/entry-with-a-fairly-long-name-to-fill-the-listing-0600", "many/zzz"} {
				if _, err := fsys.Stat(name); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("Stat(%s): %v, want ErrNotExist", name, err)
				}
			}
			ents, err := fsys.ReadDir("many")
			if err != nil || len(ents) != manyFiles {
				t.Fatalf("ReadDir(many): %d entries, %v", len(ents), err)
			}
		})
	}
}

// fakeSysupgrade lays an image out like OpenWrt's ath79 sysupgrade recipe:
// kernel padded to 64 KiB, root filesystem, 0xFF padding to 64 KiB and the
// JFFS2 end-of-filesystem marker.
func fakeSysupgrade(kernel, rootfs []byte) []byte {
	const blk = 64 << 10
	img := append([]byte{}, kernel...)
	for len(img)%blk != 0 {
		img = append(img, 0xff)
	}
	img = append(img, rootfs...)
	for len(img)%blk != 0 {
		img = append(img, 0xff)
	}
	return append(img, 0xde, 0xad, 0xc0, 0xde)
}

func TestFindInImage(t *testing.T) {
	_, imgs := testImages(t)
	rootfs, err := os.ReadFile(imgs["mksquashfs-xz"])
	if err != nil {
		t.Fatal(err)
	}
	kernel := randBytes(1500000, 9)
	// Decoys: the magic at an aligned offset with a bad superblock, and a
	// valid-looking superblock at an unaligned offset.
	copy(kernel[8192:], "hsqs")
	copy(kernel[70001:], rootfs[:96])
	img := fakeSysupgrade(kernel, rootfs)
	off, err := FindInImage(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	if want := int64((len(kernel) + 65535) / 65536 * 65536); off != want {
		t.Fatalf("FindInImage = %#x, want %#x", off, want)
	}
	fsys, got, err := OpenInImage(bytes.NewReader(img), int64(len(img)))
	if err != nil || got != off {
		t.Fatalf("OpenInImage: %v at %#x", err, got)
	}
	b, err := fs.ReadFile(fsys, "etc/small.txt")
	if err != nil || string(b) != "hello\n" {
		t.Fatalf("ReadFile in sysupgrade image: %q, %v", b, err)
	}

	// A 4 KiB aligned rootfs is found too.
	img4k := append(append(randBytes(4096*3, 10), rootfs...), 0xde, 0xad, 0xc0, 0xde)
	if off, err := FindInImage(bytes.NewReader(img4k), int64(len(img4k))); err != nil || off != 4096*3 {
		t.Errorf("4 KiB aligned: %#x, %v", off, err)
	}
	// No squashfs, or only a truncated one.
	noFS := fakeSysupgrade(kernel, randBytes(100000, 11))
	if _, err := FindInImage(bytes.NewReader(noFS), int64(len(noFS))); !errors.Is(err, ErrNotFound) {
		t.Errorf("no rootfs: %v, want ErrNotFound", err)
	}
	cut := img[:off+int64(len(rootfs))/2]
	if _, err := FindInImage(bytes.NewReader(cut), int64(len(cut))); !errors.Is(err, ErrNotFound) {
		t.Errorf("truncated rootfs: %v, want ErrNotFound", err)
	}
}

// walkAndRead walks the image and reads every regular file, with a cap on
// the bytes read so hostile sparse files cannot make a test slow.
func walkAndRead(ctx context.Context, fsys *FS, limit int64) error {
	return fsys.Walk(ctx, func(e Entry) error {
		if !e.Mode.IsRegular() {
			return nil
		}
		f, err := fsys.OpenEntry(e)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.CopyN(io.Discard, f, limit)
		if err == io.EOF {
			err = nil
		}
		return err
	})
}

func TestCorruptSuperblock(t *testing.T) {
	_, imgs := testImages(t)
	good, err := os.ReadFile(imgs["gzip"])
	if err != nil {
		t.Fatal(err)
	}
	le := func(b []byte, off int, v uint64, n int) {
		for i := 0; i < n; i++ {
			b[off+i] = byte(v >> (8 * i))
		}
	}
	cases := []struct {
		name  string
		patch func(b []byte) []byte
		want  error
	}{
		{"bad magic", func(b []byte) []byte { b[0] = 'x'; return b }, ErrCorrupt},
		{"version 3", func(b []byte) []byte { le(b, 28, 3, 2); return b }, ErrUnsupported},
		{"block size 2 MiB", func(b []byte) []byte { le(b, 12, 2<<20, 4); le(b, 22, 21, 2); return b }, ErrCorrupt},
		{"block size not power of two", func(b []byte) []byte { le(b, 12, 100000, 4); return b }, ErrCorrupt},
		{"block log mismatch", func(b []byte) []byte { le(b, 22, 5, 2); return b }, ErrCorrupt},
		{"unknown compression", func(b []byte) []byte { le(b, 20, 9, 2); return b }, ErrCorrupt},
		{"lzo compression", func(b []byte) []byte { le(b, 20, compLZO, 2); return b }, ErrUnsupported},
		{"bytes used beyond image", func(b []byte) []byte { le(b, 40, uint64(len(b))+1, 8); return b }, ErrCorrupt},
		{"tables out of order", func(b []byte) []byte { copy(b[64:72], b[72:80]); return b }, ErrCorrupt},
		{"root inode outside table", func(b []byte) []byte { le(b, 32, 0xffff_0000_0000, 8); return b }, ErrCorrupt},
		{"id table beyond end", func(b []byte) []byte { le(b, 48, uint64(len(b))-4, 8); return b }, ErrCorrupt},
		{"huge fragment count", func(b []byte) []byte { le(b, 16, 0xffffffff, 4); return b }, ErrCorrupt},
		{"zero inodes", func(b []byte) []byte { le(b, 4, 0, 4); return b }, ErrCorrupt},
		{"truncated superblock", func(b []byte) []byte { return b[:50] }, ErrCorrupt},
		{"truncated image", func(b []byte) []byte { return b[:len(b)/2] }, ErrCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.patch(bytes.Clone(good))
			_, err := Open(bytes.NewReader(b), int64(len(b)))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "squashfs: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// TestCorruptBytes flips bytes all over real images: nothing may panic or
// hang, and damage inside metadata must surface as an error or as a
// difference from the original, never as a crash.
func TestCorruptBytes(t *testing.T) {
	_, imgs := testImages(t)
	for _, name := range []string{"gzip-uncompressed", "mksquashfs-xz"} {
		good, err := os.ReadFile(imgs[name])
		if err != nil {
			t.Fatal(err)
		}
		sb, err := parseSuperblock(good, int64(len(good)))
		if err != nil {
			t.Fatal(err)
		}
		// Flip bytes in the metadata region, where damage matters most.
		start := int(sb.inodeTable)
		step := max(1, (len(good)-start)/400)
		errs := 0
		for off := start; off < len(good); off += step {
			for _, x := range []byte{0x01, 0x80, 0xff} {
				b := bytes.Clone(good)
				b[off] ^= x
				fsys, err := Open(bytes.NewReader(b), int64(len(b)))
				if err != nil {
					errs++
					continue
				}
				if err := walkAndRead(t.Context(), fsys, 4<<20); err != nil {
					errs++
					if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrLoop) && !errors.Is(err, ErrUnsafePath) && !errors.Is(err, ErrTooLarge) {
						t.Errorf("%s: flip %#x at %#x: error without a sentinel: %v", name, x, off, err)
					}
				}
			}
		}
		if errs == 0 {
			t.Errorf("%s: no flipped byte was detected", name)
		}
		// Every truncation fails cleanly.
		used := int(sb.BytesUsed)
		for _, n := range []int{96, 200, start, start + 10, used - 100, used - 1} {
			b := good[:n]
			fsys, err := Open(bytes.NewReader(b), int64(len(b)))
			if err == nil {
				err = walkAndRead(t.Context(), fsys, 4<<20)
			}
			if err == nil {
				t.Errorf("%s: truncated to %d bytes: no error", name, n)
			}
		}
	}
}

// loopImage builds an uncompressed image with /loopdir/child-dir and
// patches child-dir's directory entry to point at target's inode.
func loopImage(t *testing.T, target string) []byte {
	t.Helper()
	tr := &tree{dir: t.TempDir() + "/src", entries: map[string]*want{}}
	for _, d := range []string{"", "/loopdir", "/loopdir/child-dir", "/loopdir/child-dir/leaf"} {
		if err := os.Mkdir(tr.dir+d, 0755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(tr.dir+"/loopdir/child-dir/leaf/f", []byte("x"), 0644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir() + "/loop.sqfs"
	needTool(t, "mksquashfs", "squashfs-tools")
	run(t, nil, "mksquashfs", tr.dir, out, "-noappend", "-quiet", "-no-progress", "-noI", "-noD", "-noF", "-noX", "-all-time", "0", "-mkfs-time", "0")
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := parseSuperblock(b, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	// In the directory table, an entry is 8 bytes (offset, inode delta,
	// type, name size - 1) followed by the name.
	dirs := b[sb.dirTable:]
	entryAt := func(name string) int {
		i := bytes.Index(dirs, []byte(name))
		if i < 8 {
			t.Fatalf("entry %q not found in directory table", name)
		}
		return int(sb.dirTable) + i - 8
	}
	child := entryAt("child-dir")
	var off uint16
	switch target {
	case "self":
		off = uint16(b[entryAt("loopdir")]) | uint16(b[entryAt("loopdir")+1])<<8
	case "root":
		off = uint16(sb.rootInode & 0xffff)
	}
	b[child], b[child+1] = byte(off), byte(off>>8)
	return b
}

func TestDirectoryLoop(t *testing.T) {
	for _, target := range []string{"self", "root"} {
		t.Run(target, func(t *testing.T) {
			b := loopImage(t, target)
			fsys, err := Open(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			err = fsys.Walk(t.Context(), func(Entry) error { return nil })
			if !errors.Is(err, ErrLoop) {
				t.Fatalf("Walk: %v, want ErrLoop", err)
			}
			t.Logf("error: %v", err)
			// Path resolution terminates too: the loop only makes paths
			// longer, and each lookup reads one listing.
			deep := strings.Repeat("child-dir/", 20)
			if target == "self" {
				deep = "loopdir/" + deep
			}
			_, err = fsys.Stat(path.Clean(deep))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Logf("Stat through loop: %v", err)
			}
		})
	}
}

func TestWalkSkipAndCancel(t *testing.T) {
	_, imgs := testImages(t)
	fsys, _ := openImage(t, imgs["gzip"])
	var got []string
	err := fsys.Walk(t.Context(), func(e Entry) error {
		got = append(got, e.Path)
		switch e.Path {
		case "many", "usr":
			return fs.SkipDir
		case "etc/hard":
			return fs.SkipDir // skips the rest of etc
		case "sparse":
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range got {
		if strings.HasPrefix(p, "many/") || strings.HasPrefix(p, "usr/") || p > "etc/hard" && strings.HasPrefix(p, "etc/") || p == "var" {
			t.Errorf("walk visited %s despite SkipDir/SkipAll", p)
		}
	}
	if got[len(got)-1] != "sparse" {
		t.Errorf("walk did not stop at sparse: last %s", got[len(got)-1])
	}
	ctx, cancel := context.WithCancel(t.Context())
	n := 0
	err = fsys.Walk(ctx, func(e Entry) error {
		if n++; n == 5 {
			cancel()
		}
		return nil
	})
	if err == nil || n > 6 {
		t.Fatalf("canceled walk: %v after %d entries", err, n)
	}
}

// TestConcurrentReads reads all files from several goroutines through one
// FS, which shares its metadata and fragment caches; run with -race.
func TestConcurrentReads(t *testing.T) {
	tr, imgs := testImages(t)
	fsys, _ := openImage(t, imgs["zstd"])
	var files []string
	for p, w := range tr.entries {
		if w.mode.IsRegular() {
			files = append(files, p)
		}
	}
	slices.Sort(files)
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for i := g; i < len(files); i += 2 {
				b, err := fs.ReadFile(fsys, files[i])
				if err == nil && !bytes.Equal(b, tr.entries[files[i]].data) {
					err = fmt.Errorf("%s: contents differ", files[i])
				}
				if err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
