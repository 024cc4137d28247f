package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/torwrt/torwrt/internal/brand"
	"github.com/torwrt/torwrt/internal/build"
	"github.com/torwrt/torwrt/internal/build/simulated"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/progress"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/usign"
)

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// profileOptions select profiles and the brand.
type profileOptions struct {
	root     string
	src      sources // set by resolve
	profiles stringList
	all      bool
	brand    string
}

func (o *profileOptions) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.root, "root", "", "directory with your own profiles/ and brands/, which win over the ones embedded in imgbuild (default: the nearest directory at or above the working directory with profiles/ or brands/)")
	fs.Var(&o.profiles, "profile", "profile to build (repeatable), e.g. gl-ar150")
	fs.BoolVar(&o.all, "all", false, "build every profile under profiles/")
	fs.StringVar(&o.brand, "brand", "torwrt", "brand under brands/ to render into the image")
}

func (o *profileOptions) resolve() ([]*profile.Profile, error) {
	src, err := findSources(o.root)
	if err != nil {
		return nil, err
	}
	o.src = src
	ids := []string(o.profiles)
	if o.all {
		all, err := src.profiles().List()
		if err != nil {
			return nil, err
		}
		ids = all
	}
	if len(ids) == 0 {
		return nil, usagef("want --profile ID or --all")
	}
	var out []*profile.Profile
	for _, id := range ids {
		p, err := src.profiles().Load(id)
		if err != nil {
			if errors.Is(err, profile.ErrNotFound) {
				return nil, usageError{err}
			}
			return nil, err
		}
		if o.all && !p.Primary() {
			// Test profiles (an older ImageBuilder generation, say) and a
			// device's profiles for another OpenWrt series are built by
			// name only, never as part of `--all`.
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// localPathFlags take a path on the building machine: where it put its
// caches and outputs says nothing about what it built, and would make the
// provenance differ between two builds of the same inputs.
var localPathFlags = map[string]bool{"out": true, "cache": true, "work-dir": true, "root": true, "package-dir": true, "release-keys": true, "key": true}

// runOnlyFlags say how this run goes (output, parallelism, the step
// cache), not what it builds: they are left out of the provenance, so it
// does not change with them. The value says whether the flag takes one.
var runOnlyFlags = map[string]bool{"no-step-cache": false, "keep-work": false, "json": false, "v": false, "verbose": false, "jobs": true, "until": true}

// redactedInvocation is the command line as it goes into the provenance,
// with secrets in key URIs (a PKCS#11 pin-value, say) blanked and local
// paths replaced by "PATH" (a key given as a URI stays, redacted).
func redactedInvocation(args []string) []string {
	out := []string{"imgbuild", "build"}
	pathNext, skipNext := false, false
	for _, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if skipNext {
			skipNext = false
			continue
		}
		if flagTakes, ok := runOnlyFlags[name]; ok && strings.HasPrefix(a, "-") {
			skipNext = flagTakes && !hasValue
			continue
		}
		switch {
		case pathNext && !strings.Contains(a, ":"):
			a = "PATH"
		case strings.HasPrefix(a, "-") && hasValue && localPathFlags[name] && !strings.Contains(value, ":"):
			a = a[:len(a)-len(value)] + "PATH"
		}
		pathNext = strings.HasPrefix(a, "-") && !hasValue && localPathFlags[name]
		out = append(out, signer.Redact(a))
	}
	return out
}

// sourceCommit is the git commit of the source tree, or "" outside git.
func sourceCommit(ctx context.Context, root string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// cacheOptions locate caches and scratch space.
type cacheOptions struct {
	cache    string
	workDir  string
	keepWork bool
	noSteps  bool
}

func (o *cacheOptions) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.cache, "cache", "", "cache directory for images and packages (default: $XDG_CACHE_HOME/torwrt or ~/.cache/torwrt)")
	fs.StringVar(&o.workDir, "work-dir", "", "scratch directory (default: a fresh temporary directory)")
	fs.BoolVar(&o.keepWork, "keep-work", false, "keep the scratch directory for inspection")
	if fs.Name() == "imgbuild build" {
		fs.BoolVar(&o.noSteps, "no-step-cache", false, "run every step (compile, make image) even when the step cache holds its result, and store nothing: a reproducibility check builds this way")
	}
}

func (o *cacheOptions) dir(e env) string {
	if o.cache != "" {
		return o.cache
	}
	if x := e.getenv("XDG_CACHE_HOME"); x != "" {
		return filepath.Join(x, "torwrt")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".cache", "torwrt")
	}
	return filepath.Join(os.TempDir(), "torwrt-cache")
}

// signerOptions choose the release key.
type signerOptions struct {
	key         string
	releaseKeys string
}

func (o *signerOptions) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.key, "key", "", "release key that signs the images: a usign .sec file (mode 0600), an Ed25519 PEM file, a pkcs11: URI or an Ed25519 KMS key URI")
	fs.StringVar(&o.releaseKeys, "release-keys", "", "usign .pub file, or directory of them, shipped in the image instead of the brand's keys (development and demos)")
}

// signer opens the release key (openImageKey); the caller closes it.
func (o *signerOptions) signer(ctx context.Context, e env) (signer.Signer, error) {
	if o.key == "" {
		return nil, usagef("want --key RELEASE.sec (a usign key file, a PEM file, pkcs11:… or a KMS URI; make a throwaway one with: imgbuild keygen -o /tmp/k)")
	}
	return openImageKey(ctx, e, o.key)
}

func (o *signerOptions) keys(b *brand.Brand) ([]*usign.PublicKey, error) {
	if o.releaseKeys == "" {
		return b.Keys, nil
	}
	if fi, err := os.Stat(o.releaseKeys); err == nil && !fi.IsDir() {
		k, err := usign.ReadPublicKeyFile(o.releaseKeys)
		if err != nil {
			return nil, err
		}
		return []*usign.PublicKey{k}, nil
	}
	entries, err := os.ReadDir(o.releaseKeys)
	if err != nil {
		return nil, err
	}
	var keys []*usign.PublicKey
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".pub") {
			continue
		}
		k, err := usign.ReadPublicKeyFile(filepath.Join(o.releaseKeys, e.Name()))
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("--release-keys %s holds no .pub files", o.releaseKeys)
	}
	return keys, nil
}

type buildOptions struct {
	profileOptions
	cacheOptions
	signerOptions
	outputOptions
	buildKeyFlags
	out         string
	engine      string
	simulated   bool
	version     string
	buildNumber uint64
	packageDirs stringList
	verbose     bool
	until       string
	jobs        int
}

// addVerboseFlag adds --verbose and its short form -v.
func addVerboseFlag(fs *flag.FlagSet, v *bool) {
	const usage = "also print each container's full command line and the ImageBuilder's make output as it streams"
	fs.BoolVar(v, "verbose", false, usage)
	fs.BoolVar(v, "v", false, "short for --verbose")
}

// newProgress is the progress printer on stderr: a live line on a
// terminal, plain lines elsewhere (CI, pipes); never stdout, which --json
// keeps for its one document.
// newProgress is the progress printer on stderr: text lines (a live line
// on a terminal), or with TORWRT_LOG=json one slog JSON record per line.
func newProgress(e env, verbose bool) *progress.Printer {
	return progress.New(e.stderr, progress.Options{
		TTY: progress.IsTerminal(e.stderr), Verbose: verbose, Width: progress.TerminalWidth(e.stderr),
		JSON: e.getenv("TORWRT_LOG") == "json",
	})
}

func runBuild(ctx context.Context, e env, args []string) error {
	var o buildOptions
	fs := newFlags(e, "build", "", "Build signed sysupgrade images: pull the profile's pinned ImageBuilder by digest,\nrender the overlay with the cross-compiled daemon, run make image offline in a\ncontainer, normalize, check and sign. Outputs land in OUT/<profile>/.")
	o.profileOptions.addFlags(fs)
	o.cacheOptions.addFlags(fs)
	o.signerOptions.addFlags(fs)
	o.outputOptions.addFlags(fs)
	fs.StringVar(&o.out, "out", "dist", "output directory")
	fs.StringVar(&o.engine, "engine", "", "container engine: podman, docker or host (default: $TORWRT_ENGINE, else podman, else docker)")
	fs.BoolVar(&o.simulated, "simulated-ib", false, "build against torwrt's SIMULATED ImageBuilder served from an in-process registry (for machines without network; outputs are marked SIMULATED)")
	fs.StringVar(&o.version, "firmware-version", "0.1.0", "firmware version stamped into the daemon and output names")
	fs.Uint64Var(&o.buildNumber, "build", 1, "monotonic build number of this release (routers install only higher builds)")
	fs.Var(&o.packageDirs, "package-dir", "directory of package files to use before downloading (repeatable)")
	country := fs.String("country", "", "Wi-Fi country, ISO 3166-1 alpha-2 (e.g. DE): overrides the brand's; a build needs one")
	o.buildKeyFlags.addFlags(fs)
	fs.StringVar(&o.until, "until", "", "stop after this step and keep the work directory with what it produced: "+strings.Join(build.Steps, ", "))
	fs.IntVar(&o.jobs, "jobs", defaultJobs(), "profiles built at the same time (several --profile, or --all); each make image runs mksquashfs on one CPU")
	addVerboseFlag(fs, &o.verbose)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return usagef("unexpected arguments %q", rest)
	}
	if o.until != "" && !slices.Contains(build.Steps, o.until) {
		return usagef("--until %q: want one of %s", o.until, strings.Join(build.Steps, ", "))
	}
	if o.jobs < 1 {
		return usagef("--jobs %d: want at least 1", o.jobs)
	}
	profiles, err := o.resolve()
	if err != nil {
		return err
	}
	b, err := o.src.loadBrand(o.brand)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "sources: %s\n", o.src.describe())
	bk, err := o.buildKeyOptions()
	if err != nil {
		return err
	}
	var buildKey *imagesig.BuildKeyOptions
	if o.buildKeyHours > 0 {
		buildKey = &bk
	}
	imageSigner, err := o.signer(ctx, e)
	if err != nil {
		return err
	}
	defer imageSigner.Close()
	keys, err := o.keys(b)
	if err != nil {
		return err
	}
	if o.engine == "" {
		o.engine = e.getenv("TORWRT_ENGINE")
	}
	cacheDir := o.cacheOptions.dir(e)
	pr := newProgress(e, o.verbose)
	ctx = progress.NewContext(ctx, pr)
	locks := map[string]*profile.Lock{}
	pkgDirs := append([]string{}, o.packageDirs...)
	var mirrors map[string]string
	if o.simulated {
		sim, err := simulated.Start(ctx, simulated.Options{
			Root: o.src.moduleDir(), Profiles: profiles, CacheDir: cacheDir, Engine: o.engine, Progress: pr,
			Jobs: o.jobs, NoStepCache: o.noSteps,
		})
		if err != nil {
			return err
		}
		defer sim.Stop()
		locks = sim.Locks
		pkgDirs = append(pkgDirs, sim.PackageDirs...)
		mirrors = sim.Mirrors
	}
	// Profiles build in parallel, at most --jobs at a time, each in its
	// own work directory; results are collected by profile, in order.
	reports := make([]*build.Result, len(profiles))
	errs := make([]error, len(profiles))
	sem := make(chan struct{}, o.jobs)
	var wg sync.WaitGroup
	for i, p := range profiles {
		l := locks[p.ID]
		if l == nil {
			if l, err = p.LoadLock(); err != nil {
				return err
			}
		}
		work := o.workDir
		if work != "" && len(profiles) > 1 {
			work = filepath.Join(work, p.ID)
		}
		opts := build.Options{
			Inputs: build.Inputs{
				Root: o.src.moduleDir(), Profile: p, Lock: l, Brand: b, ReleaseKeys: keys, Simulated: o.simulated,
				Version: o.version, Build: o.buildNumber, Country: *country,
			},
			Env: build.Env{
				Signer: imageSigner, BuildKey: buildKey, Engine: o.engine, PackageSources: pkgDirs,
				RegistryMirrors: mirrors, InsecureRegistry: o.simulated, OutDir: o.out, CacheDir: cacheDir,
				WorkDir: work, KeepWork: o.keepWork, Until: o.until, NoStepCache: o.noSteps, Progress: pr,
			},
			Provenance: build.Provenance{
				ToolVersion: toolVersion(), Invocation: redactedInvocation(args), BuilderID: e.getenv("TORWRT_BUILDER_ID"),
				SourceRepo: "https://github.com/torwrt/torwrt", SourceCommit: o.src.sourceCommit(ctx),
			},
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			reports[i], errs[i] = build.Run(ctx, opts)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if o.until != "" {
		if o.json {
			return setResult(e, newBuildResult(reports))
		}
		for _, r := range reports {
			fmt.Fprintf(e.stdout, "%s: stopped after %s; its outputs are in %s\n", r.Profile, r.StoppedAfter, r.WorkDir)
		}
		return nil
	}
	if o.json {
		return setResult(e, newBuildResult(reports))
	}
	for _, r := range reports {
		label := ""
		if r.Simulated {
			label = " [SIMULATED ImageBuilder]"
		}
		fmt.Fprintf(e.stdout, "%s%s: %s/%s\n  sha256 %s, %d bytes (limit %d), signed by %s\n  verify: imgbuild verify --keys <dir with %s> %s/%s\n",
			r.Profile, label, r.DistDir, r.Image, r.ImageSHA256, r.ImageSize, r.SizeLimit, r.SignedBy, r.SignedBy, r.DistDir, r.Image)
	}
	return nil
}

// defaultJobs is how many profiles build at once: one per CPU. `make
// image` is mostly single-threaded (mksquashfs is pinned to one CPU), so
// two profiles on two cores overlap almost fully.
func defaultJobs() int { return max(1, runtime.NumCPU()) }
