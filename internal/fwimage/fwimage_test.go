package fwimage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
)

// refCRC is fwtool's CRC written out bit by bit, independent of
// hash/crc32: reflected polynomial 0xEDB88320, initial value 0xFFFFFFFF,
// no final xor (formats.md §2).
func refCRC(b []byte) uint32 {
	c := uint32(0xFFFFFFFF)
	for _, x := range b {
		c ^= uint32(x)
		for k := 0; k < 8; k++ {
			if c&1 != 0 {
				c = c>>1 ^ 0xEDB88320
			} else {
				c >>= 1
			}
		}
	}
	return c
}

// refTrailer encodes a trailer by hand from the table of formats.md §2.
func refTrailer(prefix []byte, typ byte, dataLen int) []byte {
	t := make([]byte, 16)
	binary.BigEndian.PutUint32(t[0:], 0x46577830)
	binary.BigEndian.PutUint32(t[4:], refCRC(prefix))
	t[8] = typ
	binary.BigEndian.PutUint32(t[12:], uint32(dataLen+16))
	return t
}

// refAppend appends a chunk to img by hand.
func refAppend(img []byte, typ byte, data []byte) []byte {
	out := append(bytes.Clone(img), data...)
	return append(out, refTrailer(out, typ, len(data))...)
}

func testPayload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	return p
}

func TestCRCKnownValues(t *testing.T) {
	// "123456789": the CRC-32 check value is 0xCBF43926, so without the
	// final xor it is its complement.
	if got := refCRC([]byte("123456789")); got != ^uint32(0xCBF43926) {
		t.Fatalf("reference CRC %08x", got)
	}
	for _, in := range [][]byte{nil, []byte("123456789"), testPayload(5000)} {
		if got, want := FWCRC(in), refCRC(in); got != want {
			t.Errorf("FWCRC(%d bytes) = %08x, want %08x", len(in), got, want)
		}
	}
}

func TestTrailerGolden(t *testing.T) {
	got := Trailer(TypeMetadata, 0x5c2349ee, 262)
	want := []byte{'F', 'W', 'x', '0', 0x5c, 0x23, 0x49, 0xee, 1, 0, 0, 0, 0, 0, 0x01, 0x16}
	if !bytes.Equal(got, want) {
		t.Errorf("Trailer = %x, want %x", got, want)
	}
}

func TestAppendChunkMatchesHandBuilt(t *testing.T) {
	payload := testPayload(1001)
	md := append(make([]byte, 8), glAR150JSON...)
	var buf bytes.Buffer
	if err := AppendChunk(&buf, bytes.NewReader(payload), TypeMetadata, MetadataChunk([]byte(glAR150JSON))); err != nil {
		t.Fatal(err)
	}
	want := refAppend(payload, 1, md)
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("AppendChunk output differs from the hand-built image")
	}
	// The CRC of this exact image, as imgbuild inspect printed it when
	// the golden image of cmd/imgbuild was cross-checked with signify.
	if crc := binary.BigEndian.Uint32(want[len(want)-12:]); crc != 0x5c2349ee {
		t.Errorf("metadata crc %08x, want 5c2349ee", crc)
	}
	sig := []byte("sig")
	var buf2 bytes.Buffer
	if err := AppendChunk(&buf2, bytes.NewReader(want), TypeSignature, sig); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf2.Bytes(), refAppend(want, 0, sig)) {
		t.Error("signature chunk differs from the hand-built one")
	}
	if err := AppendChunk(io.Discard, bytes.NewReader(nil), Type(2), nil); !errors.Is(err, ErrUnknownType) {
		t.Errorf("type 2: %v", err)
	}
	if err := AppendChunk(io.Discard, bytes.NewReader(nil), TypeMetadata, make([]byte, MaxMetadataLen+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized metadata: %v", err)
	}
	if err := AppendChunk(io.Discard, bytes.NewReader(nil), TypeSignature, make([]byte, MaxSignature+1)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized signature: %v", err)
	}
}

func parseBytes(b []byte) (*Image, error) { return Parse(bytes.NewReader(b), int64(len(b))) }

func TestParseLayout(t *testing.T) {
	payload := testPayload(1001)
	md := append(make([]byte, 8), glAR150JSON...)
	unsigned := refAppend(payload, 1, md)
	blob := []byte("blob")
	signed := refAppend(unsigned, 0, blob)

	img, err := parseBytes(signed)
	if err != nil {
		t.Fatal(err)
	}
	want := &Image{
		Size:       int64(len(signed)),
		PayloadEnd: 1001,
		Chunks: []Chunk{
			{Type: TypeMetadata, Offset: 1001, Len: int64(len(md)), CRC: refCRC(unsigned[:len(unsigned)-16])},
			{Type: TypeSignature, Offset: int64(len(unsigned)), Len: 4, CRC: refCRC(signed[:len(signed)-16])},
		},
	}
	if !equalImage(img, want) {
		t.Fatalf("Parse = %+v\nwant %+v", img, want)
	}
	if got := img.SignedEnd(); got != int64(len(unsigned)) {
		t.Errorf("SignedEnd %d, want %d", got, len(unsigned))
	}
	if end, err := img.StripEnd(TypeSignature); err != nil || end != int64(len(unsigned)) {
		t.Errorf("StripEnd(signature) = %d, %v", end, err)
	}
	if end, err := img.StripEnd(TypeMetadata); err != nil || end != 1001 {
		t.Errorf("StripEnd(metadata) = %d, %v", end, err)
	}
	data, err := ReadChunk(bytes.NewReader(signed), img.Chunks[0])
	if err != nil || !bytes.Equal(data, md) {
		t.Errorf("ReadChunk(metadata) = %q, %v", data, err)
	}

	// No chunks at all: valid, empty.
	plain, err := parseBytes(payload)
	if err != nil || len(plain.Chunks) != 0 || plain.PayloadEnd != 1001 {
		t.Errorf("plain payload: %+v, %v", plain, err)
	}
	if _, err := plain.StripEnd(TypeSignature); !errors.Is(err, ErrNoChunk) {
		t.Errorf("StripEnd without a chunk: %v", err)
	}
	if plain.SignedEnd() != 1001 {
		t.Errorf("SignedEnd of an unsigned file %d", plain.SignedEnd())
	}
	// Metadata only.
	u, err := parseBytes(unsigned)
	if err != nil || len(u.Chunks) != 1 || u.SignedEnd() != int64(len(unsigned)) {
		t.Errorf("unsigned image: %+v, %v", u, err)
	}
	// A chunk right at the start of the file (empty payload) and a file
	// shorter than a trailer.
	if img, err := parseBytes(refAppend(nil, 1, md)); err != nil || img.PayloadEnd != 0 {
		t.Errorf("chunk at offset 0: %+v, %v", img, err)
	}
	if img, err := parseBytes([]byte("short")); err != nil || len(img.Chunks) != 0 {
		t.Errorf("5-byte file: %+v, %v", img, err)
	}
}

func equalImage(a, b *Image) bool {
	if a.Size != b.Size || a.PayloadEnd != b.PayloadEnd || len(a.Chunks) != len(b.Chunks) {
		return false
	}
	for i := range a.Chunks {
		if a.Chunks[i] != b.Chunks[i] {
			return false
		}
	}
	return true
}

func TestParseErrors(t *testing.T) {
	payload := testPayload(1001)
	md := append(make([]byte, 8), glAR150JSON...)
	unsigned := refAppend(payload, 1, md)
	signed := refAppend(unsigned, 0, []byte("blob"))
	mod := func(b []byte, f func([]byte)) []byte { c := bytes.Clone(b); f(c); return c }
	setSize := func(b []byte, v uint32) []byte {
		return mod(b, func(c []byte) { binary.BigEndian.PutUint32(c[len(c)-4:], v) })
	}
	tooMany := payload
	for range maxChunks + 1 {
		tooMany = refAppend(tooMany, 0, []byte("x"))
	}
	tests := []struct {
		name string
		in   []byte
		want error
		msg  string
	}{
		{"crc of metadata", mod(signed, func(c []byte) { c[10] ^= 1 }), ErrCRC, "metadata chunk at 0x3e9"},
		{"crc field", mod(signed, func(c []byte) { c[len(c)-12] ^= 1 }), ErrCRC, "signature chunk"},
		{"unknown type", mod(signed, func(c []byte) { c[len(c)-8] = 2 }), ErrUnknownType, "unknown chunk type 2"},
		{"unknown type with good crc", refAppend(unsigned, 7, []byte("x")), ErrUnknownType, "7"},
		{"size larger than file", setSize(signed, uint32(len(signed)+100)), ErrMalformed, "larger than the"},
		{"size smaller than trailer", setSize(signed, 15), ErrMalformed, "smaller than the trailer"},
		{"size beyond fwtool", setSize(signed, MaxChunkData+17), ErrTooLarge, "at most 32768"},
		{"padding", mod(signed, func(c []byte) { c[len(c)-6] = 1 }), ErrMalformed, "non-zero padding"},
		{"signature over 1 KiB", refAppend(unsigned, 0, make([]byte, MaxSignature+1)), ErrTooLarge, "limit 1024"},
		{"metadata over 30 KiB", refAppend(payload, 1, make([]byte, MaxMetadataLen+1)), ErrTooLarge, "limit 30720"},
		{"too many chunks", tooMany, ErrMalformed, "more than 8 chunks"},
		// Bytes cut from the payload: the chain still fits, the CRCs don't.
		{"payload shortened", append(bytes.Clone(payload[:500]), signed[1001:]...), ErrCRC, "crc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img, err := parseBytes(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Parse: %+v, %v; want %v", img, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

// Truncation drops the trailer, so what is left parses as fewer chunks (or
// none); the verifier then reports the image as unsigned.
func TestParseTruncated(t *testing.T) {
	payload := testPayload(1001)
	unsigned := refAppend(payload, 1, append(make([]byte, 8), glAR150JSON...))
	signed := refAppend(unsigned, 0, []byte("blob"))
	for cut := len(unsigned) + 1; cut < len(signed); cut++ {
		img, err := parseBytes(signed[:cut])
		if err != nil {
			continue // a cut can make a new trailer-shaped tail; any error is fine
		}
		if n := len(img.Chunks); n > 0 && img.Chunks[n-1].Type == TypeSignature {
			t.Fatalf("cut at %d still has a signature chunk: %+v", cut, img)
		}
	}
}

func TestIsFakeCertificate(t *testing.T) {
	for in, want := range map[string]bool{
		"# fake certificate":       true,
		"# fake certificate\n":     true,
		"# fake certificate\x00\n": true,
		"# fake certificate!":      false,
		"":                         false,
		" # fake certificate":      false,
	} {
		if got := IsFakeCertificate([]byte(in)); got != want {
			t.Errorf("IsFakeCertificate(%q) = %v", in, got)
		}
	}
}

func TestSHA256Range(t *testing.T) {
	sum, err := SHA256Range(strings.NewReader("abcdef"), 3)
	if err != nil {
		t.Fatal(err)
	}
	// sha256("abc")
	if got := hexString(sum); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("sha256 of the first 3 bytes = %s", got)
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func FuzzParse(f *testing.F) {
	payload := testPayload(300)
	md := append(make([]byte, 8), glAR150JSON...)
	unsigned := refAppend(payload, 1, md)
	f.Add(payload)
	f.Add(unsigned)
	f.Add(refAppend(unsigned, 0, []byte("blob")))
	f.Add(refAppend(unsigned, 0, []byte(FakeCertificate)))
	f.Add(refAppend(refAppend(nil, 0, []byte("a")), 1, []byte("b")))
	f.Add(refAppend(unsigned, 9, nil))
	f.Add([]byte("FWx0"))
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Parse(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if img != nil {
				t.Fatal("image returned with an error")
			}
			return
		}
		// The chain tiles the file: payload, then each chunk's data and
		// trailer, ending exactly at the end.
		if img.Size != int64(len(data)) || img.PayloadEnd < 0 {
			t.Fatalf("size %d payload end %d", img.Size, img.PayloadEnd)
		}
		pos := img.PayloadEnd
		rebuilt := bytes.Clone(data[:pos])
		for i, c := range img.Chunks {
			if c.Offset != pos || c.Len < 0 || c.End() > img.Size {
				t.Fatalf("chunk %d %+v does not follow offset %d", i, c, pos)
			}
			if c.Type != TypeMetadata && c.Type != TypeSignature {
				t.Fatalf("chunk %d of unknown type %d accepted", i, c.Type)
			}
			if c.Len > MaxChunkData || (c.Type == TypeSignature && c.Len > MaxSignature) || (c.Type == TypeMetadata && c.Len > MaxMetadataLen) {
				t.Fatalf("chunk %d of %d bytes accepted", i, c.Len)
			}
			if want := refCRC(data[:c.Offset+c.Len]); c.CRC != want {
				t.Fatalf("chunk %d crc %08x, content gives %08x", i, c.CRC, want)
			}
			// Re-encoding the chunk gives the input bytes back.
			rebuilt = refAppend(rebuilt, byte(c.Type), data[c.Offset:c.Offset+c.Len])
			if !bytes.Equal(Trailer(c.Type, c.CRC, int(c.Len)), data[c.Offset+c.Len:c.End()]) {
				t.Fatalf("chunk %d trailer does not re-encode", i)
			}
			pos = c.End()
		}
		if pos != img.Size {
			t.Fatalf("chunks end at %d, file at %d", pos, img.Size)
		}
		if !bytes.Equal(rebuilt, data) {
			t.Fatal("payload + chunks do not rebuild the file")
		}
		// The payload does not end in a trailer: Parse read every chunk.
		if pe := img.PayloadEnd; pe >= 16 && binary.BigEndian.Uint32(data[pe-16:]) == Magic {
			t.Fatalf("payload ends in an unread trailer")
		}
		if se := img.SignedEnd(); se < img.PayloadEnd || se > img.Size {
			t.Fatalf("SignedEnd %d outside the file", se)
		}
	})
}
