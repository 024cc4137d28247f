// Package squashfs reads squashfs 4.0 images (little-endian, as written by
// mksquashfs and squashfs-tools-ng) such as the root filesystem inside an
// OpenWrt sysupgrade image.
//
// The reader is meant for images that may be hostile: every offset is
// checked against the image size and the table it belongs to, decompressed
// sizes are bounded by the block size (at most 1 MiB) or the 8 KiB metadata
// block size, directory loops are detected, and memory stays bounded by a
// few blocks however large the image is. Errors wrap one of the sentinel
// errors below and say where in the image the problem is; offsets are
// relative to the start of the squashfs.
package squashfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrCorrupt reports an image that violates the squashfs format.
	ErrCorrupt = errors.New("corrupt")
	// ErrLoop reports a directory that is its own ancestor or is reachable
	// twice, or too many symbolic links while resolving a path.
	ErrLoop = errors.New("directory loop")
	// ErrTooLarge reports a size or count beyond the reader's limits.
	ErrTooLarge = errors.New("too large")
	// ErrUnsafePath reports a directory entry name that could escape a
	// directory when extracted ("..", ".", names with '/' or NUL).
	ErrUnsafePath = errors.New("unsafe name")
	// ErrUnsupported reports a valid image using a feature this reader does
	// not implement (lzo, lz4 or lzma compression).
	ErrUnsupported = errors.New("unsupported")
	// ErrNotFound reports that FindInImage found no valid superblock.
	ErrNotFound = errors.New("squashfs: no valid superblock found")
)

const (
	magic          = 0x73717368 // "hsqs" read little-endian
	superblockSize = 96
	metaSize       = 8192    // uncompressed metadata block size
	maxBlockSize   = 1 << 20 // squashfs 4.0 limit
	minBlockSize   = 4096
	invalidTable   = ^uint64(0)
	noFragment     = 0xffffffff
	noXattr        = 0xffffffff
)

// Compression identifiers in the superblock.
const (
	compGzip = 1
	compLZMA = 2
	compLZO  = 3
	compXZ   = 4
	compLZ4  = 5
	compZstd = 6
)

var compNames = map[uint16]string{compGzip: "gzip", compLZMA: "lzma", compLZO: "lzo", compXZ: "xz", compLZ4: "lz4", compZstd: "zstd"}

// Superblock holds the fields of a squashfs 4.0 superblock.
type Superblock struct {
	InodeCount    uint32
	ModTime       uint32 // mkfs time (squashfs mtime), seconds since the epoch
	BlockSize     uint32
	FragmentCount uint32
	Compression   string // "gzip", "xz", "zstd", ...
	Flags         uint16
	IDCount       uint16
	BytesUsed     uint64

	compID        uint16
	blockLog      uint16
	rootInode     uint64
	idTable       uint64
	xattrTable    uint64
	inodeTable    uint64
	dirTable      uint64
	fragmentTable uint64
	exportTable   uint64
}

// parseSuperblock decodes and validates the 96 superblock bytes of an image
// of the given size.
func parseSuperblock(b []byte, size int64) (Superblock, error) {
	var s Superblock
	bad := func(format string, a ...any) (Superblock, error) {
		return Superblock{}, fmt.Errorf("squashfs: superblock at 0x0: %w: %s", ErrCorrupt, fmt.Sprintf(format, a...))
	}
	if len(b) < superblockSize {
		return bad("truncated (%d bytes)", len(b))
	}
	le := binary.LittleEndian
	if le.Uint32(b[0:]) != magic {
		return bad("bad magic %#x", le.Uint32(b[0:]))
	}
	s.InodeCount = le.Uint32(b[4:])
	s.ModTime = le.Uint32(b[8:])
	s.BlockSize = le.Uint32(b[12:])
	s.FragmentCount = le.Uint32(b[16:])
	s.compID = le.Uint16(b[20:])
	s.blockLog = le.Uint16(b[22:])
	s.Flags = le.Uint16(b[24:])
	s.IDCount = le.Uint16(b[26:])
	major, minor := le.Uint16(b[28:]), le.Uint16(b[30:])
	s.rootInode = le.Uint64(b[32:])
	s.BytesUsed = le.Uint64(b[40:])
	s.idTable = le.Uint64(b[48:])
	s.xattrTable = le.Uint64(b[56:])
	s.inodeTable = le.Uint64(b[64:])
	s.dirTable = le.Uint64(b[72:])
	s.fragmentTable = le.Uint64(b[80:])
	s.exportTable = le.Uint64(b[88:])

	if major != 4 || minor != 0 {
		return Superblock{}, fmt.Errorf("squashfs: superblock at 0x0: %w: version %d.%d, want 4.0", ErrUnsupported, major, minor)
	}
	if s.BlockSize < minBlockSize || s.BlockSize > maxBlockSize || bits.OnesCount32(s.BlockSize) != 1 {
		return bad("block size %d", s.BlockSize)
	}
	if uint32(1)<<s.blockLog != s.BlockSize {
		return bad("block log %d does not match block size %d", s.blockLog, s.BlockSize)
	}
	name, ok := compNames[s.compID]
	if !ok {
		return bad("unknown compression id %d", s.compID)
	}
	s.Compression = name
	if s.InodeCount == 0 {
		return bad("no inodes")
	}
	if s.IDCount == 0 {
		return bad("empty id table")
	}
	used := s.BytesUsed
	if used < superblockSize || used > uint64(size) {
		return bad("bytes used %d outside image of %d bytes", used, size)
	}
	if s.inodeTable < superblockSize || s.inodeTable >= s.dirTable || s.dirTable >= used {
		return bad("inode table 0x%x and directory table 0x%x out of order or outside 0x%x bytes", s.inodeTable, s.dirTable, used)
	}
	if s.rootInode>>16 >= s.dirTable-s.inodeTable || s.rootInode&0xffff >= metaSize || s.rootInode>>48 != 0 {
		return bad("root inode reference %#x outside inode table", s.rootInode)
	}
	idBlocks := (uint64(s.IDCount)*4 + metaSize - 1) / metaSize
	if s.idTable <= s.dirTable || s.idTable > used || used-s.idTable < idBlocks*8 {
		return bad("id table at 0x%x outside image", s.idTable)
	}
	if s.FragmentCount > 0 {
		fragBlocks := (uint64(s.FragmentCount) + 511) / 512
		if s.fragmentTable <= s.dirTable || s.fragmentTable > used || used-s.fragmentTable < fragBlocks*8 {
			return bad("fragment table at 0x%x for %d fragments outside image", s.fragmentTable, s.FragmentCount)
		}
	}
	if s.exportTable != invalidTable && (s.exportTable <= s.dirTable || s.exportTable >= used) {
		return bad("export table at 0x%x outside image", s.exportTable)
	}
	if s.xattrTable != invalidTable && (s.xattrTable <= s.dirTable || s.xattrTable >= used) {
		return bad("xattr table at 0x%x outside image", s.xattrTable)
	}
	return s, nil
}

// FindInImage returns the offset of the squashfs filesystem inside a
// firmware image such as an OpenWrt sysupgrade image (kernel first, then
// the root filesystem). On ath79 the rootfs starts at an erase-block
// boundary, on ramips it follows the kernel directly at any byte offset,
// so every offset is checked; it returns the first one holding a valid
// superblock whose id table and root directory can be read, or
// ErrNotFound.
func FindInImage(r io.ReaderAt, size int64) (int64, error) {
	const step = 1
	const chunk = 1 << 20
	buf := make([]byte, chunk+superblockSize)
	for base := int64(0); base < size; base += chunk {
		n, err := r.ReadAt(buf[:min(int64(len(buf)), size-base)], base)
		if n < len(buf) && n < int(size-base) && err != nil {
			return 0, fmt.Errorf("squashfs: reading image at 0x%x: %w", base, err)
		}
		for off := 0; off < chunk && off+superblockSize <= n; off += step {
			if binary.LittleEndian.Uint32(buf[off:]) != magic {
				continue
			}
			at := base + int64(off)
			if _, err := parseSuperblock(buf[off:off+superblockSize], size-at); err != nil {
				continue
			}
			fsys, err := Open(io.NewSectionReader(r, at, size-at), size-at)
			if err != nil {
				continue
			}
			if _, err := fsys.Stat("."); err != nil {
				continue
			}
			return at, nil
		}
	}
	return 0, ErrNotFound
}

// OpenInImage finds the squashfs in a firmware image with FindInImage and
// opens it. Offsets in later errors are relative to the returned offset.
func OpenInImage(r io.ReaderAt, size int64) (*FS, int64, error) {
	off, err := FindInImage(r, size)
	if err != nil {
		return nil, 0, err
	}
	fsys, err := Open(io.NewSectionReader(r, off, size-off), size-off)
	if err != nil {
		return nil, 0, err
	}
	return fsys, off, nil
}
