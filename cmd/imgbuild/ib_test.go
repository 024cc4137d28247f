package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/container"
	"github.com/torwrt/torwrt/internal/usign"
)

// makeIBArchive packs a tiny ImageBuilder-like tree with the real tar and
// zstd, writes sha256sums and signs it with a fresh key whose public half
// goes into a key directory.
func makeIBArchive(t *testing.T, extraTarArgs ...string) (archive, sums, sig, keys string) {
	t.Helper()
	for _, tool := range []string{"tar", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s missing: install the Debian package %s", tool, tool)
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "openwrt-imagebuilder-24.10.3-ath79-generic.Linux-x86_64")
	os.MkdirAll(filepath.Join(src, "packages"), 0o755)
	os.WriteFile(filepath.Join(src, "Makefile"), []byte("image:\n\t@echo building\n"), 0o644)
	os.WriteFile(filepath.Join(src, "repositories.conf"), []byte("src imagebuilder file:packages\n"), 0o644)
	archive = filepath.Join(dir, "openwrt-imagebuilder-24.10.3-ath79-generic.Linux-x86_64.tar.zst")
	args := append([]string{"--zstd", "-cf", archive, "-C", dir}, extraTarArgs...)
	args = append(args, filepath.Base(src))
	if out, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	data, _ := os.ReadFile(archive)
	sum := sha256.Sum256(data)
	sums = filepath.Join(dir, "sha256sums")
	os.WriteFile(sums, []byte(hex.EncodeToString(sum[:])+" *"+filepath.Base(archive)+"\n"), 0o644)
	k, _ := usign.GenerateKey(strings.NewReader(strings.Repeat("i", 64)), "")
	s, _ := k.Sign(mustRead(t, sums))
	sig = sums + ".sig"
	os.WriteFile(sig, s.Marshal(), 0o644)
	keys = filepath.Join(dir, "keys")
	os.MkdirAll(keys, 0o755)
	os.WriteFile(filepath.Join(keys, k.Fingerprint.String()), k.Public().Marshal(), 0o644)
	return
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIBImport(t *testing.T) {
	archive, sums, sig, keys := makeIBArchive(t)
	cache := t.TempDir()
	code, out, stderr := runCLI(t, "ib", "import", archive, "--sha256sums", sums, "--sig", sig, "--keys", keys, "--cache", cache, "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	rec := jsonDoc[ibImportResult](t, fndResult{code, out, stderr}, "ib import").Result
	if !strings.HasPrefix(rec.Digest, "sha256:") || rec.Files != 4 || len(rec.SignedBy.Fingerprint) != 16 {
		t.Fatalf("output: %s", out)
	}
	// The image is in the cache builds pull from, under the digest the
	// output says to pin; Load never touches the network.
	ref := rec.LockRef
	if !strings.HasPrefix(ref, container.ImportedRepository+"@sha256:") {
		t.Fatalf("lock ref %q", ref)
	}
	c := &container.Cache{Dir: filepath.Join(cache, "images")}
	if img, err := c.Load(context.Background(), ref); err != nil || img.WorkingDir != "/builder" {
		t.Fatalf("imported image not loadable from the cache: %v %+v", err, img)
	}
	// Importing twice gives the same digest: the packed image does not
	// depend on when it was made.
	code, out2, stderr2 := runCLI(t, "ib", "import", archive, "--sha256sums", sums, "--sig", sig, "--keys", keys, "--cache", cache, "--json")
	if rec2 := jsonDoc[ibImportResult](t, fndResult{code, out2, stderr2}, "ib import").Result; code != exitOK || rec2.Digest != rec.Digest {
		t.Fatalf("second import: %d %s", code, out2)
	}
}

func TestIBImportRefusals(t *testing.T) {
	archive, sums, sig, keys := makeIBArchive(t)
	// The upstream OpenWrt keys did not sign this test's sha256sums.
	code, _, stderr := runCLI(t, "ib", "import", archive, "--sha256sums", sums, "--sig", sig, "--cache", t.TempDir())
	if code != exitRejected || !strings.Contains(stderr, "REJECTED") {
		t.Fatalf("untrusted signer: exit %d %s", code, stderr)
	}
	// A changed archive no longer matches sha256sums.
	f, _ := os.OpenFile(archive, os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte("x"))
	f.Close()
	code, _, stderr = runCLI(t, "ib", "import", archive, "--sha256sums", sums, "--sig", sig, "--keys", keys, "--cache", t.TempDir())
	if code != exitRejected || !strings.Contains(stderr, "sha256 mismatch") || !strings.Contains(stderr, "download it again") {
		t.Fatalf("tampered archive: exit %d %s", code, stderr)
	}
	// A path escaping the tree is refused even when correctly signed.
	evil, esums, esig, ekeys := makeIBArchive(t, "--transform", "s,^openwrt,../openwrt,")
	code, _, stderr = runCLI(t, "ib", "import", evil, "--sha256sums", esums, "--sig", esig, "--keys", ekeys, "--cache", t.TempDir())
	if code != exitRejected || !strings.Contains(stderr, "..") {
		t.Fatalf("path traversal: exit %d %s", code, stderr)
	}
}
