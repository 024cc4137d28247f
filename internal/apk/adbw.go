package apk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
)

// writer builds an ADB block the way apk-tools' adb_w_* functions do, so
// that equal inputs give the bytes apk writes: values are appended with
// zero padding to their alignment, and equal data (with equal alignment)
// is stored once.
type writer struct {
	buf   []byte
	cache map[string]int
	err   error
}

func newWriter() *writer {
	return &writer{buf: make([]byte, 8), cache: map[string]int{}}
}

func (w *writer) raw(data []byte, align int) int {
	for len(w.buf)%align != 0 {
		w.buf = append(w.buf, 0)
	}
	off := len(w.buf)
	w.buf = append(w.buf, data...)
	return off
}

func (w *writer) data(data []byte, align int) int {
	if off, ok := w.cache[string(data)]; ok && off%align == 0 {
		return off
	}
	off := w.raw(data, align)
	w.cache[string(data)] = off
	return off
}

func mkval(t uint32, off int) uint32 { return t<<28 | uint32(off) }

func (w *writer) check(off int) int {
	if off > 0x0fffffff && w.err == nil {
		w.err = fmt.Errorf("%w: ADB block over 256 MiB", ErrTooLarge)
	}
	return off
}

func blobBytes(b []byte) ([]byte, uint32, int) {
	n := len(b)
	switch {
	case n > 0xffff:
		h := binary.LittleEndian.AppendUint32(nil, uint32(n))
		return append(h, b...), typeBlob32, 4
	case n > 0xff:
		h := binary.LittleEndian.AppendUint16(nil, uint16(n))
		return append(h, b...), typeBlob16, 2
	default:
		return append([]byte{byte(n)}, b...), typeBlob8, 1
	}
}

func (w *writer) blob(b []byte) uint32 {
	if len(b) == 0 {
		return valNull
	}
	d, t, a := blobBytes(b)
	return mkval(t, w.check(w.data(d, a)))
}

// blobRaw writes without consulting or filling the cache (adb_w_blob_raw).
func (w *writer) blobRaw(b []byte) uint32 {
	if len(b) == 0 {
		return valNull
	}
	d, t, a := blobBytes(b)
	return mkval(t, w.check(w.raw(d, a)))
}

func (w *writer) str(s string) uint32 { return w.blob([]byte(s)) }

func (w *writer) int(v uint64) uint32 {
	switch {
	case v >= 1<<32:
		return mkval(typeInt64, w.check(w.data(binary.LittleEndian.AppendUint64(nil, v), 4)))
	case v >= 0x10000000:
		return mkval(typeInt32, w.check(w.data(binary.LittleEndian.AppendUint32(nil, uint32(v)), 4)))
	}
	return mkval(typeInt, int(v))
}

// obj writes slots (slot 0 ignored) with trailing nulls trimmed; an object
// with no set slot is the null value.
func (w *writer) obj(t uint32, slots []uint32) uint32 {
	n := len(slots)
	for n > 1 && slots[n-1] == valNull {
		n--
	}
	if n <= 1 {
		return valNull
	}
	b := make([]byte, 4*n)
	binary.LittleEndian.PutUint32(b, uint32(n))
	for i := 1; i < n; i++ {
		binary.LittleEndian.PutUint32(b[4*i:], slots[i])
	}
	return mkval(t, w.check(w.data(b, 4)))
}

// arr writes an array of items, sorted (and de-duplicated) like apk's
// pre_commit hooks when s is not nil.
func (w *writer) arr(t uint32, items []uint32, s *schema, unique bool) uint32 {
	items = append([]uint32(nil), items...)
	if s != nil {
		sort.SliceStable(items, func(i, j int) bool { return w.cmpVal(s.fields[0], items[i], items[j]) < 0 })
		if unique {
			out := items[:0]
			for i, v := range items {
				if i > 0 && v == items[i-1] {
					continue
				}
				out = append(out, v)
			}
			items = out
		}
	}
	return w.obj(t, append([]uint32{0}, items...))
}

// schema describes field kinds for comparisons (apk's adb_ro_cmpobj in
// exact mode). Field i (1-based) is fields[i-1]; an array has one field,
// its element kind.
type schema struct {
	array  bool
	fields []kind
}

type kind struct {
	k   byte // 'b' blob, 'v' version, 'i' int, 'o' object/array
	sub *schema
}

var (
	schDep   = &schema{fields: []kind{{k: 'b'}, {k: 'v'}, {k: 'i'}}}
	schDeps  = &schema{array: true, fields: []kind{{k: 'o', sub: schDep}}}
	schStrs  = &schema{array: true, fields: []kind{{k: 'b'}}}
	schInfo  = &schema{fields: []kind{{k: 'b'}, {k: 'v'}, {k: 'b'}, {k: 'b'}, {k: 'b'}, {k: 'b'}, {k: 'b'}, {k: 'b'}, {k: 'b'}, {k: 'b'}, {k: 'i'}, {k: 'i'}, {k: 'i'}, {k: 'i'}, {k: 'o', sub: schDeps}, {k: 'o', sub: schDeps}, {k: 'o', sub: schDeps}, {k: 'o', sub: schDeps}, {k: 'o', sub: schDeps}, {k: 'i'}, {k: 'o', sub: schStrs}}}
	schXattr = &schema{array: true, fields: []kind{{k: 'b'}}}
	schACL   = &schema{fields: []kind{{k: 'i'}, {k: 'b'}, {k: 'b'}, {k: 'o', sub: schXattr}}}
	schFile  = &schema{fields: []kind{{k: 'b'}, {k: 'o', sub: schACL}, {k: 'i'}, {k: 'i'}, {k: 'b'}, {k: 'b'}}}
	schFiles = &schema{array: true, fields: []kind{{k: 'o', sub: schFile}}}
	schDir   = &schema{fields: []kind{{k: 'b'}, {k: 'o', sub: schACL}, {k: 'o', sub: schFiles}}}
)

func (w *writer) rd() *reader { return newReader(w.buf) }

// cmp compares two written objects of schema s.
func (w *writer) cmp(s *schema, a, b uint32) int {
	r := w.rd()
	oa, err1 := r.obj(a)
	ob, err2 := r.obj(b)
	if err1 != nil || err2 != nil {
		return 0
	}
	n := max(len(oa), len(ob))
	for i := 1; i < n; i++ {
		k := kind{k: 'b'}
		if s.array {
			k = s.fields[0]
		} else if i-1 < len(s.fields) {
			k = s.fields[i-1]
		}
		if c := w.cmpVal(k, oa.at(i), ob.at(i)); c != 0 {
			return c
		}
	}
	return 0
}

func (w *writer) cmpVal(k kind, a, b uint32) int {
	r := w.rd()
	switch k.k {
	case 'i':
		x, _ := r.int(a)
		y, _ := r.int(b)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case 'o':
		return w.cmp(k.sub, a, b)
	}
	x, _ := r.blob(a)
	y, _ := r.blob(b)
	if k.k == 'v' {
		// apk's version_compare: a missing version compares equal to anything.
		if x == nil || y == nil {
			return 0
		}
		return CompareVersions(string(x), string(y))
	}
	return bytes.Compare(x, y)
}

func (w *writer) setRoot(v uint32) { binary.LittleEndian.PutUint32(w.buf[4:], v) }

// block appends an ADB block of type t holding payload to out.
func appendBlock(out []byte, t uint32, payload []byte) []byte {
	raw := 4 + len(payload)
	if uint64(raw) > 0x3fffffff {
		out = binary.LittleEndian.AppendUint32(out, blockEXT<<30|t)
		out = binary.LittleEndian.AppendUint32(out, 0)
		out = binary.LittleEndian.AppendUint64(out, uint64(16+len(payload)))
		raw = 16 + len(payload)
	} else {
		out = binary.LittleEndian.AppendUint32(out, t<<30|uint32(raw))
	}
	out = append(out, payload...)
	for ; raw%8 != 0; raw++ {
		out = append(out, 0)
	}
	return out
}

func fileHeader(schema uint32) []byte {
	h := binary.LittleEndian.AppendUint32(nil, fileMagic)
	return binary.LittleEndian.AppendUint32(h, schema)
}
