package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/usign"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	e := env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string {
		if k == "TORWRT_USERLAND_CACHE" {
			return testUserlandCache(t)
		}
		return ""
	}}
	code := run(context.Background(), e, args)
	return code, out.String(), errb.String()
}

// testUserlandCache is where `ib import` in tests keeps the Debian
// userland (~130 MB of .debs, ~560 MB of layer): content-addressed, so
// shared by every test and every run, in TORWRT_USERLAND_CACHE or
// ~/.cache/torwrt-test/userland.
func testUserlandCache(t *testing.T) string {
	if d := os.Getenv("TORWRT_USERLAND_CACHE"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(home, ".cache", "torwrt-test", "userland")
}

func throwawayKey(t *testing.T) string {
	t.Helper()
	k, err := usign.GenerateKey(strings.NewReader(strings.Repeat("k", 64)), "test")
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Join(t.TempDir(), "k")
	if err := usign.WriteKeyPair(base, k); err != nil {
		t.Fatal(err)
	}
	return base
}

func TestBuildCLIRefusals(t *testing.T) {
	key := throwawayKey(t)
	root := filepath.Join("..", "..")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown profile", []string{"build", "--root", root, "--profile", "gl-nope", "--key", key + ".sec"}, exitUsage, "known profiles: gl-ar150, gl-ar150-24.10, gl-mt300a, gl-mt300a-24.10"},
		{"short form routes to build", []string{"--root", root, "--profile", "gl-nope"}, exitUsage, "unknown profile"},
		{"no profile", []string{"build", "--root", root, "--key", key + ".sec"}, exitUsage, "--profile"},
		{"no key", []string{"build", "--root", root, "--profile", "gl-ar150"}, exitUsage, "--key"},
		{"unknown brand", []string{"build", "--root", root, "--profile", "gl-ar150", "--brand", "acme-nope", "--key", key + ".sec"}, exitFailure, "unknown brand"},
		{"no lock for the real ImageBuilder", []string{"build", "--root", root, "--profile", "gl-ar150", "--key", key + ".sec", "--release-keys", filepath.Dir(key)}, exitFailure, "imgbuild lock --profile gl-ar150"},
		{"stray argument", []string{"build", "--root", root, "--profile", "gl-ar150", "extra"}, exitUsage, "unexpected arguments"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, c.args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, c.code, stderr, c.want)
			}
		})
	}
}

func TestBuildCLIRefusesWorldReadableKey(t *testing.T) {
	key := throwawayKey(t)
	if err := os.Chmod(key+".sec", 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "build", "--root", "../..", "--profile", "gl-ar150", "--key", key+".sec")
	if code != exitFailure || !strings.Contains(stderr, "chmod 600") {
		t.Fatalf("exit %d, %q", code, stderr)
	}
}

func TestHelpListsVerbs(t *testing.T) {
	code, out, _ := runCLI(t, "--help")
	if code != exitOK {
		t.Fatal(code)
	}
	for _, v := range []string{"build", "keygen", "sign", "verify", "inspect", "diff", "lock"} {
		if !strings.Contains(out, "  "+v) {
			t.Errorf("help lacks %s", v)
		}
	}
	code, out, _ = runCLI(t, "build", "--help")
	if code != exitOK || !strings.Contains(out, "-simulated-ib") {
		t.Fatalf("build --help: %d %q", code, out)
	}
}

func TestInvocationHidesKeySecrets(t *testing.T) {
	got := strings.Join(redactedInvocation([]string{"--key", "pkcs11:token=torwrt;object=release?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-value=123456", "--profile", "gl-ar150"}), " ")
	if strings.Contains(got, "123456") || !strings.Contains(got, "gl-ar150") || !strings.Contains(got, "module-path") {
		t.Fatalf("invocation %q", got)
	}
}

func TestInvocationHidesLocalPaths(t *testing.T) {
	a := redactedInvocation([]string{"--profile", "gl-ar150", "--out", "/tmp/dist1", "--cache=/home/x/.cache/torwrt", "--key", "/secure/release.sec", "--simulated-ib", "--release-keys", "keys/"})
	b := redactedInvocation([]string{"--profile", "gl-ar150", "--out", "/srv/other", "--cache=/var/cache/t", "--key", "r.sec", "--simulated-ib", "--release-keys", "/etc/k"})
	if strings.Join(a, " ") != strings.Join(b, " ") {
		t.Fatalf("two builds of the same inputs record different invocations:\n%q\n%q", a, b)
	}
	want := "imgbuild build --profile gl-ar150 --out PATH --cache=PATH --key PATH --simulated-ib --release-keys PATH"
	if got := strings.Join(a, " "); got != want {
		t.Fatalf("invocation %q, want %q", got, want)
	}
	// How the run goes (step cache, parallelism, output format) is not
	// what it builds: a --no-step-cache rerun records the same invocation.
	c := redactedInvocation([]string{"--profile", "gl-ar150", "--no-step-cache", "--out", "/x", "--jobs", "2", "--cache=/c", "-v", "--key", "k", "--json", "--simulated-ib", "--release-keys", "r", "--keep-work", "--until=write"})
	if got := strings.Join(c, " "); got != want {
		t.Fatalf("invocation %q, want %q", got, want)
	}
	// A key URI names the key, not a place on this machine: it stays.
	if got := strings.Join(redactedInvocation([]string{"--key", "awskms:///alias/torwrt-release"}), " "); !strings.Contains(got, "awskms:///alias/torwrt-release") {
		t.Fatalf("key URI lost: %q", got)
	}
}
