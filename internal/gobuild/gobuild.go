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
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
)

// Request says what to build.
type Request struct {
	// ModuleDir is the root of the Go module holding Package (a checkout).
	ModuleDir string `json:"-"`
	// Source, used when ModuleDir is empty, is the module's source as a
	// file tree with go.mod at its root (torwrt.Source, the copy embedded
	// in imgbuild). It is written to a fresh temporary directory and
	// built there; with -trimpath the binary does not depend on where.
	Source  fs.FS  `json:"-"`
	Package string `json:"package"` // e.g. ./cmd/verify
	GOOS    string `json:"goos"`
	GOARCH  string `json:"goarch"`
	GOMIPS  string `json:"gomips,omitempty"`
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
	// From says where the source came from: the module directory, or
	// EmbeddedSource.
	From string `json:"from"`
}

// outName is the binary's name in the build's temporary directory.
const outName = "torwrt-verify"

// EmbeddedSource is Result.From for a build from Request.Source.
const EmbeddedSource = "source embedded in imgbuild"

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
	if req.ModuleDir == "" && req.Source == nil {
		return nil, fmt.Errorf("gobuild: no source for %s: want a module directory or an embedded source tree", req.Package)
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
	dir, from := req.ModuleDir, req.ModuleDir
	if dir == "" {
		dir, from = filepath.Join(tmp, "src"), EmbeddedSource
		if err := Unpack(ctx, req.Source, dir); err != nil {
			return nil, err
		}
	}
	// argv is recorded (build report, provenance) with the output named
	// by its base name: the temporary directory is this run's, not part
	// of how the binary was made.
	out := filepath.Join(tmp, outName)
	argv := []string{"go", "build", "-trimpath", "-buildvcs=false", "-mod=readonly",
		"-ldflags=-s -w -buildid= -X main.version=" + req.Version,
		"-o", outName, req.Package}
	run := append([]string{}, argv[1:]...)
	run[len(run)-2] = out
	env := []string{
		"CGO_ENABLED=0", "GOOS=" + req.GOOS, "GOARCH=" + req.GOARCH,
		"GOFLAGS=", "GOTOOLCHAIN=local", "GOEXPERIMENT=",
		// The go command falls back to the user's go env file
		// (`go env -w`) for variables that are empty here, GOFLAGS
		// included; ignore that file.
		"GOENV=off",
		// A go.work above the module directory would swap modules.
		"GOWORK=off",
	}
	if req.GOMIPS != "" {
		env = append(env, "GOMIPS="+req.GOMIPS)
	}
	cmd := exec.CommandContext(ctx, "go", run...)
	cmd.Dir = dir
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
	return &Result{Binary: bin, SHA256: hex.EncodeToString(sum[:]), Size: len(bin), GoVersion: goVersion, Argv: argv, Env: env, From: from}, nil
}

// Unpack writes the module source src (go.mod at its root) to dir, which
// must not exist yet: directories 0755, files 0644, nothing else. Test
// files are left out.
func Unpack(ctx context.Context, src fs.FS, dir string) error {
	if _, err := fs.Stat(src, "go.mod"); err != nil {
		return fmt.Errorf("gobuild: the source tree has no go.mod: %w", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("gobuild: unpacking the source: %w", err)
	}
	err := fs.WalkDir(src, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == "." {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.FromSlash(p))
		switch {
		case d.IsDir():
			return os.Mkdir(dst, 0o755)
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file", p)
		case strings.HasSuffix(p, "_test.go"):
			return nil
		}
		data, err := fs.ReadFile(src, p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		return fmt.Errorf("gobuild: unpacking the source to %s: %w", dir, err)
	}
	return nil
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
