// Package containertest provides Fake, a container.Runner for tests that
// runs nothing. It records every RunSpec it is given (argv, env, mounts with
// their read-only flags, image) and answers each run with an Outcome the
// test scripts: output on stdout and stderr, an exit status, and files it
// "writes" into the run's read-write mounts.
//
// It is a fake: no command, shell or ImageBuilder runs, so a test with it
// checks what a caller asks a runner to do, never what the command would
// do with it. The simulated ImageBuilder (internal/ibsim) covers real runs.
package containertest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/torwrt/torwrt/internal/container"
)

// Engine is what Fake.Engine returns.
const Engine = "fake"

// Run is one recorded call of Fake.Run: the RunSpec without its writers,
// with its slices copied.
type Run struct {
	Name    string
	Image   *container.Image
	Argv    []string
	Env     []string
	WorkDir string
	Mounts  []container.Mount
}

// Mount returns the run's mount at target (a path inside the container).
func (r Run) Mount(target string) (container.Mount, bool) {
	for _, m := range r.Mounts {
		if m.Target == target {
			return m, true
		}
	}
	return container.Mount{}, false
}

// Getenv returns the value of key in the run's environment.
func (r Run) Getenv(key string) (string, bool) {
	for _, e := range r.Env {
		if k, v, ok := strings.Cut(e, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// Outcome is what one fake run "did".
type Outcome struct {
	// Stdout and Stderr are written to the spec's writers, from two
	// goroutines at once as exec.Cmd does for writers that are not files,
	// so writers that share unsynchronised state show up under -race.
	Stdout, Stderr string
	// ExitCode, when not zero, makes Run return a *container.ExitError
	// with the last 40 lines of Stderr, as the real runners do.
	ExitCode int
	// Err, when set, is returned as is (an engine that failed to start
	// the command, say); it wins over ExitCode.
	Err error
	// Files are written before the output, keyed by the path the command
	// would write them at (Fake.Path of a mount, then a relative path
	// under it). A path under a read-only mount fails the run the way a
	// container's EROFS would fail make: exit status 1 with the error on
	// stderr. A path under no mount is a mistake in the test: Run returns
	// an error saying so.
	Files map[string]string
}

// Fake is a container.Runner that runs nothing. The zero value is ready:
// every run succeeds with no output.
type Fake struct {
	// Script chooses each run's outcome. It is called during Run, while
	// the mounts' host directories exist, so it may also inspect them.
	// nil: every run succeeds with no output.
	Script func(Run) Outcome
	// HostPaths makes Path return a mount's Source, as the host runner
	// does; by default it returns its Target, as podman and docker do.
	HostPaths bool

	mu   sync.Mutex
	runs []Run
}

var _ container.Runner = (*Fake)(nil)

// Engine returns "fake".
func (f *Fake) Engine() string { return Engine }

// Path is where the command would see m.
func (f *Fake) Path(m container.Mount) string {
	if f.HostPaths {
		return m.Source
	}
	return m.Target
}

// WorkDir is spec.WorkDir, else the image's WorkingDir, else "/".
func (f *Fake) WorkDir(_ context.Context, spec container.RunSpec) (string, error) {
	if spec.WorkDir != "" {
		return spec.WorkDir, nil
	}
	if spec.Image != nil && spec.Image.WorkingDir != "" {
		return spec.Image.WorkingDir, nil
	}
	return "/", nil
}

// Runs returns a copy of every run so far, in call order.
func (f *Fake) Runs() []Run {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.runs)
}

// Run records spec and acts out the scripted Outcome. It refuses, as the
// real runners do, a spec with no image, an empty command, a mount whose
// source does not exist and two mounts at one target; a refused spec is
// recorded too.
func (f *Fake) Run(ctx context.Context, spec container.RunSpec) error {
	r := Run{
		Name:    spec.Name,
		Image:   spec.Image,
		Argv:    slices.Clone(spec.Argv),
		Env:     slices.Clone(spec.Env),
		WorkDir: spec.WorkDir,
		Mounts:  slices.Clone(spec.Mounts),
	}
	f.mu.Lock()
	f.runs = append(f.runs, r)
	f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("containertest: run %s cancelled: %w", spec.Name, err)
	}
	if err := check(spec); err != nil {
		return err
	}
	var o Outcome
	if f.Script != nil {
		o = f.Script(r)
	}
	if o.Err != nil {
		return o.Err
	}
	if err := f.writeFiles(r, o.Files); err != nil {
		var ro *readOnlyError
		if !errors.As(err, &ro) {
			return err
		}
		o.Stderr += err.Error() + "\n"
		o.ExitCode = 1
	}
	var wg sync.WaitGroup
	for _, s := range []struct {
		w    io.Writer
		text string
	}{{spec.Stdout, o.Stdout}, {spec.Stderr, o.Stderr}} {
		if s.w == nil || s.text == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			io.WriteString(s.w, s.text)
		}()
	}
	wg.Wait()
	if o.ExitCode != 0 {
		return &container.ExitError{Engine: Engine, Name: spec.Name, Code: o.ExitCode, Stderr: lastLines(o.Stderr, 40)}
	}
	return nil
}

func check(spec container.RunSpec) error {
	if spec.Image == nil {
		return fmt.Errorf("containertest: run %s: no image", spec.Name)
	}
	if len(spec.Argv) == 0 || spec.Argv[0] == "" {
		return fmt.Errorf("containertest: run %s: empty command", spec.Name)
	}
	targets := map[string]bool{}
	for _, m := range spec.Mounts {
		if !filepath.IsAbs(m.Source) || !path.IsAbs(m.Target) {
			return fmt.Errorf("containertest: run %s: mount %s -> %s: paths must be absolute", spec.Name, m.Source, m.Target)
		}
		if _, err := os.Stat(m.Source); err != nil {
			return fmt.Errorf("containertest: run %s: mount source %s: %v", spec.Name, m.Source, err)
		}
		if targets[m.Target] {
			return fmt.Errorf("containertest: run %s: two mounts at %s", spec.Name, m.Target)
		}
		targets[m.Target] = true
	}
	return nil
}

type readOnlyError struct{ path string }

func (e *readOnlyError) Error() string {
	return "containertest: write " + e.path + ": read-only file system"
}

// writeFiles writes files, in sorted order, into the host directories of
// the run's mounts.
func (f *Fake) writeFiles(r Run, files map[string]string) error {
	names := make([]string, 0, len(files))
	for p := range files {
		names = append(names, p)
	}
	slices.Sort(names)
	for _, p := range names {
		host, ro, ok := f.hostPath(r, p)
		if !ok {
			return fmt.Errorf("containertest: run %s: scripted file %s is under no mount of the run", r.Name, p)
		}
		if ro {
			return &readOnlyError{path: p}
		}
		if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(host, []byte(files[p]), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// hostPath maps p, as the command sees it, to the host through the
// mount that holds it, the deepest one when mounts nest.
func (f *Fake) hostPath(r Run, p string) (host string, readOnly, ok bool) {
	best := -1
	for _, m := range r.Mounts {
		root := f.Path(m)
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
			continue
		}
		if len(root) > best {
			best, host, readOnly = len(root), filepath.Join(m.Source, rel), m.ReadOnly
		}
	}
	return host, readOnly, best >= 0
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
