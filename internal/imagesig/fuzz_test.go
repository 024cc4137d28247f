package imagesig_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/imagesig/imagesign"
	"github.com/torwrt/torwrt/internal/ucert"
	"github.com/torwrt/torwrt/internal/usign"
)

// fuzzNow is the clock FuzzVerify verifies at.
var fuzzNow = time.Unix(1_800_000_000, 0)

// FuzzVerify: whatever the bytes, Verify never panics, and it accepts an
// image only if an independent check agrees: the file ends in a type-0
// trailer whose chunk holds a ucert blob whose usign signature, by the one
// trusted key, verifies with crypto/ed25519 over everything before that
// chunk, and that prefix holds metadata for the requested board.
func FuzzVerify(f *testing.F) {
	k := testKey(f, 1)
	kr := keyring(f, k)
	pub := k.Key.Public().(ed25519.PublicKey)
	good := sign(f, unsignedImage(64), k)
	f.Add(good, "")
	f.Add(good, "glinet,gl-ar150")
	f.Add(good, "other")
	f.Add(unsignedImage(64), "")
	chained, err := imagesign.SignWithBuildKey(f.Context(), bytes.NewReader(unsignedImage(64)), int64(len(unsignedImage(64))), keySigner(f, k), imagesig.BuildKeyOptions{NotBefore: fuzzNow.Add(-time.Hour), Lifetime: 2 * time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(appendChunk(unsignedImage(64), fwimage.TypeSignature, chained.Chunk), "")
	for _, tc := range badImages(f) {
		if len(tc.img) < 40000 {
			f.Add(tc.img, tc.opt.Board)
		}
	}
	f.Fuzz(func(t *testing.T, img []byte, board string) {
		res, err := verifyBytes(img, kr, imagesig.Options{Board: board, Now: fuzzNow})
		if err != nil {
			if res != nil {
				t.Fatal("result returned with an error")
			}
			return
		}
		// Independent check of the accepted image.
		n := len(img)
		if n < 16 || binary.BigEndian.Uint32(img[n-16:]) != 0x46577830 || img[n-8] != 0 {
			t.Fatal("accepted an image that does not end in a signature trailer")
		}
		size := int(binary.BigEndian.Uint32(img[n-4:]))
		if size < 16 || size > n {
			t.Fatal("accepted a trailer with an impossible size")
		}
		start := n - size
		chain, err := ucert.Decode(img[start : n-16])
		if err != nil || len(chain) < 1 || len(chain) > 2 {
			t.Fatalf("accepted a signature chunk that is not one or two ucert elements: %v", err)
		}
		signer, signerPub := k.Fingerprint, pub
		if len(chain) == 2 {
			// The certificate must be by the trusted key, valid now, and
			// name the key that signed the image.
			csig, err := usign.ParseSignature(chain[0].Signature)
			if err != nil || csig.Fingerprint != k.Fingerprint || !ed25519.Verify(pub, chain[0].Payload, csig.Sig[:]) {
				t.Fatal("accepted a certificate that crypto/ed25519 rejects")
			}
			cert, err := ucert.ParseCertificate(chain[0].Payload)
			if err != nil || cert.Type != 1 || fuzzNow.Unix() < cert.ValidFrom || fuzzNow.Unix() >= cert.ExpiresAt {
				t.Fatalf("accepted certificate %+v (%v)", cert, err)
			}
			ck, err := usign.ParsePublicKey(cert.PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			signer, signerPub = ck.Fingerprint, ck.Key
		}
		sig, err := usign.ParseSignature(chain[len(chain)-1].Signature)
		if err != nil {
			t.Fatal(err)
		}
		if sig.Fingerprint != signer || !ed25519.Verify(signerPub, img[:start], sig.Sig[:]) {
			t.Fatal("accepted a signature that crypto/ed25519 rejects")
		}
		if res.Key != signer.String() || res.Metadata == nil {
			t.Fatalf("result %+v", res)
		}
		if board != "" && !res.Metadata.Supports(board) {
			t.Fatalf("accepted board %q not in %v", board, res.Metadata.SupportedDevices)
		}
		if !bytes.Contains(img[:start], []byte("supported_devices")) {
			t.Fatal("accepted an image whose signed part has no metadata")
		}
		if _, err := fwimage.Parse(bytes.NewReader(img[:start]), int64(start)); err != nil {
			t.Fatalf("signed part does not parse on its own: %v", err)
		}
	})
}
