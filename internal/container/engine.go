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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/sync/singleflight"
)

// engineRunner runs images with podman or docker. Both get the same
// isolation: no network, every capability dropped, no-new-privileges,
// bounded file descriptors, processes and memory, read-only input mounts.
type engineRunner struct {
	engine string // "podman" or "docker"
	bin    string
	global []string // flags before the subcommand
	opts   RunnerOptions

	mu      sync.Mutex
	loaded  map[string]string // manifest digest -> engine image ID
	users   map[string]idPair // config digest -> resolved user
	limits  *engineLimits
	probed  bool
	probeOK error
}

type engineLimits struct{ memory, pids bool }

type idPair struct{ uid, gid int }

const (
	cancelWait   = 10 * time.Second // SIGTERM grace before SIGKILL
	cleanupLimit = 30 * time.Second // podman rm -f after a cancelled run
)

func newPodman(opts RunnerOptions) (*engineRunner, error) {
	bin := opts.Binary
	if bin == "" {
		p, err := exec.LookPath("podman")
		if err != nil {
			return nil, fmt.Errorf("podman not found in PATH: install it with `apt-get install podman runc`")
		}
		bin = p
	}
	r := &engineRunner{engine: "podman", bin: bin, opts: opts, loaded: map[string]string{}, users: map[string]idPair{}}
	// runc, not the default crun: crun fails on these hosts (see
	// docs/containers.md).
	r.global = []string{"--runtime", "runc"}
	if _, err := exec.LookPath("runc"); err != nil && opts.Binary == "" {
		return nil, fmt.Errorf("runc not found in PATH: podman is run with --runtime runc here; install it with `apt-get install runc`")
	}
	if opts.StateDir != "" {
		if !filepath.IsAbs(opts.StateDir) {
			return nil, fmt.Errorf("container: podman state dir %q must be absolute", opts.StateDir)
		}
		r.global = append(r.global,
			"--root", filepath.Join(opts.StateDir, "root"),
			"--runroot", filepath.Join(opts.StateDir, "run"),
			"--tmpdir", filepath.Join(opts.StateDir, "tmp"),
			"--events-backend", "file",
		)
	}
	return r, nil
}

func newDocker(opts RunnerOptions) (*engineRunner, error) {
	bin := opts.Binary
	if bin == "" {
		p, err := exec.LookPath("docker")
		if err != nil {
			return nil, fmt.Errorf("docker not found in PATH")
		}
		bin = p
	}
	return &engineRunner{engine: "docker", bin: bin, opts: opts, loaded: map[string]string{}, users: map[string]idPair{}}, nil
}

func (r *engineRunner) Engine() string { return r.engine }

func (r *engineRunner) Path(m Mount) string { return m.Target }

func (r *engineRunner) WorkDir(_ context.Context, spec RunSpec) (string, error) {
	if spec.WorkDir != "" {
		return spec.WorkDir, nil
	}
	if spec.Image == nil {
		return "", fmt.Errorf("container: run %s: no image", spec.Name)
	}
	if spec.Image.WorkingDir == "" {
		return "/", nil
	}
	return spec.Image.WorkingDir, nil
}

// probe checks that the engine can actually run containers here; the
// first caller's ctx bounds it (and at most 30 s).
func (r *engineRunner) probe(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.probed {
		return r.probeOK
	}
	r.probed = true
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := r.output(ctx, "info", "--format", "{{json .}}")
	if err != nil {
		if r.engine == "docker" {
			r.probeOK = fmt.Errorf("`docker info` failed (is the docker daemon running?): %v", err)
		} else {
			r.probeOK = fmt.Errorf("`podman info` failed: %v (install podman and runc: `apt-get install podman runc`)", err)
		}
		return r.probeOK
	}
	lim := &engineLimits{memory: true, pids: true}
	if r.engine == "podman" {
		// Limits need the cgroup controllers; drop a limit rather than fail
		// when the host lacks one, and say so.
		s := string(out)
		if strings.Contains(s, `"cgroupControllers"`) {
			lim.memory = strings.Contains(s, `"memory"`)
			lim.pids = strings.Contains(s, `"pids"`)
		}
	}
	if !lim.memory {
		r.opts.Logf("container: %s: no memory cgroup controller, running without --memory", r.engine)
	}
	if !lim.pids {
		r.opts.Logf("container: %s: no pids cgroup controller, running without --pids-limit", r.engine)
	}
	r.limits = lim
	return nil
}

func (r *engineRunner) output(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, r.bin, append(append([]string{}, r.global...), args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %v: %s", r.engine, strings.Join(args, " "), err, strings.TrimSpace(lastLines(stderr.String(), 10)))
	}
	return out, nil
}

// runArgs is the engine command line for spec (after the global flags).
func (r *engineRunner) runArgs(spec RunSpec, imageID, workdir string) []string {
	args := []string{"run", "--rm", "--name", spec.Name,
		"--pull", "never",
		"--network", "none",
		"--cap-drop", "all",
		"--security-opt", "no-new-privileges",
		"--ulimit", "nofile=1024:1024",
		"--ulimit", "nproc=1024:1024",
	}
	lim := r.limits
	if lim == nil {
		lim = &engineLimits{memory: true, pids: true}
	}
	if lim.pids {
		args = append(args, "--pids-limit", "1024")
	}
	mem := r.opts.Memory
	if mem == "" {
		mem = "4g"
	}
	if lim.memory && mem != "none" {
		args = append(args, "--memory", mem)
	}
	for _, m := range spec.Mounts {
		v := m.Source + ":" + m.Target
		if m.ReadOnly {
			v += ":ro"
		} else {
			v += ":rw"
		}
		args = append(args, "-v", v)
	}
	args = append(args, "-w", workdir)
	for _, e := range spec.Env {
		args = append(args, "--env", e)
	}
	args = append(args, imageID)
	return append(args, spec.Argv...)
}

func (r *engineRunner) Run(ctx context.Context, spec RunSpec) error {
	if err := spec.validate(); err != nil {
		return err
	}
	if err := r.probe(ctx); err != nil {
		return fmt.Errorf("container: %s is not usable: %w", r.engine, err)
	}
	workdir, err := r.WorkDir(ctx, spec)
	if err != nil {
		return err
	}
	imageID, err := r.ensureImage(ctx, spec.Image)
	if err != nil {
		return err
	}
	user, err := r.imageUser(spec.Image)
	if err != nil {
		return err
	}
	statusDir, err := os.MkdirTemp("", "torwrt-status-")
	if err != nil {
		return fmt.Errorf("container: run %s: %w", spec.Name, err)
	}
	defer os.RemoveAll(statusDir)
	spec = withStatus(spec, statusDir)
	restore, err := prepareMounts(spec.Mounts, user, r.opts.Logf)
	if err != nil {
		return fmt.Errorf("container: run %s: %w", spec.Name, err)
	}
	defer restore()

	args := append(append([]string{}, r.global...), r.runArgs(spec, imageID, workdir)...)
	r.opts.Logf("container: %s", runSummary(r.engine, spec))
	r.opts.Debugf("container: %s %s", r.engine, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, r.bin, args...)
	// On cancel: SIGTERM to the client (podman proxies it to the
	// container) and, since PID 1 in a container may ignore SIGTERM, remove
	// the container too; SIGKILL follows after cancelWait if all else hangs.
	cmd.Cancel = func() error {
		go r.remove(ctx, spec.Name)
		return cmd.Process.Signal(syscall.SIGTERM)
	}
	cmd.WaitDelay = cancelWait
	tail := &tailBuffer{n: stderrTailLines}
	cmd.Stdout = writerOr(spec.Stdout)
	cmd.Stderr = io.MultiWriter(writerOr(spec.Stderr), tail)
	runErr := cmd.Run()
	runErr = statusVerdict(runErr, tail.String(), statusDir, r.engine, spec.Name, r.opts.Logf)
	if ctx.Err() != nil {
		// The client may be gone while the container still runs: remove it.
		r.remove(ctx, spec.Name)
		return fmt.Errorf("container: %s run %s cancelled: %w", r.engine, spec.Name, ctx.Err())
	}
	if runErr != nil {
		if code, ok := exitCode(runErr); ok {
			return &ExitError{Engine: r.engine, Name: spec.Name, Code: code, Stderr: tail.String()}
		}
		return fmt.Errorf("container: starting %s run %s: %w", r.engine, spec.Name, runErr)
	}
	return nil
}

// runSummary is one line about a run for people: the engine, the image's
// short digest, the isolation and the mounts; the argv (with its long entry
// script) only goes to Debugf.
func runSummary(engine string, spec RunSpec) string {
	ro := 0
	for _, m := range spec.Mounts {
		if m.ReadOnly {
			ro++
		}
	}
	return fmt.Sprintf("%s run %s: image %s, network off, %d mounts (%d read-only)", engine, spec.Name, shortDigest(spec.Image.Digest), len(spec.Mounts), ro)
}

// remove force-removes the container name (a no-op when it is gone), under
// its own short timeout even though ctx is cancelled.
func (r *engineRunner) remove(ctx context.Context, name string) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupLimit)
	defer cancel()
	args := []string{"rm", "-f", name}
	if r.engine == "podman" {
		args = []string{"rm", "-f", "--ignore", "--time", "2", name}
	}
	if _, err := r.output(cctx, args...); err != nil && !strings.Contains(err.Error(), "No such container") {
		r.opts.Logf("container: removing %s after cancel: %v", name, err)
	}
}

// ensureImage makes the cached image available to the engine without any
// network access and returns the ID to run it by. Podman copies it from the
// cache's OCI layout (oci: transport); docker loads a tarball written from
// it. A tag never decides: the image is run by its ID, which is checked to be
// the cached config digest.
func (r *engineRunner) ensureImage(ctx context.Context, img *Image) (string, error) {
	r.mu.Lock()
	id, ok := r.loaded[img.Digest]
	r.mu.Unlock()
	if ok {
		return id, nil
	}
	cfgHex := strings.TrimPrefix(img.ConfigDigest, "sha256:")
	// Builds running side by side (build --all) each have a runner; the
	// first loads an image they share, the others wait for it rather
	// than decompressing the same layers into the same store again.
	store := r.bin + "\x00" + strings.Join(r.global, "\x00") + "\x00" + img.Digest
	v, err, _ := imageLoads.Do(store, func() (any, error) {
		if r.engine == "podman" {
			return r.ensurePodman(ctx, img, cfgHex)
		}
		return r.ensureDocker(ctx, img, cfgHex)
	})
	if err != nil {
		return "", err
	}
	id = v.(string)
	r.mu.Lock()
	r.loaded[img.Digest] = id
	r.mu.Unlock()
	return id, nil
}

// imageLoads joins concurrent loads of one image into one engine store.
var imageLoads singleflight.Group

func (r *engineRunner) ensurePodman(ctx context.Context, img *Image, cfgHex string) (string, error) {
	if r.podmanHas(ctx, cfgHex) {
		return cfgHex, nil
	}
	start := time.Now()
	// The image is streamed from the cache into `podman load` as a
	// docker-archive. `podman pull oci:<layout>` is not used: podman 4.3
	// names such an image after the layout's path and refuses any path
	// with a component starting with "." ("invalid reference format" for
	// ~/.cache/torwrt), so it only ever worked when the store already held
	// the image. A stream has no path; the image is then found by its ID.
	r.opts.Logf("container: loading %s into podman storage (podman load)", shortDigest(img.Digest))
	if err := r.loadArchive(ctx, img); err != nil {
		return "", err
	}
	if !r.podmanHas(ctx, cfgHex) {
		return "", fmt.Errorf("container: podman loaded %s but has no image with ID %s (the cached config digest): refusing to run it", img.Ref, cfgHex)
	}
	r.opts.Logf("container: loaded into podman as image %s in %s", cfgHex[:12], time.Since(start).Round(time.Millisecond))
	return cfgHex, nil
}

func (r *engineRunner) podmanHas(ctx context.Context, cfgHex string) bool {
	out, err := r.output(ctx, "image", "inspect", "--format", "{{.Id}}", cfgHex)
	return err == nil && strings.TrimSpace(string(out)) == cfgHex
}

func (r *engineRunner) ensureDocker(ctx context.Context, img *Image, cfgHex string) (string, error) {
	// The classic docker store names images by config digest, the
	// containerd store by manifest digest.
	for _, id := range []string{"sha256:" + cfgHex, img.Digest} {
		out, err := r.output(ctx, "image", "inspect", "--format", "{{.Id}}", id)
		if err == nil && strings.TrimSpace(string(out)) == id {
			return id, nil
		}
	}
	r.opts.Logf("container: loading %s into docker", shortDigest(img.Digest))
	if err := r.loadArchive(ctx, img); err != nil {
		return "", err
	}
	tag := archiveTag(img)
	out, err := r.output(ctx, "image", "inspect", "--format", "{{.Id}}", tag)
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(out))
	if id != "sha256:"+cfgHex && id != img.Digest {
		return "", fmt.Errorf("container: docker loaded %s as %s, which is neither its config nor its manifest digest: refusing to run it", img.Ref, id)
	}
	return id, nil
}

func archiveTag(img *Image) string { return "torwrt.invalid/cache:m-" + img.Hex() }

// loadArchive streams the cached image as a docker-archive (docker save
// format, tagged torwrt.invalid/cache:m-<manifest hex>) into `<engine> load`.
func (r *engineRunner) loadArchive(ctx context.Context, img *Image) error {
	vimg, err := img.OpenImage()
	if err != nil {
		return err
	}
	tag, err := name.NewTag(archiveTag(img))
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarball.Write(tag, vimg, pw)) }()
	cmd := exec.CommandContext(ctx, r.bin, append(append([]string{}, r.global...), "load")...)
	cmd.Stdin = pr
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	err = cmd.Run()
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return fmt.Errorf("container: %s load of %s from the cache: %v: %s", r.engine, img.Ref, err, lastLines(stderr.String(), 10))
	}
	return nil
}

func (r *engineRunner) imageUser(img *Image) (idPair, error) {
	r.mu.Lock()
	u, ok := r.users[img.ConfigDigest]
	r.mu.Unlock()
	if ok {
		return u, nil
	}
	u, err := resolveImageUser(img)
	if err != nil {
		return idPair{}, err
	}
	r.mu.Lock()
	r.users[img.ConfigDigest] = u
	r.mu.Unlock()
	return u, nil
}

// prepareMounts hands writable mounts to the user the image runs as, for the
// duration of the run, and checks read-only mounts are readable by it.
// Writable mount sources must be fresh directories the caller owns.
func prepareMounts(mounts []Mount, u idPair, logf func(string, ...any)) (func(), error) {
	var restores []func()
	restore := func() {
		for _, f := range restores {
			f()
		}
	}
	for _, m := range mounts {
		if m.ReadOnly {
			if err := checkReadable(m.Source, u); err != nil {
				restore()
				return nil, err
			}
			continue
		}
		if u.uid == 0 {
			continue
		}
		if os.Geteuid() != 0 {
			// Without root we cannot chown; make it writable for all.
			if err := os.Chmod(m.Source, 0o777); err != nil {
				restore()
				return nil, fmt.Errorf("making writable mount %s usable by container uid %d: %v", m.Source, u.uid, err)
			}
			logf("container: not root: chmod 0777 %s for container uid %d", m.Source, u.uid)
			continue
		}
		back := idPair{os.Geteuid(), os.Getegid()}
		if err := chownTree(m.Source, u); err != nil {
			restore()
			return nil, fmt.Errorf("handing writable mount %s to container uid %d: %v", m.Source, u.uid, err)
		}
		src := m.Source
		restores = append(restores, func() {
			if err := chownTree(src, back); err != nil {
				logf("container: giving %s back to uid %d: %v", src, back.uid, err)
			}
		})
	}
	return restore, nil
}

func chownTree(root string, u idPair) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, u.uid, u.gid)
	})
}

// checkReadable reports a read-only mount the container user could not read
// (a 0700 temporary directory, typically).
func checkReadable(p string, u idPair) error {
	if u.uid == 0 {
		return nil
	}
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	need := os.FileMode(4) // read
	if fi.IsDir() {
		need |= 1 // and search
	}
	perm := fi.Mode().Perm()
	var bits os.FileMode
	switch {
	case int(st.Uid) == u.uid:
		bits = perm >> 6
	case int(st.Gid) == u.gid:
		bits = (perm >> 3) & 7
	default:
		bits = perm & 7
	}
	if bits&need != need {
		return fmt.Errorf("read-only mount %s (mode %v, owner %d:%d) is not readable by the container user %d:%d: chmod it a+rX (os.MkdirTemp makes 0700 directories)", p, perm, st.Uid, st.Gid, u.uid, u.gid)
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

var errNoFile = errors.New("not in image")

// The command's own exit status is the verdict, not only the engine
// client's: podman 4.3 under load has exited 0 for a container whose
// command failed (seen twice in CI: an ImageBuilder's `make` exited 1,
// `podman run` reported success). A shell wrapper writes the status into
// a private writable mount; no status, no success.
const (
	statusTarget = "/.torwrt-status"
	statusScript = `"$@"; s=$?; echo "$s" > ` + statusTarget + `/exit; exit $s`
)

// withStatus returns spec running its command under the status wrapper
// (the image must have /bin/sh; ImageBuilder images do).
func withStatus(spec RunSpec, dir string) RunSpec {
	spec.Argv = append([]string{"/bin/sh", "-c", statusScript, "torwrt-run"}, spec.Argv...)
	spec.Mounts = append(append([]Mount{}, spec.Mounts...), Mount{Source: dir, Target: statusTarget})
	return spec
}

// lostExitCodeRE is podman 4.3's own error when its database lost the exit
// code of a container that did exit (a race between parallel runs,
// containers/podman#14859): the client then exits 127 whatever the
// command did.
var lostExitCodeRE = regexp.MustCompile(`getting exit code of container [0-9a-f]+ from DB: no such exit code`)

// statusVerdict reconciles the engine's exit with the status the command
// wrote: a failure either side reports is a failure, with one exception:
// the command reported 0 and the engine failed only because it lost that
// exit code (lostExitCodeRE, in engineStderr).
func statusVerdict(runErr error, engineStderr, dir, engine, name string, logf func(string, ...any)) error {
	b, err := os.ReadFile(filepath.Join(dir, "exit"))
	if err != nil {
		if runErr == nil {
			return fmt.Errorf("container: %s run %s ended without the command reporting its exit status (killed, or the engine failed): not treated as success", engine, name)
		}
		return runErr
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("container: %s run %s: unreadable exit status %q", engine, name, b)
	}
	if code == 0 {
		if runErr != nil && lostExitCodeRE.MatchString(engineStderr) {
			logf("container: %s run %s: the engine lost the exit code (%v); the command itself reported status 0", engine, name, runErr)
			return nil
		}
		return runErr
	}
	if c, ok := exitCode(runErr); !ok || c != code {
		logf("container: %s run %s: the engine reported %v, the command exited with status %d", engine, name, runErr, code)
		return &statusExitError{code: code}
	}
	return runErr
}

// statusExitError is a non-zero exit status the command reported itself.
type statusExitError struct{ code int }

func (e *statusExitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }
