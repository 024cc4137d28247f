package container

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func fakeImage() *Image {
	return &Image{
		Ref:          "ghcr.io/openwrt/imagebuilder@sha256:" + hex64,
		Digest:       "sha256:" + hex64,
		ConfigDigest: "sha256:" + strings.Repeat("ab", 32),
		LayoutDir:    "/cache",
		User:         "buildbot",
		WorkingDir:   "/builder",
	}
}

func TestDockerArgv(t *testing.T) {
	r, err := NewRunner(t.Context(), "docker", RunnerOptions{Binary: "/nonexistent/docker"})
	if err != nil {
		t.Fatal(err)
	}
	er := r.(*engineRunner)
	src := t.TempDir()
	spec := RunSpec{
		Name:  "torwrt-image-0123abcd",
		Image: fakeImage(),
		Argv:  []string{"make", "image", "PROFILE=glinet_gl-ar150", "PACKAGES=tor -luci; rm -rf /"},
		Env:   []string{"A=1", "B=two words"},
		Mounts: []Mount{
			{Source: src, Target: "/builder/files", ReadOnly: true},
			{Source: src + "/", Target: "/out"},
		},
	}
	spec.Mounts[1].Source = filepath.Clean(spec.Mounts[1].Source)
	if err := spec.validate(); err != nil {
		t.Fatal(err)
	}
	wd, _ := r.WorkDir(t.Context(), spec)
	got := er.runArgs(spec, "sha256:"+strings.Repeat("ab", 32), wd)
	want := []string{"run", "--rm", "--name", "torwrt-image-0123abcd", "--pull", "never",
		"--network", "none", "--cap-drop", "all", "--security-opt", "no-new-privileges",
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
		"--pids-limit", "1024", "--memory", "4g",
		"-v", src + ":/builder/files:ro", "-v", src + ":/out:rw",
		"-w", "/builder", "--env", "A=1", "--env", "B=two words",
		"sha256:" + strings.Repeat("ab", 32),
		"make", "image", "PROFILE=glinet_gl-ar150", "PACKAGES=tor -luci; rm -rf /"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("docker argv:\n got %q\nwant %q", got, want)
	}
	if len(er.global) != 0 || r.Engine() != "docker" || r.Path(spec.Mounts[0]) != "/builder/files" {
		t.Errorf("docker runner: global %q engine %s", er.global, r.Engine())
	}

	// Podman: same flags, plus --runtime runc before the subcommand.
	pr, err := NewRunner(t.Context(), "podman", RunnerOptions{Binary: "/nonexistent/podman", Memory: "none"})
	if err != nil {
		t.Fatal(err)
	}
	pe := pr.(*engineRunner)
	if !reflect.DeepEqual(pe.global, []string{"--runtime", "runc"}) {
		t.Errorf("podman global flags %q", pe.global)
	}
	pargs := pe.runArgs(spec, strings.Repeat("ab", 32), "/builder")
	if strings.Contains(strings.Join(pargs, " "), "--memory") {
		t.Errorf("Memory none still passes --memory: %q", pargs)
	}
	if pargs[0] != "run" || !slices.Contains(pargs, "--rm") {
		t.Errorf("podman argv: %q", pargs)
	}
}

func TestRunSpecValidation(t *testing.T) {
	dir := t.TempDir()
	base := RunSpec{Name: "torwrt-x", Image: fakeImage(), Argv: []string{"true"}}
	cases := map[string]func(s *RunSpec){
		"run name":            func(s *RunSpec) { s.Name = "Torwrt;x" },
		"empty command":       func(s *RunSpec) { s.Argv = nil },
		"KEY=VALUE":           func(s *RunSpec) { s.Env = []string{"1BAD=x"} },
		"NUL or newline":      func(s *RunSpec) { s.Env = []string{"A=x\ny"} },
		"clean and absolute":  func(s *RunSpec) { s.Mounts = []Mount{{Source: "rel", Target: "/x"}} },
		"must not contain":    func(s *RunSpec) { s.Mounts = []Mount{{Source: dir, Target: "/x:rw"}} },
		"create it":           func(s *RunSpec) { s.Mounts = []Mount{{Source: dir + "/missing", Target: "/x"}} },
		"two mounts":          func(s *RunSpec) { s.Mounts = []Mount{{Source: dir, Target: "/x"}, {Source: dir, Target: "/x"}} },
		"working directory":   func(s *RunSpec) { s.WorkDir = "builder" },
		"Cache.Pull":          func(s *RunSpec) { s.Image = &Image{Digest: "sha256:x", LayoutDir: "/c"} },
		"no image":            func(s *RunSpec) { s.Image = nil },
		"argument 1 contains": func(s *RunSpec) { s.Argv = []string{"a", "b\x00"} },
	}
	for want, mod := range cases {
		s := base
		mod(&s)
		err := s.validate()
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: validate = %v", want, err)
		}
	}
	if err := base.validate(); err != nil {
		t.Errorf("valid spec: %v", err)
	}
}

func TestNewRunnerNoEngine(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("TORWRT_ENGINE", "")
	_, err := NewRunner(t.Context(), "", RunnerOptions{})
	if err == nil {
		t.Fatal("NewRunner found an engine in an empty PATH")
	}
	for _, want := range []string{"podman", "docker", "apt-get install podman runc", "TORWRT_ENGINE"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if _, err := NewRunner(t.Context(), "lxc", RunnerOptions{}); err == nil || !strings.Contains(err.Error(), "podman, docker or host") {
		t.Errorf("unknown engine: %v", err)
	}
	t.Setenv("TORWRT_ENGINE", "host")
	r, err := NewRunner(t.Context(), "", RunnerOptions{WorkRoot: t.TempDir()})
	if err != nil || r.Engine() != "host" {
		t.Errorf("TORWRT_ENGINE=host: %v %v", r, err)
	}
}

func TestNewRunnerAutoPodman(t *testing.T) {
	requireTool(t, "podman", "podman")
	requireTool(t, "runc", "runc")
	t.Setenv("TORWRT_ENGINE", "")
	r, err := NewRunner(t.Context(), "", RunnerOptions{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if r.Engine() != "podman" {
		t.Errorf("auto engine = %s, want podman", r.Engine())
	}
}

func TestPodmanNetworkAndCancel(t *testing.T) {
	r := newPodmanRunner(t)
	img := pulledTiny(t)
	var out strings.Builder
	spec := RunSpec{Name: runName(t, "net"), Image: img, Argv: []string{"/bin/sh", "-c", "ls /sys/class/net; cat /proc/self/status | grep -i '^CapEff'; grep -i nonewprivs /proc/self/status"}, Stdout: &out}
	if err := r.Run(context.Background(), spec); err != nil {
		t.Fatal(err)
	}
	o := out.String()
	if strings.TrimSpace(strings.Split(o, "\n")[0]) != "lo" || !strings.Contains(o, "CapEff:\t0000000000000000") || !strings.Contains(o, "NoNewPrivs:\t1") {
		t.Errorf("isolation inside the container:\n%s", o)
	}

	// Cancel a long command: Run returns promptly and the container is gone.
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	spec = RunSpec{Name: runName(t, "cancel"), Image: img, Argv: []string{"/bin/sleep", "120"}}
	start := time.Now()
	err := r.Run(ctx, spec)
	if err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("cancelled run: %v", err)
	}
	if d := time.Since(start); d > 40*time.Second {
		t.Errorf("cancelled run took %s", d)
	}
	out.Reset()
	er := r.(*engineRunner)
	ps, err := er.output(context.Background(), "ps", "-a", "--format", "{{.Names}}")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(ps), spec.Name) {
		t.Errorf("container %s still exists after cancel:\n%s", spec.Name, ps)
	}
}

// The podman state can live in its own directory (RunnerOptions.StateDir),
// and that directory can be removed afterwards.
func TestPodmanStateDir(t *testing.T) {
	requireTool(t, "podman", "podman")
	parent, err := os.MkdirTemp("", "torwrt-podman-state-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(parent)
	state := filepath.Join(parent, "state")
	r, err := NewRunner(t.Context(), "podman", RunnerOptions{StateDir: state, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := r.Run(context.Background(), RunSpec{Name: runName(t, "state"), Image: pulledTiny(t), Argv: []string{"cat", "hello.txt"}, Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if out.String() != "hello from the image\n" {
		t.Errorf("output %q", out.String())
	}
	if _, err := os.Stat(filepath.Join(state, "root")); err != nil {
		t.Errorf("podman did not use the state dir: %v", err)
	}
	if err := os.RemoveAll(state); err != nil {
		t.Errorf("removing the podman state dir: %v", err)
	}
}

// TestStatusVerdict: the command's own status decides, whatever the
// engine client said (podman 4.3 under load has exited 0 for a failed
// command).
func TestStatusVerdict(t *testing.T) {
	write := func(s string) string {
		d := t.TempDir()
		if s != "" {
			os.WriteFile(filepath.Join(d, "exit"), []byte(s), 0o644)
		}
		return d
	}
	logf := func(string, ...any) {}
	if err := statusVerdict(nil, "", write("0\n"), "podman", "x", logf); err != nil {
		t.Errorf("status 0, engine 0: %v", err)
	}
	err := statusVerdict(nil, "", write("1\n"), "podman", "x", logf)
	if code, ok := exitCode(err); !ok || code != 1 {
		t.Errorf("status 1, engine 0: %v (code %d)", err, code)
	}
	if err := statusVerdict(nil, "", write(""), "podman", "x", logf); err == nil || !strings.Contains(err.Error(), "without the command reporting its exit status") {
		t.Errorf("no status, engine 0: %v", err)
	}
	engineFailed := errors.New("engine failed")
	if err := statusVerdict(engineFailed, "", write(""), "podman", "x", logf); err != engineFailed {
		t.Errorf("no status, engine failed: %v", err)
	}
	if err := statusVerdict(engineFailed, "", write("0\n"), "podman", "x", logf); err != engineFailed {
		t.Errorf("status 0, engine failed: %v", err)
	}
	if err := statusVerdict(nil, "", write("garbage"), "podman", "x", logf); err == nil {
		t.Error("garbage status accepted")
	}
	// podman 4.3 losing the exit code of a container that exited 0 (seen
	// with two runs in parallel): the command's own status decides.
	lost := "Error: getting exit code of container 4f1c0a9e2b7d from DB: no such exit code (container in state running)\n"
	if err := statusVerdict(engineFailed, lost, write("0\n"), "podman", "x", logf); err != nil {
		t.Errorf("status 0, engine lost the exit code: %v", err)
	}
	// ...but never when the command failed, or reported nothing.
	if err := statusVerdict(engineFailed, lost, write("2\n"), "podman", "x", logf); err == nil {
		t.Error("status 2 with a lost exit code accepted")
	}
	if err := statusVerdict(engineFailed, lost, write(""), "podman", "x", logf); err == nil {
		t.Error("no status with a lost exit code accepted")
	}
}
