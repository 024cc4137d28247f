// Package gobuild cross-compiles the router daemon reproducibly.
//
// The flags are fixed here, not taken from the environment: CGO off,
// -trimpath, no VCS stamping, an empty build id and stripped symbols. GOFLAGS
// and other GO* variables of the caller are dropped so that a -toolexec or
// -ldflags smuggled in through the environment cannot change the binary.
package gobuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Request says what to build.
type Request struct {
	// ModuleDir is the root of the Go module holding Package.
	ModuleDir string `json:"-"`
	Package   string `json:"package"` // e.g. ./cmd/verify
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	GOMIPS    string `json:"gomips,omitempty"`
	// Version is stamped into main.version.
	Version string `json:"version"`
}

// Result is the built binary and how it was made.
type Result struct {
	Binary    []byte   `json:"-"`
	SHA256    string   `json:"sha256"`
	Size      int      `json:"size"`
	GoVersion string   `json:"go_version"`
	Argv      []string `json:"argv"`
	Env       []string `json:"env"`
}

var (
	versionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}$`)
	pkgRE     = regexp.MustCompile(`^\./[a-z0-9/_-]+$`)
	archRE    = regexp.MustCompile(`^[a-z0-9]+$`)
)

// Build compiles req.Package. The go command is the one on PATH; its
// version is recorded, and a build with another version is a different
// build (the provenance says which).
func Build(ctx context.Context, req Request) (*Result, error) {
	if !pkgRE.MatchString(req.Package) {
		return nil, fmt.Errorf("gobuild: package %q must be a ./relative path", req.Package)
	}
	if !versionRE.MatchString(req.Version) {
		return nil, fmt.Errorf("gobuild: version %q must match %s", req.Version, versionRE)
	}
	if !archRE.MatchString(req.GOOS) || !archRE.MatchString(req.GOARCH) || (req.GOMIPS != "" && !archRE.MatchString(req.GOMIPS)) {
		return nil, fmt.Errorf("gobuild: bad GOOS/GOARCH/GOMIPS %q/%q/%q", req.GOOS, req.GOARCH, req.GOMIPS)
	}
	goVersion, err := GoVersion(ctx)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "torwrt-gobuild-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "bin")
	argv := []string{"go", "build", "-trimpath", "-buildvcs=false", "-mod=readonly",
		"-ldflags=-s -w -buildid= -X main.version=" + req.Version,
		"-o", out, req.Package}
	env := []string{
		"CGO_ENABLED=0", "GOOS=" + req.GOOS, "GOARCH=" + req.GOARCH,
		"GOFLAGS=", "GOTOOLCHAIN=local", "GOEXPERIMENT=",
		// The go command falls back to the user's go env file
		// (`go env -w`) for variables that are empty here, GOFLAGS
		// included; ignore that file.
		"GOENV=off",
	}
	if req.GOMIPS != "" {
		env = append(env, "GOMIPS="+req.GOMIPS)
	}
	cmd := exec.CommandContext(ctx, "go", argv[1:]...)
	cmd.Dir = req.ModuleDir
	cmd.Env = append(baseEnv(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("gobuild: go build %s for %s/%s: %v\n%s", req.Package, req.GOOS, req.GOARCH, err, stderr.String())
	}
	bin, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(bin)
	return &Result{Binary: bin, SHA256: hex.EncodeToString(sum[:]), Size: len(bin), GoVersion: goVersion, Argv: argv, Env: env}, nil
}

// baseEnv keeps what the go command needs to find itself and its caches,
// and nothing that changes its output.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PATH", "HOME", "GOCACHE", "GOMODCACHE", "GOPATH", "GOPROXY", "GONOSUMDB", "GOSUMDB", "GOPRIVATE", "GONOPROXY", "TMPDIR":
			env = append(env, kv)
		}
	}
	return env
}

// GoVersion returns `go env GOVERSION`.
func GoVersion(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "env", "GOVERSION")
	cmd.Env = append(baseEnv(), "GOTOOLCHAIN=local", "GOENV=off")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("gobuild: go env GOVERSION: %w (is Go installed and on PATH?)", err)
	}
	return strings.TrimSpace(string(out)), nil
}
