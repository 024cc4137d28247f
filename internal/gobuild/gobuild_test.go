package gobuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// moduleDir is the repository root, which holds ./cmd/verify.
const moduleDir = "../.."

func mipsRequest(version string) Request {
	return Request{ModuleDir: moduleDir, Package: "./cmd/verify", GOOS: "linux", GOARCH: "mips", GOMIPS: "softfloat", Version: version}
}

func build(t *testing.T, req Request) *Result {
	t.Helper()
	res, err := Build(t.Context(), req)
	if err != nil {
		t.Fatalf("Build(%+v): %v", req, err)
	}
	return res
}

// reference is a mips build made with a clean environment, shared by the
// tests that compare against it.
var reference struct {
	once sync.Once
	res  *Result
	err  error
}

func referenceBuild(t *testing.T) *Result {
	t.Helper()
	reference.once.Do(func() {
		reference.res, reference.err = Build(context.Background(), mipsRequest("v1.2.3-test"))
	})
	if reference.err != nil {
		t.Fatalf("reference build: %v", reference.err)
	}
	return reference.res
}

func checkResult(t *testing.T, res *Result) {
	t.Helper()
	sum := sha256.Sum256(res.Binary)
	if res.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("SHA256 %s is not the hash of Binary (%x)", res.SHA256, sum)
	}
	if res.Size != len(res.Binary) || res.Size == 0 {
		t.Errorf("Size %d, binary is %d bytes", res.Size, len(res.Binary))
	}
	if res.GoVersion != runtime.Version() {
		t.Errorf("GoVersion %q, want the toolchain's %q", res.GoVersion, runtime.Version())
	}
	for _, want := range []string{"-trimpath", "-buildvcs=false", "-mod=readonly"} {
		if !slices.Contains(res.Argv, want) {
			t.Errorf("Argv %q lacks %s", res.Argv, want)
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "GOFLAGS=", "GOTOOLCHAIN=local", "GOENV=off"} {
		if !slices.Contains(res.Env, want) {
			t.Errorf("Env %q lacks %s", res.Env, want)
		}
	}
}

func TestBuildMipsReproducible(t *testing.T) {
	a := referenceBuild(t)
	b := build(t, mipsRequest("v1.2.3-test"))
	checkResult(t, a)
	checkResult(t, b)
	if a.SHA256 != b.SHA256 || !bytes.Equal(a.Binary, b.Binary) {
		t.Fatalf("two builds differ: %s vs %s", a.SHA256, b.SHA256)
	}
	// A static big-endian MIPS32 ELF.
	if len(a.Binary) < 20 || string(a.Binary[:4]) != "\x7fELF" || a.Binary[4] != 1 || a.Binary[5] != 2 || a.Binary[18] != 0 || a.Binary[19] != 8 {
		t.Fatalf("not a 32-bit big-endian MIPS ELF: % x", a.Binary[:min(20, len(a.Binary))])
	}
	if !slices.Contains(a.Env, "GOMIPS=softfloat") || !slices.Contains(a.Env, "GOARCH=mips") {
		t.Errorf("Env %q does not record GOARCH/GOMIPS", a.Env)
	}
	if !bytes.Contains(a.Binary, []byte("v1.2.3-test")) {
		t.Error("version string not in the binary")
	}
	// Another version is another binary: the stamp really goes in.
	c := build(t, mipsRequest("v1.2.4-test"))
	if c.SHA256 == a.SHA256 {
		t.Fatal("changing the version did not change the binary")
	}
}

// The caller's GO* variables must not reach the go command.
func TestBuildIgnoresCallerEnvironment(t *testing.T) {
	ref := referenceBuild(t)
	for _, env := range [][2]string{
		{"GOFLAGS", "-ldflags=-X=main.version=evil"},
		{"GOFLAGS", "-toolexec=/bin/false"},
		{"GOEXPERIMENT", "nosuchexperiment"},
		{"GOMIPS", "hardfloat"},
		{"CGO_ENABLED", "1"},
	} {
		t.Run(env[0]+"="+env[1], func(t *testing.T) {
			t.Setenv(env[0], env[1])
			res := build(t, mipsRequest("v1.2.3-test"))
			if res.SHA256 != ref.SHA256 {
				t.Fatalf("%s=%s changed the binary: %s, clean build %s", env[0], env[1], res.SHA256, ref.SHA256)
			}
			if bytes.Contains(res.Binary, []byte("evil")) {
				t.Fatal("binary carries the smuggled version")
			}
		})
	}
}

// `go env -w GOFLAGS=...` writes the user's go env file, which the go
// command reads for every variable that is unset or empty in its
// environment (GOFLAGS= included). The build must not read it.
func TestBuildIgnoresUserGoEnvFile(t *testing.T) {
	ref := referenceBuild(t)
	// Keep the caches where they are: only the config file moves.
	for _, k := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		out, err := exec.Command("go", "env", k).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", k, err)
		}
		t.Setenv(k, strings.TrimSpace(string(out)))
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	envFile := filepath.Join(home, ".config", "go", "env")
	if err := os.MkdirAll(filepath.Dir(envFile), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, flags := range []string{"-ldflags=-X=main.version=evil", "-toolexec=/bin/false"} {
		if err := os.WriteFile(envFile, []byte("GOFLAGS="+flags+"\nGOMIPS=hardfloat\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := Build(t.Context(), mipsRequest("v1.2.3-test"))
		if err != nil {
			t.Fatalf("go env file with GOFLAGS=%s broke the build: %v", flags, err)
		}
		if res.SHA256 != ref.SHA256 {
			t.Fatalf("go env file with GOFLAGS=%s changed the binary: %s, clean build %s", flags, res.SHA256, ref.SHA256)
		}
	}
}

// The version is stamped into main.version: run a native build.
func TestBuildStampsVersion(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Fatalf("this test runs the daemon natively and needs linux, not %s", runtime.GOOS)
	}
	res := build(t, Request{ModuleDir: moduleDir, Package: "./cmd/verify", GOOS: "linux", GOARCH: runtime.GOARCH, Version: "7.8.9-stamp"})
	checkResult(t, res)
	bin := filepath.Join(t.TempDir(), "verify")
	if err := os.WriteFile(bin, res.Binary, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("verify --version: %v\n%s", err, out)
	}
	if got := strings.TrimSpace(string(out)); got != "torwrt-verify 7.8.9-stamp" {
		t.Fatalf("verify --version printed %q", got)
	}
}

// Bad inputs are refused before the go command runs: with no go on PATH
// the error must still be about the input.
func TestBuildRefusesBadInput(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	ok := mipsRequest("1.0")
	for name, tc := range map[string]struct {
		mod  func(*Request)
		want string
	}{
		"absolute package":     {func(r *Request) { r.Package = "/etc/passwd" }, "package"},
		"import path":          {func(r *Request) { r.Package = "github.com/torwrt/torwrt/cmd/verify" }, "package"},
		"parent dir":           {func(r *Request) { r.Package = "./../../cmd/verify" }, "package"},
		"package with space":   {func(r *Request) { r.Package = "./cmd/verify ./cmd/imgbuild" }, "package"},
		"package flag":         {func(r *Request) { r.Package = "-toolexec=/bin/false" }, "package"},
		"empty package":        {func(r *Request) { r.Package = "" }, "package"},
		"empty version":        {func(r *Request) { r.Version = "" }, "version"},
		"version with space":   {func(r *Request) { r.Version = "1.0 -X main.evil=1" }, "version"},
		"version with quote":   {func(r *Request) { r.Version = "1.0'" }, "version"},
		"version leading dash": {func(r *Request) { r.Version = "-X" }, "version"},
		"version too long":     {func(r *Request) { r.Version = strings.Repeat("1", 65) }, "version"},
		"version newline":      {func(r *Request) { r.Version = "1.0\n" }, "version"},
		"empty GOOS":           {func(r *Request) { r.GOOS = "" }, "GOOS"},
		"GOOS upper case":      {func(r *Request) { r.GOOS = "Linux" }, "GOOS"},
		"GOARCH injection":     {func(r *Request) { r.GOARCH = "mips GOFLAGS=-x" }, "GOARCH"},
		"empty GOARCH":         {func(r *Request) { r.GOARCH = "" }, "GOARCH"},
		"GOMIPS injection":     {func(r *Request) { r.GOMIPS = "softfloat\nGOFLAGS=-x" }, "GOMIPS"},
	} {
		t.Run(name, func(t *testing.T) {
			req := ok
			tc.mod(&req)
			res, err := Build(t.Context(), req)
			if err == nil {
				t.Fatalf("Build(%+v) accepted: %+v", req, res)
			}
			if !strings.HasPrefix(err.Error(), "gobuild: ") || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "GOVERSION") {
				t.Fatalf("Build(%+v): error %q is not an input error about %s", req, err, tc.want)
			}
		})
	}
	// The same request with good inputs does reach the (missing) go
	// command, so the cases above were refused by validation.
	if _, err := Build(t.Context(), ok); err == nil || !strings.Contains(err.Error(), "GOVERSION") {
		t.Fatalf("good request with no go on PATH: %v, want the go env GOVERSION error", err)
	}
}
