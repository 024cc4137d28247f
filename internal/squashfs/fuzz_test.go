package squashfs

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeeds builds tiny images (4 KiB blocks, a few files) with each
// compressor and layout so the fuzzer starts from valid structures.
func fuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	src := filepath.Join(f.TempDir(), "src")
	for p, data := range map[string]string{
		"etc/config/network": "config interface 'lan'\n\toption proto 'static'\n",
		"bin/busybox":        string(randBytes(1500, 3)),
		"usr/share/empty":    "",
		"www/index.html":     string(textBytes(6000)),
	} {
		os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0755)
		if err := os.WriteFile(filepath.Join(src, p), []byte(data), 0644); err != nil {
			f.Fatal(err)
		}
	}
	os.Symlink("busybox", filepath.Join(src, "bin/sh"))
	os.Symlink("/tmp", filepath.Join(src, "var"))
	dir := f.TempDir()
	var seeds [][]byte
	for i, args := range [][]string{
		{"-comp", "gzip", "-b", "4k"},
		{"-comp", "xz", "-b", "4k"},
		{"-comp", "gzip", "-b", "4k", "-noI", "-noD", "-noF", "-noX"},
		{"-comp", "zstd", "-b", "4k", "-always-use-fragments"},
	} {
		out := filepath.Join(dir, "seed"+string(rune('a'+i))+".sqfs")
		needTool(f, "mksquashfs", "squashfs-tools")
		run(f, nil, "mksquashfs", append([]string{src, out, "-quiet", "-no-progress", "-nopad", "-all-time", "1", "-mkfs-time", "1",
			"-p", "/dev d 755 0 0", "-p", "/dev/console c 600 0 0 5 1"}, args...)...)
		b, err := os.ReadFile(out)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// FuzzSquashfs opens, walks and reads arbitrary images. Nothing may panic,
// hang, or allocate without bound; errors are expected.
func FuzzSquashfs(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fsys, err := Open(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		ctx := context.Background()
		walkAndRead(ctx, fsys, 1<<20)
		for _, p := range []string{".", "bin/sh", "etc/config/network", "var", "dev/console"} {
			if f, err := fsys.Open(p); err == nil {
				buf := make([]byte, 4096)
				f.Read(buf)
				f.Close()
			}
			fsys.ReadLink(p)
		}
		fs.ReadDir(fsys, ".")
		FindInImage(bytes.NewReader(data), int64(len(data)))
	})
}
