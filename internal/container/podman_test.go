package container

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func newPodmanRunner(t *testing.T) Runner {
	t.Helper()
	requireTool(t, "podman", "podman")
	requireTool(t, "runc", "runc")
	r, err := NewRunner(t.Context(), "podman", RunnerOptions{Logf: t.Logf, StateDir: podmanStateDir()})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// podmanStateDir is "" (system storage) unless TORWRT_TEST_PODMAN_STATE is
// set.
func podmanStateDir() string { return os.Getenv("TORWRT_TEST_PODMAN_STATE") }

func runName(t *testing.T, what string) string {
	return "torwrt-test-" + what + "-" + strings.ToLower(strings.ReplaceAll(time.Now().Format("150405.000000000"), ".", ""))
}

func TestPodmanRun(t *testing.T) {
	r := newPodmanRunner(t)
	img := pulledTiny(t)
	testRunner(t, r, img)
}

func TestHostRun(t *testing.T) {
	r, err := NewRunner(t.Context(), "host", RunnerOptions{WorkRoot: t.TempDir(), Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	img := pulledTiny(t)
	testRunner(t, r, img)
}

// testRunner runs the same checks on any runner.
func testRunner(t *testing.T, r Runner, img *Image) {
	ctx := context.Background()
	in := t.TempDir()
	os.Chmod(in, 0o755)
	if err := os.WriteFile(filepath.Join(in, "input.txt"), []byte("input data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	mIn := Mount{Source: in, Target: "/work/in", ReadOnly: true}
	mOut := Mount{Source: out, Target: "/work/out"}
	script := `set -e
echo "uid=$(id -u)"
echo "pwd=$(pwd)"
cat hello.txt
cat "$1/input.txt"
echo "env=$MY_VAR"
echo written > "$2/result.txt"
if touch "$1/nope" 2>/dev/null; then echo "RO-WRITABLE"; else echo "ro-refused"; fi
`
	var stdout, stderr bytes.Buffer
	spec := RunSpec{
		Name:   runName(t, r.Engine()),
		Image:  img,
		Argv:   []string{"/bin/sh", "-c", script, "sh", r.Path(mIn), r.Path(mOut)},
		Env:    []string{"MY_VAR=a value; with $(shell) chars"},
		Mounts: []Mount{mIn, mOut},
		Stdout: &stdout, Stderr: &stderr,
	}
	wd, err := r.WorkDir(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := r.Run(ctx, spec); err != nil {
		t.Fatalf("run: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	t.Logf("%s run took %s; stdout:\n%s", r.Engine(), time.Since(start), stdout.String())
	o := stdout.String()
	wants := []string{"hello from the image", "input data", "env=a value; with $(shell) chars", "pwd=" + wd}
	if r.Engine() != "host" {
		// The host runner has no isolation: read-only is not enforced there.
		wants = append(wants, "ro-refused")
	}
	for _, want := range wants {
		if !strings.Contains(o, want) {
			t.Errorf("%s output lacks %q:\n%s", r.Engine(), want, o)
		}
	}
	if r.Engine() != "host" {
		if !strings.Contains(o, "uid=1000") {
			t.Errorf("container did not run as the image user buildbot (uid 1000):\n%s", o)
		}
		if wd != "/work" {
			t.Errorf("WorkDir = %q, want /work", wd)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "result.txt"))
	if err != nil || string(b) != "written\n" {
		t.Errorf("output file: %q %v", b, err)
	}
	fi, err := os.Stat(filepath.Join(out, "result.txt"))
	if err == nil && r.Engine() != "host" {
		if st := statUID(fi); st != os.Geteuid() {
			t.Errorf("output file owned by uid %d after the run, want the caller's %d", st, os.Geteuid())
		}
	}

	// A failing command: ExitError with the stderr tail.
	spec.Name = runName(t, r.Engine()+"-fail")
	spec.Argv = []string{"/bin/sh", "-c", `for i in $(seq 1 100); do echo "line $i" >&2; done; echo "the final complaint" >&2; exit 7`}
	stderr.Reset()
	err = r.Run(ctx, spec)
	var ee *ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("failing run: err = %v, want *ExitError", err)
	}
	if ee.Code != 7 || !strings.Contains(ee.Stderr, "the final complaint") || strings.Contains(ee.Stderr, "line 50\n") {
		t.Errorf("ExitError = code %d, stderr tail:\n%s", ee.Code, ee.Stderr)
	}
	if n := strings.Count(ee.Stderr, "\n") + 1; n > stderrTailLines {
		t.Errorf("stderr tail has %d lines, want at most %d", n, stderrTailLines)
	}
	if !strings.Contains(err.Error(), "status 7") {
		t.Errorf("error text: %v", err)
	}
}

// TestPodmanEmptyStoreDotCache is the first run on a fresh machine: podman's
// store is empty (its own graphroot through CONTAINERS_STORAGE_CONF) and the
// image cache lives under a dot-directory, as ~/.cache/torwrt does. Loading
// through `podman pull oci:<path>` fails exactly here on podman 4.3
// ("invalid reference format"); a warm store hides it.
func TestPodmanEmptyStoreDotCache(t *testing.T) {
	oci := mutate.ConfigMediaType(mutate.MediaType(tinyImage(t), types.OCIManifestSchema1), types.OCIConfigJSON)
	for name, img := range map[string]v1.Image{"docker-manifest": tinyImage(t), "oci-manifest": oci} {
		t.Run(name, func(t *testing.T) { testEmptyStore(t, img) })
	}
}

func testEmptyStore(t *testing.T, image v1.Image) {
	requireTool(t, "podman", "podman")
	requireTool(t, "runc", "runc")
	base := t.TempDir()
	conf := filepath.Join(base, "storage.conf")
	graph := filepath.Join(base, "graph")
	if err := os.WriteFile(conf, []byte("[storage]\ndriver = \"overlay\"\ngraphroot = \""+graph+"\"\nrunroot = \""+filepath.Join(base, "run")+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CONTAINERS_STORAGE_CONF", conf)
	t.Cleanup(func() {
		// The overlay driver leaves mounts and read-only layers behind;
		// let podman take its store apart before the directory goes.
		exec.Command("podman", "--runtime", "runc", "system", "reset", "--force").Run()
	})
	ref, _ := serve(t, image)
	cache := &Cache{Dir: filepath.Join(base, ".cache", "torwrt", "images"), Insecure: true}
	img, err := cache.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewRunner(t.Context(), "podman", RunnerOptions{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("podman", "--runtime", "runc", "images", "-q").Output()
	if err != nil || strings.TrimSpace(string(out)) != "" {
		t.Fatalf("store is not empty before the run (%v): %q", err, out)
	}
	testRunner(t, r, img)
	if _, err := os.Stat(graph); err != nil {
		t.Fatalf("podman did not use the test's graphroot: %v", err)
	}
}

// TestRunArgvOnlyInDebugf: a run logs one summary line (engine, image,
// isolation, mounts) to Logf; the command line, with its script, goes to
// Debugf only (imgbuild --verbose).
func TestRunArgvOnlyInDebugf(t *testing.T) {
	requireTool(t, "podman", "podman")
	requireTool(t, "runc", "runc")
	img := pulledTiny(t)
	for _, engine := range []string{"podman", "host"} {
		t.Run(engine, func(t *testing.T) {
			var logs, debug []string
			r, err := NewRunner(t.Context(), engine, RunnerOptions{
				WorkRoot: t.TempDir(), StateDir: podmanStateDir(),
				Logf:   func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) },
				Debugf: func(f string, a ...any) { debug = append(debug, fmt.Sprintf(f, a...)) },
			})
			if err != nil {
				t.Fatal(err)
			}
			in := t.TempDir()
			os.Chmod(in, 0o755)
			const marker = "echo a-long-entry-script-marker"
			var stdout bytes.Buffer
			spec := RunSpec{Name: runName(t, "argv-"+engine), Image: img, Argv: []string{"/bin/sh", "-c", marker},
				Mounts: []Mount{{Source: in, Target: "/work/in", ReadOnly: true}}, Stdout: &stdout}
			if err := r.Run(t.Context(), spec); err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(stdout.String()); got != "a-long-entry-script-marker" {
				t.Fatalf("stdout %q", got)
			}
			all := strings.Join(logs, "\n")
			if strings.Contains(all, marker) {
				t.Errorf("Logf shows the argv:\n%s", all)
			}
			want := engine + " run " + spec.Name + ": image " + shortDigest(img.Digest)
			if !strings.Contains(all, want) {
				t.Errorf("Logf has no summary %q:\n%s", want, all)
			}
			if engine == "podman" && !strings.Contains(all, "network off, 2 mounts (1 read-only)") {
				t.Errorf("podman summary lacks isolation and mounts (the input and the status directory):\n%s", all)
			}
			if d := strings.Join(debug, "\n"); !strings.Contains(d, marker) {
				t.Errorf("Debugf lacks the argv:\n%s", d)
			}
		})
	}
}
