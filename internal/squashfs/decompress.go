package squashfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"

	"github.com/torwrt/torwrt/internal/squashfs/xzdec"
)

// decompressor decodes one block into dst; output longer than dst is an
// error, so a hostile block cannot make the reader allocate.
type decompressor interface {
	decompress(dst, src []byte) (int, error)
}

func newDecompressor(id uint16, blockSize uint32) (decompressor, error) {
	switch id {
	case compGzip:
		return &gzipDec{}, nil
	case compXZ:
		return xzDec{}, nil
	case compZstd:
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxMemory(uint64(blockSize)),
			zstd.WithDecoderMaxWindow(uint64(max(blockSize, zstd.MinWindowSize))))
		if err != nil {
			return nil, err
		}
		return &zstdDec{d: d}, nil
	}
	return nil, fmt.Errorf("squashfs: superblock at 0x0: %w: %s compression", ErrUnsupported, compNames[id])
}

type xzDec struct{}

func (xzDec) decompress(dst, src []byte) (int, error) {
	n, err := xzdec.Decode(dst, src)
	if errors.Is(err, xzdec.ErrTooLarge) {
		return n, fmt.Errorf("%w: xz block decompresses beyond %d bytes", ErrTooLarge, len(dst))
	}
	return n, err
}

// gzipDec decodes the zlib streams squashfs calls gzip. Readers are pooled
// because building one allocates ~40 KiB of tables.
type gzipDec struct{ pool sync.Pool }

func (g *gzipDec) decompress(dst, src []byte) (int, error) {
	var zr io.ReadCloser
	if v := g.pool.Get(); v != nil {
		zr = v.(io.ReadCloser)
		if err := zr.(zlib.Resetter).Reset(bytes.NewReader(src), nil); err != nil {
			return 0, err
		}
	} else {
		var err error
		if zr, err = zlib.NewReader(bytes.NewReader(src)); err != nil {
			return 0, err
		}
	}
	defer g.pool.Put(zr)
	n, err := io.ReadFull(zr, dst)
	switch err {
	case io.EOF, io.ErrUnexpectedEOF:
		// Shorter than dst: the caller checks the length.
	case nil:
		var one [1]byte
		k, err := zr.Read(one[:])
		if k > 0 {
			return n, fmt.Errorf("%w: gzip block decompresses beyond %d bytes", ErrTooLarge, len(dst))
		}
		if err != nil && err != io.EOF {
			return n, err
		}
	default:
		return n, err
	}
	// Reading to the end verifies the adler32 trailer.
	if err := zr.Close(); err != nil {
		return n, err
	}
	return n, nil
}

type zstdDec struct{ d *zstd.Decoder }

func (z *zstdDec) decompress(dst, src []byte) (int, error) {
	out, err := z.d.DecodeAll(src, dst[:0])
	if err != nil {
		return 0, err
	}
	if len(out) > len(dst) {
		return 0, fmt.Errorf("%w: zstd block decompresses beyond %d bytes", ErrTooLarge, len(dst))
	}
	if len(out) > 0 && &out[0] != &dst[0] {
		copy(dst, out)
	}
	return len(out), nil
}
