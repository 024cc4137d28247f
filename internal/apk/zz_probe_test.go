package apk

import (
	"math/rand"
	"testing"
	"time"
	"os"
)

func mutate(rng *rand.Rand, b []byte) []byte {
	b = append([]byte(nil), b...)
	n := 1 + rng.Intn(4)
	for k := 0; k < n; k++ {
		if len(b) == 0 {
			return b
		}
		switch rng.Intn(5) {
		case 0:
			b[rng.Intn(len(b))] ^= byte(1 << rng.Intn(8))
		case 1:
			b[rng.Intn(len(b))] = byte(rng.Intn(256))
		case 2:
			i := rng.Intn(len(b))
			j := i + rng.Intn(len(b)-i)
			b = append(b[:i:i], b[j:]...)
		case 3:
			i := rng.Intn(len(b))
			b[i] = []byte{0, 0xff, 0x7f, 0x80, 0xe0, 0xd0}[rng.Intn(6)]
		case 4:
			i := rng.Intn(len(b))
			j := rng.Intn(len(b))
			l := rng.Intn(16)
			if i+l < len(b) && j+l < len(b) { copy(b[i:i+l], b[j:j+l]) }
		}
	}
	return b
}

func TestZZProbe(t *testing.T) {
	keys := NewKeyring(pub(t, "real-melmac.pem"), pub(t, "test-key.pub.pem"))
	seeds := [][]byte{read(t, "real-melmac-packages.adb"), read(t, "test-index.adb")}
	d, _ := decompress(seeds[0], 0)
	seeds = append(seeds, d)
	rng := rand.New(rand.NewSource(1))
	start := time.Now()
	var worst time.Duration
	n := 0
	for time.Since(start) < 20*time.Second {
		b := mutate(rng, seeds[rng.Intn(len(seeds))])
		t0 := time.Now()
		ReadIndex(b, keys)
		t1 := time.Now()
		if c, err := parseContainer(b, SchemaIndex); err == nil {
			r := &reader{b: c.adb}
			if root, err := r.obj(r.root()); err == nil {
				pk, _ := r.obj(root.at(2))
				for _, v := range pk.items() {
					r.info(v)
				}
			}
		}
		t2 := time.Now()
		n++
		if el := t2.Sub(t0); el > worst {
			worst = el
			t.Logf("n=%d read=%v rest=%v len=%d hdr=%q", n, t1.Sub(t0), t2.Sub(t1), len(b), b[:4])
			os.WriteFile("/tmp/slow.bin", b, 0644)
		}
	}
	t.Logf("%d in 20s", n)
}
