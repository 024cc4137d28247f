// Package apk reads and writes the apk-tools v3 formats that OpenWrt 25.12
// uses: .apk v3 packages and packages.adb indexes (both "ADB" containers),
// and the text installed database /lib/apk/db/installed.
//
// Reading:
//
//	keys := apk.NewKeyring(); keys.Add(pub)       // pinned PEM keys
//	idx, err := apk.ReadIndex(b, keys)            // packages.adb, signature checked
//	pkg, err := apk.ReadPackage(r, maxSize)       // .apk v3: info, files, scripts
//	err = pkg.MatchIndex(idx.Lookup(pkg.Info.Name)) // identity = SHA-256 of the ADB block
//	pkgs, err := apk.ParseInstalled(b)            // /lib/apk/db/installed
//
// Writing (deterministic; byte-identical to apk mkpkg / mkndx with
// --compression none for the same inputs, checked against committed vectors):
//
//	err = apk.WritePackage(w, info, files, scripts)
//	b, err := apk.WriteIndex(idx, secretKey)
//
// All readers treat input as hostile: every offset, length and count is
// checked against the bytes present, decompression is bounded, the number
// of decoding steps is bounded in proportion to the block size (shared
// sub-objects cannot blow up work or memory), and
// errors wrap the sentinels below. The wire format and its sources are in
// docs/formats-readers.md, section "apk v3 (OpenWrt 25.12)".
package apk

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Errors returned (wrapped) by this package.
var (
	ErrMalformed    = errors.New("apk: malformed")
	ErrUnsupported  = errors.New("apk: unsupported")
	ErrTooLarge     = errors.New("apk: too large")
	ErrUnsigned     = errors.New("apk: not signed")
	ErrUntrustedKey = errors.New("apk: signed by no trusted key")
	ErrBadSignature = errors.New("apk: bad signature")
	ErrIdentity     = errors.New("apk: package does not match index identity")
)

const (
	fileMagic     = 0x2e424441 // "ADB."
	SchemaIndex   = 0x78646e69 // "indx"
	SchemaPackage = 0x676b6370 // "pckg"

	blockADB  = 0
	blockSIG  = 1
	blockDATA = 2
	blockEXT  = 3

	typeSpecial = 0x0
	typeInt     = 0x1
	typeInt32   = 0x2
	typeInt64   = 0x3
	typeBlob8   = 0x8
	typeBlob16  = 0x9
	typeBlob32  = 0xa
	typeArray   = 0xd
	typeObject  = 0xe

	valNull = 0

	digestSHA256 = 3
	digestSHA512 = 4

	// DefaultMaxSize bounds decompressed input when callers pass 0.
	DefaultMaxSize = 64 << 20

	// Decoding one ADB block may cost at most workBase + workPerByte *
	// len(block) units of work, and never more than maxWork: one unit per
	// object or array slot visited and per blob byte read. Values can be
	// shared (apk's writer stores equal values once), so without this a
	// few kilobytes of nested shared arrays would expand to millions of
	// values. Files made by apk need less than one unit per byte
	// (TestWorkBudgetReal).
	workBase    = 4096
	workPerByte = 4
	maxWork     = 1 << 26
)

func malformed(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
}

// inflaters reuses deflate decoders: each holds a 32 KiB window and tables
// that would otherwise be allocated for every input.
var inflaters = sync.Pool{New: func() any { return flate.NewReader(bytes.NewReader(nil)) }}

// decompress returns the uncompressed "ADB." stream. "ADBd" is raw deflate,
// "ADBc" is followed by {alg, level}; alg 1 is deflate, 2 (zstd) is refused.
func decompress(b []byte, max int64) ([]byte, error) {
	if max <= 0 {
		max = DefaultMaxSize
	}
	if len(b) < 4 || !bytes.Equal(b[:3], []byte("ADB")) {
		return nil, malformed("no ADB magic")
	}
	var rest []byte
	switch b[3] {
	case '.':
		if int64(len(b)) > max {
			return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(b))
		}
		return b, nil
	case 'd':
		rest = b[4:]
	case 'c':
		if len(b) < 6 {
			return nil, malformed("short ADBc header")
		}
		switch b[4] {
		case 0:
			rest = b[6:]
			if int64(len(rest)) > max {
				return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(rest))
			}
			return rest, nil
		case 1:
			rest = b[6:]
		default:
			return nil, fmt.Errorf("%w: ADB compression algorithm %d", ErrUnsupported, b[4])
		}
	default:
		return nil, malformed("unknown ADB compression %q", b[3])
	}
	fr := inflaters.Get().(io.ReadCloser)
	defer inflaters.Put(fr)
	if err := fr.(flate.Resetter).Reset(bytes.NewReader(rest), nil); err != nil {
		return nil, malformed("deflate: %v", err)
	}
	out, err := io.ReadAll(io.LimitReader(fr, max+1))
	if err != nil {
		return nil, malformed("deflate: %v", err)
	}
	if int64(len(out)) > max {
		return nil, fmt.Errorf("%w: decompressed size over %d", ErrTooLarge, max)
	}
	return out, nil
}

// container is a parsed ADB file: the ADB block, signature blocks and data blocks.
type container struct {
	schema uint32
	adb    []byte
	sigs   [][]byte
	data   [][]byte
}

func parseContainer(b []byte, schema uint32) (*container, error) {
	if len(b) < 8 || binary.LittleEndian.Uint32(b) != fileMagic {
		return nil, malformed("bad ADB file header")
	}
	c := &container{schema: binary.LittleEndian.Uint32(b[4:])}
	if schema != 0 && c.schema != schema {
		return nil, malformed("schema %#x, want %#x", c.schema, schema)
	}
	b = b[8:]
	state := 0 // 0: want ADB, 1: SIG or DATA, 2: DATA only
	for len(b) > 0 {
		if len(b) < 4 {
			return nil, malformed("truncated block header")
		}
		ts := binary.LittleEndian.Uint32(b)
		typ := ts >> 30
		hdr := uint64(4)
		raw := uint64(ts & 0x3fffffff)
		if typ == blockEXT {
			if len(b) < 16 {
				return nil, malformed("truncated extended block header")
			}
			typ = ts & 0x3fffffff
			hdr = 16
			raw = binary.LittleEndian.Uint64(b[8:])
		}
		if raw < hdr || raw > uint64(len(b)) {
			return nil, malformed("block size %d out of range", raw)
		}
		size := (raw + 7) &^ 7
		if size > uint64(len(b)) {
			return nil, malformed("block padding past end")
		}
		payload := b[hdr:raw]
		switch {
		case typ == blockADB && state == 0:
			if len(payload) < 8 {
				return nil, malformed("ADB block too short")
			}
			if payload[0] != 0 {
				return nil, fmt.Errorf("%w: ADB compat version %d", ErrUnsupported, payload[0])
			}
			c.adb = payload
			state = 1
		case typ == blockSIG && state == 1:
			c.sigs = append(c.sigs, payload)
		case typ == blockDATA && state >= 1:
			c.data = append(c.data, payload)
			state = 2
		default:
			return nil, malformed("unexpected block type %d", typ)
		}
		b = b[size:]
	}
	if c.adb == nil {
		return nil, malformed("no ADB block")
	}
	return c, nil
}

// reader decodes values inside one ADB block.
type reader struct {
	b      []byte
	work   int // units spent
	budget int // units allowed
}

func newReader(b []byte) *reader {
	return &reader{b: b, budget: min(workBase+workPerByte*len(b), maxWork)}
}

// charge spends n units of the work budget.
func (r *reader) charge(n uint64) error {
	if n > uint64(r.budget-r.work) {
		r.work = r.budget
		return fmt.Errorf("%w: decoding a %d-byte ADB block takes more than %d steps (shared values expand too much)", ErrTooLarge, len(r.b), r.budget)
	}
	r.work += int(n)
	return nil
}

func (r *reader) deref(v uint32, off, n uint64) ([]byte, error) {
	start := uint64(v&0x0fffffff) + off
	if start+n > uint64(len(r.b)) || start+n < start {
		return nil, malformed("value %#08x out of range", v)
	}
	return r.b[start : start+n], nil
}

func (r *reader) int(v uint32) (uint64, error) {
	switch v >> 28 {
	case typeSpecial:
		if v == valNull {
			return 0, nil
		}
	case typeInt:
		return uint64(v & 0x0fffffff), nil
	case typeInt32:
		p, err := r.deref(v, 0, 4)
		if err != nil {
			return 0, err
		}
		return uint64(binary.LittleEndian.Uint32(p)), nil
	case typeInt64:
		p, err := r.deref(v, 0, 8)
		if err != nil {
			return 0, err
		}
		return binary.LittleEndian.Uint64(p), nil
	}
	return 0, malformed("value %#08x is not an integer", v)
}

// blob returns nil for the null value.
func (r *reader) blob(v uint32) ([]byte, error) {
	var hl uint64
	switch v >> 28 {
	case typeSpecial:
		if v == valNull {
			return nil, nil
		}
		return nil, malformed("value %#08x is not a blob", v)
	case typeBlob8:
		hl = 1
	case typeBlob16:
		hl = 2
	case typeBlob32:
		hl = 4
	default:
		return nil, malformed("value %#08x is not a blob", v)
	}
	h, err := r.deref(v, 0, hl)
	if err != nil {
		return nil, err
	}
	var n uint64
	switch hl {
	case 1:
		n = uint64(h[0])
	case 2:
		n = uint64(binary.LittleEndian.Uint16(h))
	default:
		n = uint64(binary.LittleEndian.Uint32(h))
	}
	if err := r.charge(n); err != nil {
		return nil, err
	}
	return r.deref(v, hl, n)
}

func (r *reader) str(v uint32) (string, error) {
	b, err := r.blob(v)
	return string(b), err
}

// obj returns the slots of an object or array (slot 0 is the count); a
// null value gives a one-slot (empty) object.
func (r *reader) obj(v uint32) (objv, error) {
	if v == valNull {
		return objv{1}, nil
	}
	if t := v >> 28; t != typeArray && t != typeObject {
		return nil, malformed("value %#08x is not an object", v)
	}
	p, err := r.deref(v, 0, 4)
	if err != nil {
		return nil, err
	}
	n := uint64(binary.LittleEndian.Uint32(p))
	if n == 0 {
		return nil, malformed("object with zero slots")
	}
	p, err = r.deref(v, 0, 4*n)
	if err != nil {
		return nil, err
	}
	if err := r.charge(n); err != nil {
		return nil, err
	}
	o := make(objv, n)
	for i := range o {
		o[i] = binary.LittleEndian.Uint32(p[4*i:])
	}
	return o, nil
}

func (r *reader) root() uint32 { return binary.LittleEndian.Uint32(r.b[4:]) }

type objv []uint32

// at returns slot i or null.
func (o objv) at(i int) uint32 {
	if i < len(o) && i > 0 {
		return o[i]
	}
	return valNull
}

// items returns the elements of an array.
func (o objv) items() []uint32 {
	if len(o) == 0 {
		return nil
	}
	return o[1:]
}
