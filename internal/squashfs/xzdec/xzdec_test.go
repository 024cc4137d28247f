package xzdec

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os/exec"
	"testing"
)

func xzTool(t testing.TB, in []byte, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("xz"); err != nil {
		t.Fatalf("xz not found (install the Debian package xz-utils): %v", err)
	}
	cmd := exec.Command("xz", append([]string{"-c", "-T1"}, args...)...)
	cmd.Stdin = bytes.NewReader(in)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("xz %v: %v: %s", args, err, stderr.String())
	}
	return out.Bytes()
}

// testData mixes compressible text with random bytes, so both LZMA matches
// and BCJ candidates (E8, EB, ...) occur.
func testData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	for b.Len() < n {
		if r.IntN(2) == 0 {
			b.WriteString("OpenWrt squashfs block with some repeated text. ")
		} else {
			for i := 0; i < 64; i++ {
				b.WriteByte(byte(r.Uint32()))
			}
		}
	}
	return b.Bytes()[:n]
}

func TestDecodeMatchesXZUtils(t *testing.T) {
	data := testData(300<<10, 1)
	cases := []struct {
		name string
		args []string
	}{
		{"openwrt-lzma2", []string{"--format=xz", "--check=crc32", "--lzma2=preset=9e,lc=0,lp=2,pb=2,dict=256KiB"}},
		{"default-crc64", []string{"-6"}},
		{"sha256", []string{"--check=sha256", "-1"}},
		{"none", []string{"--check=none", "-0"}},
		{"multiblock", []string{"--block-size=50000", "-1"}},
		{"x86", []string{"--x86", "--lzma2=preset=6"}},
		{"x86-start", []string{"--x86=start=4096", "--lzma2=preset=1"}},
		{"arm", []string{"--arm", "--lzma2=preset=6"}},
		{"armthumb", []string{"--armthumb", "--lzma2=preset=6"}},
		{"powerpc", []string{"--powerpc", "--lzma2=preset=6"}},
		{"sparc", []string{"--sparc", "--lzma2=preset=6"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			comp := xzTool(t, data, tc.args...)
			dst := make([]byte, len(data))
			n, err := Decode(dst, comp)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if n != len(data) || !bytes.Equal(dst, data) {
				t.Fatalf("Decode output differs from input (n=%d, want %d)", n, len(data))
			}
		})
	}
}

func TestReaderStreams(t *testing.T) {
	a, b := testData(100<<10, 2), testData(70<<10, 3)
	comp := append(xzTool(t, a, "-3"), make([]byte, 8)...)
	comp = append(comp, xzTool(t, b, "--block-size=10000", "-2")...)
	r, err := NewReader(bytes.NewReader(comp), Config{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if !bytes.Equal(got, append(append([]byte{}, a...), b...)) {
		t.Fatal("concatenated streams decode differently")
	}
	// A BCJ stream is refused by the streaming reader.
	r, err = NewReader(bytes.NewReader(xzTool(t, a, "--x86", "--lzma2")), Config{})
	if err == nil {
		_, err = io.ReadAll(r)
	}
	if !errors.Is(err, ErrUnsupported) {
		t.Fatalf("BCJ in stream: got %v, want ErrUnsupported", err)
	}
}

func TestLimits(t *testing.T) {
	data := testData(200<<10, 4)
	comp := xzTool(t, data, "-6") // 8 MiB dictionary
	if _, err := Decode(make([]byte, len(data)-1), comp); !errors.Is(err, ErrTooLarge) {
		t.Errorf("short dst: got %v, want ErrTooLarge", err)
	}
	if _, err := io.ReadAll(mustReader(t, comp, Config{MaxDict: 1 << 20})); !errors.Is(err, ErrTooLarge) {
		t.Errorf("dictionary over MaxDict: got %v, want ErrTooLarge", err)
	}
	got, err := io.ReadAll(mustReader(t, comp, Config{MaxOutput: int64(len(data)), MaxDict: 1 << 20}))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("clamped dictionary: err %v, equal %v", err, bytes.Equal(got, data))
	}
	_, err = io.ReadAll(mustReader(t, comp, Config{MaxOutput: 1000}))
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxOutput: got %v, want ErrTooLarge", err)
	}
}

func mustReader(t *testing.T, comp []byte, c Config) io.Reader {
	t.Helper()
	r, err := NewReader(bytes.NewReader(comp), c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCorrupt(t *testing.T) {
	data := testData(64<<10, 5)
	comp := xzTool(t, data, "--check=crc32", "-6")
	for i := 0; i < len(comp); i += 1 + len(comp)/97 {
		bad := bytes.Clone(comp)
		bad[i] ^= 0x40
		dst := make([]byte, len(data))
		n, err := Decode(dst, bad)
		if err == nil && (n != len(data) || !bytes.Equal(dst, data)) {
			t.Fatalf("flip at %d: corrupt input decoded without error to different output", i)
		}
	}
	for _, cut := range []int{0, 5, 12, 20, len(comp) / 2, len(comp) - 13, len(comp) - 1} {
		if _, err := Decode(make([]byte, len(data)), comp[:cut]); err == nil {
			t.Errorf("truncated to %d bytes: no error", cut)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(xzTool(f, testData(3000, 6), "--check=crc32", "--lzma2=preset=9e,lc=0,lp=2,pb=2"))
	f.Add(xzTool(f, testData(3000, 7), "--x86", "--lzma2=preset=1"))
	f.Fuzz(func(t *testing.T, in []byte) {
		dst := make([]byte, 8192)
		Decode(dst, in)
	})
}
