package squashfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// benchTree writes ~28 MiB of files that compress about as well as an
// OpenWrt root filesystem (binaries, scripts, text), so an xz image of it
// is ~16 MiB and the benchmark exercises the LZMA2 decoder.
func benchTree(tb testing.TB, dir string) {
	r := rand.New(rand.NewPCG(42, 42))
	text := textBytes(1 << 16)
	for i := 0; i < 1500; i++ {
		size := 100 + r.IntN(37000)
		if i%50 == 0 {
			size = 150<<10 + r.IntN(400<<10)
		}
		var b bytes.Buffer
		for b.Len() < size {
			if r.IntN(3) == 0 {
				off := r.IntN(len(text) - 256)
				b.Write(text[off : off+64+r.IntN(192)])
			} else {
				for j := 0; j < 64; j++ {
					b.WriteByte(byte(r.Uint32()))
				}
			}
		}
		p := filepath.Join(dir, fmt.Sprintf("d%02d/s%d/f%04d", i%23, i%5, i))
		if err := os.MkdirAll(filepath.Dir(p), 0755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(p, b.Bytes()[:size], 0644); err != nil {
			tb.Fatal(err)
		}
	}
}

var (
	benchOnce  sync.Once
	benchImage string
	benchDir   string
)

// buildBenchImage writes the benchmark tree to a temporary directory and
// packs it into out with OpenWrt's xz settings as far as Debian's
// mksquashfs has them.
func buildBenchImage(tb testing.TB, out string) {
	needTool(tb, "mksquashfs", "squashfs-tools")
	src, err := os.MkdirTemp(filepath.Dir(out), "bench-src-")
	if err != nil {
		tb.Fatal(err)
	}
	defer os.RemoveAll(src)
	benchTree(tb, src)
	run(tb, nil, "mksquashfs", src, out, "-noappend", "-quiet", "-no-progress", "-comp", "xz", "-b", "256k", "-root-owned", "-nopad", "-processors", "2")
}

func benchImagePath(b *testing.B) string {
	benchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "squashfs-bench-")
		if err != nil {
			b.Fatal(err)
		}
		benchDir = dir
		benchImage = filepath.Join(dir, "bench.sqfs")
		buildBenchImage(b, benchImage)
	})
	if benchImage == "" {
		b.Fatal("building the benchmark image failed earlier")
	}
	return benchImage
}

// listAndHash walks fsys and hashes every regular file, as a build
// comparing two root filesystems does. It returns the entry count and the
// bytes hashed.
func listAndHash(ctx context.Context, fsys *FS, out io.Writer, hash bool) (int, int64, error) {
	n, total := 0, int64(0)
	h := sha256.New()
	buf := make([]byte, 64<<10)
	err := fsys.Walk(ctx, func(e Entry) error {
		n++
		sum := ""
		if e.Mode.IsRegular() && hash {
			f, err := fsys.OpenEntry(e)
			if err != nil {
				return err
			}
			h.Reset()
			k, err := io.CopyBuffer(h, f, buf)
			f.Close()
			if err != nil {
				return err
			}
			total += k
			sum = fmt.Sprintf("%x", h.Sum(nil))
		}
		if out != nil {
			fmt.Fprintf(out, "%s %d/%d %d %s %s\n", lsMode(e.Mode), e.UID, e.GID, e.Size, sum, e.Path)
		}
		return nil
	})
	return n, total, err
}

func BenchmarkWalkAndHash16MiB(b *testing.B) {
	path := benchImagePath(b)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	b.ReportMetric(float64(st.Size())/(1<<20), "image-MiB")
	b.ResetTimer()
	var total int64
	for b.Loop() {
		fsys, err := Open(f, st.Size())
		if err != nil {
			b.Fatal(err)
		}
		n, t, err := listAndHash(b.Context(), fsys, nil, true)
		if err != nil {
			b.Fatal(err)
		}
		if n < 1500 {
			b.Fatalf("walked %d entries", n)
		}
		total = t
	}
	b.SetBytes(total)
}

// TestListImage lists and hashes the image named by $SQUASHFS_LIST_IMAGE
// (bench_compare.sh uses it), or the shared gzip test image otherwise.
// $SQUASHFS_LIST_OUT=1 prints one line per entry, $SQUASHFS_LIST_NOHASH=1
// only lists, and $SQUASHFS_BENCH_BUILD=path first writes the benchmark
// image there and lists that.
func TestListImage(t *testing.T) {
	path := os.Getenv("SQUASHFS_LIST_IMAGE")
	if out := os.Getenv("SQUASHFS_BENCH_BUILD"); out != "" {
		buildBenchImage(t, out)
		path = out
	}
	wantEntries := -1
	if path == "" {
		tr, imgs := testImages(t)
		path, wantEntries = imgs["gzip"], len(tr.entries)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := Open(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	var out io.Writer
	if os.Getenv("SQUASHFS_LIST_OUT") == "1" {
		out = os.Stdout
	}
	n, total, err := listAndHash(t.Context(), fsys, out, os.Getenv("SQUASHFS_LIST_NOHASH") != "1")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %d entries, %d file bytes hashed", filepath.Base(path), n, total)
	if n == 0 || wantEntries >= 0 && n != wantEntries {
		t.Fatalf("listed %d entries, want %d", n, wantEntries)
	}
}
