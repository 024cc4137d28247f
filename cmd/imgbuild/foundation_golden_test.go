package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"
)

// The golden signed image, built by hand from formats.md and compared with
// what `imgbuild sign` writes. The signatures are literals: the fixed-seed
// key (seed 32×0x01, fingerprint 0102030405060708) was written as a
// signify secret key file, and
//
//	signify-openbsd -S -s vec.sec -m unsigned.bin -x unsigned.sig
//	signify-openbsd -S -s vec.sec -m signed.bin   -x signed.sig
//
// printed fndChunkSigB64 and fndDetachedSigB64. The test re-checks both
// with signify on every run.
const (
	fndVecPub         = "untrusted comment: signify public key\nRWQBAgMEBQYHCIqI4910CfGV/VLbLTy6XXLKZwm/HZQSG/N0iAG0D29c\n"
	fndChunkSigB64    = "RWQBAgMEBQYHCCnvHYeu1VVeM2lQLIL8uBhvZ3BQ9deGQ9DU3mGEsn00fst09vEEtOZVkLi1upxpheC8LC+vAEvBs6AGFbgWcw0="
	fndDetachedSigB64 = "RWQBAgMEBQYHCEJoT7zfxcqEK1bEifcJW0xzlthOU7mf53x89IJdsOX9+YKIvCyIDer44QoGOkGIaXkOzfNLq+/WchNkd7bybQ0="
	fndSignedSHA256   = "30a72e4c0f54513619d01a17d39e07d4b6969287ece743e106c5869b54027cb6"
	fndUnsignedSHA256 = "36a6e486cabf9903e26dd0a2ddfd79fb7ba028fab9fb72b6dde5b2d1b61b9a80"
)

func TestFoundationGoldenSignedImage(t *testing.T) {
	sfy := fndSignify(t)
	dir := t.TempDir()
	sec := fndWrite(t, filepath.Join(dir, "vec.sec"), fndVecSecFile(), 0o600)
	pub := fndWrite(t, filepath.Join(dir, "vec.pub"), []byte(fndVecPub), 0o644)

	// payload (1001 bytes) + metadata data (8 zero bytes + JSON) + trailer
	payload := fndPayload(1001)
	meta := append(make([]byte, 8), fndGLAR150...)
	unsigned := append(bytes.Clone(payload), meta...)
	unsigned = append(unsigned, 'F', 'W', 'x', '0')
	unsigned = binary.BigEndian.AppendUint32(unsigned, fndCRC(unsigned[:len(payload)+len(meta)]))
	unsigned = append(unsigned, 1, 0, 0, 0)
	unsigned = binary.BigEndian.AppendUint32(unsigned, uint32(len(meta)+16))
	if len(unsigned) != 1279 || binary.BigEndian.Uint32(unsigned[len(unsigned)-12:]) != 0x5c2349ee {
		t.Fatalf("hand-built unsigned image: %d bytes, crc %08x", len(unsigned), binary.BigEndian.Uint32(unsigned[len(unsigned)-12:]))
	}

	// signature chunk: the 151-byte .sig file in a 160-byte ucert blob
	sigFile := "untrusted comment: signed by key 0102030405060708\n" + fndChunkSigB64 + "\n"
	if len(sigFile) != 151 {
		t.Fatalf(".sig is %d bytes", len(sigFile))
	}
	blob := []byte{0, 0, 0, 160, 0, 0, 0, 155}
	blob = append(blob, sigFile...)
	blob = append(blob, 0)
	want := append(bytes.Clone(unsigned), blob...)
	want = append(want, 'F', 'W', 'x', '0')
	want = binary.BigEndian.AppendUint32(want, fndCRC(want[:len(unsigned)+len(blob)]))
	want = append(want, 0, 0, 0, 0)
	want = binary.BigEndian.AppendUint32(want, uint32(len(blob)+16))
	if binary.BigEndian.Uint32(want[len(want)-12:]) != 0x036c0658 {
		t.Fatalf("hand-built signature chunk crc %08x, want 036c0658", binary.BigEndian.Uint32(want[len(want)-12:]))
	}

	in := fndWrite(t, filepath.Join(dir, "image.bin"), unsigned, 0o644)
	out := filepath.Join(dir, "signed.bin")
	r := fndMust(t, "sign", "--key", sec, "-o", out, in)
	if !strings.Contains(r.stdout, "0102030405060708") || !strings.Contains(r.stdout, fndSignedSHA256) {
		t.Errorf("sign output: %s", r.stdout)
	}
	got := fndRead(t, out)
	if !bytes.Equal(got, want) {
		t.Fatalf("imgbuild sign wrote %d bytes that differ from the hand-built %d-byte image\ngot  %x\nwant %x", len(got), len(want), got[len(unsigned):], want[len(unsigned):])
	}
	if !bytes.Equal(fndRead(t, in), unsigned) {
		t.Error("sign -o changed its input")
	}
	wantDetached := "untrusted comment: signed by key 0102030405060708\n" + fndDetachedSigB64 + "\n"
	if d := string(fndRead(t, out+".sig")); d != wantDetached {
		t.Errorf("detached signature\n%q\nwant\n%q", d, wantDetached)
	}

	// inspect reports the golden hashes and layout.
	r = fndMust(t, "inspect", out)
	for _, s := range []string{"sha256           " + fndSignedSHA256, "sha256_unsigned  " + fndUnsignedSHA256, "crc 0x5c2349ee", "crc 0x036c0658", "signed by key 0102030405060708", "payload end      0x3e9"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("inspect output lacks %q:\n%s", s, r.stdout)
		}
	}

	// signify agrees with the literals: over the signed file, and over
	// the unsigned image for the chunk signature.
	fndWrite(t, filepath.Join(dir, "unsigned.bin"), unsigned, 0o644)
	fndTool(t, sfy, "-S", "-s", sec, "-m", filepath.Join(dir, "unsigned.bin"), "-x", filepath.Join(dir, "unsigned.signify"))
	fndTool(t, sfy, "-S", "-s", sec, "-m", out, "-x", filepath.Join(dir, "signed.signify"))
	for file, b64 := range map[string]string{"unsigned.signify": fndChunkSigB64, "signed.signify": fndDetachedSigB64} {
		lines := strings.Split(strings.TrimSpace(string(fndRead(t, filepath.Join(dir, file)))), "\n")
		if lines[len(lines)-1] != b64 {
			t.Errorf("signify wrote %s in %s, the literal is %s", lines[len(lines)-1], file, b64)
		}
	}
	fndTool(t, sfy, "-V", "-p", pub, "-x", out+".sig", "-m", out)
}

// fndVecSecFile assembles the signify secret key of the fixed test vector
// (seed 32×0x01, fingerprint 0102030405060708) from its public recipe with
// the standard library only, so no secret-key file is kept as a literal.
func fndVecSecFile() []byte {
	seed := bytes.Repeat([]byte{1}, ed25519.SeedSize)
	priv := ed25519.NewKeyFromSeed(seed)
	sum := sha512.Sum512(priv)
	p := []byte("EdBK")
	p = append(p, 0, 0, 0, 0)
	p = append(p, make([]byte, 16)...)
	p = append(p, sum[:8]...)
	p = append(p, 1, 2, 3, 4, 5, 6, 7, 8)
	p = append(p, priv...)
	return []byte("untrusted comment: signify secret key\n" + base64.StdEncoding.EncodeToString(p) + "\n")
}
