// Package ucert encodes and decodes the ucert blob that OpenWrt puts in an
// image's fwtool signature chunk.
//
// A ucert file is a sequence of top-level blobs (libubox blob_attr: a
// big-endian u32 header whose bits 24-30 are an id and whose low 24 bits are
// the length including the header, data padded to 4 bytes). Each top-level
// blob holds a signature attribute (id 0: a whole usign .sig file) and, for a
// certificate, a payload attribute (id 1: a blobmsg table describing the
// certified key). The signature that covers the image is the one in the last
// element without a payload; elements with a payload are the chain leading
// to it.
package ucert

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("ucert: malformed blob")

const (
	attrSignature = 0
	attrPayload   = 1

	headerLen = 4
	idMask    = 0x7f000000
	extended  = 0x80000000
	lenMask   = 0x00ffffff

	// MaxLen is what stock ucert reads of a certificate file (a 4096-byte
	// buffer less one); anything longer cannot verify on a router.
	MaxLen = 4095
)

// Element is one link of a ucert chain.
type Element struct {
	// Signature is the usign signature file (comment line included).
	Signature []byte
	// Payload is the signed certificate payload, nil for the final,
	// image-covering signature.
	Payload []byte
}

func pad4(n int) int { return (n + 3) &^ 3 }

func putAttr(dst []byte, id uint32, data []byte) []byte {
	var h [headerLen]byte
	binary.BigEndian.PutUint32(h[:], id<<24|uint32(headerLen+len(data)))
	dst = append(dst, h[:]...)
	dst = append(dst, data...)
	for i := len(data); i%4 != 0; i++ {
		dst = append(dst, 0)
	}
	return dst
}

// Encode writes a chain. For a single bare signature this is the blob that
// `ucert -A` writes: 160 bytes for a 151-byte .sig file.
func Encode(chain ...Element) ([]byte, error) {
	var out []byte
	for i, e := range chain {
		if len(e.Signature) == 0 {
			return nil, fmt.Errorf("ucert: element %d has no signature", i)
		}
		var inner []byte
		inner = putAttr(inner, attrSignature, e.Signature)
		if e.Payload != nil {
			inner = putAttr(inner, attrPayload, e.Payload)
		}
		if len(inner)+headerLen > lenMask {
			return nil, fmt.Errorf("ucert: element %d too large", i)
		}
		out = putAttr(out, 0, inner)
	}
	if len(out) > MaxLen {
		return nil, fmt.Errorf("ucert: chain is %d bytes; stock ucert reads at most %d", len(out), MaxLen)
	}
	return out, nil
}

// EncodeSignature wraps one usign signature file as a bare ucert blob.
func EncodeSignature(sigFile []byte) ([]byte, error) {
	return Encode(Element{Signature: sigFile})
}

// Decode parses a chain. It is strict where stock ucert is lenient: trailing
// garbage, non-zero padding, unknown or repeated attribute ids and extended
// headers are errors, because a verifier must never read a different
// signature than the one stock tools would.
func Decode(b []byte) ([]Element, error) {
	if len(b) > MaxLen {
		return nil, fmt.Errorf("%w: %d bytes, more than the %d stock ucert reads", ErrMalformed, len(b), MaxLen)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	var chain []Element
	for off := 0; off < len(b); {
		id, data, next, err := readAttr(b, off)
		if err != nil {
			return nil, err
		}
		if id != 0 {
			return nil, fmt.Errorf("%w: top-level blob at offset %d has id %d, want 0", ErrMalformed, off, id)
		}
		e, err := decodeElement(data, off+headerLen)
		if err != nil {
			return nil, err
		}
		chain = append(chain, e)
		off = next
	}
	return chain, nil
}

func decodeElement(b []byte, base int) (Element, error) {
	var e Element
	seen := map[uint32]bool{}
	for off := 0; off < len(b); {
		id, data, next, err := readAttr(b, off)
		if err != nil {
			return e, fmt.Errorf("%w (inside blob at offset %d)", err, base)
		}
		if seen[id] {
			return e, fmt.Errorf("%w: attribute id %d repeated at offset %d", ErrMalformed, id, base+off)
		}
		seen[id] = true
		switch id {
		case attrSignature:
			e.Signature = data
		case attrPayload:
			e.Payload = data
		default:
			return e, fmt.Errorf("%w: unknown attribute id %d at offset %d", ErrMalformed, id, base+off)
		}
		off = next
	}
	if e.Signature == nil {
		return e, fmt.Errorf("%w: blob at offset %d has no signature attribute", ErrMalformed, base)
	}
	if len(e.Signature) == 0 {
		// Encode refuses it too: an empty signature signs nothing.
		return e, fmt.Errorf("%w: blob at offset %d has an empty signature attribute", ErrMalformed, base)
	}
	return e, nil
}

// readAttr reads the attribute at off and returns its data and the offset
// of the next attribute.
func readAttr(b []byte, off int) (id uint32, data []byte, next int, err error) {
	if len(b)-off < headerLen {
		return 0, nil, 0, fmt.Errorf("%w: %d stray bytes at offset %d", ErrMalformed, len(b)-off, off)
	}
	h := binary.BigEndian.Uint32(b[off:])
	if h&extended != 0 {
		return 0, nil, 0, fmt.Errorf("%w: extended attribute at offset %d", ErrMalformed, off)
	}
	n := int(h & lenMask)
	if n < headerLen {
		return 0, nil, 0, fmt.Errorf("%w: attribute at offset %d has length %d, less than its header", ErrMalformed, off, n)
	}
	if n > len(b)-off {
		return 0, nil, 0, fmt.Errorf("%w: attribute at offset %d has length %d, overruns the %d bytes left", ErrMalformed, off, n, len(b)-off)
	}
	next = off + pad4(n)
	if next > len(b) {
		return 0, nil, 0, fmt.Errorf("%w: attribute at offset %d: padding overruns the blob", ErrMalformed, off)
	}
	for _, c := range b[off+n : next] {
		if c != 0 {
			return 0, nil, 0, fmt.Errorf("%w: attribute at offset %d: non-zero padding", ErrMalformed, off)
		}
	}
	return (h & idMask) >> 24, b[off+headerLen : off+n], next, nil
}

// SigningSignature returns the signature that covers the message: the one
// in the last element without a payload. A parser that took the first
// signature would report the root key of a certificate chain instead.
func SigningSignature(chain []Element) ([]byte, error) {
	for i := len(chain) - 1; i >= 0; i-- {
		if chain[i].Payload == nil {
			if i != len(chain)-1 {
				return nil, fmt.Errorf("%w: certificate after the final signature", ErrMalformed)
			}
			return chain[i].Signature, nil
		}
	}
	return nil, fmt.Errorf("%w: chain has no bare signature", ErrMalformed)
}
