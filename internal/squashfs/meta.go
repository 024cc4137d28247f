package squashfs

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"
)

// table is a region of the image holding metadata blocks; reads that leave
// it are corruption.
type table struct {
	name       string
	start, end int64
}

// metaBlock is one decompressed metadata block. data is never modified
// after creation, so readers may keep it after the cache evicts it.
type metaBlock struct {
	data []byte
	next int64 // position of the following block
}

// metaCache keeps the most recently used metadata blocks. Inodes and
// directory entries are mostly read in storage order, so a few blocks give
// nearly all hits; the bound keeps memory independent of image size.
type metaCache struct {
	mu    sync.Mutex
	m     map[int64]*metaBlock
	order []int64 // FIFO of keys
}

const metaCacheBlocks = 64 // 512 KiB

func (c *metaCache) get(pos int64) *metaBlock {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[pos]
}

func (c *metaCache) put(pos int64, b *metaBlock) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[int64]*metaBlock, metaCacheBlocks)
	}
	if _, ok := c.m[pos]; ok {
		return
	}
	if len(c.order) >= metaCacheBlocks {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[pos] = b
	c.order = append(c.order, pos)
}

// readAt reads exactly len(p) bytes at off, which must lie inside the
// image's used bytes.
func (f *FS) readAt(p []byte, off int64, what string) error {
	if off < 0 || off > f.used || int64(len(p)) > f.used-off {
		return fmt.Errorf("squashfs: %s at 0x%x: %w: %d bytes beyond end of image (0x%x)", what, off, ErrCorrupt, len(p), f.used)
	}
	n, err := f.r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("squashfs: reading %s at 0x%x: %w", what, off, err)
}

// metaBlockAt reads and decompresses the metadata block starting at pos,
// which must begin inside t.
func (f *FS) metaBlockAt(t table, pos int64) (*metaBlock, error) {
	if pos < t.start || pos >= t.end {
		return nil, fmt.Errorf("squashfs: %s at 0x%x: %w: metadata block outside table [0x%x, 0x%x)", t.name, pos, ErrCorrupt, t.start, t.end)
	}
	if b := f.meta.get(pos); b != nil {
		return b, nil
	}
	var hdr [2]byte
	if err := f.readAt(hdr[:], pos, t.name); err != nil {
		return nil, err
	}
	h := binary.LittleEndian.Uint16(hdr[:])
	size := int64(h & 0x7fff)
	if size == 0 || size > metaSize {
		return nil, fmt.Errorf("squashfs: %s at 0x%x: %w: metadata block size %d", t.name, pos, ErrCorrupt, size)
	}
	if pos+2+size > t.end {
		return nil, fmt.Errorf("squashfs: %s at 0x%x: %w: metadata block of %d bytes runs past table end 0x%x", t.name, pos, ErrCorrupt, size, t.end)
	}
	raw := make([]byte, size)
	if err := f.readAt(raw, pos+2, t.name); err != nil {
		return nil, err
	}
	b := &metaBlock{data: raw, next: pos + 2 + size}
	if h&0x8000 == 0 {
		out := make([]byte, metaSize)
		n, err := f.dec.decompress(out, raw)
		if err != nil {
			return nil, fmt.Errorf("squashfs: %s metadata block at 0x%x: %w: %v", t.name, pos, ErrCorrupt, err)
		}
		b.data = out[:n:n]
	}
	if len(b.data) == 0 {
		return nil, fmt.Errorf("squashfs: %s at 0x%x: %w: empty metadata block", t.name, pos, ErrCorrupt)
	}
	f.meta.put(pos, b)
	return b, nil
}

// metaReader reads a byte stream that continues across metadata blocks, as
// inodes and directory listings do.
type metaReader struct {
	f     *FS
	t     table
	pos   int64 // position of the current block
	block *metaBlock
	off   int
}

// newMetaReader positions a reader at offset off of the block at pos.
// With atEnd, off may equal the block length: a stream that was stopped at
// the end of a block (the block list after an inode) continues in the next.
func (f *FS) newMetaReader(t table, pos int64, off int, atEnd bool) (*metaReader, error) {
	b, err := f.metaBlockAt(t, pos)
	if err != nil {
		return nil, err
	}
	if off < 0 || off > len(b.data) || off == len(b.data) && !atEnd {
		return nil, fmt.Errorf("squashfs: %s block at 0x%x: %w: offset %d beyond %d bytes", t.name, pos, ErrCorrupt, off, len(b.data))
	}
	return &metaReader{f: f, t: t, pos: pos, block: b, off: off}, nil
}

// where describes the current position for error messages.
func (m *metaReader) where() string {
	return fmt.Sprintf("%s block at 0x%x offset %d", m.t.name, m.pos, m.off)
}

func (m *metaReader) read(p []byte) error {
	for len(p) > 0 {
		if m.off == len(m.block.data) {
			b, err := m.f.metaBlockAt(m.t, m.block.next)
			if err != nil {
				return err
			}
			m.pos, m.block, m.off = m.block.next, b, 0
		}
		n := copy(p, m.block.data[m.off:])
		m.off += n
		p = p[n:]
	}
	return nil
}

func (m *metaReader) u32() (uint32, error) {
	var b [4]byte
	err := m.read(b[:])
	return binary.LittleEndian.Uint32(b[:]), err
}

// remainingBound is an upper bound on the bytes left to read in the table:
// every remaining metadata block holds at most 8 KiB and takes at least 3
// bytes. It lets callers refuse counts that cannot fit before looping.
func (m *metaReader) remainingBound() int64 {
	return int64(len(m.block.data)-m.off) + (m.t.end-m.block.next)/3*metaSize
}
