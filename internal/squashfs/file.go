package squashfs

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"sync"
)

const (
	blockUncompressed = 1 << 24
	blockSizeMask     = blockUncompressed - 1
)

// readBlock reads the data or fragment block at off whose size field is
// sizeField into dst and returns its length. want is the exact length a data
// block must have, or -1 for fragment blocks, which may be shorter.
func (f *FS) readBlock(dst []byte, off int64, sizeField uint32, want int, what string) (int, error) {
	if sizeField&^(blockUncompressed|blockSizeMask) != 0 {
		return 0, fmt.Errorf("squashfs: %s at 0x%x: %w: size field %#x", what, off, ErrCorrupt, sizeField)
	}
	n := int(sizeField & blockSizeMask)
	if n == 0 || n > int(f.sb.BlockSize) {
		return 0, fmt.Errorf("squashfs: %s at 0x%x: %w: %d bytes on disk, block size %d", what, off, ErrCorrupt, n, f.sb.BlockSize)
	}
	limit := len(dst)
	if want >= 0 {
		limit = want
	}
	if sizeField&blockUncompressed != 0 {
		if want >= 0 && n != want {
			return 0, fmt.Errorf("squashfs: %s at 0x%x: %w: %d stored bytes, want %d", what, off, ErrCorrupt, n, want)
		}
		if err := f.readAt(dst[:n], off, what); err != nil {
			return 0, err
		}
		return n, nil
	}
	bp := f.bufs.Get().(*[]byte)
	defer f.bufs.Put(bp)
	src := (*bp)[:n]
	if err := f.readAt(src, off, what); err != nil {
		return 0, err
	}
	got, err := f.dec.decompress(dst[:limit], src)
	if err != nil {
		// A block that decompresses beyond its size is corruption, not a
		// limit the caller could raise.
		return 0, fmt.Errorf("squashfs: %s at 0x%x: %w: %v", what, off, ErrCorrupt, err)
	}
	if want >= 0 && got != want {
		return 0, fmt.Errorf("squashfs: %s at 0x%x: %w: decompressed to %d bytes, want %d", what, off, ErrCorrupt, got, want)
	}
	return got, nil
}

// fragCache keeps recently used fragment blocks, which many small files
// share, so reading every file reads each fragment block about once.
type fragCache struct {
	mu      sync.Mutex
	entries [3]struct {
		idx  uint32
		data []byte
	}
	next int
}

func (c *fragCache) get(idx uint32) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if e.data != nil && e.idx == idx {
			return e.data
		}
	}
	return nil
}

func (c *fragCache) put(idx uint32, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries[c.next].idx, c.entries[c.next].data = idx, data
	c.next = (c.next + 1) % len(c.entries)
}

// fragment returns the decompressed fragment block idx. The slice is
// shared and must not be modified.
func (f *FS) fragment(idx uint32) ([]byte, error) {
	if b := f.frags.get(idx); b != nil {
		return b, nil
	}
	if idx >= f.sb.FragmentCount {
		return nil, fmt.Errorf("squashfs: fragment %d: %w: beyond %d fragments", idx, ErrCorrupt, f.sb.FragmentCount)
	}
	pos, err := f.lookupEntry(int64(f.sb.fragmentTable), idx/512, "fragment table")
	if err != nil {
		return nil, err
	}
	if pos > f.sb.fragmentTable {
		return nil, fmt.Errorf("squashfs: fragment table lookup at 0x%x: %w: block position 0x%x", f.sb.fragmentTable, ErrCorrupt, pos)
	}
	b, err := f.metaBlockAt(table{"fragment table", superblockSize, int64(f.sb.fragmentTable)}, int64(pos))
	if err != nil {
		return nil, err
	}
	o := int(idx%512) * 16
	if o+16 > len(b.data) {
		return nil, fmt.Errorf("squashfs: fragment table block at 0x%x: %w: entry %d beyond %d bytes", pos, ErrCorrupt, idx, len(b.data))
	}
	start := binary.LittleEndian.Uint64(b.data[o:])
	size := binary.LittleEndian.Uint32(b.data[o+8:])
	if start > uint64(f.used) {
		return nil, fmt.Errorf("squashfs: fragment %d: %w: start 0x%x beyond image", idx, ErrCorrupt, start)
	}
	data := make([]byte, f.sb.BlockSize)
	n, err := f.readBlock(data, int64(start), size, -1, fmt.Sprintf("fragment block %d", idx))
	if err != nil {
		return nil, err
	}
	data = data[:n:n]
	f.frags.put(idx, data)
	return data, nil
}

// File is an open regular file. Reads decompress one block at a time.
type File struct {
	f  *FS
	in *inode
	fi fileInfo

	list   *metaReader // block size list, opened on first read
	next   int64       // image offset of the next data block
	idx    int64       // index of the next block
	pos    int64       // file bytes returned or buffered so far
	buf    []byte      // unread part of the current block
	bp     *[]byte     // pooled buffer backing buf
	closed bool
}

// Stat implements fs.File.
func (r *File) Stat() (fs.FileInfo, error) { return r.fi, nil }

// Close releases the block buffer.
func (r *File) Close() error {
	if r.bp != nil {
		r.f.bufs.Put(r.bp)
		r.bp = nil
	}
	r.buf = nil
	r.closed = true
	return nil
}

// Read implements io.Reader.
func (r *File) Read(p []byte) (int, error) {
	if r.closed {
		return 0, fs.ErrClosed
	}
	n := 0
	for len(p) > 0 {
		if len(r.buf) == 0 {
			if r.pos >= r.in.size {
				break
			}
			if err := r.fill(); err != nil {
				return n, &fs.PathError{Op: "read", Path: r.fi.name, Err: err}
			}
		}
		k := copy(p, r.buf)
		r.buf = r.buf[k:]
		p = p[k:]
		n += k
	}
	if n == 0 && len(p) > 0 {
		return 0, io.EOF
	}
	return n, nil
}

// fill loads the next data block or the fragment tail.
func (r *File) fill() error {
	f, in := r.f, r.in
	bs := int64(f.sb.BlockSize)
	if r.idx < in.nblocks {
		if r.list == nil {
			m, err := f.newMetaReader(f.inodeTable(), in.blockList.pos, in.blockList.off, true)
			if err != nil {
				return err
			}
			r.list, r.next = m, in.dataStart
		}
		size, err := r.list.u32()
		if err != nil {
			return err
		}
		want := bs
		if r.idx == in.nblocks-1 && in.fragment == noFragment {
			want = in.size - r.idx*bs
		}
		r.idx++
		if size == 0 {
			// Sparse block: zeros, nothing stored.
			r.buf = f.zero()[:want]
			r.pos += want
			return nil
		}
		if r.bp == nil {
			r.bp = f.bufs.Get().(*[]byte)
		}
		what := fmt.Sprintf("data block %d of inode %d", r.idx-1, in.number)
		n, err := f.readBlock(*r.bp, r.next, size, int(want), what)
		if err != nil {
			return err
		}
		r.next += int64(size & blockSizeMask)
		r.buf = (*r.bp)[:n]
		r.pos += want
		return nil
	}
	if in.fragment == noFragment {
		return fmt.Errorf("squashfs: inode %d: %w: file size %d beyond its %d blocks", in.number, ErrCorrupt, in.size, in.nblocks)
	}
	frag, err := f.fragment(in.fragment)
	if err != nil {
		return err
	}
	tail := in.size - r.pos
	if int64(in.fragOffset)+tail > int64(len(frag)) {
		return fmt.Errorf("squashfs: inode %d: %w: tail of %d bytes at offset %d beyond fragment %d of %d bytes", in.number, ErrCorrupt, tail, in.fragOffset, in.fragment, len(frag))
	}
	r.buf = frag[in.fragOffset : int64(in.fragOffset)+tail]
	r.pos += tail
	return nil
}
