package ibarchive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/torwrt/torwrt/internal/usign"
)

func needTool(t testing.TB, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("%s not found: install the Debian package %s (apt-get install -y %s)", tool, pkg, pkg)
	}
}

func shOut(t testing.TB, dir, script string) []byte {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = dir
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, stderr.String())
	}
	return out.Bytes()
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestUpstreamKeys(t *testing.T) {
	keys := UpstreamKeys()
	if len(keys) != 2 || keys[0].Fingerprint.String() != Fingerprint2410 || keys[1].Fingerprint.String() != Fingerprint2305 {
		t.Fatalf("pinned keys have fingerprints %v", keys)
	}
	// A signature by the 24.10 fingerprint that is not valid must fail on
	// the curve, not on lookup.
	sig, _ := usign.NewSignature(keys[0].Fingerprint, bytes.Repeat([]byte{1}, 64))
	_, err := VerifySums([]byte("x"), sig.Marshal(), keys...)
	if !errors.Is(err, usign.ErrBadSignature) {
		t.Fatalf("forged signature: %v, want ErrBadSignature", err)
	}
}

func TestVerifySums(t *testing.T) {
	sk, err := usign.GenerateKey(rand.Reader, "test build key")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := usign.GenerateKey(rand.Reader, "other")
	sums := []byte(strings.Join([]string{
		hexSHA([]byte("ib")) + " *openwrt-imagebuilder-24.10.3-ath79-generic.Linux-x86_64.tar.zst",
		hexSHA([]byte("fw")) + " *openwrt-24.10.3-ath79-generic-glinet_gl-ar150-squashfs-sysupgrade.bin",
		hexSHA([]byte("pk")) + "  packages/Packages.gz",
	}, "\n") + "\n")
	sig, err := sk.Sign(sums)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifySums(sums, sig.Marshal(), other.Public(), sk.Public())
	if err != nil {
		t.Fatal(err)
	}
	if got.Signer != sk.Fingerprint.String() || len(got.Entries) != 3 {
		t.Fatalf("signer %s, %d entries", got.Signer, len(got.Entries))
	}
	if h, ok := got.Lookup("packages/Packages.gz"); !ok || h != hexSHA([]byte("pk")) {
		t.Errorf("Lookup text-mode line: %q %v", h, ok)
	}
	if _, ok := got.Lookup("missing"); ok {
		t.Error("Lookup(missing) found something")
	}
	tampered := bytes.Replace(sums, []byte("*openwrt-24"), []byte("*openwrt-25"), 1)
	zero, _ := usign.NewSignature(sk.Fingerprint, make([]byte, 64))
	for _, tc := range []struct {
		name      string
		sums, sig []byte
		keys      []*usign.PublicKey
		want      error
	}{
		{"tampered sums", tampered, sig.Marshal(), []*usign.PublicKey{sk.Public()}, usign.ErrBadSignature},
		{"untrusted key", sums, sig.Marshal(), []*usign.PublicKey{other.Public()}, usign.ErrUnknownKey},
		{"upstream keys only", sums, sig.Marshal(), UpstreamKeys(), usign.ErrUnknownKey},
		{"all-zero signature", sums, zero.Marshal(), []*usign.PublicKey{sk.Public()}, usign.ErrBadSignature},
		{"malformed signature", sums, []byte("untrusted comment: x\nnot base64\n"), []*usign.PublicKey{sk.Public()}, usign.ErrMalformed},
		{"empty signature", sums, nil, []*usign.PublicKey{sk.Public()}, usign.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := VerifySums(tc.sums, tc.sig, tc.keys...); !errors.Is(err, tc.want) {
				t.Fatalf("VerifySums: %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := VerifySums(sums, sig.Marshal()); err == nil {
		t.Error("VerifySums without keys succeeded")
	}
	// A validly signed but malformed sums file is still refused.
	badSums := []byte("nothex *x\n")
	bsig, _ := sk.Sign(badSums)
	if _, err := VerifySums(badSums, bsig.Marshal(), sk.Public()); !errors.Is(err, ErrCorrupt) {
		t.Errorf("signed malformed sums: %v", err)
	}
}

func TestParseSums(t *testing.T) {
	h := hexSHA(nil)
	for _, bad := range []string{
		h + " *../etc/passwd", h + " */abs", h + " *a\n" + h + " *a", h[:63] + " *a", h + "x*a", strings.ToUpper(h)[:60] + "zzzz *a",
	} {
		if _, err := ParseSums([]byte(bad)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("ParseSums(%q): %v, want ErrCorrupt", bad, err)
		}
	}
	s, err := ParseSums([]byte("\n" + strings.ToUpper(h) + " *A.bin\n\n"))
	if err != nil || len(s.Entries) != 1 || s.Entries[0].SHA256 != h {
		t.Errorf("ParseSums: %+v, %v", s, err)
	}
}

const ibDir = "openwrt-imagebuilder-24.10.3-ath79-generic.Linux-x86_64"

// ibTree writes a small tree shaped like an ImageBuilder: a top directory,
// executables, relative symlinks (also through another link), an absolute
// symlink as upstream ships them, a hard link, an empty and a read-only
// directory, fixed mtimes.
func ibTree(t testing.TB) string {
	t.Helper()
	src := t.TempDir()
	top := filepath.Join(src, ibDir)
	files := map[string]string{
		"Makefile":                     "# ImageBuilder\nimage:\n\t@true\n",
		"scripts/ipkg-build":           "#!/bin/sh\n",
		"staging_dir/host/bin/mkhash":  string(randBytes(200<<10, 1)),
		"staging_dir/host/bin/fwtool":  string(randBytes(30<<10, 2)),
		"target/linux/ath79/image.mk":  strings.Repeat("define Device\n", 2000),
		"packages/Packages":            "Package: tor\n",
		"readonly/file":                "ro\n",
		"build_dir/target/root/etc/rc": "",
	}
	for p, c := range files {
		full := filepath.Join(top, p)
		os.MkdirAll(filepath.Dir(full), 0755)
		if err := os.WriteFile(full, []byte(c), 0644); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(filepath.Join(top, "scripts/ipkg-build"), 0755)
	os.Chmod(filepath.Join(top, "staging_dir/host/bin/mkhash"), 0755)
	os.MkdirAll(filepath.Join(top, "tmp/empty"), 0755)
	os.Symlink("mkhash", filepath.Join(top, "staging_dir/host/bin/mkhash-link"))
	os.Symlink("../../../scripts", filepath.Join(top, "staging_dir/host/bin/scripts"))
	os.Symlink("host/bin", filepath.Join(top, "staging_dir/hostbin"))
	os.Symlink("hostbin/scripts/ipkg-build", filepath.Join(top, "staging_dir/ipkg"))
	os.Symlink("dangling-but-inside", filepath.Join(top, "tmp/dangling"))
	os.Symlink("/usr/bin/gawk", filepath.Join(top, "staging_dir/host/bin/awk"))
	os.Link(filepath.Join(top, "staging_dir/host/bin/fwtool"), filepath.Join(top, "staging_dir/host/bin/fwtool.hard"))
	os.Chmod(filepath.Join(top, "readonly"), 0555)
	t.Cleanup(func() { os.Chmod(filepath.Join(top, "readonly"), 0755) })
	shOut(t, src, "find . -exec touch -h -d @1758316778 {} +")
	return src
}

func randBytes(n int, seed uint64) []byte {
	r := mrand.New(mrand.NewPCG(seed, 3))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// compareTrees checks that every entry of want exists in got with the same
// type, permission bits, contents, link target and mtime.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	n := 0
	filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(want, p)
		n++
		wi, _ := os.Lstat(p)
		gi, err := os.Lstat(filepath.Join(got, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		if wi.Mode() != gi.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, gi.Mode(), wi.Mode())
		}
		if wi.Mode()&fs.ModeSymlink == 0 && rel != "." && !wi.ModTime().Equal(gi.ModTime()) {
			t.Errorf("%s: mtime %v, want %v", rel, gi.ModTime(), wi.ModTime())
		}
		switch {
		case wi.Mode().IsRegular():
			a, _ := os.ReadFile(p)
			b, _ := os.ReadFile(filepath.Join(got, rel))
			if !bytes.Equal(a, b) {
				t.Errorf("%s: contents differ", rel)
			}
		case wi.Mode()&fs.ModeSymlink != 0:
			a, _ := os.Readlink(p)
			b, _ := os.Readlink(filepath.Join(got, rel))
			if a != b {
				t.Errorf("%s: target %q, want %q", rel, b, a)
			}
		}
		return nil
	})
	if n < 20 {
		t.Fatalf("only %d entries compared", n)
	}
}

func inode(t *testing.T, p string) uint64 {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestExtractRealArchives(t *testing.T) {
	needTool(t, "tar", "tar")
	src := ibTree(t)
	for _, tc := range []struct {
		name     string
		tool     string
		pkg      string
		compress string
		want     Compression
	}{
		{"xz", "xz", "xz-utils", "xz -T1 -6", XZ},
		{"xz-multiblock", "xz", "xz-utils", "xz -T2 --block-size=100KiB -1", XZ},
		{"zstd", "zstd", "zstd", "zstd -q -T1 -19", Zstd},
		{"gzip", "gzip", "gzip", "gzip -n", Gzip},
		{"plain", "cat", "coreutils", "cat", None},
	} {
		t.Run(tc.name, func(t *testing.T) {
			needTool(t, tc.tool, tc.pkg)
			arch := shOut(t, src, "tar --format=gnu --numeric-owner --owner=0 --group=0 --sort=name -cf - "+ibDir+" | "+tc.compress)
			parent := t.TempDir()
			dest := filepath.Join(parent, "ib")
			res, err := ExtractVerified(t.Context(), bytes.NewReader(arch), hexSHA(arch), Auto, dest, Limits{}, ExtractOptions{StripTopDir: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Chmod(filepath.Join(dest, "readonly"), 0755) })
			if res.Compression != tc.want || res.SHA256 != hexSHA(arch) || res.Files < 20 || res.Bytes < 200<<10 || res.TopDir != ibDir {
				t.Errorf("result %+v", res)
			}
			if !slices.Equal(res.AbsoluteSymlinks, []string{"staging_dir/host/bin/awk"}) {
				t.Errorf("absolute symlinks %q", res.AbsoluteSymlinks)
			}
			compareTrees(t, filepath.Join(src, ibDir), dest)
			bin := filepath.Join(dest, "staging_dir/host/bin")
			if inode(t, filepath.Join(bin, "fwtool")) != inode(t, filepath.Join(bin, "fwtool.hard")) {
				t.Error("hard link extracted as a copy")
			}
			if b, err := os.ReadFile(filepath.Join(dest, "staging_dir/ipkg")); err != nil || string(b) != "#!/bin/sh\n" {
				t.Errorf("symlink chain: %q, %v", b, err)
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 1 {
				t.Errorf("parent holds %v, want only the destination", ents)
			}
		})
	}
}

func TestExtractFile(t *testing.T) {
	needTool(t, "zstd", "zstd")
	src := ibTree(t)
	dir := t.TempDir()
	name := ibDir + ".tar.zst"
	arch := shOut(t, src, "tar -cf - "+ibDir+" | zstd -q -1")
	os.WriteFile(filepath.Join(dir, name), arch, 0644)
	sums, err := ParseSums([]byte(hexSHA(arch) + " *" + name + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := ExtractFile(t.Context(), filepath.Join(dir, name), sums, filepath.Join(dir, "out"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(dir, "out", "readonly"), 0755) })
	// The top directory is stripped: the destination is the ImageBuilder.
	if res.TopDir != ibDir || res.SHA256 != hexSHA(arch) {
		t.Errorf("result %+v", res)
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "Makefile")); err != nil {
		t.Errorf("Makefile not at the top of the destination: %v", err)
	}
	if _, err := ExtractFile(t.Context(), filepath.Join(dir, name), Sums{}, filepath.Join(dir, "out2"), Limits{}); !errors.Is(err, ErrNotListed) {
		t.Errorf("unlisted archive: %v", err)
	}
	wrong, _ := ParseSums([]byte(hexSHA(nil) + " *" + name + "\n"))
	if _, err := ExtractFile(t.Context(), filepath.Join(dir, name), wrong, filepath.Join(dir, "out3"), Limits{}); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("wrong sum: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "out3")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("destination exists after a hash mismatch: %v", err)
	}
}

// ent is a tar entry for hand-built hostile archives.
type ent struct {
	name, link string
	typ        byte
	body       []byte
	size       int64 // zeros when body is nil
}

func tarOf(t testing.TB, ents []ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		size := int64(len(e.body))
		if e.body == nil {
			size = e.size
		}
		if typ != tar.TypeReg {
			size = 0
		}
		mode := int64(0644)
		if typ == tar.TypeDir {
			mode = 0755
		}
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, Size: size, Mode: mode, ModTime: time.Unix(1758316778, 0), Format: tar.FormatGNU}); err != nil {
			t.Fatal(err)
		}
		if e.body != nil {
			tw.Write(e.body)
		} else if size > 0 {
			tw.Write(make([]byte, size))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func zstdOf(t testing.TB, b []byte) []byte {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeAll(b, nil)
}

func xzOf(t testing.TB, b []byte, args ...string) []byte {
	needTool(t, "xz", "xz-utils")
	cmd := exec.Command("xz", append([]string{"-c", "-T1"}, args...)...)
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// countingReader counts the bytes Extract pulled from its input.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestExtractRefuses(t *testing.T) {
	reg := func(name string) ent { return ent{name: name, body: []byte("x")} }
	good := tarOf(t, []ent{{name: "top/", typ: tar.TypeDir}, reg("top/a")})
	var many []ent
	for i := 0; i < 20; i++ {
		many = append(many, ent{name: fmt.Sprintf("f%02d", i), body: randBytes(1<<20, uint64(i))})
	}
	bigRandom := tarOf(t, many)
	cases := []struct {
		name string
		arch []byte
		c    Compression
		lim  Limits
		want error
	}{
		{"dot-dot", tarOf(t, []ent{reg("../evil")}), None, Limits{}, ErrUnsafePath},
		{"dot-dot inside", tarOf(t, []ent{reg("top/../../evil")}), None, Limits{}, ErrUnsafePath},
		{"absolute", tarOf(t, []ent{reg("/etc/evil")}), None, Limits{}, ErrUnsafePath},
		{"symlink outside", tarOf(t, []ent{{name: "l", link: "../../etc", typ: tar.TypeSymlink}}), None, Limits{}, ErrUnsafePath},
		{"relative symlink to absolute symlink", tarOf(t, []ent{{name: "sh", link: "/bin/sh", typ: tar.TypeSymlink}, {name: "bash", link: "sh", typ: tar.TypeSymlink}}), None, Limits{}, ErrUnsafePath},
		{"relative symlink through absolute symlink", tarOf(t, []ent{{name: "d/", typ: tar.TypeDir}, {name: "d/etc", link: "/etc", typ: tar.TypeSymlink}, {name: "pw", link: "d/etc/passwd", typ: tar.TypeSymlink}}), None, Limits{}, ErrUnsafePath},
		{"relative symlink through absolute symlink and back", tarOf(t, []ent{{name: "e", link: "/etc", typ: tar.TypeSymlink}, {name: "x", link: "e/../tmp", typ: tar.TypeSymlink}}), None, Limits{}, ErrUnsafePath},
		{"write through absolute symlink", tarOf(t, []ent{{name: "etc", link: "/etc", typ: tar.TypeSymlink}, reg("etc/evil")}), None, Limits{}, ErrUnsafePath},
		{"hard link to absolute symlink", tarOf(t, []ent{{name: "l", link: "/etc/shadow", typ: tar.TypeSymlink}, {name: "h", link: "l", typ: tar.TypeLink}}), None, Limits{}, ErrUnsafePath},
		{"hard link through absolute symlink", tarOf(t, []ent{{name: "etc", link: "/etc", typ: tar.TypeSymlink}, {name: "h", link: "etc/shadow", typ: tar.TypeLink}}), None, Limits{}, ErrUnsafePath},
		{"directory over absolute symlink", tarOf(t, []ent{{name: "etc", link: "/etc", typ: tar.TypeSymlink}, {name: "etc/", typ: tar.TypeDir}}), None, Limits{}, ErrCorrupt},
		{"file over absolute symlink", tarOf(t, []ent{{name: "passwd", link: "/etc/passwd", typ: tar.TypeSymlink}, reg("passwd")}), None, Limits{}, ErrCorrupt},
		{"symlink chain outside", tarOf(t, []ent{{name: "a/", typ: tar.TypeDir}, {name: "a/self", link: ".", typ: tar.TypeSymlink}, {name: "up", link: "a/self/..", typ: tar.TypeSymlink}, {name: "s", link: ".", typ: tar.TypeSymlink}, {name: "esc", link: "s/..", typ: tar.TypeSymlink}}), None, Limits{}, ErrUnsafePath},
		{"symlink loop", tarOf(t, []ent{{name: "x", link: "y", typ: tar.TypeSymlink}, {name: "y", link: "x", typ: tar.TypeSymlink}}), None, Limits{}, ErrUnsafePath},
		{"write through symlink", tarOf(t, []ent{{name: "d/", typ: tar.TypeDir}, {name: "l", link: "d", typ: tar.TypeSymlink}, reg("l/file")}), None, Limits{}, ErrUnsafePath},
		{"overwrite symlink", tarOf(t, []ent{{name: "l", link: "target", typ: tar.TypeSymlink}, reg("l")}), None, Limits{}, ErrCorrupt},
		{"hard link outside", tarOf(t, []ent{{name: "h", link: "../../etc/shadow", typ: tar.TypeLink}}), None, Limits{}, ErrUnsafePath},
		{"hard link to symlink", tarOf(t, []ent{{name: "l", link: "x", typ: tar.TypeSymlink}, {name: "h", link: "l", typ: tar.TypeLink}}), None, Limits{}, ErrUnsafePath},
		{"device node", tarOf(t, []ent{{name: "dev/sda", typ: tar.TypeBlock}}), None, Limits{}, ErrSpecialFile},
		{"char device", tarOf(t, []ent{{name: "null", typ: tar.TypeChar}}), None, Limits{}, ErrSpecialFile},
		{"fifo", tarOf(t, []ent{{name: "fifo", typ: tar.TypeFifo}}), None, Limits{}, ErrSpecialFile},
		{"duplicate", tarOf(t, []ent{reg("a"), reg("a")}), None, Limits{}, ErrCorrupt},
		{"file over limit", tarOf(t, []ent{{name: "big", size: 3 << 20}}), None, Limits{MaxFileBytes: 1 << 20}, ErrTooLarge},
		{"total over limit", zstdOf(t, tarOf(t, []ent{{name: "a", size: 3 << 20}, {name: "b", size: 3 << 20}})), Zstd, Limits{MaxBytes: 5 << 20}, ErrTooLarge},
		{"too many files", tarOf(t, []ent{reg("a"), reg("b"), reg("c")}), None, Limits{MaxFiles: 2}, ErrTooLarge},
		{"truncated xz", xzOf(t, good)[:60], Auto, Limits{}, ErrCorrupt},
		{"truncated zstd", zstdOf(t, bigRandom)[:3<<20], Auto, Limits{}, ErrCorrupt},
		{"truncated tar", bigRandom[:5<<20+100], None, Limits{}, ErrCorrupt},
		{"xz dictionary over window", xzOf(t, good, "-9"), XZ, Limits{MaxWindow: 8 << 20}, ErrTooLarge},
		{"not an archive", []byte("PK\x03\x04 definitely a zip"), Auto, Limits{}, ErrCorrupt},
		{"garbage after zstd", append(zstdOf(t, good), "trailing garbage"...), Zstd, Limits{}, ErrCorrupt},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dest := filepath.Join(parent, "out")
			_, err := Extract(t.Context(), bytes.NewReader(tc.arch), tc.c, dest, tc.lim, ExtractOptions{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Extract: %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "ibarchive: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 0 {
				t.Errorf("left behind %v", ents)
			}
		})
	}

	// A bomb stops early: with a 4 MiB limit, far less than the 20 MiB of
	// incompressible input is read.
	cr := &countingReader{r: bytes.NewReader(bigRandom)}
	_, err := Extract(t.Context(), cr, None, filepath.Join(t.TempDir(), "out"), Limits{MaxBytes: 4 << 20}, ExtractOptions{})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("bomb: %v", err)
	}
	if cr.n > 8<<20 {
		t.Errorf("read %d bytes of a 20 MiB bomb before stopping", cr.n)
	}

	// Wrong hash: the destination never appears.
	parent := t.TempDir()
	if _, err := ExtractVerified(t.Context(), bytes.NewReader(good), hexSHA([]byte("other")), None, filepath.Join(parent, "out"), Limits{}, ExtractOptions{}); !errors.Is(err, ErrHashMismatch) {
		t.Errorf("wrong hash: %v", err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Errorf("wrong hash left %v", ents)
	}
	// Existing destination.
	if _, err := Extract(t.Context(), bytes.NewReader(good), None, parent, Limits{}, ExtractOptions{}); err == nil {
		t.Error("extracting over an existing directory succeeded")
	}
	// Canceled context.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Extract(ctx, bytes.NewReader(good), None, filepath.Join(parent, "c"), Limits{}, ExtractOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: %v", err)
	}
}

func TestDetectCompression(t *testing.T) {
	for _, tc := range []struct {
		head []byte
		want Compression
	}{
		{[]byte{0xfd, '7', 'z', 'X', 'Z', 0}, XZ},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd, 0}, Zstd},
		{[]byte{0x1f, 0x8b, 8}, Gzip},
		{tarOf(t, []ent{{name: "a", body: []byte("x")}}), None},
	} {
		if got, err := DetectCompression(tc.head); err != nil || got != tc.want {
			t.Errorf("DetectCompression(% x...) = %q, %v", tc.head[:3], got, err)
		}
	}
	if _, err := DetectCompression([]byte("BZh91AY")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("bzip2: %v", err)
	}
}
