package squashfs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"
)

const (
	maxDepth    = 512 // directory nesting accepted by Walk
	maxSymlinks = 40  // symbolic links followed while resolving one path, as Linux
)

// FS is an open squashfs image. It implements io/fs.FS, fs.StatFS,
// fs.ReadDirFS and fs.ReadLinkFS, and is safe for concurrent use.
//
// Open follows symbolic links inside the image as a chroot would: absolute
// targets start at the image root and ".." stops there. Walk, Lstat and
// ReadLink do not follow them.
type FS struct {
	r      io.ReaderAt
	used   int64
	sb     Superblock
	dec    decompressor
	ids    []uint32
	dirEnd int64
	root   *inode

	meta  metaCache
	frags fragCache
	bufs  sync.Pool     // *[]byte of BlockSize, for compressed input and file blocks
	zero  func() []byte // BlockSize zero bytes for sparse blocks
}

var (
	_ fs.FS         = (*FS)(nil)
	_ fs.StatFS     = (*FS)(nil)
	_ fs.ReadDirFS  = (*FS)(nil)
	_ fs.ReadLinkFS = (*FS)(nil)
)

// Open reads and checks the superblock, the id table and the root inode of
// the squashfs image in r, which is size bytes long.
func Open(r io.ReaderAt, size int64) (*FS, error) {
	var b [superblockSize]byte
	if size < superblockSize {
		return nil, fmt.Errorf("squashfs: superblock at 0x0: %w: image of %d bytes", ErrCorrupt, size)
	}
	if n, err := r.ReadAt(b[:], 0); n < len(b) {
		return nil, fmt.Errorf("squashfs: reading superblock: %w", err)
	}
	sb, err := parseSuperblock(b[:], size)
	if err != nil {
		return nil, err
	}
	f := &FS{r: r, used: int64(sb.BytesUsed), sb: sb}
	if f.dec, err = newDecompressor(sb.compID, sb.BlockSize); err != nil {
		return nil, err
	}
	bs := int(sb.BlockSize)
	f.bufs.New = func() any { b := make([]byte, bs); return &b }
	f.zero = sync.OnceValue(func() []byte { return make([]byte, bs) })

	// The directory table ends where the next table's metadata begins.
	f.dirEnd = f.used
	for _, t := range []uint64{sb.idTable, sb.fragmentTable, sb.exportTable, sb.xattrTable} {
		if t != invalidTable && t > sb.dirTable && int64(t) < f.dirEnd {
			f.dirEnd = int64(t)
		}
	}
	if err := f.readIDs(); err != nil {
		return nil, err
	}
	if sb.FragmentCount > 0 {
		if first, err := f.lookupEntry(int64(sb.fragmentTable), 0, "fragment table"); err == nil && int64(first) > int64(sb.dirTable) && int64(first) < f.dirEnd {
			f.dirEnd = int64(first)
		}
	}
	if f.root, err = f.readInode(sb.rootInode); err != nil {
		return nil, fmt.Errorf("squashfs: root inode: %w", err)
	}
	if f.root.typ != typeDir {
		return nil, fmt.Errorf("squashfs: root inode %#x: %w: not a directory", sb.rootInode, ErrCorrupt)
	}
	return f, nil
}

// Superblock returns the image's superblock fields.
func (f *FS) Superblock() Superblock { return f.sb }

// lookupEntry reads entry i of a lookup table: an array of u64 metadata
// block positions at off.
func (f *FS) lookupEntry(off int64, i uint32, what string) (uint64, error) {
	var b [8]byte
	if err := f.readAt(b[:], off+8*int64(i), what+" lookup"); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

func (f *FS) readIDs() error {
	n := int(f.sb.IDCount)
	f.ids = make([]uint32, 0, n)
	t := table{"id table", superblockSize, int64(f.sb.idTable)}
	for blk := uint32(0); len(f.ids) < n; blk++ {
		pos, err := f.lookupEntry(int64(f.sb.idTable), blk, "id table")
		if err != nil {
			return err
		}
		if pos > uint64(t.end) {
			return fmt.Errorf("squashfs: id table lookup at 0x%x: %w: block position 0x%x", f.sb.idTable, ErrCorrupt, pos)
		}
		b, err := f.metaBlockAt(t, int64(pos))
		if err != nil {
			return err
		}
		want := min(n-len(f.ids), metaSize/4)
		if len(b.data) < want*4 {
			return fmt.Errorf("squashfs: id table block at 0x%x: %w: %d bytes, want %d", pos, ErrCorrupt, len(b.data), want*4)
		}
		for i := 0; i < want; i++ {
			f.ids = append(f.ids, binary.LittleEndian.Uint32(b.data[4*i:]))
		}
	}
	return nil
}

// Entry describes one file, directory, link or special file.
type Entry struct {
	Path    string      // slash-separated, relative to the root; "." for the root
	Mode    fs.FileMode // type and permission bits, including setuid/setgid/sticky
	UID     uint32
	GID     uint32
	ModTime int64  // squashfs mtime, seconds since the epoch
	Size    int64  // file bytes; symlink target length; directory listing size + 3
	Target  string // symlink target
	Inode   uint32 // squashfs inode number; hard links share it
	Nlink   uint32
	Major   uint32 // device numbers of block and character devices
	Minor   uint32

	ref uint64
}

func entryOf(in *inode, p string) Entry {
	e := Entry{
		Path: p, Mode: in.mode, UID: in.uid, GID: in.gid, ModTime: int64(in.mtime),
		Size: in.size, Target: in.target, Inode: in.number, Nlink: in.nlink, ref: in.ref,
	}
	if in.typ == typeBlock || in.typ == typeChar {
		e.Major, e.Minor = devMajor(in.rdev), devMinor(in.rdev)
	}
	return e
}

// Walk calls fn for the root and then every entry below it, depth first,
// with each directory's entries in byte order of their names (the order
// fs.WalkDir uses). Returning fs.SkipDir from fn skips a directory, or the
// rest of the current directory for a non-directory; fs.SkipAll stops the
// walk. Symbolic links are reported, not followed.
//
// A directory reachable twice (a loop, or a shared subtree that could make
// the walk exponential) fails with ErrLoop.
func (f *FS) Walk(ctx context.Context, fn func(Entry) error) error {
	w := walker{ctx: ctx, f: f, fn: fn, seen: map[uint64]bool{}, listings: map[uint64]bool{}}
	err := fn(entryOf(f.root, "."))
	if err == nil {
		err = w.dir(f.root, "", 0)
	}
	if err == fs.SkipDir || err == fs.SkipAll {
		return nil
	}
	return err
}

type walker struct {
	ctx      context.Context
	f        *FS
	fn       func(Entry) error
	seen     map[uint64]bool // directory inode references entered
	listings map[uint64]bool // non-empty listing positions read
}

func (w *walker) dir(dir *inode, p string, depth int) error {
	show := p
	if show == "" {
		show = "."
	}
	if depth > maxDepth {
		return fmt.Errorf("squashfs: directory %q: %w: nested deeper than %d", show, ErrTooLarge, maxDepth)
	}
	if w.seen[dir.ref] {
		return fmt.Errorf("squashfs: directory %q (inode %#x): %w: directory reached twice", show, dir.ref, ErrLoop)
	}
	w.seen[dir.ref] = true
	if dir.size > 3 {
		key := uint64(dir.dirBlock)<<16 | uint64(dir.dirOffset)
		if w.listings[key] {
			return fmt.Errorf("squashfs: directory %q (inode %#x): %w: listing shared with another directory", show, dir.ref, ErrLoop)
		}
		w.listings[key] = true
	}
	it, err := w.f.openDir(dir)
	if err != nil {
		return err
	}
	for {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		d, ok, err := it.next()
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		child, err := w.f.readInode(d.ref)
		if err != nil {
			return err
		}
		cp := d.name
		if p != "" {
			cp = p + "/" + d.name
		}
		if child.typ != d.typ {
			return fmt.Errorf("squashfs: directory entry %q: %w: entry type %d, inode type %d", cp, ErrCorrupt, d.typ, child.typ)
		}
		err = w.fn(entryOf(child, cp))
		if child.typ == typeDir {
			if err == fs.SkipDir {
				continue
			}
			if err == nil {
				err = w.dir(child, cp, depth+1)
			}
		}
		if err == fs.SkipDir {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// resolve finds the inode for name, following symbolic links in every
// component, and in the last one too if follow is set.
func (f *FS) resolve(op, name string, follow bool) (*inode, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	fail := func(err error) (*inode, error) { return nil, &fs.PathError{Op: op, Path: name, Err: err} }
	stack := []*inode{f.root}
	var comps []string
	if name != "." {
		comps = strings.Split(name, "/")
	}
	hops := 0
	for len(comps) > 0 {
		c := comps[0]
		comps = comps[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		cur := stack[len(stack)-1]
		if cur.typ != typeDir {
			return fail(fmt.Errorf("%w: not a directory", fs.ErrNotExist))
		}
		d, ok, err := f.lookup(cur, c)
		if err != nil {
			return fail(err)
		}
		if !ok {
			return fail(fs.ErrNotExist)
		}
		child, err := f.readInode(d.ref)
		if err != nil {
			return fail(err)
		}
		if child.typ == typeSymlink && (len(comps) > 0 || follow) {
			if hops++; hops > maxSymlinks {
				return fail(fmt.Errorf("%w: more than %d symbolic links", ErrLoop, maxSymlinks))
			}
			if strings.HasPrefix(child.target, "/") {
				stack = stack[:1]
			}
			comps = append(strings.Split(child.target, "/"), comps...)
			continue
		}
		if len(stack) > maxDepth {
			return fail(fmt.Errorf("%w: path deeper than %d", ErrTooLarge, maxDepth))
		}
		stack = append(stack, child)
	}
	return stack[len(stack)-1], nil
}

// Open opens the named file, following symbolic links inside the image.
// Directories implement fs.ReadDirFile; regular files stream their
// contents block by block.
func (f *FS) Open(name string) (fs.File, error) {
	in, err := f.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	return f.openInode(in, path.Base(name)), nil
}

// OpenEntry opens an entry reported by Walk without looking its path up
// again, and without following a symbolic link.
func (f *FS) OpenEntry(e Entry) (fs.File, error) {
	in, err := f.readInode(e.ref)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: e.Path, Err: err}
	}
	return f.openInode(in, path.Base(e.Path)), nil
}

func (f *FS) openInode(in *inode, name string) fs.File {
	fi := fileInfo{name: name, e: entryOf(in, name)}
	switch in.typ {
	case typeDir:
		return &dirFile{f: f, in: in, fi: fi}
	case typeFile:
		return &File{f: f, in: in, fi: fi}
	}
	return &specialFile{fi: fi}
}

// Stat returns information about the named file, following symbolic links.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	in, err := f.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return fileInfo{name: path.Base(name), e: entryOf(in, name)}, nil
}

// Lstat is Stat without following a symbolic link in the last component.
func (f *FS) Lstat(name string) (fs.FileInfo, error) {
	in, err := f.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return fileInfo{name: path.Base(name), e: entryOf(in, name)}, nil
}

// ReadLink returns the target of the named symbolic link.
func (f *FS) ReadLink(name string) (string, error) {
	in, err := f.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if in.typ != typeSymlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return in.target, nil
}

// ReadDir returns the entries of the named directory, sorted by name.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	in, err := f.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	d := &dirFile{f: f, in: in}
	return d.ReadDir(-1)
}

type fileInfo struct {
	name string
	e    Entry
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.e.Size }
func (i fileInfo) Mode() fs.FileMode  { return i.e.Mode }
func (i fileInfo) ModTime() time.Time { return time.Unix(i.e.ModTime, 0).UTC() }
func (i fileInfo) IsDir() bool        { return i.e.Mode.IsDir() }

// Sys returns the *Entry with owner, inode and device numbers.
func (i fileInfo) Sys() any { e := i.e; return &e }

type specialFile struct{ fi fileInfo }

func (s *specialFile) Stat() (fs.FileInfo, error) { return s.fi, nil }
func (s *specialFile) Close() error               { return nil }

// Read reports EOF: the image stores no contents for device nodes, fifos
// and sockets.
func (s *specialFile) Read([]byte) (int, error) { return 0, io.EOF }

type dirFile struct {
	f   *FS
	in  *inode
	fi  fileInfo
	it  *dirIter
	eof bool
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.fi, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.fi.name, Err: errors.New("is a directory")}
}

// maxReadDir bounds ReadDir(-1), which has to hold a whole directory.
const maxReadDir = 1 << 20

// ReadDir implements fs.ReadDirFile.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if d.it == nil && !d.eof {
		it, err := d.f.openDir(d.in)
		if err != nil {
			return nil, err
		}
		d.it = it
	}
	var out []fs.DirEntry
	for (n <= 0 || len(out) < n) && !d.eof {
		de, ok, err := d.it.next()
		if err != nil {
			return out, err
		}
		if !ok {
			d.eof = true
			break
		}
		if len(out) >= maxReadDir {
			return out, fmt.Errorf("squashfs: directory %q: %w: more than %d entries", d.fi.name, ErrTooLarge, maxReadDir)
		}
		out = append(out, dirEntry{f: d.f, d: de})
	}
	if n > 0 && len(out) == 0 {
		return nil, io.EOF
	}
	return out, nil
}

type dirEntry struct {
	f *FS
	d dirent
}

func (e dirEntry) Name() string { return e.d.name }
func (e dirEntry) IsDir() bool  { return e.d.typ == typeDir }
func (e dirEntry) Type() fs.FileMode {
	switch e.d.typ {
	case typeDir:
		return fs.ModeDir
	case typeSymlink:
		return fs.ModeSymlink
	case typeBlock:
		return fs.ModeDevice
	case typeChar:
		return fs.ModeDevice | fs.ModeCharDevice
	case typeFifo:
		return fs.ModeNamedPipe
	case typeSocket:
		return fs.ModeSocket
	}
	return 0
}

func (e dirEntry) Info() (fs.FileInfo, error) {
	in, err := e.f.readInode(e.d.ref)
	if err != nil {
		return nil, err
	}
	if in.typ != e.d.typ {
		return nil, fmt.Errorf("squashfs: directory entry %q: %w: entry type %d, inode type %d", e.d.name, ErrCorrupt, e.d.typ, in.typ)
	}
	return fileInfo{name: e.d.name, e: entryOf(in, e.d.name)}, nil
}
