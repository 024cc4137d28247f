package lint

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// debianPackages is what scripts/install-deps.sh installs on Debian 12 (the
// project's CI machine). Ubuntu gets the same without chromium.
var debianPackages = []string{
	"podman", "runc", "uidmap", "qemu-user-static",
	"squashfs-tools", "squashfs-tools-ng", "busybox-static", "make", "binutils",
	"tor", "nftables", "iproute2", "signify-openbsd", "softhsm2", "opensc", "shellcheck",
	"time", "xz-utils", "zstd", "ca-certificates", "git", "chromium",
}

const (
	debian12    = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n"
	ubuntu2404  = "PRETTY_NAME=\"Ubuntu 24.04.2 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"24.04\"\nVERSION_CODENAME=noble\nID=ubuntu\nID_LIKE=debian\n"
	linuxmint22 = "NAME=\"Linux Mint\"\nVERSION_ID=\"22\"\nID=linuxmint\nID_LIKE=\"ubuntu debian\"\n"
	fedora41    = "NAME=\"Fedora Linux\"\nVERSION_ID=41\nID=fedora\n"
)

// installDepsDryRun runs scripts/install-deps.sh in dry-run mode with a fake
// os-release and a PATH holding only the given (empty) programs, so the
// dry run can call nothing else: no apt, no sudo, no cosign build.
func installDepsDryRun(t *testing.T, osRelease string, onPath ...string) (map[string]string, string, error) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range onPath {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	osFile := filepath.Join(dir, "os-release")
	if err := os.WriteFile(osFile, []byte(osRelease), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bash, filepath.Join(repoRoot(t), "scripts/install-deps.sh"))
	cmd.Env = []string{"PATH=" + bin, "TORWRT_OS_RELEASE=" + osFile, "TORWRT_DEPS_DRY_RUN=1"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	return out, stderr.String(), err
}

func TestInstallDepsPerOS(t *testing.T) {
	ubuntuPackages := slices.DeleteFunc(slices.Clone(debianPackages), func(p string) bool { return p == "chromium" })
	cases := []struct {
		name, osRelease string
		onPath          []string
		os              string
		packages        []string
		browser, link   string // browser: base name on the fake PATH
	}{
		// Debian installs its chromium package whatever is on PATH.
		{"debian 12", debian12, nil, "debian", debianPackages, "", ""},
		{"debian 12 with google-chrome", debian12, []string{"google-chrome"}, "debian", debianPackages, "", ""},
		// GitHub's ubuntu-24.04 image: chromium and google-chrome preinstalled.
		{"ubuntu 24.04 runner", ubuntu2404, []string{"chromium", "google-chrome"}, "ubuntu", ubuntuPackages, "chromium", ""},
		{"ubuntu 24.04 chromium-browser", ubuntu2404, []string{"chromium-browser"}, "ubuntu", ubuntuPackages, "chromium-browser", ""},
		// Only Chrome: linked as chromium, the name the browser tests look for.
		{"ubuntu 24.04 google-chrome only", ubuntu2404, []string{"google-chrome"}, "ubuntu", ubuntuPackages, "google-chrome", "/usr/local/bin/chromium"},
		{"ubuntu 24.04 google-chrome-stable only", ubuntu2404, []string{"google-chrome-stable"}, "ubuntu", ubuntuPackages, "google-chrome-stable", "/usr/local/bin/chromium"},
		{"ubuntu derivative", linuxmint22, []string{"google-chrome"}, "ubuntu", ubuntuPackages, "google-chrome", "/usr/local/bin/chromium"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, stderr, err := installDepsDryRun(t, c.osRelease, c.onPath...)
			if err != nil {
				t.Fatalf("install-deps.sh dry run: %v\n%s", err, stderr)
			}
			if out["os"] != c.os {
				t.Errorf("os = %q, want %q", out["os"], c.os)
			}
			if got := strings.Fields(out["packages"]); !slices.Equal(got, c.packages) {
				t.Errorf("packages:\n got %v\nwant %v", got, c.packages)
			}
			if got := out["browser"]; (c.browser == "" && got != "") || (c.browser != "" && filepath.Base(got) != c.browser) {
				t.Errorf("browser = %q, want %q", got, c.browser)
			}
			if out["link"] != c.link {
				t.Errorf("link = %q, want %q", out["link"], c.link)
			}
		})
	}
}

func TestInstallDepsRefuses(t *testing.T) {
	cases := []struct {
		name, osRelease, want string
	}{
		// Ubuntu's chromium package is a snap, which a runner cannot install.
		{"ubuntu without a browser", ubuntu2404, "google-chrome"},
		{"unsupported OS", fedora41, `unsupported OS "fedora"`},
		{"empty os-release", "", "unsupported OS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, stderr, err := installDepsDryRun(t, c.osRelease)
			if err == nil {
				t.Fatalf("install-deps.sh succeeded: %v", out)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("stderr does not mention %q:\n%s", c.want, stderr)
			}
			if len(out) != 0 {
				t.Errorf("printed a plan although it refused: %v", out)
			}
		})
	}
}
