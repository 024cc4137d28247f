package imagesig_test

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/imagesig"
)

func benchmarkVerify(b *testing.B, size int) {
	k := testKey(b, 1)
	kr := keyring(b, k)
	p := make([]byte, size)
	rand.NewChaCha8([32]byte{1}).Read(p)
	img := sign(b, appendChunk(p, fwimage.TypeMetadata, fwimage.MetadataChunk([]byte(glAR150JSON))), k)
	r := bytes.NewReader(img)
	b.SetBytes(int64(len(img)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := imagesig.Verify(r, int64(len(img)), kr, imagesig.Options{Board: "glinet,gl-ar150"}); err != nil {
			b.Fatal(err)
		}
	}
}

// Verify reads the image three times (CRC chain, signature, two hashes);
// MB/s is image bytes per second of the whole check.
func BenchmarkVerify16MiB(b *testing.B) { benchmarkVerify(b, 16<<20) }
func BenchmarkVerify64MiB(b *testing.B) { benchmarkVerify(b, 64<<20) }
