package squashfs

import (
	"encoding/binary"
	"fmt"
	"strings"
)

const maxDirEntries = 256 // entries per directory header, as the kernel checks

// dirent is one directory entry as stored in the directory table.
type dirent struct {
	name   string
	ref    uint64 // inode reference
	typ    uint16 // basic inode type
	number uint32
}

// dirIter walks a directory listing in storage order, which mksquashfs
// sorts by name; the order is checked because lookups rely on it.
type dirIter struct {
	m     *metaReader
	left  int64 // listing bytes not yet read
	count int   // entries left under the current header
	block uint32
	base  uint32
	prev  string
	first bool
}

func (f *FS) dirTable() table {
	return table{"directory table", int64(f.sb.dirTable), f.dirEnd}
}

// openDir starts iterating dir's listing.
func (f *FS) openDir(dir *inode) (*dirIter, error) {
	return f.openDirAt(dir, dir.dirBlock, 0)
}

// openDirAt starts at byte skip of the listing, which begins in the
// metadata block at relative position block; directory indexes give such
// starting points. Blocks before the last are full, so the offset in the
// block follows from the listing's start offset and skip.
func (f *FS) openDirAt(dir *inode, block uint32, skip int64) (*dirIter, error) {
	it := &dirIter{left: dir.size - 3 - skip, first: true}
	if it.left < 0 {
		return nil, fmt.Errorf("squashfs: directory inode %#x: %w: index beyond listing of %d bytes", dir.ref, ErrCorrupt, dir.size-3)
	}
	if it.left == 0 {
		return it, nil
	}
	t := f.dirTable()
	m, err := f.newMetaReader(t, t.start+int64(block), int((int64(dir.dirOffset)+skip)%metaSize), false)
	if err != nil {
		return nil, fmt.Errorf("squashfs: directory inode %#x: %w", dir.ref, err)
	}
	it.m = m
	return it, nil
}

// next returns the next entry, or ok == false at the end of the listing.
func (it *dirIter) next() (d dirent, ok bool, err error) {
	if it.left == 0 {
		if it.count != 0 {
			return d, false, fmt.Errorf("squashfs: %s: %w: listing ends %d entries early", it.m.where(), ErrCorrupt, it.count)
		}
		return d, false, nil
	}
	where := it.m.where()
	bad := func(format string, a ...any) (dirent, bool, error) {
		return dirent{}, false, fmt.Errorf("squashfs: directory entry at %s: %w: %s", where, ErrCorrupt, fmt.Sprintf(format, a...))
	}
	le := binary.LittleEndian
	if it.count == 0 {
		if it.left < 12 {
			return bad("listing ends inside a header")
		}
		var h [12]byte
		if err := it.m.read(h[:]); err != nil {
			return d, false, err
		}
		it.left -= 12
		c := int64(le.Uint32(h[0:])) + 1
		if c > maxDirEntries {
			return bad("header with %d entries, limit %d", c, maxDirEntries)
		}
		it.count = int(c)
		it.block = le.Uint32(h[4:])
		it.base = le.Uint32(h[8:])
		where = it.m.where()
	}
	if it.left < 8 {
		return bad("listing ends inside an entry")
	}
	var e [8]byte
	if err := it.m.read(e[:]); err != nil {
		return d, false, err
	}
	it.left -= 8
	off := le.Uint16(e[0:])
	delta := int16(le.Uint16(e[2:]))
	typ := le.Uint16(e[4:])
	n := int64(le.Uint16(e[6:])) + 1
	if n > 256 {
		return bad("name of %d bytes", n)
	}
	if it.left < n {
		return bad("name runs past the listing")
	}
	name := make([]byte, n)
	if err := it.m.read(name); err != nil {
		return d, false, err
	}
	it.left -= n
	it.count--
	if off >= metaSize {
		return bad("inode offset %d", off)
	}
	if typ < typeDir || typ > typeSocket {
		return bad("entry type %d", typ)
	}
	s := string(name)
	if s == "." || s == ".." || strings.ContainsAny(s, "/\x00") {
		return dirent{}, false, fmt.Errorf("squashfs: directory entry at %s: %w: %q", where, ErrUnsafePath, s)
	}
	if !it.first && s <= it.prev {
		return bad("name %q not sorted after %q", s, it.prev)
	}
	it.first, it.prev = false, s
	return dirent{
		name:   s,
		ref:    uint64(it.block)<<16 | uint64(off),
		typ:    typ,
		number: uint32(int64(it.base) + int64(delta)),
	}, true, nil
}

// lookup finds name in dir. It uses the directory index of large
// directories to skip to the metadata block that can hold the name.
func (f *FS) lookup(dir *inode, name string) (dirent, bool, error) {
	block, skip := dir.dirBlock, int64(0)
	if dir.dirIndexCount > 0 {
		m, err := f.newMetaReader(f.inodeTable(), dir.dirIndexPos.pos, dir.dirIndexPos.off, true)
		if err != nil {
			return dirent{}, false, err
		}
		var buf [256]byte
		for i := 0; i < dir.dirIndexCount; i++ {
			var e [12]byte
			if err := m.read(e[:]); err != nil {
				return dirent{}, false, err
			}
			n := int(binary.LittleEndian.Uint32(e[8:])) + 1
			if n > len(buf) {
				return dirent{}, false, fmt.Errorf("squashfs: directory index at %s: %w: name of %d bytes", m.where(), ErrCorrupt, n)
			}
			if err := m.read(buf[:n]); err != nil {
				return dirent{}, false, err
			}
			if string(buf[:n]) > name {
				break
			}
			skip = int64(binary.LittleEndian.Uint32(e[0:]))
			block = binary.LittleEndian.Uint32(e[4:])
		}
	}
	it, err := f.openDirAt(dir, block, skip)
	if err != nil {
		return dirent{}, false, err
	}
	for {
		d, ok, err := it.next()
		if err != nil || !ok {
			return dirent{}, false, err
		}
		if d.name == name {
			return d, true, nil
		}
		if d.name > name {
			return dirent{}, false, nil
		}
	}
}
