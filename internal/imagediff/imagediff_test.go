package imagediff

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/imagesig/imagesign"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/usign"
)

const (
	epoch     = "1700000000"
	kernelLen = 1001 // odd: the rootfs may start anywhere
	metaJSON  = `{  "metadata_version": "1.1", "compat_version": "1.0",   "supported_devices":["glinet,gl-ar150","gl-ar150"], "version": { "dist": "OpenWrt", "version": "%s", "revision": "r28872-daca7c049b", "target": "ath79/generic", "board": "glinet_gl-ar150" } }` + "\n"
)

func testKey(n byte) *usign.SecretKey {
	k := &usign.SecretKey{Key: ed25519.NewKeyFromSeed(bytes.Repeat([]byte{n}, 32))}
	for i := range k.Fingerprint {
		k.Fingerprint[i] = n<<4 | byte(i)
	}
	return k
}

// baseFiles is the root filesystem the tests vary.
func baseFiles() map[string]string {
	return map[string]string{
		"bin/busybox":         strings.Repeat("busybox ", 3000),
		"etc/banner":          "torwrt 1.0\n",
		"etc/config/system":   "config system\n\toption hostname 'torwrt'\n",
		"usr/lib/opkg/status": "Package: tor\nVersion: 0.4.8.13-r1\nInstalled-Time: " + epoch + "\n",
	}
}

type spec struct {
	files   map[string]string
	key     *usign.SecretKey
	version string
}

func defaultSpec() spec { return spec{files: baseFiles(), key: testKey(1), version: "24.10.3"} }

// squashfsOf packs files with every time at epoch, so the same files give
// the same bytes.
func squashfsOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		t.Fatal("mksquashfs not found: install the Debian package squashfs-tools")
	}
	tree := filepath.Join(t.TempDir(), "tree")
	for name, data := range files {
		p := filepath.Join(tree, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(tree, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(tree, "tmp"), os.ModeSticky|0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(tree, "bin/sh")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "root.squashfs")
	argv := []string{tree, out, "-noappend", "-all-root", "-comp", "xz", "-no-progress", "-quiet",
		"-mkfs-time", epoch, "-all-time", epoch}
	if msg, err := exec.Command("mksquashfs", argv...).CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, msg)
	}
	sq, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return sq
}

// payloadOf lays out a fake kernel, the squashfs, 0xff padding to 64 KiB
// and the JFFS2 marker.
func payloadOf(sq []byte) []byte {
	p := make([]byte, kernelLen, kernelLen+len(sq)+64<<10)
	for i := range p {
		p[i] = byte(i*7 + 3)
	}
	p = append(p, sq...)
	for len(p)%(64<<10) != 0 {
		p = append(p, 0xff)
	}
	return append(p, 0xde, 0xad, 0xc0, 0xde)
}

// sysupgrade appends a metadata chunk and a signature chunk to payload.
func sysupgrade(t *testing.T, payload []byte, s spec) []byte {
	t.Helper()
	var img bytes.Buffer
	if err := fwimage.AppendChunk(&img, bytes.NewReader(payload), fwimage.TypeMetadata, fwimage.MetadataChunk(fmt.Appendf(nil, metaJSON, s.version))); err != nil {
		t.Fatal(err)
	}
	sg, err := signer.FromUsign(s.key)
	if err != nil {
		t.Fatal(err)
	}
	signed, err := imagesign.Sign(t.Context(), bytes.NewReader(img.Bytes()), int64(img.Len()), sg)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := fwimage.AppendChunk(&out, bytes.NewReader(img.Bytes()[:signed.SignedLen]), fwimage.TypeSignature, signed.Chunk); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func writeImage(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func buildImage(t *testing.T, name string, s spec) string {
	t.Helper()
	return writeImage(t, name, sysupgrade(t, payloadOf(squashfsOf(t, s.files)), s))
}

func compare(t *testing.T, a, b string) *Report {
	t.Helper()
	r, err := Compare(t.Context(), a, b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func textOf(r *Report) string {
	var b bytes.Buffer
	r.Text(&b)
	return b.String()
}

func TestCompareIdentical(t *testing.T) {
	s := defaultSpec()
	a := buildImage(t, "a.bin", s)
	b := buildImage(t, "b.bin", s) // built again from the same inputs
	for _, pair := range [][2]string{{a, a}, {a, b}} {
		r := compare(t, pair[0], pair[1])
		if !r.Identical || len(r.Header) != 0 || len(r.Files) != 0 {
			t.Fatalf("Compare(%s, %s): identical %v, header %q, files %+v", pair[0], pair[1], r.Identical, r.Header, r.Files)
		}
		if !strings.HasPrefix(textOf(r), "identical: ") {
			t.Errorf("text: %q", textOf(r))
		}
	}
	r := compare(t, a, b)
	data, _ := os.ReadFile(a)
	sum := sha256.Sum256(data)
	sa := r.A
	if sa.Path != a || sa.Size != int64(len(data)) || sa.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("summary path %s size %d sha256 %s", sa.Path, sa.Size, sa.SHA256)
	}
	if sa.SignedBy != s.key.Fingerprint.String() {
		t.Errorf("signed by %q, want %s", sa.SignedBy, s.key.Fingerprint)
	}
	if sa.Rootfs != kernelLen {
		t.Errorf("rootfs offset %d, want %d", sa.Rootfs, kernelLen)
	}
	if len(sa.Chunks) != 2 || !strings.HasPrefix(sa.Chunks[0], "metadata(") || !strings.HasPrefix(sa.Chunks[1], "signature(") {
		t.Errorf("chunks %q", sa.Chunks)
	}
	if sa.Metadata == nil || sa.Metadata.Version.Version != "24.10.3" || !slices.Contains(sa.Metadata.SupportedDevices, "glinet,gl-ar150") {
		t.Errorf("metadata %+v", sa.Metadata)
	}
	// / bin bin/busybox bin/sh etc etc/banner etc/config etc/config/system
	// tmp usr usr/lib usr/lib/opkg usr/lib/opkg/status
	if sa.Files != 13 || r.B.Files != 13 {
		t.Errorf("file counts %d, %d, want 13", sa.Files, r.B.Files)
	}
	if len(r.Images) != 2 || r.Images[0].Path != a || r.Images[1].Path != b {
		t.Errorf("images %+v", r.Images)
	}
}

func TestCompareContentChange(t *testing.T) {
	base := defaultSpec()
	a := buildImage(t, "a.bin", base)
	for name, tc := range map[string]struct {
		banner string
		fields []string
	}{
		"same size":  {"torwrt 2.0\n", []string{"content"}},
		"other size": {"torwrt 1.0.1\n", []string{"size", "content"}},
	} {
		t.Run(name, func(t *testing.T) {
			s := defaultSpec()
			s.files["etc/banner"] = tc.banner
			b := buildImage(t, "b.bin", s)
			r := compare(t, a, b)
			if r.Identical {
				t.Fatal("images with different content reported identical")
			}
			if len(r.Files) != 1 {
				t.Fatalf("file differences %+v, want only /etc/banner", r.Files)
			}
			c := r.Files[0]
			if c.Path != "/etc/banner" || c.Kind != "changed" || !slices.Equal(c.Fields, tc.fields) {
				t.Fatalf("change %s %s %q, want /etc/banner changed %q", c.Path, c.Kind, c.Fields, tc.fields)
			}
			if c.A == nil || c.B == nil || c.A.SHA256 == c.B.SHA256 || c.B.Size != int64(len(tc.banner)) {
				t.Fatalf("change sides %+v / %+v", c.A, c.B)
			}
			for _, h := range r.Header {
				if strings.HasPrefix(h, "signed by") || strings.HasPrefix(h, "version") || strings.HasPrefix(h, "rootfs offset") {
					t.Errorf("unexpected header difference %q", h)
				}
			}
			if want := fmt.Sprintf("~ /etc/banner (%v)", tc.fields); !strings.Contains(textOf(r), want) {
				t.Errorf("text lacks %q:\n%s", want, textOf(r))
			}
		})
	}
}

func TestCompareAddedRemoved(t *testing.T) {
	a := buildImage(t, "a.bin", defaultSpec())
	s := defaultSpec()
	delete(s.files, "etc/banner")
	s.files["etc/torwrt/keys/1e0ae7bb5c4b2a3f"] = "untrusted comment: torwrt\n"
	b := buildImage(t, "b.bin", s)
	r := compare(t, a, b)
	got := map[string]Change{}
	for _, c := range r.Files {
		got[c.Path] = c
	}
	if c, ok := got["/etc/banner"]; !ok || c.Kind != "removed" || c.A == nil || c.B != nil {
		t.Errorf("/etc/banner: %+v", c)
	}
	for _, p := range []string{"/etc/torwrt", "/etc/torwrt/keys", "/etc/torwrt/keys/1e0ae7bb5c4b2a3f"} {
		if c, ok := got[p]; !ok || c.Kind != "added" || c.A != nil || c.B == nil {
			t.Errorf("%s: %+v", p, c)
		}
	}
	if c := got["/etc/torwrt/keys/1e0ae7bb5c4b2a3f"]; c.B == nil || c.B.SHA256 == "" {
		t.Errorf("added key file has no hash: %+v", c.B)
	}
	// Only the parent directory may differ besides (its listing changed).
	for p, c := range got {
		switch p {
		case "/etc/banner", "/etc/torwrt", "/etc/torwrt/keys", "/etc/torwrt/keys/1e0ae7bb5c4b2a3f":
		case "/etc":
			if c.Kind != "changed" || !slices.Equal(c.Fields, []string{"size"}) {
				t.Errorf("/etc: %s %q", c.Kind, c.Fields)
			}
		default:
			t.Errorf("unexpected difference %s %s %q", p, c.Kind, c.Fields)
		}
	}
	// Sorted by path.
	if !slices.IsSortedFunc(r.Files, func(x, y Change) int { return strings.Compare(x.Path, y.Path) }) {
		t.Errorf("changes not sorted: %+v", r.Files)
	}
	text := textOf(r)
	for _, want := range []string{"- /etc/banner\n", "+ /etc/torwrt/keys/1e0ae7bb5c4b2a3f\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
}

func TestCompareHeader(t *testing.T) {
	base := defaultSpec()
	payload := payloadOf(squashfsOf(t, base.files))
	a := writeImage(t, "a.bin", sysupgrade(t, payload, base))

	other := base
	other.key = testKey(2)
	b := writeImage(t, "b.bin", sysupgrade(t, payload, other))
	r := compare(t, a, b)
	want := fmt.Sprintf("signed by: %s -> %s", base.key.Fingerprint, other.key.Fingerprint)
	if r.Identical || !slices.Equal(r.Header, []string{want}) || len(r.Files) != 0 {
		t.Fatalf("other signing key: identical %v header %q files %+v, want header [%s]", r.Identical, r.Header, r.Files, want)
	}
	text := textOf(r)
	if !strings.Contains(text, want) || !strings.Contains(text, "root filesystems hold the same files") {
		t.Errorf("text:\n%s", text)
	}

	newer := base
	newer.version = "24.10.4"
	c := writeImage(t, "c.bin", sysupgrade(t, payload, newer))
	r = compare(t, a, c)
	if len(r.Header) != 1 || !strings.HasPrefix(r.Header[0], "version: ") || !strings.Contains(r.Header[0], "24.10.4") || len(r.Files) != 0 {
		t.Fatalf("other version: header %q files %+v", r.Header, r.Files)
	}

	// An unsigned image: the signature chunk is missing.
	var unsigned bytes.Buffer
	if err := fwimage.AppendChunk(&unsigned, bytes.NewReader(payload), fwimage.TypeMetadata, fwimage.MetadataChunk(fmt.Appendf(nil, metaJSON, base.version))); err != nil {
		t.Fatal(err)
	}
	d := writeImage(t, "d.bin", unsigned.Bytes())
	r = compare(t, a, d)
	var sawChunks, sawSigner bool
	for _, h := range r.Header {
		sawChunks = sawChunks || strings.HasPrefix(h, "chunks: ")
		sawSigner = sawSigner || strings.HasPrefix(h, "signed by: "+base.key.Fingerprint.String()+" -> ")
	}
	if !sawChunks || !sawSigner || len(r.Files) != 0 {
		t.Fatalf("unsigned image: header %q files %+v", r.Header, r.Files)
	}
}

func TestFiles(t *testing.T) {
	s := defaultSpec()
	img := buildImage(t, "a.bin", s)
	files, err := Files(t.Context(), img)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	byPath := map[string]File{}
	for _, f := range files {
		paths = append(paths, f.Path)
		byPath[f.Path] = f
	}
	want := []string{"/", "/bin", "/bin/busybox", "/bin/sh", "/etc", "/etc/banner", "/etc/config", "/etc/config/system",
		"/tmp", "/usr", "/usr/lib", "/usr/lib/opkg", "/usr/lib/opkg/status"}
	if !slices.Equal(paths, want) {
		t.Fatalf("paths %q, want %q", paths, want)
	}
	for _, name := range slices.Sorted(maps.Keys(s.files)) {
		f := byPath["/"+name]
		sum := sha256.Sum256([]byte(s.files[name]))
		if f.SHA256 != hex.EncodeToString(sum[:]) || f.Size != int64(len(s.files[name])) || f.Mode != "-rw-r--r--" {
			t.Errorf("%s: %+v", name, f)
		}
	}
	for _, f := range files {
		if f.Owner != "0:0" || fmt.Sprint(f.MTime) != epoch {
			t.Errorf("%s: owner %s mtime %d", f.Path, f.Owner, f.MTime)
		}
		if !strings.HasPrefix(f.Mode, "-") && f.SHA256 != "" {
			t.Errorf("%s (%s) has a content hash", f.Path, f.Mode)
		}
	}
	if sh := byPath["/bin/sh"]; sh.Target != "busybox" || !strings.HasPrefix(sh.Mode, "L") {
		t.Errorf("/bin/sh: %+v", sh)
	}
	if d := byPath["/tmp"]; !strings.HasPrefix(d.Mode, "d") || !strings.Contains(d.Mode, "t") {
		t.Errorf("/tmp: %+v", d)
	}
}

func TestCorruptImages(t *testing.T) {
	s := defaultSpec()
	sq := squashfsOf(t, s.files)
	good := sysupgrade(t, payloadOf(sq), s)
	goodPath := writeImage(t, "good.bin", good)

	// A flipped byte breaks the chunk CRC.
	flipped := bytes.Clone(good)
	flipped[kernelLen+200] ^= 0x55

	// Valid chunks around a payload with no squashfs.
	noFS := sysupgrade(t, bytes.Repeat([]byte("kernel only "), 10000), s)

	// Valid chunks and superblock, garbage in the directory table: the
	// squashfs is found but cannot be listed.
	badDir := bytes.Clone(sq)
	dirTable := binary.LittleEndian.Uint64(badDir[72:])
	for i := dirTable + 2; i < dirTable+40 && i < uint64(len(badDir)); i++ {
		badDir[i] = 0xa5
	}
	badDirImg := sysupgrade(t, payloadOf(badDir), s)

	// Valid everything, but a file's data block is garbage.
	badData := bytes.Clone(sq)
	inodeTable := binary.LittleEndian.Uint64(badData[64:])
	for i := uint64(96 + 40); i < 96+80 && i < inodeTable; i++ { // inside bin/busybox's data
		badData[i] ^= 0xff
	}
	badDataImg := sysupgrade(t, payloadOf(badData), s)

	for name, data := range map[string][]byte{
		"crc":        flipped,
		"no rootfs":  noFS,
		"dir table":  badDirImg,
		"data block": badDataImg,
		"truncated":  good[:kernelLen+binary.LittleEndian.Uint64(sq[40:])/2],
	} {
		t.Run(name, func(t *testing.T) {
			p := writeImage(t, strings.ReplaceAll(name, " ", "-")+".bin", data)
			_, err := Files(t.Context(), p)
			if err == nil || !strings.Contains(err.Error(), p) {
				t.Errorf("Files: %v, want an error naming %s", err, p)
			}
			t.Log(err)
			for _, pair := range [][2]string{{goodPath, p}, {p, goodPath}} {
				if _, err := Compare(t.Context(), pair[0], pair[1]); err == nil || !strings.Contains(err.Error(), p) {
					t.Errorf("Compare(%s, %s): %v, want an error naming %s", filepath.Base(pair[0]), filepath.Base(pair[1]), err, p)
				}
			}
		})
	}
	missing := filepath.Join(t.TempDir(), "missing.bin")
	if _, err := Compare(t.Context(), goodPath, missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("Compare with a missing file: %v", err)
	}
}
