package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// The router runs this binary on MIPS (big-endian ath79, little-endian
// ramips), built with the release flags, as a soft-float static binary.
// These tests build it that way, run it under qemu-user on the attack
// table's files and require the same verdicts as on the build host.

var (
	buildDir  string
	buildMu   sync.Mutex
	buildOnce = map[string]*buildResult{}
)

type buildResult struct {
	once sync.Once
	path string
	err  error
}

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "verify-builds-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	buildDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

func goTool(t testing.TB) string {
	p, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go tool not found in PATH: %v", err)
	}
	return p
}

// buildVerify cross-compiles cmd/verify with the release flags, once per
// target per test binary.
func buildVerify(t testing.TB, goarch string) string {
	t.Helper()
	buildMu.Lock()
	r, ok := buildOnce[goarch]
	if !ok {
		r = &buildResult{}
		buildOnce[goarch] = r
	}
	buildMu.Unlock()
	r.once.Do(func() {
		out := filepath.Join(buildDir, "verify-"+goarch)
		cmd := exec.Command(goTool(t), "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", out, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOMIPS=softfloat", "GOFLAGS=")
		if b, err := cmd.CombinedOutput(); err != nil {
			r.err = fmt.Errorf("go build for %s: %v\n%s", goarch, err, b)
			return
		}
		r.path = out
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.path
}

// runner returns the argv prefix that runs a binary for goarch here.
func runner(t testing.TB, goarch string) []string {
	t.Helper()
	if goarch == runtime.GOARCH {
		return nil
	}
	q := map[string]string{"mips": "qemu-mips-static", "mipsle": "qemu-mipsel-static"}[goarch]
	p, err := exec.LookPath(q)
	if err != nil {
		t.Fatalf("%s not found (%v): install the Debian package qemu-user-static (apt-get install -y qemu-user-static)", q, err)
	}
	return []string{p}
}

func exitCode(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), nil
	}
	return -1, err
}

func TestMIPSVerdicts(t *testing.T) {
	dir := t.TempDir()
	cases := writeFixtures(t, dir)
	results := map[string]map[string]int{}
	var mu sync.Mutex
	t.Run("arch", func(t *testing.T) {
		for _, arch := range []string{runtime.GOARCH, "mips", "mipsle"} {
			t.Run(arch, func(t *testing.T) {
				t.Parallel()
				bin := buildVerify(t, arch)
				prefix := runner(t, arch)
				got := map[string]int{}
				for _, tc := range cases {
					argv := append(append(append([]string{}, prefix...), bin), tc.args...)
					cmd := exec.Command(argv[0], argv[1:]...)
					cmd.Dir = dir
					var stderr bytes.Buffer
					cmd.Stderr = &stderr
					code, err := exitCode(cmd.Run())
					if err != nil {
						t.Fatalf("%s: running %v: %v", tc.name, argv, err)
					}
					got[tc.name] = code
					if code != tc.want {
						t.Errorf("%s on %s: exit %d, want %d\n%s", tc.name, arch, code, tc.want, stderr.String())
					}
				}
				mu.Lock()
				results[arch] = got
				mu.Unlock()
			})
		}
	})
	native := results[runtime.GOARCH]
	for _, arch := range []string{"mips", "mipsle"} {
		for name, code := range results[arch] {
			if code != native[name] {
				t.Errorf("%s: %s exits %d, %s exits %d", name, arch, code, runtime.GOARCH, native[name])
			}
		}
	}
	t.Logf("%d verdicts identical on %s, mips and mipsle", len(cases), runtime.GOARCH)
}

// sizeBudget is the xz -9e size the router binary must stay under: it
// shares 16 MB of flash with the kernel, Tor and OpenWrt.
const sizeBudget = 1_600_000

func TestBinarySize(t *testing.T) {
	xz, err := exec.LookPath("xz")
	if err != nil {
		t.Fatalf("xz not found (%v): install the Debian package xz-utils", err)
	}
	for _, arch := range []string{"mips", "mipsle"} {
		bin := buildVerify(t, arch)
		fi, err := os.Stat(bin)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(xz, "-9e", "-c", bin).Output()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("cmd/verify linux/%s softfloat, -trimpath -s -w: %d bytes raw, %d bytes xz -9e (budget %d)", arch, fi.Size(), len(out), sizeBudget)
		if len(out) > sizeBudget {
			t.Errorf("%s: %d bytes xz, over the %d byte budget; see which dependency grew: go list -deps ./cmd/verify", arch, len(out), sizeBudget)
		}
	}
}

// TestRouterDeps keeps host-only and bulky packages out of the router
// binary.
func TestRouterDeps(t *testing.T) {
	cmd := exec.Command(goTool(t), "list", "-deps", ".")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH=mips", "GOMIPS=softfloat", "CGO_ENABLED=0", "GOFLAGS=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	bad := map[string]string{
		"net/http":                               "doubles the binary; updater and status have small HTTP/1.1 code of their own",
		"crypto/tls":                             "530 KB xz; opt in with -tags torwrt_https",
		"text/template":                          "bloat (tailscale deps test)",
		"html/template":                          "bloat; the status page escapes by hand",
		"expvar":                                 "debug endpoint, not on a router",
		"gopkg.in/yaml.v3":                       "host-only (profiles)",
		"github.com/spf13/cobra":                 "stdlib flag suffices",
		"github.com/google/go-containerregistry": "host-only",
		"github.com/sigstore/sigstore":           "host-only (KMS signing)",
	}
	hostOnly := []string{"internal/profile", "internal/signer", "internal/container", "internal/imagebuilder",
		"internal/gobuild", "internal/overlay", "internal/provenance", "internal/build", "internal/ibsim"}
	for _, p := range strings.Fields(string(out)) {
		for b, why := range bad {
			if p == b || strings.HasPrefix(p, b+"/") {
				t.Errorf("cmd/verify imports %s: %s", p, why)
			}
		}
		for _, h := range hostOnly {
			if strings.HasPrefix(p, "github.com/torwrt/torwrt/"+h) {
				t.Errorf("cmd/verify imports host-only package %s", p)
			}
		}
	}
}
