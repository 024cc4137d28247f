// Package imagebuilder drives an OpenWrt ImageBuilder through its make
// targets (info, manifest, image) inside a container.Runner, and parses what
// it writes (make info, manifests, sha256sums, profiles.json).
//
// Arguments reach make as an argv list, one variable per element; every
// value is validated first, because the ImageBuilder's Makefiles expand
// them in shell recipes (see the ASU advisory GHSA-r3gq-96h6-3v7q).
package imagebuilder

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/torwrt/torwrt/internal/container"
	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/progress"
)

// Paths inside the container where the builder's inputs appear.
const (
	filesTarget = "/torwrt/files"
	feedTarget  = "/torwrt/feed"
	binTarget   = "/torwrt/bin"
	hooksTarget = "/torwrt/hooks"
	// installedTarget holds installed.tar, the installed package tree
	// (hooks/installed.mk).
	installedTarget = "/torwrt/installed"
)

var (
	//go:embed hooks/entry.sh
	entryScriptFile string
	// entryScript is the argv form: the file without its comment lines,
	// which stay in hooks/entry.sh for readers rather than in every log.
	entryScript = stripComments(entryScriptFile)
	//go:embed hooks/mksquashfs.sh
	mksquashfsHook []byte
	//go:embed hooks/installed.mk
	installedMakefile []byte
)

func stripComments(script string) string {
	var b strings.Builder
	for _, line := range strings.Split(script, "\n") {
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		b.WriteString(line)
		b.WriteString("\n")
	}
	return b.String()
}

// Driver runs make targets of one ImageBuilder image.
type Driver struct {
	Runner  container.Runner
	IBImage *container.Image
	// LogDir keeps the full output of every make run.
	LogDir string
	// Progress receives make's output as it runs; nil: the
	// progress.Printer in the context, if any, follows it (a heartbeat
	// with its last line; every line when verbose).
	Progress io.Writer

	caps *Capabilities
}

// Request is one `make image`.
type Request struct {
	Profile          string   `json:"profile"`
	Packages         []string `json:"packages"`
	DisabledServices []string `json:"disabled_services"`
	ExtraImageName   string   `json:"extra_image_name"`
	// SourceDateEpoch is the time every file, the squashfs and opkg's
	// Installed-Time are set to; it reaches make as SOURCE_DATE_EPOCH.
	SourceDateEpoch int64 `json:"source_date_epoch"`
	// Host directories. Files and Feed are mounted read-only, BinDir
	// read-write; BinDir must be empty.
	Files  string `json:"-"`
	Feed   string `json:"-"`
	BinDir string `json:"-"`
	// Installed, when set, saves or restores the tree the ImageBuilder's
	// package_install leaves (hooks/installed.mk); nil: plain make image.
	Installed *InstalledTree `json:"-"`
}

// InstalledTree is where `make image` saves the installed package tree
// (InstalledArchive in Dir, written before FILES is read), or, with
// Restore, the tree it unpacks instead of running the package manager.
// The tree depends on the ImageBuilder, the package set and the package
// files only; a caller keys it by those, never by FILES.
type InstalledTree struct {
	Dir     string // host directory: empty to save into; holding InstalledArchive to restore
	Restore bool
}

// InstalledArchive is the file name of the installed package tree in
// InstalledTree.Dir.
const InstalledArchive = "installed.tar"

var (
	profileIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)
	extraNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)
)

// ErrMake is wrapped by errors from a make run that exited non-zero.
var ErrMake = errors.New("imagebuilder: make failed")

// ErrMissingInterface is wrapped by errors about an ImageBuilder that lacks
// something torwrt needs (an older generation, typically).
var ErrMissingInterface = errors.New("ImageBuilder lacks an interface torwrt needs")

func checkPackages(words []string) error {
	for _, w := range words {
		name := strings.TrimPrefix(w, "-")
		if strings.HasPrefix(w, "-") && strings.HasSuffix(name, "*") {
			name = strings.TrimSuffix(name, "*")
		}
		if !profile.ValidPackageName(name) {
			return fmt.Errorf("imagebuilder: package %q is not a valid name (want %s, optionally prefixed by -)", w, "^[a-z0-9][a-z0-9+._-]*$")
		}
	}
	return nil
}

// Info runs `make info`.
func (d *Driver) Info(ctx context.Context) (*Info, error) {
	out, err := d.make(ctx, "info", []string{"make", "info"}, nil, nil)
	if err != nil {
		return nil, err
	}
	return ParseInfo(out)
}

// Manifest returns the packages `make image` would install for req: from
// `make manifest` where the ImageBuilder has it (OpenWrt 19.07 and later),
// else from the .manifest of a trial `make image` with an empty FILES
// overlay (LEDE 17.01 and OpenWrt 18.06 have no manifest target).
func (d *Driver) Manifest(ctx context.Context, req Request) ([]Package, error) {
	if err := d.checkRequest(req, false); err != nil {
		return nil, err
	}
	caps, err := d.Capabilities()
	if err != nil {
		return nil, err
	}
	if !caps.ManifestTarget {
		return d.trialManifest(ctx, req)
	}
	repos, err := d.reposMount(req)
	if err != nil {
		return nil, err
	}
	mounts := append([]container.Mount{{Source: req.Feed, Target: feedTarget, ReadOnly: true}}, repos...)
	out, err := d.make(ctx, "manifest", []string{"make", "manifest",
		"PROFILE=" + req.Profile, "PACKAGES=" + strings.Join(req.Packages, " "),
	}, nil, mounts)
	if err != nil {
		return nil, err
	}
	return ParseManifest(out)
}

func (d *Driver) trialManifest(ctx context.Context, req Request) ([]Package, error) {
	scratch, err := os.MkdirTemp(filepath.Dir(req.Feed), "trial-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	req.Files, req.BinDir = filepath.Join(scratch, "files"), filepath.Join(scratch, "bin")
	for _, dir := range []string{scratch, req.Files, req.BinDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			return nil, err
		}
	}
	// Older ImageBuilders copy FILES with `cp $(FILES)/*`, which fails on
	// an empty directory; the trial image is thrown away.
	if err := os.MkdirAll(filepath.Join(req.Files, "etc"), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(req.Files, "etc", "torwrt-lock-trial"), nil, 0o644); err != nil {
		return nil, err
	}
	if req.SourceDateEpoch <= 0 {
		req.SourceDateEpoch = 1
	}
	if err := d.Image(ctx, req); err != nil {
		return nil, fmt.Errorf("trial make image to learn the package set (this ImageBuilder has no `make manifest`): %w", err)
	}
	out, err := Outputs(req.BinDir, req.Profile)
	if err != nil {
		return nil, err
	}
	return ParseManifest(out.Manifest)
}

// Image runs `make image` and returns the make output.
func (d *Driver) Image(ctx context.Context, req Request) error {
	if err := d.checkRequest(req, true); err != nil {
		return err
	}
	entries, err := os.ReadDir(req.BinDir)
	if err != nil {
		return fmt.Errorf("imagebuilder: output directory: %w", err)
	}
	if len(entries) != 0 {
		return fmt.Errorf("imagebuilder: output directory %s is not empty", req.BinDir)
	}
	mounts := []container.Mount{
		{Source: req.Files, Target: filesTarget, ReadOnly: true},
		{Source: req.Feed, Target: feedTarget, ReadOnly: true},
		{Source: req.BinDir, Target: binTarget},
	}
	repos, err := d.reposMount(req)
	if err != nil {
		return err
	}
	mounts = append(mounts, repos...)
	hook, err := d.writeHook(req)
	if err != nil {
		return err
	}
	mounts = append(mounts, hook)
	makeArgv, installedEnv, installedMount, err := d.installedMode(req.Installed, hook)
	if err != nil {
		return err
	}
	if installedMount != nil {
		mounts = append(mounts, *installedMount)
	}
	if len(req.DisabledServices) > 0 {
		caps, err := d.Capabilities()
		if err != nil {
			return err
		}
		if !caps.DisabledServices {
			return fmt.Errorf("imagebuilder: %w: this ImageBuilder's Makefile has no DISABLED_SERVICES (OpenWrt 18.06 added it); remove disabled_services from the profile and the packages that own those services from packages", ErrMissingInterface)
		}
	}
	argv := append([]string{"/bin/sh", "-c", entryScript, "torwrt-build", d.Runner.Path(hook) + "/mksquashfs"}, makeArgv...)
	argv = append(argv,
		"PROFILE="+req.Profile,
		"PACKAGES="+strings.Join(req.Packages, " "),
		"FILES="+d.Runner.Path(mounts[0]),
		"BIN_DIR="+d.Runner.Path(mounts[2]),
	)
	if req.ExtraImageName != "" {
		argv = append(argv, "EXTRA_IMAGE_NAME="+req.ExtraImageName)
	}
	if len(req.DisabledServices) > 0 {
		argv = append(argv, "DISABLED_SERVICES="+strings.Join(req.DisabledServices, " "))
	}
	env := []string{
		fmt.Sprintf("SOURCE_DATE_EPOCH=%d", req.SourceDateEpoch),
		"TORWRT_FILES=" + d.Runner.Path(mounts[0]),
	}
	env = append(env, installedEnv...)
	if _, err = d.make(ctx, "image", argv, env, mounts); err != nil {
		return err
	}
	if it := req.Installed; it != nil && !it.Restore {
		if _, err := os.Stat(filepath.Join(it.Dir, InstalledArchive)); err != nil {
			return fmt.Errorf("imagebuilder: %w: make image saved no installed package tree (no copy_files or prepare_rootfs step after package_install?); build with --no-step-cache", ErrMissingInterface)
		}
	}
	return nil
}

// installedMode is how make runs for an InstalledTree: with installed.mk
// from the hooks mount, its mode in the environment and the tree's
// directory mounted (read-only to restore from); for none, `make image`.
func (d *Driver) installedMode(it *InstalledTree, hooks container.Mount) (argv, env []string, m *container.Mount, err error) {
	if it == nil {
		return []string{"make", "image"}, nil, nil, nil
	}
	caps, err := d.Capabilities()
	if err != nil {
		return nil, nil, nil, err
	}
	if !caps.InstallTarget {
		return nil, nil, nil, fmt.Errorf("imagebuilder: %w: its Makefile runs no `$(MAKE) package_install` sub-make, so the installed package tree cannot be cached; build with --no-step-cache", ErrMissingInterface)
	}
	if err := checkInstalledDir(it); err != nil {
		return nil, nil, nil, err
	}
	m = &container.Mount{Source: it.Dir, Target: installedTarget, ReadOnly: it.Restore}
	mode := "save"
	if it.Restore {
		mode = "restore"
	}
	argv = []string{"make", "-f", d.Runner.Path(hooks) + "/installed.mk", "image"}
	env = []string{"TORWRT_INSTALLED=" + mode, "TORWRT_INSTALLED_DIR=" + d.Runner.Path(*m)}
	return argv, env, m, nil
}

// checkInstalledDir: a directory to save into is empty; one to restore
// from holds the archive as a regular file.
func checkInstalledDir(it *InstalledTree) error {
	if it.Restore {
		fi, err := os.Lstat(filepath.Join(it.Dir, InstalledArchive))
		if err != nil {
			return fmt.Errorf("imagebuilder: installed package tree: %w", err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("imagebuilder: installed package tree %s is not a regular file", filepath.Join(it.Dir, InstalledArchive))
		}
		return nil
	}
	entries, err := os.ReadDir(it.Dir)
	if err != nil {
		return fmt.Errorf("imagebuilder: installed package tree directory: %w", err)
	}
	if len(entries) != 0 {
		return fmt.Errorf("imagebuilder: installed package tree directory %s is not empty", it.Dir)
	}
	return nil
}

// writeHook writes the mksquashfs wrapper and installed.mk next to the
// feed directory and returns their read-only mount.
func (d *Driver) writeHook(req Request) (container.Mount, error) {
	dir := filepath.Join(filepath.Dir(req.Feed), "hooks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return container.Mount{}, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return container.Mount{}, err
	}
	for name, data := range map[string][]byte{"mksquashfs": mksquashfsHook, "installed.mk": installedMakefile} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o755); err != nil {
			return container.Mount{}, err
		}
		if err := os.Chmod(p, 0o755); err != nil {
			return container.Mount{}, err
		}
	}
	return container.Mount{Source: dir, Target: hooksTarget, ReadOnly: true}, nil
}

func (d *Driver) checkRequest(req Request, image bool) error {
	if !profileIDRE.MatchString(req.Profile) {
		return fmt.Errorf("imagebuilder: profile id %q must match %s", req.Profile, profileIDRE)
	}
	if err := checkPackages(req.Packages); err != nil {
		return err
	}
	if err := checkPackages(req.DisabledServices); err != nil {
		return fmt.Errorf("disabled services: %w", err)
	}
	if req.ExtraImageName != "" && !extraNameRE.MatchString(req.ExtraImageName) {
		return fmt.Errorf("imagebuilder: EXTRA_IMAGE_NAME %q must match %s", req.ExtraImageName, extraNameRE)
	}
	if req.Feed == "" {
		return errors.New("imagebuilder: no local package feed")
	}
	if image && (req.Files == "" || req.BinDir == "") {
		return errors.New("imagebuilder: make image needs FILES and BIN_DIR")
	}
	if image && req.SourceDateEpoch <= 0 {
		return errors.New("imagebuilder: make image needs a SOURCE_DATE_EPOCH")
	}
	return nil
}

// FeedKeyName is the file, in an apk feed directory, holding the public
// key its packages.adb is signed with; it is mounted into the
// ImageBuilder's keys/ so apk trusts that index and no other.
const FeedKeyName = "torwrt-local-feed.pem"

func (d *Driver) workDir() string {
	if wd := d.IBImage.WorkingDir; wd != "" {
		return wd
	}
	return "/builder"
}

// reposMount puts the builder's feed list over the image's own, so the
// package manager sees only the pinned image's packages and the local
// feed: repositories.conf for opkg; for apk, `repositories` and the key
// the local packages.adb is signed with.
func (d *Driver) reposMount(req Request) ([]container.Mount, error) {
	caps, err := d.Capabilities()
	if err != nil {
		return nil, err
	}
	dir, wd := filepath.Dir(req.Feed), d.workDir()
	if caps.PackageManager == "apk" {
		return []container.Mount{
			{Source: filepath.Join(dir, "repositories"), Target: path.Join(wd, "repositories"), ReadOnly: true},
			{Source: filepath.Join(req.Feed, FeedKeyName), Target: path.Join(wd, "keys", FeedKeyName), ReadOnly: true},
		}, nil
	}
	return []container.Mount{{Source: filepath.Join(dir, "repositories.conf"), Target: path.Join(wd, "repositories.conf"), ReadOnly: true}}, nil
}

// WriteRepositories writes, next to feedDir, the feed list reposMount
// mounts: the local feed, the ImageBuilder's bundled packages (for apk
// only where it bundles any: its packages/packages.adb exists only then),
// and no network feed at all.
func (d *Driver) WriteRepositories(feedDir string, bundled bool) error {
	caps, err := d.Capabilities()
	if err != nil {
		return err
	}
	name, data := "repositories.conf", ReposConf(d.FeedPath(feedDir))
	if caps.PackageManager == "apk" {
		name, data = "repositories", APKRepositories(d.workDir(), d.FeedPath(feedDir), bundled)
	}
	p := filepath.Join(filepath.Dir(feedDir), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		return err
	}
	// The container user reads it whatever the caller's umask.
	return os.Chmod(p, 0o644)
}

// ReposConf is opkg's repositories.conf for the local feed at feedPath.
func ReposConf(feedPath string) []byte {
	return []byte("# written by torwrt imgbuild: no network feeds; every package is pinned in the lock file\n" +
		"src imagebuilder file:packages\n" +
		"src torwrt file://" + feedPath + "\n")
}

// APKRepositories is apk's repositories file: one packages.adb per line,
// the local feed's and, with bundled, the ImageBuilder's own (indexed by
// its package_reload from packages/*.apk).
func APKRepositories(workDir, feedPath string, bundled bool) []byte {
	out := "# written by torwrt imgbuild: no network feeds; every package is pinned in the lock file\n" +
		path.Join(feedPath, "packages.adb") + "\n"
	if bundled {
		out += path.Join(workDir, "packages", "packages.adb") + "\n"
	}
	return []byte(out)
}

// FeedPath is where the command inside the runner sees the feed.
func (d *Driver) FeedPath(feedDir string) string {
	return d.Runner.Path(container.Mount{Source: feedDir, Target: feedTarget, ReadOnly: true})
}

func (d *Driver) make(ctx context.Context, step string, argv, env []string, mounts []container.Mount) ([]byte, error) {
	var logFile io.Writer = io.Discard
	logPath := ""
	if d.LogDir != "" {
		if err := os.MkdirAll(d.LogDir, 0o755); err != nil {
			return nil, err
		}
		logPath = filepath.Join(d.LogDir, "make-"+step+".log")
		f, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		logFile = f
	}
	var stdout bytes.Buffer
	// Both streams, interleaved as written: older ImageBuilders print
	// their refusals ("Profile ... does not exist!") on stdout.
	tail := &tailBuffer{max: 40}
	// make's output goes to Progress, else to the ctx's progress printer,
	// which keeps its last line for a heartbeat (and prints every line
	// only when verbose).
	var progressOut io.Writer = io.Discard
	if d.Progress != nil {
		progressOut = d.Progress
	} else if pr := progress.FromContext(ctx); pr != nil {
		act := pr.Activity("make " + step)
		defer act.Stop()
		progressOut = act
	}
	spec := container.RunSpec{
		Name:   "torwrt-" + step + "-" + randomID(),
		Image:  d.IBImage,
		Argv:   argv,
		Env:    env,
		Mounts: mounts,
		Stdout: io.MultiWriter(&stdout, logFile, progressOut, tail),
		Stderr: io.MultiWriter(tail, logFile, progressOut),
	}
	if err := d.Runner.Run(ctx, spec); err != nil {
		var msg string
		if ee := (*container.ExitError)(nil); errors.As(err, &ee) {
			msg = fmt.Sprintf("make %s exited with status %d (%s run %s)", step, ee.Code, ee.Engine, ee.Name)
		} else {
			msg = fmt.Sprintf("make %s: %v", step, err)
		}
		out := tail.String()
		if hint := Diagnose(out); hint != "" {
			msg += ": " + hint
		}
		if out != "" {
			msg += "\n--- last lines of its output ---\n" + out
		}
		if logPath != "" {
			msg += "\nfull log: " + logPath
		}
		return nil, fmt.Errorf("%w: %s", ErrMake, msg)
	}
	return stdout.Bytes(), nil
}

// tailBuffer keeps the last max lines written to it. It is safe for
// concurrent use: the runner copies stdout and stderr into it from two
// goroutines at once.
type tailBuffer struct {
	mu    sync.Mutex
	max   int
	lines []string
	part  string
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.part + string(p)
	parts := strings.Split(s, "\n")
	t.part = parts[len(parts)-1]
	t.lines = append(t.lines, parts[:len(parts)-1]...)
	if len(t.lines) > t.max {
		t.lines = t.lines[len(t.lines)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.lines
	if t.part != "" {
		l = append(l, t.part)
	}
	return strings.Join(l, "\n")
}
