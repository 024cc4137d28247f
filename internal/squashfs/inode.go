package squashfs

import (
	"encoding/binary"
	"fmt"
	"io/fs"
)

// Inode types.
const (
	typeDir     = 1
	typeFile    = 2
	typeSymlink = 3
	typeBlock   = 4
	typeChar    = 5
	typeFifo    = 6
	typeSocket  = 7
	typeExt     = 7 // added to a basic type for its extended variant
)

const (
	maxSymlink  = 4096
	maxDirIndex = 1 << 16
)

// inode is a decoded inode. Only the fields of its type are set.
type inode struct {
	ref     uint64 // where it was read: block<<16 | offset
	typ     uint16 // basic type 1..7
	mode    fs.FileMode
	uid     uint32
	gid     uint32
	mtime   uint32
	number  uint32
	nlink   uint32
	size    int64 // file size, directory listing size + 3, symlink length
	target  string
	rdev    uint32
	extXatt bool

	// directories
	dirBlock      uint32 // listing position relative to the directory table
	dirOffset     uint16
	dirIndexCount int
	dirIndexPos   metaPos

	// regular files
	dataStart  int64
	fragment   uint32
	fragOffset uint32
	blockList  metaPos // where the block size list starts
	nblocks    int64
}

// metaPos is a position in a metadata stream: a block and an offset in it.
type metaPos struct {
	pos int64
	off int
}

func (f *FS) inodeTable() table {
	return table{"inode table", int64(f.sb.inodeTable), int64(f.sb.dirTable)}
}

// readInode decodes the inode at ref.
func (f *FS) readInode(ref uint64) (*inode, error) {
	blk, off := ref>>16, ref&0xffff
	t := f.inodeTable()
	if blk >= uint64(t.end-t.start) || off >= metaSize {
		return nil, fmt.Errorf("squashfs: inode reference %#x: %w: outside inode table", ref, ErrCorrupt)
	}
	m, err := f.newMetaReader(t, t.start+int64(blk), int(off), false)
	if err != nil {
		return nil, err
	}
	where := m.where()
	bad := func(format string, a ...any) (*inode, error) {
		return nil, fmt.Errorf("squashfs: inode at %s: %w: %s", where, ErrCorrupt, fmt.Sprintf(format, a...))
	}
	var h [16]byte
	if err := m.read(h[:]); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	typ := le.Uint16(h[0:])
	perm := le.Uint16(h[2:])
	uidIdx, gidIdx := le.Uint16(h[4:]), le.Uint16(h[6:])
	in := &inode{ref: ref, mtime: le.Uint32(h[8:]), number: le.Uint32(h[12:])}
	if typ == 0 || typ > typeSocket+typeExt {
		return bad("unknown type %d", typ)
	}
	ext := typ > typeSocket
	in.typ = typ
	if ext {
		in.typ -= typeExt
	}
	if int(uidIdx) >= len(f.ids) || int(gidIdx) >= len(f.ids) {
		return bad("uid/gid index %d/%d beyond id table of %d", uidIdx, gidIdx, len(f.ids))
	}
	in.uid, in.gid = f.ids[uidIdx], f.ids[gidIdx]
	in.mode = fs.FileMode(perm & 0777)
	if perm&0o4000 != 0 {
		in.mode |= fs.ModeSetuid
	}
	if perm&0o2000 != 0 {
		in.mode |= fs.ModeSetgid
	}
	if perm&0o1000 != 0 {
		in.mode |= fs.ModeSticky
	}

	switch {
	case typ == typeDir:
		var b [16]byte
		if err := m.read(b[:]); err != nil {
			return nil, err
		}
		in.mode |= fs.ModeDir
		in.dirBlock = le.Uint32(b[0:])
		in.nlink = le.Uint32(b[4:])
		in.size = int64(le.Uint16(b[8:]))
		in.dirOffset = le.Uint16(b[10:])
	case typ == typeDir+typeExt:
		var b [24]byte
		if err := m.read(b[:]); err != nil {
			return nil, err
		}
		in.mode |= fs.ModeDir
		in.nlink = le.Uint32(b[0:])
		in.size = int64(le.Uint32(b[4:]))
		in.dirBlock = le.Uint32(b[8:])
		count := int(le.Uint16(b[16:]))
		in.dirOffset = le.Uint16(b[18:])
		in.extXatt = le.Uint32(b[20:]) != noXattr
		// The index is parsed lazily by lookups, so a hostile count costs
		// no memory here.
		in.dirIndexCount = count
		in.dirIndexPos = metaPos{m.pos, m.off}
	case typ == typeFile || typ == typeFile+typeExt:
		var fileSize uint64
		if typ == typeFile {
			var b [16]byte
			if err := m.read(b[:]); err != nil {
				return nil, err
			}
			in.dataStart = int64(le.Uint32(b[0:]))
			in.fragment = le.Uint32(b[4:])
			in.fragOffset = le.Uint32(b[8:])
			fileSize = uint64(le.Uint32(b[12:]))
			in.nlink = 1
		} else {
			var b [40]byte
			if err := m.read(b[:]); err != nil {
				return nil, err
			}
			start := le.Uint64(b[0:])
			fileSize = le.Uint64(b[8:])
			in.nlink = le.Uint32(b[24:])
			in.fragment = le.Uint32(b[28:])
			in.fragOffset = le.Uint32(b[32:])
			in.extXatt = le.Uint32(b[36:]) != noXattr
			if start > uint64(f.used) {
				return bad("data start 0x%x beyond image", start)
			}
			in.dataStart = int64(start)
		}
		if in.dataStart > f.used {
			return bad("data start 0x%x beyond image", in.dataStart)
		}
		bs := uint64(f.sb.BlockSize)
		nblocks := fileSize / bs
		if in.fragment == noFragment {
			if fileSize%bs != 0 {
				nblocks++
			}
		} else {
			if in.fragment >= f.sb.FragmentCount {
				return bad("fragment %d beyond %d fragments", in.fragment, f.sb.FragmentCount)
			}
			if uint64(in.fragOffset)+fileSize%bs > bs {
				return bad("fragment offset %d plus tail %d beyond block size", in.fragOffset, fileSize%bs)
			}
		}
		// Every block needs a 4-byte size in the inode table, so the
		// table's size bounds the file size before anything is looped over.
		if nblocks > uint64(m.remainingBound()/4) {
			return bad("file size %d needs %d block sizes, more than the inode table holds", fileSize, nblocks)
		}
		in.size = int64(fileSize)
		in.nblocks = int64(nblocks)
		in.blockList = metaPos{m.pos, m.off}
	case typ == typeSymlink || typ == typeSymlink+typeExt:
		var b [8]byte
		if err := m.read(b[:]); err != nil {
			return nil, err
		}
		in.mode |= fs.ModeSymlink
		in.nlink = le.Uint32(b[0:])
		n := le.Uint32(b[4:])
		if n == 0 || n > maxSymlink {
			return bad("symlink target of %d bytes", n)
		}
		t := make([]byte, n)
		if err := m.read(t); err != nil {
			return nil, err
		}
		in.target = string(t)
		in.size = int64(n)
		if ext {
			x, err := m.u32()
			if err != nil {
				return nil, err
			}
			in.extXatt = x != noXattr
		}
	case in.typ == typeBlock || in.typ == typeChar:
		var b [8]byte
		if err := m.read(b[:]); err != nil {
			return nil, err
		}
		in.nlink = le.Uint32(b[0:])
		in.rdev = le.Uint32(b[4:])
		if ext {
			x, err := m.u32()
			if err != nil {
				return nil, err
			}
			in.extXatt = x != noXattr
		}
		in.mode |= fs.ModeDevice
		if in.typ == typeChar {
			in.mode |= fs.ModeCharDevice
		}
	case in.typ == typeFifo || in.typ == typeSocket:
		n, err := m.u32()
		if err != nil {
			return nil, err
		}
		in.nlink = n
		if ext {
			x, err := m.u32()
			if err != nil {
				return nil, err
			}
			in.extXatt = x != noXattr
		}
		if in.typ == typeFifo {
			in.mode |= fs.ModeNamedPipe
		} else {
			in.mode |= fs.ModeSocket
		}
	}
	if in.typ == typeDir && in.size < 3 {
		return bad("directory size %d below 3", in.size)
	}
	return in, nil
}

// major and minor decode a Linux dev_t as the kernel's new_decode_dev does.
func devMajor(rdev uint32) uint32 { return (rdev >> 8) & 0xfff }
func devMinor(rdev uint32) uint32 { return rdev&0xff | (rdev>>12)&0xfff00 }
