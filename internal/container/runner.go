package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// Mount is a bind mount of a host path into the container.
type Mount struct {
	Source   string // host path (absolute, must exist)
	Target   string // path inside the container (absolute)
	ReadOnly bool
}

// RunSpec describes one command run in an image.
type RunSpec struct {
	Name    string // unique run name, e.g. torwrt-image-<hex>; ^[a-z0-9][a-z0-9_.-]{0,127}$
	Image   *Image
	Argv    []string // the command; never a shell string
	Env     []string // KEY=VALUE
	WorkDir string   // inside the container; "" = the image's WorkingDir
	Mounts  []Mount
	Stdout  io.Writer
	Stderr  io.Writer
}

// Runner runs commands in cached images.
type Runner interface {
	// Engine is "podman", "docker" or "host".
	Engine() string
	// Path is where the command sees the mount m: its Target in a
	// container, its Source on the host.
	Path(m Mount) string
	// WorkDir is the working directory the command will run in.
	WorkDir(ctx context.Context, spec RunSpec) (string, error)
	// Run runs the command to completion. A non-zero exit gives *ExitError.
	Run(ctx context.Context, spec RunSpec) error
}

// RunnerOptions configures NewRunner.
type RunnerOptions struct {
	// WorkRoot is where the host runner extracts images and makes per-run
	// copies of their working directory. Default: $XDG_CACHE_HOME or
	// ~/.cache, then torwrt/host-runner.
	WorkRoot string
	// Logf receives one line per notable action (image load, chown,
	// cleanup, and a one-line summary of each run).
	Logf func(format string, args ...any)
	// Debugf receives details for --verbose: the full engine command line
	// of each run (which holds no secrets: keep it so). nil: dropped.
	Debugf func(format string, args ...any)
	// StateDir, when set, gives podman its own storage and state (--root,
	// --runroot, --tmpdir under it) instead of the system's. Ignored by the
	// other engines.
	StateDir string
	// Memory is the container memory limit (default "4g"); "none" for none.
	Memory string
	// Binary overrides the engine executable (tests).
	Binary string
}

// ExitError is a command that ran and exited non-zero. With podman and
// docker, codes 125 (the engine failed), 126 (not executable) and 127 (not
// found) come from the engine rather than the command; Stderr then holds the
// engine's message.
type ExitError struct {
	Engine string
	Name   string
	Code   int
	Stderr string // the last ~40 lines of the command's standard error
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s run %s: command exited with status %d", e.Engine, e.Name, e.Code)
	if e.Stderr != "" {
		msg += "; last lines of its stderr:\n" + e.Stderr
	}
	return msg
}

const stderrTailLines = 40

var (
	nameRe   = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,127}$`)
	envKeyRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// validate checks everything that ends up on an engine's command line.
func (s *RunSpec) validate() error {
	if !nameRe.MatchString(s.Name) {
		return fmt.Errorf("container: run name %q is invalid: want ^[a-z0-9][a-z0-9_.-]{0,127}$ (e.g. torwrt-image-<hex>)", s.Name)
	}
	if s.Image == nil || s.Image.Digest == "" || s.Image.LayoutDir == "" {
		return fmt.Errorf("container: run %s: no image: Pull or Load it from the cache first", s.Name)
	}
	if !digestRe.MatchString(s.Image.Digest) || !digestRe.MatchString(s.Image.ConfigDigest) {
		return fmt.Errorf("container: run %s: image digest %q / config %q malformed: use an Image returned by Cache.Pull or Cache.Load", s.Name, s.Image.Digest, s.Image.ConfigDigest)
	}
	if len(s.Argv) == 0 || s.Argv[0] == "" {
		return fmt.Errorf("container: run %s: empty command", s.Name)
	}
	for i, a := range s.Argv {
		if strings.IndexByte(a, 0) >= 0 {
			return fmt.Errorf("container: run %s: argument %d contains a NUL byte", s.Name, i)
		}
	}
	for _, e := range s.Env {
		k, v, ok := strings.Cut(e, "=")
		if !ok || !envKeyRe.MatchString(k) {
			return fmt.Errorf("container: run %s: environment entry %q is not KEY=VALUE with KEY matching ^[A-Za-z_][A-Za-z0-9_]*$", s.Name, e)
		}
		if strings.ContainsAny(v, "\x00\n\r") {
			return fmt.Errorf("container: run %s: environment variable %s contains a NUL or newline", s.Name, k)
		}
	}
	if s.WorkDir != "" && !cleanAbs(s.WorkDir) {
		return fmt.Errorf("container: run %s: working directory %q must be a clean absolute path", s.Name, s.WorkDir)
	}
	targets := map[string]bool{}
	for _, m := range s.Mounts {
		if err := m.validate(); err != nil {
			return fmt.Errorf("container: run %s: %w", s.Name, err)
		}
		if targets[m.Target] {
			return fmt.Errorf("container: run %s: two mounts at %s", s.Name, m.Target)
		}
		targets[m.Target] = true
	}
	return nil
}

func (m Mount) validate() error {
	for _, p := range []string{m.Source, m.Target} {
		if !cleanAbs(p) {
			return fmt.Errorf("mount %s -> %s: paths must be clean and absolute", m.Source, m.Target)
		}
		if strings.ContainsAny(p, ":,\x00\n") {
			return fmt.Errorf("mount %s -> %s: paths must not contain ':', ',' or control characters (the engines' -v syntax splits on them)", m.Source, m.Target)
		}
	}
	if m.Target == "/" {
		return fmt.Errorf("mount %s: cannot mount over /", m.Source)
	}
	if _, err := os.Stat(m.Source); err != nil {
		return fmt.Errorf("mount source %s: %v (create it before the run)", m.Source, err)
	}
	return nil
}

func cleanAbs(p string) bool {
	return p != "" && filepath.IsAbs(p) && filepath.Clean(p) == p
}

// NewRunner returns the runner for engine: "podman", "docker", "host", or ""
// for $TORWRT_ENGINE, else podman if it works here, else docker if it works
// (probed under ctx).
func NewRunner(ctx context.Context, engine string, opts RunnerOptions) (Runner, error) {
	if opts.Debugf == nil {
		opts.Debugf = func(string, ...any) {}
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	if engine == "" {
		engine = os.Getenv("TORWRT_ENGINE")
	}
	switch engine {
	case "podman":
		return newPodman(opts)
	case "docker":
		return newDocker(opts)
	case "host":
		return newHost(opts)
	case "":
	default:
		return nil, fmt.Errorf("container: unknown engine %q: use podman, docker or host (from --engine or $TORWRT_ENGINE)", engine)
	}
	var tried []string
	if r, err := newPodman(opts); err == nil {
		if err = r.probe(ctx); err == nil {
			return r, nil
		}
		tried = append(tried, "podman: "+err.Error())
	} else {
		tried = append(tried, "podman: "+err.Error())
	}
	if r, err := newDocker(opts); err == nil {
		if err = r.probe(ctx); err == nil {
			return r, nil
		}
		tried = append(tried, "docker: "+err.Error())
	} else {
		tried = append(tried, "docker: "+err.Error())
	}
	return nil, fmt.Errorf("container: no usable container engine (tried %s). Install podman with runc: `apt-get install podman runc` (Debian/Ubuntu), or start a docker daemon; or choose one with TORWRT_ENGINE=podman|docker|host (host runs the ImageBuilder without any isolation, for development only)", strings.Join(tried, "; "))
}

// tailBuffer keeps the last n lines written to it.
type tailBuffer struct {
	mu    sync.Mutex
	n     int
	lines [][]byte
	cur   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, b := range p {
		if b == '\n' {
			t.lines = append(t.lines, t.cur)
			t.cur = nil
			if len(t.lines) > t.n {
				t.lines = t.lines[len(t.lines)-t.n:]
			}
			continue
		}
		if len(t.cur) < 4096 {
			t.cur = append(t.cur, b)
		}
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := t.lines
	if len(t.cur) > 0 {
		lines = append(append([][]byte{}, lines...), t.cur)
	}
	if len(lines) > t.n {
		lines = lines[len(lines)-t.n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

func writerOr(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// exitCode extracts the exit status of a finished command.
func exitCode(err error) (int, bool) {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), true
	}
	var se *statusExitError
	if errors.As(err, &se) {
		return se.code, true
	}
	return 0, false
}

// MakeReadable sets dir's tree to 0755 directories and 0644 files, so a
// read-only mount of it is readable by the container's build user
// whatever the caller's umask (077 makes 0700 directories and 0600 files,
// which the engine runner refuses to mount).
func MakeReadable(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir():
			return os.Chmod(path, 0o755)
		case d.Type().IsRegular():
			return os.Chmod(path, 0o644)
		}
		return nil
	})
}
