package imagesig_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/imagesig/imagesign"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/ucert"
	"github.com/torwrt/torwrt/internal/usign"
)

const glAR150JSON = `{  "metadata_version": "1.1", "compat_version": "1.0",   "supported_devices":["glinet,gl-ar150","gl-ar150"], "version": { "dist": "OpenWrt", "version": "24.10.3", "revision": "r28872-daca7c049b", "target": "ath79/generic", "board": "glinet_gl-ar150" } }` + "\n"

func testKey(t testing.TB, n byte) *usign.SecretKey {
	t.Helper()
	k := &usign.SecretKey{Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{n}, 32))}
	for i := range k.Fingerprint {
		k.Fingerprint[i] = n<<4 | byte(i)
	}
	return k
}

// keySigner is k as a signer.Signer, the form imagesign signs with.
func keySigner(t testing.TB, k *usign.SecretKey) signer.Signer {
	t.Helper()
	s, err := signer.FromUsign(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func keyring(t testing.TB, keys ...*usign.SecretKey) *usign.Keyring {
	t.Helper()
	var pubs []*usign.PublicKey
	for _, k := range keys {
		pubs = append(pubs, k.Public())
	}
	kr, err := usign.NewKeyring(pubs...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// appendChunk appends a chunk with a correct trailer, bypassing the size
// limits of fwimage.AppendChunk so tests can build what it refuses.
func appendChunk(img []byte, typ fwimage.Type, data []byte) []byte {
	out := append(bytes.Clone(img), data...)
	return append(out, fwimage.Trailer(typ, fwimage.FWCRC(out), len(data))...)
}

func payload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*13 + i>>9)
	}
	return p
}

func unsignedImage(n int) []byte {
	return appendChunk(payload(n), fwimage.TypeMetadata, fwimage.MetadataChunk([]byte(glAR150JSON)))
}

// sign signs img (dropping a trailing signature chunk) and returns the
// signed image, as SignFile writes it.
func sign(t testing.TB, img []byte, k *usign.SecretKey) []byte {
	t.Helper()
	s, err := imagesign.Sign(t.Context(), bytes.NewReader(img), int64(len(img)), keySigner(t, k))
	if err != nil {
		t.Fatal(err)
	}
	return appendChunk(img[:s.SignedLen], fwimage.TypeSignature, s.Chunk)
}

// sigChunk wraps a usign signature in a ucert blob.
func sigChunk(t testing.TB, s *usign.Signature) []byte {
	t.Helper()
	b, err := ucert.EncodeSignature(s.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func verifyBytes(img []byte, kr *usign.Keyring, opt imagesig.Options) (*imagesig.Result, error) {
	return imagesig.Verify(bytes.NewReader(img), int64(len(img)), kr, opt)
}

func TestSignVerify(t *testing.T) {
	k := testKey(t, 1)
	unsigned := unsignedImage(4096)
	signed := sign(t, unsigned, k)
	res, err := verifyBytes(signed, keyring(t, k, testKey(t, 2)), imagesig.Options{Board: "glinet,gl-ar150"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Key != k.Fingerprint.String() || res.Metadata.Version.Version != "24.10.3" {
		t.Errorf("result %+v", res)
	}
	if res.SHA256 != sha256hex(signed) || res.SHA256Unsigned != sha256hex(unsigned) {
		t.Errorf("hashes %s %s", res.SHA256, res.SHA256Unsigned)
	}
	// The chunk signature covers exactly the unsigned image.
	layout := res.Layout
	last := layout.Chunks[len(layout.Chunks)-1]
	if last.Offset != int64(len(unsigned)) {
		t.Errorf("signature chunk at %d, want %d", last.Offset, len(unsigned))
	}
	chain, err := ucert.Decode(signed[last.Offset : last.Offset+last.Len])
	if err != nil {
		t.Fatal(err)
	}
	sig, err := usign.ParseSignature(chain[0].Signature)
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(k.Key.Public().(ed25519.PublicKey), unsigned, sig.Sig[:]) {
		t.Error("crypto/ed25519 rejects the chunk signature over the unsigned image")
	}
	// Re-signing a signed image replaces the signature chunk: same bytes
	// (Ed25519 is deterministic), never a second chunk.
	if again := sign(t, signed, k); !bytes.Equal(again, signed) {
		t.Error("re-signing changed the image")
	}
	// Re-signing with another key replaces the signature, too.
	other := testKey(t, 2)
	resigned := sign(t, signed, other)
	if len(resigned) != len(signed) {
		t.Errorf("re-signed image is %d bytes, first was %d", len(resigned), len(signed))
	}
	if res, err := verifyBytes(resigned, keyring(t, other), imagesig.Options{}); err != nil || res.Key != other.Fingerprint.String() {
		t.Errorf("re-signed with another key: %v", err)
	}
	if _, err := verifyBytes(resigned, keyring(t, k), imagesig.Options{}); !errors.Is(err, usign.ErrUnknownKey) {
		t.Errorf("re-signed image against the old key: %v", err)
	}
}

func sha256hex(b []byte) string {
	sum, _ := fwimage.SHA256Range(bytes.NewReader(b), int64(len(b)))
	return strings.ToLower(hexEncode(sum))
}

func hexEncode(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestSignRefuses(t *testing.T) {
	k := keySigner(t, testKey(t, 1))
	plain := payload(100)
	if _, err := imagesign.Sign(t.Context(), bytes.NewReader(plain), int64(len(plain)), k); !errors.Is(err, imagesig.ErrNoMetadata) {
		t.Errorf("image without metadata: %v", err)
	}
	bad := unsignedImage(100)
	bad[3] ^= 1
	if _, err := imagesign.Sign(t.Context(), bytes.NewReader(bad), int64(len(bad)), k); !errors.Is(err, fwimage.ErrCRC) {
		t.Errorf("image with a bad crc: %v", err)
	}
}

// badImages is the table of images Verify must refuse, with the sentinel
// and a piece of the message.
func badImages(t testing.TB) []struct {
	name string
	img  []byte
	opt  imagesig.Options
	want error
	msg  string
} {
	k, stranger := testKey(t, 1), testKey(t, 9)
	unsigned := unsignedImage(4096)
	good := sign(t, unsigned, k)
	sigStart := len(unsigned)
	mod := func(f func([]byte)) []byte { b := bytes.Clone(good); f(b); return b }

	other := unsignedImage(4097)
	otherSigned := sign(t, other, k)
	bigMeta := appendChunk(payload(4096), fwimage.TypeMetadata, fwimage.MetadataChunk([]byte(`{"metadata_version":"1.1","supported_devices":["glinet,gl-ar150"],"pad":"`+strings.Repeat("p", 31*1024)+`"}`)))
	bigMetaSig, _ := k.Sign(bigMeta)
	noMeta := payload(4096)
	noMetaSig, _ := k.Sign(noMeta)
	twoChain, _ := ucert.Encode(ucert.Element{Signature: []byte("untrusted comment: root\nRWQ=\n"), Payload: []byte("p")}, ucert.Element{Signature: mustChunkSig(t, good)})

	return []struct {
		name string
		img  []byte
		opt  imagesig.Options
		want error
		msg  string
	}{
		{"truncated in signature trailer", good[:len(good)-7], imagesig.Options{}, imagesig.ErrUnsigned, "no signature chunk"},
		{"truncated in signature data", good[:sigStart+50], imagesig.Options{}, imagesig.ErrUnsigned, "no signature chunk"},
		{"truncated in metadata", good[:len(unsigned)-30], imagesig.Options{}, imagesig.ErrUnsigned, "no signature chunk"},
		{"chunk size larger than file", mod(func(b []byte) { binary.BigEndian.PutUint32(b[len(b)-4:], uint32(len(b)+1)) }), imagesig.Options{}, fwimage.ErrMalformed, "larger than the"},
		{"crc mismatch", mod(func(b []byte) { b[100] ^= 0x80 }), imagesig.Options{}, fwimage.ErrCRC, "crc mismatch"},
		{"unknown chunk type", mod(func(b []byte) { b[len(b)-8] = 3 }), imagesig.Options{}, fwimage.ErrUnknownType, "unknown chunk type 3"},
		{"unknown key", sign(t, unsigned, stranger), imagesig.Options{}, usign.ErrUnknownKey, stranger.Fingerprint.String()},
		{"all-zero signature", appendChunk(unsigned, fwimage.TypeSignature, sigChunk(t, &usign.Signature{Fingerprint: k.Fingerprint})), imagesig.Options{}, usign.ErrBadSignature, "all-zero"},
		{"signature of another image", appendChunk(unsigned, fwimage.TypeSignature, mustChunk(t, otherSigned)), imagesig.Options{}, usign.ErrBadSignature, "does not verify"},
		{"fake certificate", appendChunk(unsigned, fwimage.TypeSignature, []byte(fwimage.FakeCertificate)), imagesig.Options{}, imagesig.ErrUnsigned, "fake certificate"},
		{"no chunks", payload(4096), imagesig.Options{}, imagesig.ErrUnsigned, "no signature chunk"},
		{"metadata only", unsigned, imagesig.Options{}, imagesig.ErrUnsigned, "no signature chunk"},
		{"metadata over 30 KiB", appendChunk(bigMeta, fwimage.TypeSignature, sigChunk(t, bigMetaSig)), imagesig.Options{}, fwimage.ErrTooLarge, "limit 30720"},
		{"signed without metadata", appendChunk(noMeta, fwimage.TypeSignature, sigChunk(t, noMetaSig)), imagesig.Options{}, imagesig.ErrNoMetadata, "no fwtool metadata"},
		{"signature chunk not ucert", appendChunk(unsigned, fwimage.TypeSignature, mustChunkSig(t, good)), imagesig.Options{}, ucert.ErrMalformed, "signature chunk"},
		{"certificate chain with a garbage certificate", appendChunk(unsigned, fwimage.TypeSignature, twoChain), imagesig.Options{}, usign.ErrMalformed, "certificate signature"},
		{"metadata after signature", appendChunk(good, fwimage.TypeMetadata, fwimage.MetadataChunk([]byte(glAR150JSON))), imagesig.Options{}, imagesig.ErrUnsigned, "no signature chunk at the end"},
		{"wrong board", good, imagesig.Options{Board: "glinet,gl-mt300n-v2"}, imagesig.ErrWrongBoard, `board "glinet,gl-mt300n-v2"`},
	}
}

func mustChunk(t testing.TB, signed []byte) []byte {
	t.Helper()
	img, err := fwimage.Parse(bytes.NewReader(signed), int64(len(signed)))
	if err != nil {
		t.Fatal(err)
	}
	c := img.Chunks[len(img.Chunks)-1]
	return signed[c.Offset : c.Offset+c.Len]
}

func mustChunkSig(t testing.TB, signed []byte) []byte {
	t.Helper()
	chain, err := ucert.Decode(mustChunk(t, signed))
	if err != nil {
		t.Fatal(err)
	}
	return chain[0].Signature
}

func TestVerifyRejects(t *testing.T) {
	kr := keyring(t, testKey(t, 1))
	for _, tc := range badImages(t) {
		t.Run(tc.name, func(t *testing.T) {
			res, err := verifyBytes(tc.img, kr, tc.opt)
			if res != nil || !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, %v; want %v", res, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not mention %q", err, tc.msg)
			}
		})
	}
}

func TestSignFile(t *testing.T) {
	dir := t.TempDir()
	k := testKey(t, 1)
	in := filepath.Join(dir, "in.bin")
	unsigned := unsignedImage(2000)
	os.WriteFile(in, unsigned, 0o644)
	res, err := imagesign.SignFile(t.Context(), in, in, keySigner(t, k))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(in)
	if !bytes.Equal(got, sign(t, unsigned, k)) {
		t.Error("signed file differs from Sign's result")
	}
	if res.SignedLen != int64(len(unsigned)) || res.SHA256 != sha256hex(got) || res.Detached != in+".sig" {
		t.Errorf("result %+v", res)
	}
	det, err := usign.ReadSignatureFile(in + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	if err := k.Public().Verify(got, det); err != nil {
		t.Errorf("detached signature does not cover the signed file: %v", err)
	}
	if _, err := imagesig.VerifyFile(in, keyring(t, k), imagesig.Options{Board: "gl-ar150"}); err != nil {
		t.Error(err)
	}
	// A failure leaves the previous output alone and no temporary files.
	os.WriteFile(in, payload(10), 0o644)
	if _, err := imagesign.SignFile(t.Context(), in, filepath.Join(dir, "out.bin"), keySigner(t, k)); !errors.Is(err, imagesig.ErrNoMetadata) {
		t.Errorf("SignFile of an image without metadata: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != "in.bin" && e.Name() != "in.bin.sig" {
			t.Errorf("left behind %s", e.Name())
		}
	}
}

// shrinkingReader serves a parsed layout, then returns fewer bytes than
// asked: a file truncated while it is being signed.
type shrinkingReader struct {
	data []byte
}

func (s *shrinkingReader) ReadAt(p []byte, off int64) (int, error) {
	if len(p) == len(s.data) && off == 0 { // imagesign.Sign reading the whole message
		n := copy(p, s.data[:len(s.data)/2])
		return n, io.EOF
	}
	return bytes.NewReader(s.data).ReadAt(p, off)
}

func TestSignRefusesShortRead(t *testing.T) {
	img := unsignedImage(4096)
	_, err := imagesign.Sign(t.Context(), &shrinkingReader{data: img}, int64(len(img)), keySigner(t, testKey(t, 1)))
	if err == nil || !strings.Contains(err.Error(), "reading image") {
		t.Errorf("Sign over a short read: %v", err)
	}
}
