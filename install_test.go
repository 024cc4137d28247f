package torwrt

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// installImgbuild runs `go install ./cmd/imgbuild` into a fresh GOBIN, the
// way a user without a checkout would get it, and returns its path.
func installImgbuild(t *testing.T) string {
	t.Helper()
	gobin := t.TempDir()
	cmd := exec.Command("go", "install", "./cmd/imgbuild")
	cmd.Env = append(os.Environ(), "GOBIN="+gobin, "GOTOOLCHAIN=local")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go install ./cmd/imgbuild: %v\n%s", err, out)
	}
	return filepath.Join(gobin, "imgbuild")
}

// emptyDir is a new empty directory with no profiles/ or brands/ in it or
// in any directory above it, so imgbuild finds no source tree.
func emptyDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "empty")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		for _, sub := range []string{"profiles", "brands", "go.mod"} {
			if _, err := os.Stat(filepath.Join(d, sub)); err == nil {
				t.Fatalf("%s has %s: the test needs a temporary directory outside any tree (set TMPDIR)", d, sub)
			}
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	return dir
}

// imgbuildRun runs bin with args in dir and returns stdout, stderr and the
// exit code.
func imgbuildRun(t *testing.T, bin, dir string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %q: %v", bin, args, err)
	}
	return stdout.String(), stderr.String(), code
}

// TestInstalledImgbuildBuildsAnywhere is issue 17's "done when": an
// imgbuild from `go install`, run in an empty directory with no checkout
// above it, builds a signed gl-ar150 image against the simulated
// ImageBuilder in podman, from the profile, brand and daemon source it
// carries, and `imgbuild verify` accepts the image.
func TestInstalledImgbuildBuildsAnywhere(t *testing.T) {
	bin := installImgbuild(t)
	work := emptyDir(t)
	keys := t.TempDir()
	key := filepath.Join(keys, "release")
	if _, stderr, code := imgbuildRun(t, bin, work, "keygen", "-o", key); code != 0 {
		t.Fatalf("keygen: exit %d\n%s", code, stderr)
	}
	start := time.Now()
	stdout, stderr, code := imgbuildRun(t, bin, work, "build", "--profile", "gl-ar150", "--simulated-ib", "--engine", "podman",
		"--key", key+".sec", "--release-keys", key+".pub", "--cache", filepath.Join(keys, "cache"), "--out", "dist")
	if code != 0 {
		t.Fatalf("build from an empty directory: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	t.Logf("build took %s", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(stderr, "profiles, brand and daemon source embedded in imgbuild") {
		t.Errorf("the log does not say everything came from imgbuild itself:\n%s", stderr)
	}

	data, err := os.ReadFile(filepath.Join(work, "dist", "gl-ar150", "build-report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Image       string `json:"image"`
		ProfileFrom string `json:"profile_from"`
		BrandFrom   string `json:"brand_from"`
		Simulated   bool   `json:"simulated"`
		Daemon      struct {
			From   string `json:"from"`
			SHA256 string `json:"sha256"`
		} `json:"daemon"`
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.ProfileFrom != "embedded in imgbuild (profiles/gl-ar150)" || rep.BrandFrom != "embedded in imgbuild (brands/torwrt)" ||
		rep.Daemon.From != "source embedded in imgbuild" || !rep.Simulated {
		t.Errorf("report says profile from %q, brand from %q, daemon from %q, simulated %v", rep.ProfileFrom, rep.BrandFrom, rep.Daemon.From, rep.Simulated)
	}
	image := filepath.Join(work, "dist", "gl-ar150", rep.Image)
	if _, stderr, code := imgbuildRun(t, bin, work, "verify", "--keys", key+".pub", image); code != 0 {
		t.Fatalf("imgbuild verify of the built image: exit %d\n%s", code, stderr)
	}
	// The check can fail: another key is refused.
	other := filepath.Join(keys, "other")
	if _, stderr, code := imgbuildRun(t, bin, work, "keygen", "-o", other); code != 0 {
		t.Fatalf("keygen: %s", stderr)
	}
	if _, _, code := imgbuildRun(t, bin, work, "verify", "--keys", other+".pub", image); code == 0 {
		t.Fatal("imgbuild verify accepted the image with a key that did not sign it")
	}
	// Nothing but dist/ was written to the working directory.
	entries, _ := os.ReadDir(work)
	if len(entries) != 1 || entries[0].Name() != "dist" {
		t.Errorf("the working directory holds %v, want only dist", entries)
	}
}

// TestInstalledImgbuildVendorProfileWins: a vendor's ./profiles/<id> is
// used instead of the embedded profile of the same id, and a vendor brand
// beside it is found; without it the embedded one is used. The lock file
// each would read says which profile was picked.
func TestInstalledImgbuildVendorProfileWins(t *testing.T) {
	bin := installImgbuild(t)
	keys := t.TempDir()
	key := filepath.Join(keys, "release")
	if _, stderr, code := imgbuildRun(t, bin, t.TempDir(), "keygen", "-o", key); code != 0 {
		t.Fatalf("keygen: %s", stderr)
	}
	build := []string{"build", "--profile", "gl-ar150", "--engine", "podman", "--key", key + ".sec", "--release-keys", key + ".pub", "--cache", filepath.Join(keys, "cache")}

	// No vendor directory: the embedded profile, which has no lock.
	empty := emptyDir(t)
	_, stderr, code := imgbuildRun(t, bin, empty, build...)
	if code == 0 || !strings.Contains(stderr, "embedded:profiles/gl-ar150/lock.json") {
		t.Fatalf("embedded profile without a lock: exit %d\n%s", code, stderr)
	}

	// A vendor directory with its own gl-ar150 (the same file but another
	// title) and a locked copy of it.
	vendor := emptyDir(t)
	yaml, err := Profiles.ReadFile("profiles/gl-ar150/profile.yaml")
	if err != nil {
		t.Fatal(err)
	}
	mine := bytes.Replace(yaml, []byte("\ntitle: "), []byte("\ntitle: ACME "), 1)
	if bytes.Equal(mine, yaml) {
		t.Fatal("profile.yaml has no title line to change")
	}
	pdir := filepath.Join(vendor, "profiles", "gl-ar150")
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(pdir, "profile.yaml"), mine, 0o644); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(vendor, "sub", "dir")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{vendor, sub} { // found from the working directory, also from below
		_, stderr, code = imgbuildRun(t, bin, dir, build...)
		if code == 0 || !strings.Contains(stderr, filepath.Join(pdir, "lock.json")) || strings.Contains(stderr, "embedded:profiles") {
			t.Fatalf("vendor profile in %s: exit %d, want the vendor's lock path %s\n%s", dir, code, filepath.Join(pdir, "lock.json"), stderr)
		}
	}
	// --root points at it from anywhere.
	_, stderr, code = imgbuildRun(t, bin, empty, append(build, "--root", vendor)...)
	if code == 0 || !strings.Contains(stderr, filepath.Join(pdir, "lock.json")) {
		t.Fatalf("--root %s: exit %d\n%s", vendor, code, stderr)
	}
	// Another embedded profile is still there beside the vendor's.
	_, stderr, code = imgbuildRun(t, bin, vendor, "build", "--profile", "gl-mt300a", "--key", key+".sec", "--release-keys", key+".pub", "--cache", filepath.Join(keys, "cache"))
	if code == 0 || !strings.Contains(stderr, "embedded:profiles/gl-mt300a/lock.json") {
		t.Fatalf("embedded gl-mt300a beside a vendor directory: exit %d\n%s", code, stderr)
	}
	// A brand the vendor directory does not have is refused by name.
	_, stderr, code = imgbuildRun(t, bin, vendor, append(build, "--brand", "acme")...)
	if code == 0 || !strings.Contains(stderr, `unknown brand "acme"`) {
		t.Fatalf("--brand acme without brands/acme: exit %d\n%s", code, stderr)
	}
}
