package normalize

import (
	"bytes"
	"encoding/binary"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/squashfs"
)

const (
	epoch      = 1700000000 // SOURCE_DATE_EPOCH of the tests
	kernelLen  = 1001       // odd on purpose: any rootfs offset must work
	trustedFP  = "1e0ae7bb5c4b2a3f"
	untrustFP  = "d310c6f2833e97f7"
	statusText = "Package: base-files\nVersion: 1646-r1\nStatus: install user installed\nInstalled-Time: 123\n\n" +
		"Package: tor\nVersion: 0.4.8.13-r1\nStatus: install user installed\nInstalled-Time: 123\n\n"
)

func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found: install the Debian package squashfs-tools", name)
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("normalize.Rootfs runs unsquashfs, which must create /dev/console: run this test as root")
	}
}

// rootfsTree writes a small OpenWrt-like root filesystem; its times are
// whatever the clock says.
func rootfsTree(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	files := map[string]string{
		"bin/busybox":                   "#!/bin/busybox\n" + strings.Repeat("busybox ", 2000),
		"etc/banner":                    "torwrt\n",
		"etc/config/system":             "config system\n\toption hostname 'torwrt'\n",
		"usr/lib/opkg/status":           statusText,
		"etc/opkg/keys/" + trustedFP:    "untrusted comment: torwrt release key\nRWQeCue7XEsqPw==\n",
		"etc/opkg/keys/" + untrustFP:    "untrusted comment: OpenWrt 24.10 release key\nRWTTEMbygz6X9w==\n",
		"usr/share/torwrt/release.json": `{"version":"1.0"}`,
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"dev", "tmp", "overlay"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("busybox", filepath.Join(dir, "bin/sh")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/tmp/resolv.conf", filepath.Join(dir, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// mksquashfs packs tree as an ImageBuilder does, times from the clock;
// /dev/console comes from a pseudo file so packing needs no root.
func mksquashfs(t *testing.T, tree string, args ...string) []byte {
	t.Helper()
	needTool(t, "mksquashfs")
	out := filepath.Join(t.TempDir(), "root.squashfs")
	argv := append([]string{tree, out, "-noappend", "-all-root", "-no-progress", "-quiet",
		"-p", "dev/console c 600 0 0 5 1"}, args...)
	if msg, err := exec.Command("mksquashfs", argv...).CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs %q: %v\n%s", argv, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fakeKernel() []byte {
	k := make([]byte, kernelLen)
	for i := range k {
		k[i] = byte(i*7 + 3)
	}
	return k
}

// sysupgradePayload lays out kernel, root filesystem, 0xff padding to
// 64 KiB and the JFFS2 end-of-filesystem marker, as OpenWrt does.
func sysupgradePayload(kernel, sq []byte) []byte {
	p := append(bytes.Clone(kernel), sq...)
	for len(p)%padBlock != 0 {
		p = append(p, 0xff)
	}
	return append(p, JFFS2EOF...)
}

func openSquashfs(t *testing.T, payload []byte) (*squashfs.FS, int64) {
	t.Helper()
	fsys, off, err := squashfs.OpenInImage(bytes.NewReader(payload), int64(len(payload)))
	if err != nil {
		t.Fatalf("reading back the squashfs: %v", err)
	}
	return fsys, off
}

func readFile(t *testing.T, fsys *squashfs.FS, name string) string {
	t.Helper()
	f, err := fsys.Open(name)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return string(b)
}

func allKeepOnly() []Fix {
	return []Fix{KeepOnlyKeys("etc/opkg/keys", []string{trustedFP}), KeepOnlyKeys("etc/torwrt/keys", []string{trustedFP})}
}

func TestRootfsNormalizesAndIsIdempotent(t *testing.T) {
	needRoot(t)
	needTool(t, "unsquashfs")
	sq := mksquashfs(t, rootfsTree(t), "-comp", "xz")
	kernel := fakeKernel()
	if bytes.Contains(kernel, []byte("hsqs")) {
		t.Fatal("fake kernel contains the squashfs magic")
	}
	in := sysupgradePayload(kernel, sq)
	inCopy := bytes.Clone(in)

	out, res, err := Rootfs(t.Context(), in, epoch, t.TempDir(), allKeepOnly()...)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(in, inCopy) {
		t.Fatal("Rootfs modified its input")
	}
	if !res.Repacked {
		t.Fatalf("clock-stamped rootfs not re-packed: %+v", res)
	}
	if res.SquashfsOffset != kernelLen {
		t.Errorf("SquashfsOffset %d, want %d", res.SquashfsOffset, kernelLen)
	}
	if want := int64(binary.LittleEndian.Uint64(sq[40:])); res.SquashfsSize != want {
		t.Errorf("SquashfsSize %d, superblock says %d", res.SquashfsSize, want)
	}
	reasons := strings.Join(res.Reasons, "\n")
	for _, want := range []string{"removed untrusted key /etc/opkg/keys/" + untrustFP, "squashfs creation time", "opkg Installed-Time", "mtime of /"} {
		if !strings.Contains(reasons, want) {
			t.Errorf("reasons lack %q:\n%s", want, reasons)
		}
	}
	if strings.Contains(reasons, trustedFP) {
		t.Errorf("reasons mention the trusted key:\n%s", reasons)
	}
	if len(res.Reasons) > maxReason+1 {
		t.Errorf("%d reasons, the list is capped at %d and an ellipsis", len(res.Reasons), maxReason)
	}
	if !slices.Contains(res.MksquashfsArgs, "-all-time") || !slices.Contains(res.MksquashfsArgs, "xz") {
		t.Errorf("MksquashfsArgs %q", res.MksquashfsArgs)
	}

	// The kernel is untouched, the rootfs follows it directly, padding and
	// marker are as OpenWrt writes them.
	if !bytes.Equal(out[:kernelLen], kernel) {
		t.Fatal("kernel bytes changed")
	}
	fsys, off := openSquashfs(t, out)
	if off != kernelLen {
		t.Fatalf("normalized squashfs at %d, want %d", off, kernelLen)
	}
	sb := fsys.Superblock()
	if sb.ModTime != epoch || sb.Compression != "xz" {
		t.Errorf("superblock mkfs time %d compression %s, want %d xz", sb.ModTime, sb.Compression, epoch)
	}
	end := off + int64(sb.BytesUsed)
	if (len(out)-len(JFFS2EOF))%padBlock != 0 {
		t.Errorf("image of %d bytes: padding does not end on a 64 KiB boundary", len(out))
	}
	if !bytes.Equal(out[len(out)-len(JFFS2EOF):], JFFS2EOF) {
		t.Errorf("image ends with % x, want the JFFS2 marker", out[len(out)-len(JFFS2EOF):])
	}
	pad := out[end : len(out)-len(JFFS2EOF)]
	if len(pad) >= padBlock {
		t.Errorf("%d bytes of padding, more than a 64 KiB block", len(pad))
	}
	for i, b := range pad {
		if b != 0xff {
			t.Fatalf("padding byte %d after the squashfs is %#x, want 0xff", i, b)
		}
	}

	// Every time is epoch, the content is what was packed.
	seen := map[string]squashfs.Entry{}
	err = fsys.Walk(t.Context(), func(e squashfs.Entry) error {
		seen[e.Path] = e
		if e.ModTime != epoch {
			t.Errorf("%s: mtime %d, want %d", e.Path, e.ModTime, epoch)
		}
		if e.UID != 0 || e.GID != 0 {
			t.Errorf("%s: owner %d:%d", e.Path, e.UID, e.GID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{".", "bin", "bin/busybox", "bin/sh", "dev", "dev/console", "tmp", "overlay", "etc/config/system", "etc/opkg/keys/" + trustedFP, "usr/lib/opkg/status"} {
		if _, ok := seen[p]; !ok {
			t.Errorf("%s missing from the normalized rootfs", p)
		}
	}
	if _, ok := seen["etc/opkg/keys/"+untrustFP]; ok {
		t.Error("untrusted key still in the normalized rootfs")
	}
	if e := seen["bin/sh"]; e.Mode.Type() != fs.ModeSymlink || e.Target != "busybox" {
		t.Errorf("bin/sh: %v -> %q", e.Mode, e.Target)
	}
	if e := seen["etc/resolv.conf"]; e.Target != "/tmp/resolv.conf" {
		t.Errorf("etc/resolv.conf -> %q", e.Target)
	}
	if e := seen["dev/console"]; e.Mode.Type() != fs.ModeDevice|fs.ModeCharDevice || e.Major != 5 || e.Minor != 1 || e.Mode.Perm() != 0o600 {
		t.Errorf("dev/console: %v %d:%d", e.Mode, e.Major, e.Minor)
	}
	if got := readFile(t, fsys, "etc/config/system"); got != "config system\n\toption hostname 'torwrt'\n" {
		t.Errorf("etc/config/system: %q", got)
	}
	status := readFile(t, fsys, "usr/lib/opkg/status")
	if want := strings.ReplaceAll(statusText, "Installed-Time: 123", "Installed-Time: 1700000000"); status != want {
		t.Errorf("opkg status:\n%s\nwant:\n%s", status, want)
	}

	// Normalizing the normalized image changes nothing: an image that is
	// already reproducible passes through byte for byte.
	again, res2, err := Rootfs(t.Context(), out, epoch, t.TempDir(), allKeepOnly()...)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Repacked || len(res2.Reasons) != 0 || res2.MksquashfsArgs != nil {
		t.Fatalf("second pass re-packed: %+v", res2)
	}
	if !bytes.Equal(again, out) {
		t.Fatal("second pass changed the bytes")
	}
	if res2.SquashfsOffset != kernelLen || res2.SquashfsSize != int64(sb.BytesUsed) {
		t.Errorf("second pass found the squashfs at %d size %d", res2.SquashfsOffset, res2.SquashfsSize)
	}

	// The same input normalized again, in another work dir, gives the same
	// bytes: the output depends on the content and epoch only.
	out2, _, err := Rootfs(t.Context(), in, epoch, t.TempDir(), allKeepOnly()...)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out2, out) {
		t.Fatal("normalizing the same image twice gave different bytes")
	}
}

// Each clock-dependent part on its own triggers a re-pack, and an image
// with every time already at the epoch passes through, even with no fixes.
func TestRootfsDetectsEachTimestamp(t *testing.T) {
	needRoot(t)
	needTool(t, "unsquashfs")
	const e = "1700000000"
	for name, tc := range map[string]struct {
		installedTime string
		mksquashfs    []string
		fixes         []Fix
		want          []string // reasons, each a prefix; nil: pass through
	}{
		"reproducible":       {e, []string{"-mkfs-time", e, "-all-time", e}, nil, nil},
		"reproducible, keys": {e, []string{"-mkfs-time", e, "-all-time", e}, []Fix{KeepOnlyKeys("etc/opkg/keys", []string{trustedFP, untrustFP})}, nil},
		"creation time":      {e, []string{"-all-time", e}, nil, []string{"squashfs creation time"}},
		"installed time":     {"123", []string{"-mkfs-time", e, "-all-time", e}, nil, []string{"opkg Installed-Time", "mtime of /usr/lib/opkg/status"}},
		"file times":         {e, []string{"-mkfs-time", e}, nil, []string{"mtime of /", "mtime of /", "mtime of /", "mtime of /", "mtime of /", "…"}},
		"untrusted key":      {e, []string{"-mkfs-time", e, "-all-time", e}, allKeepOnly(), []string{"removed untrusted key /etc/opkg/keys/" + untrustFP, "mtime of /etc/opkg/keys"}},
	} {
		t.Run(name, func(t *testing.T) {
			tree := rootfsTree(t)
			status := filepath.Join(tree, "usr/lib/opkg/status")
			if err := os.WriteFile(status, []byte(strings.ReplaceAll(statusText, "123", tc.installedTime)), 0o644); err != nil {
				t.Fatal(err)
			}
			in := sysupgradePayload(fakeKernel(), mksquashfs(t, tree, append([]string{"-comp", "xz"}, tc.mksquashfs...)...))
			out, res, err := Rootfs(t.Context(), in, epoch, t.TempDir(), tc.fixes...)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if res.Repacked || len(res.Reasons) != 0 || !bytes.Equal(out, in) {
					t.Fatalf("reproducible image re-packed: %+v", res)
				}
				// Another epoch is another image.
				if _, res, err := Rootfs(t.Context(), in, epoch+1, t.TempDir()); err != nil || !res.Repacked {
					t.Fatalf("image with times at another epoch: %+v, %v", res, err)
				}
				return
			}
			if !res.Repacked || len(res.Reasons) != len(tc.want) {
				t.Fatalf("reasons %q, want %q", res.Reasons, tc.want)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(res.Reasons[i], w) {
					t.Errorf("reason %d %q, want %q…", i, res.Reasons[i], w)
				}
			}
			if again, res, err := Rootfs(t.Context(), out, epoch, t.TempDir(), tc.fixes...); err != nil || res.Repacked || !bytes.Equal(again, out) {
				t.Fatalf("normalized image is not a fixed point: %+v, %v", res, err)
			}
		})
	}
}

func TestKeepOnlyKeys(t *testing.T) {
	tree := t.TempDir()
	keys := filepath.Join(tree, "etc/opkg/keys")
	if err := os.MkdirAll(filepath.Join(keys, "subdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{trustedFP, untrustFP} {
		if err := os.WriteFile(filepath.Join(keys, n), []byte("key"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reasons, err := KeepOnlyKeys("etc/opkg/keys", []string{trustedFP})(tree)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(reasons)
	want := []string{"removed untrusted key /etc/opkg/keys/" + untrustFP, "removed untrusted key /etc/opkg/keys/subdir"}
	if !slices.Equal(reasons, want) {
		t.Errorf("reasons %q, want %q", reasons, want)
	}
	es, err := os.ReadDir(keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Name() != trustedFP {
		t.Errorf("keys dir holds %v", es)
	}
	// Nothing left to remove: no reasons, so no re-pack on its account.
	if reasons, err := KeepOnlyKeys("etc/opkg/keys", []string{trustedFP})(tree); err != nil || len(reasons) != 0 {
		t.Errorf("second run: %q, %v", reasons, err)
	}
	// A rootfs without the directory is fine.
	if reasons, err := KeepOnlyKeys("etc/torwrt/keys", nil)(tree); err != nil || len(reasons) != 0 {
		t.Errorf("missing dir: %q, %v", reasons, err)
	}
}

func TestRootfsNoSquashfs(t *testing.T) {
	payload := sysupgradePayload(fakeKernel(), bytes.Repeat([]byte("not a filesystem "), 500))
	// A magic with an implausible superblock is not enough either.
	copy(payload[3000:], "hsqs")
	_, _, err := Rootfs(t.Context(), payload, epoch, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "no squashfs") {
		t.Fatalf("Rootfs of an image without squashfs: %v", err)
	}
}

func TestRootfsRefusesNonXZ(t *testing.T) {
	sq := mksquashfs(t, rootfsTree(t), "-comp", "gzip")
	_, _, err := Rootfs(t.Context(), sysupgradePayload(fakeKernel(), sq), epoch, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "gzip") || !strings.Contains(err.Error(), "xz") {
		t.Fatalf("Rootfs of a gzip squashfs: %v, want a refusal naming gzip", err)
	}
}
