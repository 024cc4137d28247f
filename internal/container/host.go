package container

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// hostRunner runs commands directly on the host, in a fresh copy of the
// image's working directory. It exists for development: there is NO
// isolation (network, capabilities, the whole host filesystem are
// available), and the command uses the host's tools from PATH, not the
// image's. Only the image's WorkingDir tree comes from the image.
type hostRunner struct {
	root string
	opts RunnerOptions

	mu       sync.Mutex
	prepared map[string]string // run name -> run dir
}

func newHost(opts RunnerOptions) (*hostRunner, error) {
	root := opts.WorkRoot
	if root == "" {
		c, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("container: host runner needs a work root: set RunnerOptions.WorkRoot (%v)", err)
		}
		root = filepath.Join(c, "torwrt", "host-runner")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	return &hostRunner{root: abs, opts: opts, prepared: map[string]string{}}, nil
}

func (h *hostRunner) Engine() string { return "host" }

func (h *hostRunner) Path(m Mount) string { return m.Source }

func (h *hostRunner) runDir(name string) string { return filepath.Join(h.root, "runs", name) }

// imageWorkDir is the image's working directory (the tree that is copied).
func imageWorkDir(img *Image) string {
	if img == nil || img.WorkingDir == "" {
		return "/"
	}
	return filepath.Clean(img.WorkingDir)
}

// WorkDir prepares (once per run name) the run's copy of the image's
// working directory and returns the directory the command will run in.
func (h *hostRunner) WorkDir(ctx context.Context, spec RunSpec) (string, error) {
	if err := spec.validate(); err != nil {
		return "", err
	}
	dir, err := h.prepare(ctx, spec)
	if err != nil {
		return "", err
	}
	return h.hostPath(dir, spec)
}

func (h *hostRunner) hostPath(dir string, spec RunSpec) (string, error) {
	wd := spec.WorkDir
	if wd == "" {
		wd = imageWorkDir(spec.Image)
	}
	base := imageWorkDir(spec.Image)
	if wd != base && !strings.HasPrefix(wd, strings.TrimSuffix(base, "/")+"/") {
		return "", fmt.Errorf("container: host runner: working directory %s is outside the image's working directory %s, the only part of the image it copies", wd, base)
	}
	return filepath.Join(dir, "fs", wd), nil
}

func (h *hostRunner) prepare(ctx context.Context, spec RunSpec) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if dir, ok := h.prepared[spec.Name]; ok {
		return dir, nil
	}
	rootfs, err := h.extract(ctx, spec.Image)
	if err != nil {
		return "", err
	}
	dir := h.runDir(spec.Name)
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("container: host runner: removing stale run dir %s: %w", dir, err)
	}
	wd := imageWorkDir(spec.Image)
	src := filepath.Join(rootfs, wd)
	dst := filepath.Join(dir, "fs", wd)
	if err := copyTree(src, dst); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("container: host runner: copying the image's %s: %w", wd, err)
	}
	// Mounts into the working directory become symlinks in the copy, so the
	// command finds them where it would in a container.
	for _, m := range spec.Mounts {
		if m.Target != wd && !strings.HasPrefix(m.Target, strings.TrimSuffix(wd, "/")+"/") {
			h.opts.Logf("container: host runner: mount %s -> %s is outside %s; the command sees it at %s", m.Source, m.Target, wd, m.Source)
			continue
		}
		if m.Target == wd {
			os.RemoveAll(dir)
			return "", fmt.Errorf("container: host runner cannot mount over the working directory %s itself", wd)
		}
		link := filepath.Join(dir, "fs", m.Target)
		if err := os.RemoveAll(link); err != nil {
			return "", err
		}
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			return "", err
		}
		if err := os.Symlink(m.Source, link); err != nil {
			return "", fmt.Errorf("container: host runner: linking mount %s: %w", m.Source, err)
		}
	}
	h.prepared[spec.Name] = dir
	return dir, nil
}

// extract unpacks the image's flattened filesystem once per digest.
func (h *hostRunner) extract(ctx context.Context, img *Image) (string, error) {
	base := filepath.Join(h.root, "images", img.Hex())
	rootfs := filepath.Join(base, "rootfs")
	done := filepath.Join(base, "complete")
	if _, err := os.Stat(done); err == nil {
		return rootfs, nil
	}
	if err := os.MkdirAll(filepath.Join(h.root, "images"), 0o755); err != nil {
		return "", fmt.Errorf("container: host runner work root %s: %w", h.root, err)
	}
	unlock, err := lockFile(base + ".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(done); err == nil {
		return rootfs, nil
	}
	vimg, err := img.OpenImage()
	if err != nil {
		return "", err
	}
	os.RemoveAll(base)
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return "", err
	}
	h.opts.Logf("container: host runner: extracting %s into %s", shortDigest(img.Digest), rootfs)
	start := time.Now()
	rc := mutate.Extract(vimg)
	defer rc.Close()
	if err := untar(ctx, rc, rootfs); err != nil {
		os.RemoveAll(base)
		return "", fmt.Errorf("container: host runner: extracting %s: %w", img.Ref, err)
	}
	if err := os.WriteFile(done, []byte(img.Digest+"\n"), 0o644); err != nil {
		return "", err
	}
	h.opts.Logf("container: host runner: extracted in %s", time.Since(start).Round(time.Millisecond))
	return rootfs, nil
}

func (h *hostRunner) Run(ctx context.Context, spec RunSpec) error {
	if err := spec.validate(); err != nil {
		return err
	}
	dir, err := h.prepare(ctx, spec)
	if err != nil {
		return err
	}
	defer func() {
		h.mu.Lock()
		delete(h.prepared, spec.Name)
		h.mu.Unlock()
		os.RemoveAll(dir)
	}()
	wd, err := h.hostPath(dir, spec)
	if err != nil {
		return err
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	env = append(env, spec.Env...)
	pathEnv := ""
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathEnv = v
		}
	}
	argv0 := spec.Argv[0]
	if !strings.Contains(argv0, "/") {
		p, err := lookPath(argv0, pathEnv)
		if err != nil {
			return fmt.Errorf("container: host runner: %s not found in PATH %s: install it on the host (the host runner uses the host's tools)", argv0, pathEnv)
		}
		argv0 = p
	} else if !filepath.IsAbs(argv0) {
		argv0 = filepath.Join(wd, argv0)
	}
	cmd := exec.CommandContext(ctx, argv0, spec.Argv[1:]...)
	cmd.Args[0] = spec.Argv[0]
	cmd.Dir = wd
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = cancelWait
	tail := &tailBuffer{n: stderrTailLines}
	cmd.Stdout = writerOr(spec.Stdout)
	cmd.Stderr = io.MultiWriter(writerOr(spec.Stderr), tail)
	h.opts.Logf("container: host run %s: image %s extracted on the host, no network isolation, in %s", spec.Name, shortDigest(spec.Image.Digest), wd)
	h.opts.Debugf("container: host run %s: %s", spec.Name, strings.Join(spec.Argv, " "))
	runErr := cmd.Run()
	if cmd.Process != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // leftovers of the group
	}
	if ctx.Err() != nil {
		return fmt.Errorf("container: host run %s cancelled: %w", spec.Name, ctx.Err())
	}
	if runErr != nil {
		if code, ok := exitCode(runErr); ok {
			return &ExitError{Engine: "host", Name: spec.Name, Code: code, Stderr: tail.String()}
		}
		return fmt.Errorf("container: host run %s: %w", spec.Name, runErr)
	}
	return nil
}

func lookPath(file, pathEnv string) (string, error) {
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, file)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// untar extracts a flattened image filesystem under dst. Names are confined
// to dst: absolute names and ".." are refused, and nothing is written
// through a symlink.
func untar(ctx context.Context, r io.Reader, dst string) error {
	tr := tar.NewReader(r)
	type dirTime struct {
		p string
		t time.Time
	}
	var dirs []dirTime
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hd, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		rel := filepath.Clean("/" + hd.Name)
		if rel == "/" {
			continue
		}
		if strings.Contains(hd.Name, "..") {
			for _, part := range strings.Split(hd.Name, "/") {
				if part == ".." {
					return fmt.Errorf("tar entry %q escapes the root", hd.Name)
				}
			}
		}
		target := filepath.Join(dst, rel)
		if err := noSymlinkParents(dst, rel); err != nil {
			return err
		}
		mode := os.FileMode(hd.Mode).Perm() | os.FileMode(hd.Mode)&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky)
		switch hd.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return err
			}
			os.Chmod(target, mode|0o700)
			dirs = append(dirs, dirTime{target, hd.ModTime})
		case tar.TypeReg:
			os.Remove(target)
			f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			f.Close()
			if err != nil {
				return err
			}
			os.Chmod(target, mode)
			os.Chtimes(target, hd.ModTime, hd.ModTime)
		case tar.TypeSymlink:
			os.RemoveAll(target)
			if err := os.Symlink(hd.Linkname, target); err != nil {
				return err
			}
		case tar.TypeLink:
			src := filepath.Join(dst, filepath.Clean("/"+hd.Linkname))
			if err := noSymlinkParents(dst, filepath.Clean("/"+hd.Linkname)); err != nil {
				return err
			}
			os.Remove(target)
			if err := os.Link(src, target); err != nil {
				return err
			}
		default:
			// Devices and fifos are not needed to run make.
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Chtimes(dirs[i].p, dirs[i].t, dirs[i].t)
	}
	return nil
}

// noSymlinkParents refuses a path whose parent directories under root
// include a symlink (which could point anywhere on the host).
func noSymlinkParents(root, rel string) error {
	parts := strings.Split(strings.TrimPrefix(filepath.Dir(rel), "/"), "/")
	p := root
	for _, part := range parts {
		if part == "" || part == "." {
			continue
		}
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return os.MkdirAll(filepath.Join(root, filepath.Dir(rel)), 0o755)
		}
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("tar entry %s lies under the symlink %s", rel, p)
		}
	}
	return nil
}

// copyTree copies src to dst keeping modes, times and symlinks.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		t := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(t, fi.Mode().Perm()|0o700)
		case fi.Mode()&os.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, t)
		case fi.Mode().IsRegular():
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			defer in.Close()
			out, err := os.OpenFile(t, os.O_CREATE|os.O_EXCL|os.O_WRONLY, fi.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, in); err != nil {
				out.Close()
				return err
			}
			if err := out.Close(); err != nil {
				return err
			}
			return os.Chtimes(t, fi.ModTime(), fi.ModTime())
		}
		return nil
	})
}
