package squashfs

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"unsafe"
)

// lsetxattr sets an extended attribute without following symlinks;
// package syscall has no wrapper for it.
func lsetxattr(t *testing.T, path, name string, value []byte) {
	t.Helper()
	p, _ := syscall.BytePtrFromString(path)
	n, _ := syscall.BytePtrFromString(name)
	_, _, errno := syscall.Syscall6(syscall.SYS_LSETXATTR, uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(n)),
		uintptr(unsafe.Pointer(&value[0])), uintptr(len(value)), 0, 0)
	if errno != 0 {
		t.Fatalf("lsetxattr %s %s: %v (the test needs root and a file system with trusted.* xattrs, such as tmpfs or ext4)", path, name, errno)
	}
}

// TestExtendedInodes gives every kind of entry an xattr, which makes
// mksquashfs write the extended inode variants (symlink, device, fifo,
// directory, file), and checks they decode like the basic ones.
func TestExtendedInodes(t *testing.T) {
	needTool(t, "mksquashfs", "squashfs-tools")
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(src, "dir"), 0755)
	os.WriteFile(filepath.Join(src, "dir/file"), []byte("extended file\n"), 0644)
	os.Symlink("file", filepath.Join(src, "dir/link"))
	if err := syscall.Mknod(filepath.Join(src, "dir/tty"), syscall.S_IFCHR|0620, int(4<<8|64)); err != nil {
		t.Fatalf("mknod (the test needs root): %v", err)
	}
	os.Chmod(filepath.Join(src, "dir/tty"), 0620)
	if err := syscall.Mkfifo(filepath.Join(src, "dir/fifo"), 0600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"dir", "dir/file", "dir/link", "dir/tty", "dir/fifo"} {
		lsetxattr(t, filepath.Join(src, p), "trusted.torwrt", []byte("x"))
	}
	img := filepath.Join(t.TempDir(), "x.sqfs")
	run(t, nil, "mksquashfs", src, img, "-quiet", "-no-progress", "-xattrs", "-comp", "gzip", "-all-time", "1", "-mkfs-time", "1")
	fsys, _ := openImage(t, img)
	var got []string
	for _, e := range walkAll(t, fsys) {
		got = append(got, listLine(e))
		if e.Path == "." {
			continue
		}
		in, err := fsys.readInode(e.ref)
		if err != nil {
			t.Fatal(err)
		}
		if !in.extXatt {
			t.Errorf("%s: not an extended inode with an xattr", e.Path)
		}
		if e.Path == "dir/tty" && (e.Major != 4 || e.Minor != 64 || e.Mode != fs.ModeDevice|fs.ModeCharDevice|0620) {
			t.Errorf("tty: %v %d,%d", e.Mode, e.Major, e.Minor)
		}
	}
	if want := unsquashfsList(t, img); !slices.Equal(got, want) {
		t.Errorf("listing:\n%q\nunsquashfs:\n%q", got, want)
	}
	if b, err := fs.ReadFile(fsys, "dir/link"); err != nil || !bytes.Equal(b, []byte("extended file\n")) {
		t.Errorf("extended symlink: %q, %v", b, err)
	}
}
