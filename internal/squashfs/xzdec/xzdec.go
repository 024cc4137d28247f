// Package xzdec decodes the .xz container format (xz-file-format 1.2) around
// LZMA2 data, using github.com/ulikunitz/xz/lzma for the LZMA2 chunks.
//
// It exists because ulikunitz/xz's own xz reader allocates whatever
// dictionary a block header asks for (up to 4 GiB) before decoding a byte,
// and allocates an 8 MiB dictionary even for a 4 KiB squashfs block. Here the
// caller bounds both: a block whose declared dictionary exceeds
// Config.MaxDict is refused before any allocation, and when the total output
// is known to be small (a squashfs block) the dictionary is clamped to the
// output size, which decodes identically because LZMA2 distances can never
// reach further back than the data produced so far.
//
// BCJ branch filters (x86, ARM, PowerPC, SPARC, as OpenWrt's mksquashfs uses
// with -Xbcj) are supported by Decode, which sees the whole output at once;
// the streaming Reader refuses them.
package xzdec

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

var (
	// ErrFormat reports input that is not a valid xz stream.
	ErrFormat = errors.New("xz: corrupt input")
	// ErrTooLarge reports output or a dictionary beyond the configured limit.
	ErrTooLarge = errors.New("xz: limit exceeded")
	// ErrUnsupported reports a valid but unsupported feature (filter, check).
	ErrUnsupported = errors.New("xz: unsupported")
)

// DefaultMaxDict is the largest dictionary accepted when Config.MaxDict is 0.
// xz -9 and -9e use 64 MiB.
const DefaultMaxDict = 64 << 20

// Config bounds the decoder.
type Config struct {
	// MaxDict is the largest LZMA2 dictionary a block may declare. It is not
	// enforced when MaxOutput is set and smaller, because then the
	// dictionary is clamped to MaxOutput. 0 means DefaultMaxDict.
	MaxDict int64
	// MaxOutput, if positive, is the most bytes the whole input may decode
	// to; one more byte fails with ErrTooLarge.
	MaxOutput int64
	// SingleStream refuses anything after the first stream other than
	// stream padding.
	SingleStream bool
}

var crc64Table = crc64.MakeTable(crc64.ECMA)

var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}

// IsXZ reports whether b starts with the xz stream magic.
func IsXZ(b []byte) bool { return bytes.HasPrefix(b, xzMagic) }

// countReader counts bytes consumed so the decoder can report offsets and
// check the sizes recorded in block headers and the index.
type countReader struct {
	r byteSource
	n int64
}

// byteSource is what bufio.Reader and, for whole blocks in memory,
// bytes.Reader both provide.
type byteSource interface {
	io.Reader
	io.ByteReader
	UnreadByte() error
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

func (c *countReader) readFull(p []byte) error {
	_, err := io.ReadFull(c, p)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// filter is one entry of a block's filter chain.
type filter struct {
	id    uint64
	props []byte
}

const (
	filterLZMA2   = 0x21
	filterX86     = 0x04
	filterPowerPC = 0x05
	filterIA64    = 0x06
	filterARM     = 0x07
	filterARMThmb = 0x08
	filterSPARC   = 0x09
)

type record struct{ unpadded, uncompressed uint64 }

// span is the output range of one block that has BCJ filters to undo.
type span struct {
	start, end int
	filters    []filter
	checkType  byte
	sum        []byte // stored check, verified after the filters are undone
}

// Reader decodes one or more concatenated xz streams.
type Reader struct {
	cfg   Config
	in    *countReader
	err   error
	out   int64 // bytes returned so far
	bcj   bool  // allow BCJ filters (Decode only)
	spans []span

	// per stream
	checkType byte
	records   []record
	streamOff int64

	// per block
	block      io.Reader // LZMA2 data reader of the current block, nil between blocks
	blockStart int64     // input offset of the block header
	dataStart  int64     // input offset of the compressed data
	blockOut   int64
	wantComp   int64 // -1 if not recorded in the header
	wantUncomp int64
	check      hash.Hash
}

// NewReader reads the first stream header of r and returns a reader for the
// decompressed data. BCJ filters are refused: use Decode for squashfs blocks.
func NewReader(r io.Reader, cfg Config) (*Reader, error) {
	if cfg.MaxDict <= 0 {
		cfg.MaxDict = DefaultMaxDict
	}
	br, ok := r.(byteSource)
	if !ok {
		br = bufio.NewReaderSize(r, 64<<10)
	}
	x := &Reader{cfg: cfg, in: &countReader{r: br}}
	if err := x.readStreamHeader(); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w: missing stream header", ErrFormat)
		}
		return nil, err
	}
	return x, nil
}

func (x *Reader) errorf(off int64, format string, a ...any) error {
	return fmt.Errorf("%w at input offset 0x%x: %s", ErrFormat, off, fmt.Sprintf(format, a...))
}

func (x *Reader) readStreamHeader() error {
	x.streamOff = x.in.n
	var h [12]byte
	if err := x.in.readFull(h[:]); err != nil {
		return err
	}
	if !bytes.Equal(h[:6], xzMagic) {
		return x.errorf(x.streamOff, "bad stream magic")
	}
	if crc32.ChecksumIEEE(h[6:8]) != binary.LittleEndian.Uint32(h[8:]) {
		return x.errorf(x.streamOff, "stream header crc mismatch")
	}
	if h[6] != 0 || h[7]&0xf0 != 0 {
		return fmt.Errorf("%w: stream flags %#x %#x at input offset 0x%x", ErrUnsupported, h[6], h[7], x.streamOff)
	}
	x.checkType = h[7]
	x.records = x.records[:0]
	return nil
}

func checkSize(t byte) int {
	switch {
	case t == 0:
		return 0
	case t <= 3:
		return 4
	case t <= 6:
		return 8
	case t <= 9:
		return 16
	case t <= 12:
		return 32
	default:
		return 64
	}
}

func newCheck(t byte) hash.Hash {
	switch t {
	case 1:
		return crc32.NewIEEE()
	case 4:
		return crc64.New(crc64Table)
	case 10:
		return sha256.New()
	}
	// Unknown check types are skipped, as the spec allows.
	return nil
}

func checkMatches(h hash.Hash, t byte, want []byte) bool {
	got := h.Sum(nil)
	if t == 1 || t == 4 {
		// CRC32 and CRC64 are stored little-endian; hash/crc* sums are
		// big-endian.
		for i, j := 0, len(got)-1; i < j; i, j = i+1, j-1 {
			got[i], got[j] = got[j], got[i]
		}
	}
	return bytes.Equal(got, want)
}

func readVarint(r io.ByteReader) (uint64, error) {
	var v uint64
	for i := 0; i < 9; i++ {
		b, err := r.ReadByte()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			if b == 0 && i > 0 {
				return 0, errors.New("non-minimal varint")
			}
			return v, nil
		}
	}
	return 0, errors.New("varint too long")
}

// dictSize decodes the LZMA2 filter property byte.
func dictSize(p byte) (int64, error) {
	if p > 40 {
		return 0, errors.New("bad LZMA2 dictionary size")
	}
	if p == 40 {
		return 0xffffffff, nil
	}
	return int64(2|p&1) << (p/2 + 11), nil
}

// nextBlock parses a block header, or the index and footer when the index
// indicator comes next. It returns io.EOF after the last stream.
func (x *Reader) nextBlock() error {
	for {
		x.blockStart = x.in.n
		b, err := x.in.ReadByte()
		if err != nil {
			return x.errorf(x.in.n, "truncated before block header: %v", err)
		}
		if b == 0 {
			if err := x.readIndexAndFooter(); err != nil {
				return err
			}
			if err := x.nextStream(); err != nil {
				return err
			}
			continue
		}
		return x.readBlockHeader(b)
	}
}

func (x *Reader) readBlockHeader(first byte) error {
	size := (int(first) + 1) * 4
	hdr := make([]byte, size)
	hdr[0] = first
	if err := x.in.readFull(hdr[1:]); err != nil {
		return x.errorf(x.blockStart, "truncated block header: %v", err)
	}
	if crc32.ChecksumIEEE(hdr[:size-4]) != binary.LittleEndian.Uint32(hdr[size-4:]) {
		return x.errorf(x.blockStart, "block header crc mismatch")
	}
	flags := hdr[1]
	if flags&0x3c != 0 {
		return x.errorf(x.blockStart, "reserved block flags set")
	}
	br := bytes.NewReader(hdr[2 : size-4])
	x.wantComp, x.wantUncomp = -1, -1
	if flags&0x40 != 0 {
		v, err := readVarint(br)
		if err != nil || v == 0 || v > 1<<62 {
			return x.errorf(x.blockStart, "bad compressed size")
		}
		x.wantComp = int64(v)
	}
	if flags&0x80 != 0 {
		v, err := readVarint(br)
		if err != nil || v > 1<<62 {
			return x.errorf(x.blockStart, "bad uncompressed size")
		}
		x.wantUncomp = int64(v)
	}
	n := int(flags&3) + 1
	filters := make([]filter, 0, n)
	for i := 0; i < n; i++ {
		id, err := readVarint(br)
		if err != nil {
			return x.errorf(x.blockStart, "bad filter id")
		}
		psz, err := readVarint(br)
		if err != nil || psz > uint64(br.Len()) {
			return x.errorf(x.blockStart, "bad filter properties size")
		}
		props := make([]byte, psz)
		_, _ = br.Read(props)
		filters = append(filters, filter{id, props})
	}
	for br.Len() > 0 {
		if c, _ := br.ReadByte(); c != 0 {
			return x.errorf(x.blockStart, "non-zero block header padding")
		}
	}
	lz := filters[len(filters)-1]
	if lz.id != filterLZMA2 || len(lz.props) != 1 {
		return fmt.Errorf("%w: block at input offset 0x%x: last filter %#x is not LZMA2", ErrUnsupported, x.blockStart, lz.id)
	}
	for _, f := range filters[:len(filters)-1] {
		if !x.bcj {
			return fmt.Errorf("%w: block at input offset 0x%x: filter %#x in a stream", ErrUnsupported, x.blockStart, f.id)
		}
		switch f.id {
		case filterX86, filterPowerPC, filterARM, filterARMThmb, filterSPARC:
		default:
			return fmt.Errorf("%w: block at input offset 0x%x: filter %#x", ErrUnsupported, x.blockStart, f.id)
		}
		if len(f.props) != 0 && len(f.props) != 4 {
			return x.errorf(x.blockStart, "bad BCJ properties")
		}
	}
	if len(filters) > 1 {
		x.spans = append(x.spans, span{start: int(x.out), end: -1, filters: filters})
	}
	dict, err := dictSize(lz.props[0])
	if err != nil {
		return x.errorf(x.blockStart, "%v", err)
	}
	if x.cfg.MaxOutput > 0 && dict > x.cfg.MaxOutput {
		dict = x.cfg.MaxOutput
	}
	if dict > x.cfg.MaxDict {
		return fmt.Errorf("%w: block at input offset 0x%x declares a %d byte dictionary, limit %d", ErrTooLarge, x.blockStart, dict, x.cfg.MaxDict)
	}
	if dict < lzma.MinDictCap {
		dict = lzma.MinDictCap
	}
	x.dataStart = x.in.n
	r2, err := lzma.Reader2Config{DictCap: int(dict)}.NewReader2(x.in)
	if err != nil {
		return x.errorf(x.dataStart, "lzma2: %v", err)
	}
	x.block = r2
	x.blockOut = 0
	x.check = newCheck(x.checkType)
	if len(filters) > 1 {
		// The check covers the unfiltered data, which Decode only has after
		// undoing the filters over the whole block.
		x.check = nil
	}
	return nil
}

// endBlock checks padding, sizes and the check field after the LZMA2 data.
func (x *Reader) endBlock() error {
	comp := x.in.n - x.dataStart
	if x.wantComp >= 0 && comp != x.wantComp {
		return x.errorf(x.dataStart, "compressed size %d, header says %d", comp, x.wantComp)
	}
	if x.wantUncomp >= 0 && x.blockOut != x.wantUncomp {
		return x.errorf(x.dataStart, "uncompressed size %d, header says %d", x.blockOut, x.wantUncomp)
	}
	for (x.in.n-x.blockStart)%4 != 0 {
		b, err := x.in.ReadByte()
		if err != nil || b != 0 {
			return x.errorf(x.in.n, "bad block padding")
		}
	}
	unpadded := x.dataStart - x.blockStart + comp
	cs := checkSize(x.checkType)
	if cs > 0 {
		var sum [64]byte
		if err := x.in.readFull(sum[:cs]); err != nil {
			return x.errorf(x.in.n, "truncated check: %v", err)
		}
		if x.check != nil && !checkMatches(x.check, x.checkType, sum[:cs]) {
			return x.errorf(x.in.n-int64(cs), "block check mismatch")
		}
		if k := len(x.spans) - 1; k >= 0 && x.spans[k].end < 0 {
			x.spans[k].checkType = x.checkType
			x.spans[k].sum = bytes.Clone(sum[:cs])
		}
	}
	if k := len(x.spans) - 1; k >= 0 && x.spans[k].end < 0 {
		x.spans[k].end = int(x.out)
	}
	x.records = append(x.records, record{uint64(unpadded) + uint64(cs), uint64(x.blockOut)})
	if len(x.records) > 1<<20 {
		return fmt.Errorf("%w: more than %d blocks in one stream", ErrTooLarge, 1<<20)
	}
	x.block = nil
	return nil
}

func (x *Reader) readIndexAndFooter() error {
	start := x.in.n - 1
	crc := crc32.NewIEEE()
	crc.Write([]byte{0})
	tr := &teeByteReader{r: x.in, h: crc}
	n, err := readVarint(tr)
	if err != nil {
		return x.errorf(start, "bad index: %v", err)
	}
	if n != uint64(len(x.records)) {
		return x.errorf(start, "index lists %d blocks, stream has %d", n, len(x.records))
	}
	for _, rec := range x.records {
		u, err1 := readVarint(tr)
		c, err2 := readVarint(tr)
		if err1 != nil || err2 != nil {
			return x.errorf(start, "bad index record")
		}
		if u != rec.unpadded || c != rec.uncompressed {
			return x.errorf(start, "index record does not match block")
		}
	}
	for (x.in.n-start)%4 != 0 {
		b, err := tr.ReadByte()
		if err != nil || b != 0 {
			return x.errorf(x.in.n, "bad index padding")
		}
	}
	indexSize := x.in.n - start
	var sum [4]byte
	if err := x.in.readFull(sum[:]); err != nil {
		return x.errorf(x.in.n, "truncated index crc")
	}
	if binary.LittleEndian.Uint32(sum[:]) != crc.Sum32() {
		return x.errorf(start, "index crc mismatch")
	}
	indexSize += 4
	var f [12]byte
	footOff := x.in.n
	if err := x.in.readFull(f[:]); err != nil {
		return x.errorf(footOff, "truncated stream footer")
	}
	if f[10] != 'Y' || f[11] != 'Z' {
		return x.errorf(footOff, "bad footer magic")
	}
	if crc32.ChecksumIEEE(f[4:10]) != binary.LittleEndian.Uint32(f[:4]) {
		return x.errorf(footOff, "footer crc mismatch")
	}
	if f[8] != 0 || f[9] != x.checkType {
		return x.errorf(footOff, "footer flags differ from header")
	}
	if (int64(binary.LittleEndian.Uint32(f[4:8]))+1)*4 != indexSize {
		return x.errorf(footOff, "footer backward size does not match index")
	}
	return nil
}

// nextStream skips stream padding and reads the next stream header, or
// returns io.EOF at the end of input.
func (x *Reader) nextStream() error {
	pad := 0
	for {
		b, err := x.in.r.ReadByte()
		if err == io.EOF {
			if pad%4 != 0 {
				return x.errorf(x.in.n, "stream padding not a multiple of 4")
			}
			return io.EOF
		}
		if err != nil {
			return err
		}
		if b != 0 {
			x.in.r.UnreadByte()
			break
		}
		x.in.n++
		pad++
	}
	if pad%4 != 0 {
		return x.errorf(x.in.n, "stream padding not a multiple of 4")
	}
	if x.cfg.SingleStream {
		return x.errorf(x.in.n, "data after stream")
	}
	return x.readStreamHeader()
}

type teeByteReader struct {
	r *countReader
	h hash.Hash
}

func (t *teeByteReader) ReadByte() (byte, error) {
	b, err := t.r.ReadByte()
	if err == nil {
		t.h.Write([]byte{b})
	}
	return b, err
}

// Read implements io.Reader.
func (x *Reader) Read(p []byte) (int, error) {
	if x.err != nil {
		return 0, x.err
	}
	n, err := x.read(p)
	if err != nil {
		x.err = err
	}
	return n, err
}

func (x *Reader) read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if x.block == nil {
			if err := x.nextBlock(); err != nil {
				return 0, err
			}
		}
		if x.cfg.MaxOutput > 0 && x.out+int64(len(p)) > x.cfg.MaxOutput+1 {
			p = p[:x.cfg.MaxOutput+1-x.out]
		}
		n, err := x.block.Read(p)
		if n > 0 {
			x.out += int64(n)
			x.blockOut += int64(n)
			if x.check != nil {
				x.check.Write(p[:n])
			}
			if x.cfg.MaxOutput > 0 && x.out > x.cfg.MaxOutput {
				return n - 1, fmt.Errorf("%w: output exceeds %d bytes", ErrTooLarge, x.cfg.MaxOutput)
			}
			if x.wantUncomp >= 0 && x.blockOut > x.wantUncomp {
				return n, x.errorf(x.dataStart, "block exceeds its uncompressed size")
			}
		}
		if err == io.EOF {
			if !x.block.(*lzma.Reader2).EOS() {
				return n, x.errorf(x.in.n, "LZMA2 data ends without end marker")
			}
			if err := x.endBlock(); err != nil {
				return n, err
			}
			if n > 0 {
				return n, nil
			}
			continue
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return n, x.errorf(x.in.n, "truncated LZMA2 data")
			}
			if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrFormat) {
				return n, err
			}
			return n, x.errorf(x.in.n, "lzma2: %v", err)
		}
		return n, nil
	}
}

// Decode decompresses the whole xz input src into dst and returns the number
// of bytes written. Output beyond len(dst) fails with ErrTooLarge; the
// dictionary is clamped to len(dst). BCJ filters are applied.
func Decode(dst, src []byte) (int, error) {
	x, err := NewReader(bytes.NewReader(src), Config{MaxOutput: int64(len(dst)), MaxDict: int64(len(dst)) + lzma.MinDictCap})
	if err != nil {
		return 0, err
	}
	x.bcj = true
	n := 0
	var one [1]byte
	for {
		buf := dst[n:]
		if len(buf) == 0 {
			// Only the end of the input may follow; a byte more is too large.
			buf = one[:]
		}
		k, err := x.Read(buf)
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, err
		}
	}
	for _, s := range x.spans {
		fs := s.filters
		for i := len(fs) - 2; i >= 0; i-- {
			var start uint32
			if len(fs[i].props) == 4 {
				start = binary.LittleEndian.Uint32(fs[i].props)
			}
			unBCJ(fs[i].id, dst[s.start:s.end], start)
		}
		if h := newCheck(s.checkType); h != nil {
			h.Write(dst[s.start:s.end])
			if !checkMatches(h, s.checkType, s.sum) {
				return n, fmt.Errorf("%w: block check mismatch after BCJ filter", ErrFormat)
			}
		}
	}
	return n, nil
}
