package containertest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/container"
)

func TestFake(t *testing.T) {
	out, in := t.TempDir(), t.TempDir()
	img := &container.Image{WorkingDir: "/builder"}
	f := &Fake{Script: func(r Run) Outcome {
		if v, _ := r.Getenv("MODE"); v == "ro" {
			return Outcome{Files: map[string]string{"/in/x": "no"}}
		}
		return Outcome{
			Stdout:   "out\n",
			Stderr:   strings.Repeat("noise\n", 50) + "last\n",
			ExitCode: 2,
			Files:    map[string]string{"/out/sub/a.bin": "A"},
		}
	}}
	mounts := []container.Mount{{Source: in, Target: "/in", ReadOnly: true}, {Source: out, Target: "/out"}}
	var stdout, stderr strings.Builder
	err := f.Run(t.Context(), container.RunSpec{Name: "r1", Image: img, Argv: []string{"make", "x"}, Mounts: mounts, Stdout: &stdout, Stderr: &stderr})
	var ee *container.ExitError
	if !errors.As(err, &ee) || ee.Code != 2 || ee.Engine != "fake" || ee.Name != "r1" || strings.Count(ee.Stderr, "\n") != 39 || !strings.HasSuffix(ee.Stderr, "noise\nlast") {
		t.Fatalf("exit error: %#v", err)
	}
	if stdout.String() != "out\n" || !strings.HasSuffix(stderr.String(), "last\n") {
		t.Errorf("output %q / %q", stdout.String(), stderr.String())
	}
	if b, err := os.ReadFile(filepath.Join(out, "sub", "a.bin")); err != nil || string(b) != "A" {
		t.Errorf("written file: %q %v", b, err)
	}

	// A write into a read-only mount fails the command, as EROFS would.
	err = f.Run(t.Context(), container.RunSpec{Name: "r2", Image: img, Argv: []string{"true"}, Env: []string{"MODE=ro"}, Mounts: mounts})
	if !errors.As(err, &ee) || ee.Code != 1 || !strings.Contains(ee.Stderr, "/in/x: read-only file system") {
		t.Errorf("read-only write: %v", err)
	}
	if _, err := os.Stat(filepath.Join(in, "x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("read-only mount written: %v", err)
	}

	// Refusals the real runners share, recorded all the same.
	for _, spec := range []container.RunSpec{
		{Name: "r3", Image: img},
		{Name: "r4", Argv: []string{"true"}},
		{Name: "r5", Image: img, Argv: []string{"true"}, Mounts: []container.Mount{{Source: filepath.Join(in, "missing"), Target: "/m"}}},
		{Name: "r6", Image: img, Argv: []string{"true"}, Mounts: []container.Mount{{Source: in, Target: "/m"}, {Source: out, Target: "/m"}}},
	} {
		if err := f.Run(t.Context(), spec); err == nil {
			t.Errorf("%s: accepted", spec.Name)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := f.Run(ctx, container.RunSpec{Name: "r7", Image: img, Argv: []string{"true"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}

	runs := f.Runs()
	var names []string
	for _, r := range runs {
		names = append(names, r.Name)
	}
	if !slices.Equal(names, []string{"r1", "r2", "r3", "r4", "r5", "r6", "r7"}) {
		t.Errorf("runs %v", names)
	}
	if m, ok := runs[0].Mount("/in"); !ok || !m.ReadOnly || m.Source != in {
		t.Errorf("recorded mount: %+v %v", m, ok)
	}
	if !slices.Equal(runs[0].Argv, []string{"make", "x"}) || runs[0].Image != img {
		t.Errorf("recorded run: %+v", runs[0])
	}
}

func TestFakePaths(t *testing.T) {
	dir := t.TempDir()
	m := container.Mount{Source: dir, Target: "/torwrt/bin"}
	if p := (&Fake{}).Path(m); p != "/torwrt/bin" {
		t.Errorf("container path %s", p)
	}
	f := &Fake{HostPaths: true, Script: func(Run) Outcome {
		return Outcome{Files: map[string]string{filepath.Join(dir, "x"): "x", "/torwrt/bin/y": "y"}}
	}}
	if p := f.Path(m); p != dir {
		t.Errorf("host path %s", p)
	}
	// With host paths, the container path is under no mount: a test bug.
	err := f.Run(t.Context(), container.RunSpec{Name: "r", Image: &container.Image{}, Argv: []string{"true"}, Mounts: []container.Mount{m}})
	if err == nil || !strings.Contains(err.Error(), "/torwrt/bin/y is under no mount") {
		t.Errorf("file outside the mounts: %v", err)
	}
	if wd, _ := f.WorkDir(t.Context(), container.RunSpec{Image: &container.Image{WorkingDir: "/builder"}}); wd != "/builder" {
		t.Errorf("workdir %s", wd)
	}
}
