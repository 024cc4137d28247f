// Package fwimage reads and writes the fwtool chunks that OpenWrt appends
// to sysupgrade images: a metadata chunk (JSON describing the boards an
// image is for) and a signature chunk (a ucert blob).
//
// Each chunk is its data followed by a 16-byte trailer; chunks are found by
// reading trailers from the end of the file backwards. Everything here works
// on io.ReaderAt plus a size and streams: peak memory does not depend on the
// image size, which matters on a router with 64 MB of RAM.
package fwimage

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// Type is a chunk type.
type Type uint8

const (
	TypeSignature Type = 0
	TypeMetadata  Type = 1
)

func (t Type) String() string {
	switch t {
	case TypeSignature:
		return "signature"
	case TypeMetadata:
		return "metadata"
	}
	return fmt.Sprintf("unknown(%d)", uint8(t))
}

// Limits of stock fwtool; a chunk it would refuse is refused here too.
const (
	Magic          = 0x46577830 // "FWx0"
	TrailerLen     = 16
	MaxChunkData   = 32768
	MaxMetadataLen = 30 * 1024
	MaxSignature   = 1024
	maxChunks      = 8
)

// FakeCertificate is the placeholder some official images carry in place of
// a signature. It signs nothing.
const FakeCertificate = "# fake certificate"

var (
	ErrMalformed   = errors.New("fwimage: malformed chunk")
	ErrCRC         = errors.New("fwimage: chunk crc mismatch")
	ErrUnknownType = errors.New("fwimage: unknown chunk type")
	ErrTooLarge    = errors.New("fwimage: chunk larger than stock fwtool accepts")
	ErrNoChunk     = errors.New("fwimage: no such chunk")
)

// Chunk locates one chunk in a file.
type Chunk struct {
	Type   Type   `json:"type"`
	Offset int64  `json:"offset"` // first byte of the chunk's data
	Len    int64  `json:"len"`    // data length, trailer excluded
	CRC    uint32 `json:"crc"`
}

// End is the offset just past the chunk's trailer.
func (c Chunk) End() int64 { return c.Offset + c.Len + TrailerLen }

// Image is the chunk layout of a file.
type Image struct {
	Size int64 `json:"size"`
	// PayloadEnd is where the raw image ends and the first chunk starts.
	PayloadEnd int64 `json:"payload_end"`
	// Chunks in file order.
	Chunks []Chunk `json:"chunks"`
}

// Parse reads the chunk chain of the file r of the given size and checks
// every chunk's CRC in one streaming pass. A file with no chunks is valid
// and has none.
func Parse(r io.ReaderAt, size int64) (*Image, error) {
	img := &Image{Size: size}
	pos := size
	var rev []Chunk
	var tr [TrailerLen]byte
	for pos >= TrailerLen {
		if _, err := r.ReadAt(tr[:], pos-TrailerLen); err != nil {
			return nil, fmt.Errorf("fwimage: reading trailer at 0x%x: %w", pos-TrailerLen, err)
		}
		if binary.BigEndian.Uint32(tr[0:]) != Magic {
			break
		}
		at := pos - TrailerLen
		if len(rev) == maxChunks {
			return nil, fmt.Errorf("%w: more than %d chunks (trailer at 0x%x)", ErrMalformed, maxChunks, at)
		}
		c := Chunk{Type: Type(tr[8]), CRC: binary.BigEndian.Uint32(tr[4:])}
		if tr[9]|tr[10]|tr[11] != 0 {
			return nil, fmt.Errorf("%w: trailer at 0x%x: non-zero padding", ErrMalformed, at)
		}
		total := int64(binary.BigEndian.Uint32(tr[12:]))
		if total < TrailerLen {
			return nil, fmt.Errorf("%w: trailer at 0x%x: size %d is smaller than the trailer", ErrMalformed, at, total)
		}
		c.Len = total - TrailerLen
		if c.Len > MaxChunkData {
			return nil, fmt.Errorf("%w: trailer at 0x%x: %d bytes of data, stock fwtool reads at most %d", ErrTooLarge, at, c.Len, MaxChunkData)
		}
		if total > pos {
			return nil, fmt.Errorf("%w: trailer at 0x%x: chunk size %d is larger than the %d bytes before it", ErrMalformed, at, total, pos)
		}
		switch c.Type {
		case TypeSignature:
			if c.Len > MaxSignature {
				return nil, fmt.Errorf("%w: signature chunk at 0x%x is %d bytes, limit %d", ErrTooLarge, at, c.Len, MaxSignature)
			}
		case TypeMetadata:
			if c.Len > MaxMetadataLen {
				return nil, fmt.Errorf("%w: metadata chunk at 0x%x is %d bytes, limit %d", ErrTooLarge, at, c.Len, MaxMetadataLen)
			}
		default:
			return nil, fmt.Errorf("%w %d in trailer at 0x%x", ErrUnknownType, c.Type, at)
		}
		c.Offset = pos - total
		rev = append(rev, c)
		pos = c.Offset
	}
	img.PayloadEnd = pos
	for i := len(rev) - 1; i >= 0; i-- {
		img.Chunks = append(img.Chunks, rev[i])
	}
	if err := img.checkCRCs(r); err != nil {
		return nil, err
	}
	return img, nil
}

// checkCRCs computes fwtool's running CRC once from the start of the file
// and compares it at the end of each chunk's data.
func (img *Image) checkCRCs(r io.ReaderAt) error {
	var crc uint32 // Go's crc32 state; fwtool's value is its complement
	pos := int64(0)
	for _, c := range img.Chunks {
		end := c.Offset + c.Len
		n, err := crcRange(r, pos, end, &crc)
		if err != nil {
			return err
		}
		pos += n
		if got := ^crc; got != c.CRC {
			return fmt.Errorf("%w: %s chunk at 0x%x: trailer says 0x%08x, content gives 0x%08x", ErrCRC, c.Type, c.Offset, c.CRC, got)
		}
	}
	return nil
}

func crcRange(r io.ReaderAt, from, to int64, crc *uint32) (int64, error) {
	n, err := io.Copy(crcWriter{crc}, io.NewSectionReader(r, from, to-from))
	if err != nil {
		return n, fmt.Errorf("fwimage: reading 0x%x-0x%x: %w", from, to, err)
	}
	if n != to-from {
		return n, fmt.Errorf("fwimage: file ended at 0x%x, before 0x%x", from+n, to)
	}
	return n, nil
}

type crcWriter struct{ crc *uint32 }

func (w crcWriter) Write(p []byte) (int, error) {
	*w.crc = crc32.Update(*w.crc, crc32.IEEETable, p)
	return len(p), nil
}

// Last returns the last chunk of type t.
func (img *Image) Last(t Type) (Chunk, bool) {
	for i := len(img.Chunks) - 1; i >= 0; i-- {
		if img.Chunks[i].Type == t {
			return img.Chunks[i], true
		}
	}
	return Chunk{}, false
}

// StripEnd returns the length the file must be truncated to in order to
// remove the last chunk of type t, as `fwtool -t -s` / `-t -i` do. Chunks
// after it go too: a signature covers the metadata before it, so once the
// metadata is gone the signature is meaningless.
func (img *Image) StripEnd(t Type) (int64, error) {
	c, ok := img.Last(t)
	if !ok {
		return 0, fmt.Errorf("%w: image has no %s chunk", ErrNoChunk, t)
	}
	return c.Offset, nil
}

// SignedEnd is the end of the bytes a signature chunk covers: the whole
// file, or everything before a trailing signature chunk.
func (img *Image) SignedEnd() int64 {
	if n := len(img.Chunks); n > 0 && img.Chunks[n-1].Type == TypeSignature {
		return img.Chunks[n-1].Offset
	}
	return img.Size
}

// ReadChunk returns a chunk's data.
func ReadChunk(r io.ReaderAt, c Chunk) ([]byte, error) {
	if c.Len > MaxChunkData {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, c.Len)
	}
	b := make([]byte, c.Len)
	if _, err := r.ReadAt(b, c.Offset); err != nil {
		return nil, fmt.Errorf("fwimage: reading %s chunk at 0x%x: %w", c.Type, c.Offset, err)
	}
	return b, nil
}

// IsFakeCertificate reports whether signature chunk data is the
// placeholder that official images carry instead of a signature.
func IsFakeCertificate(data []byte) bool {
	return bytes.Equal(bytes.TrimRight(data, "\n\x00"), []byte(FakeCertificate))
}

// AppendChunk copies src to dst and appends a chunk of type t holding data,
// computing the CRC over everything written. It is the streaming
// equivalent of `fwtool -i`/`-s`.
func AppendChunk(dst io.Writer, src io.Reader, t Type, data []byte) error {
	if t != TypeMetadata && t != TypeSignature {
		return fmt.Errorf("%w %d", ErrUnknownType, t)
	}
	limit := map[Type]int{TypeMetadata: MaxMetadataLen, TypeSignature: MaxSignature}[t]
	if len(data) > limit {
		return fmt.Errorf("%w: %s chunk of %d bytes, limit %d", ErrTooLarge, t, len(data), limit)
	}
	var crc uint32
	w := io.MultiWriter(dst, crcWriter{&crc})
	if _, err := io.Copy(w, src); err != nil {
		return fmt.Errorf("fwimage: copying image: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("fwimage: writing %s chunk: %w", t, err)
	}
	_, err := dst.Write(Trailer(t, ^crc, len(data)))
	return err
}

// Trailer encodes a chunk trailer. crc is fwtool's value: crc32 IEEE with
// initial value 0xffffffff and no final xor over the file up to the end of
// the chunk's data.
func Trailer(t Type, crc uint32, dataLen int) []byte {
	b := make([]byte, TrailerLen)
	binary.BigEndian.PutUint32(b[0:], Magic)
	binary.BigEndian.PutUint32(b[4:], crc)
	b[8] = byte(t)
	binary.BigEndian.PutUint32(b[12:], uint32(dataLen+TrailerLen))
	return b
}

// FWCRC returns fwtool's CRC of b (for tests and small inputs).
func FWCRC(b []byte) uint32 { return ^crc32.ChecksumIEEE(b) }

// SHA256Range hashes the first n bytes of r.
func SHA256Range(r io.ReaderAt, n int64) ([]byte, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, 0, n)); err != nil {
		return nil, fmt.Errorf("fwimage: hashing: %w", err)
	}
	return h.Sum(nil), nil
}
