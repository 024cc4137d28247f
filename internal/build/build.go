// Package build runs the image pipeline for one profile:
//
//	resolve → compile → render → fetch → run → check → normalize → sign → write
//
// Each step is a function of explicit inputs with an explicit output
// (steps.go, check.go); Run is the one place that calls them in order,
// times them, stops after Options.Until, and replays the compile and run
// steps from a content-addressed cache (cache.go) when their inputs are
// unchanged. resolve checks the profile against its lock and the signer
// against the release keys; compile cross-builds the router daemon; render
// writes the normalized overlay; fetch pulls the ImageBuilder by digest
// and the locked packages into content-addressed caches (only when run is
// not replayed); run drives `make image` in the container with no network;
// check compares what it wrote with the lock, the profile and the
// overlay; normalize refuses a root filesystem that is not normalized and
// strips the ImageBuilder's signature; sign signs; write lands everything
// in dist/<profile>/ in one rename (internal/dist owns the names).
package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/torwrt/torwrt"
	"github.com/torwrt/torwrt/internal/brand"
	"github.com/torwrt/torwrt/internal/container"
	"github.com/torwrt/torwrt/internal/dist"
	"github.com/torwrt/torwrt/internal/gobuild"
	"github.com/torwrt/torwrt/internal/imagebuilder"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/progress"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/usign"
)

// Options configure one build, in three parts: what to build (Inputs), what
// the build uses and where it works (Env), and what the provenance says
// about who built it how (Provenance). Paths are host paths. The parts are
// embedded, so o.Profile, o.Signer and o.BuilderID name their fields.
type Options struct {
	Inputs
	Env
	Provenance
}

// Inputs are what to build: they decide the image's bytes, and two builds
// with equal Inputs publish the same files.
type Inputs struct {
	Root    string // torwrt checkout to compile the daemon from; "": the source embedded in imgbuild
	Profile *profile.Profile
	Lock    *profile.Lock
	Brand   *brand.Brand
	// ReleaseKeys are shipped in /etc/opkg/keys and trusted by the
	// updater. The signer's key must be one of them.
	ReleaseKeys []*usign.PublicKey
	// Simulated marks a build against the simulated ImageBuilder; it is
	// written into output names and the report.
	Simulated bool
	Version   string // firmware version, e.g. 0.1.0
	// Country overrides the brand's Wi-Fi country (ISO 3166-1 alpha-2);
	// a build with neither fails.
	Country string
	// Build is the monotonic build number the image states in
	// /etc/torwrt/release.json and the release manifest lists; 0 means 1.
	Build uint64
}

// Env is what the build works with: its collaborators (signer, container
// engine, package sources, registry mirrors, progress output) and where
// on this machine it reads, caches and writes. None of it changes the
// image's bytes.
type Env struct {
	Signer signer.Signer
	// BuildKey, when set, signs the image with a short-lived build key
	// the release key certifies (a 2-element ucert chain, as OpenWrt's
	// own build does); nil: the release key signs directly.
	BuildKey *imagesig.BuildKeyOptions
	Engine   string
	// PackageSources are local directories holding package files.
	PackageSources []string
	// RegistryMirrors: see container.Cache.Mirrors (simulated.Simulation.Mirrors).
	RegistryMirrors map[string]string
	// InsecureRegistry allows a plain-HTTP registry on 127.0.0.1 (the
	// in-process one the simulated ImageBuilder is served from).
	InsecureRegistry bool
	OutDir           string // dist
	CacheDir         string
	WorkDir          string // scratch; removed unless KeepWork (or Until)
	KeepWork         bool
	// Until stops the build after this step (one of Steps), keeping the
	// work directory with what the steps so far produced.
	Until string
	// NoStepCache runs every step, neither replaying nor storing step
	// results: what a reproducibility check wants (two builds that
	// really ran make image), and a way around a cache one distrusts.
	NoStepCache bool
	Progress    io.Writer
}

// Provenance is what the build's attestations say about how it was made;
// it goes into the provenance statement and the SBOM as it is, so it must
// not depend on the machine.
type Provenance struct {
	// ToolVersion is imgbuild's own version, for the SBOM's tools entry
	// (and the step cache's keys).
	ToolVersion  string
	Invocation   []string
	BuilderID    string // "": https://torwrt.org/imgbuild/local
	SourceRepo   string
	SourceCommit string
}

// Steps are the pipeline's steps in order (Options.Until names one).
var Steps = []string{"resolve", "compile", "render", "fetch", "run", "check", "normalize", "sign", "write"}

// Step cache versions: bump one when its step's code changes what the
// step produces from the same inputs.
const (
	compileStepVersion = 1
	runStepVersion     = 1
	installStepVersion = 1
)

// ErrTooBig: the image does not fit the board's flash.
var ErrTooBig = errors.New("image is larger than the profile's image_size_limit")

// ErrDrift: the ImageBuilder installed packages the lock does not pin.
var ErrDrift = errors.New("installed packages differ from the lock file")

// ErrStopped is returned with the partial report when Options.Until
// stopped the build; Result.WorkDir holds what it produced.
var errStopped = errors.New("stopped")

// Result is what Run returns: the build report (dist's; in dist/ when the
// build ran to the end) and this run's facts.
type Result struct {
	*dist.Report
	// StoppedAfter is Options.Until when the build stopped there; WorkDir
	// then holds the steps' outputs (files/, feed/, bin/, unsigned.bin).
	StoppedAfter string
	WorkDir      string
}

// runner times the steps, prints their progress, records which were
// replayed from the cache, and stops after Options.Until.
type runner struct {
	pr      *progress.Printer
	log     *slog.Logger // pr's records, for structured events
	rep     *dist.Report
	until   string
	took    []string
	stopped string
}

// step runs fn as step name; fn reports whether it replayed its output.
func (r *runner) step(name string, fn func() (cached bool, err error)) error {
	if r.stopped != "" {
		return errStopped
	}
	st := r.pr.Step(name)
	t0 := time.Now()
	cached, err := fn()
	if err != nil {
		st.Fail()
		return fmt.Errorf("%s: %w", name, err)
	}
	d := st.Done()
	label := name + " " + progress.Duration(d)
	if cached {
		label += " (cached)"
		r.rep.Cached = append(r.rep.Cached, name)
	}
	r.took = append(r.took, label)
	r.rep.Timings[name] = time.Since(t0).Round(time.Millisecond).String()
	if name == r.until {
		r.stopped = name
		return errStopped
	}
	return nil
}

// Run builds one profile.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Profile == nil || o.Lock == nil || o.Signer == nil {
		return nil, errors.New("build: profile, lock and signer are required")
	}
	if o.Brand == nil {
		return nil, errors.New("build: brand is required")
	}
	if o.Until != "" && !slices.Contains(Steps, o.Until) {
		return nil, fmt.Errorf("build: no step %q to stop after; the steps are %s", o.Until, strings.Join(Steps, ", "))
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Build == 0 {
		o.Build = 1
	}
	// The caller's progress printer (a terminal's live line, --verbose),
	// else plain lines on o.Progress; the context carries it to the
	// ImageBuilder driver's heartbeat.
	pr := progress.FromContext(ctx)
	if pr == nil {
		pr = progress.New(o.Progress, progress.Options{})
	}
	pr = pr.For(o.Profile.ID)
	ctx = progress.NewContext(ctx, pr)
	rep := &dist.Report{
		Profile: o.Profile.ID, Brand: o.Brand.ID, Channel: o.Brand.Channel, Simulated: o.Simulated, Version: o.Version, Build: o.Build,
		SourceDateEpoch: o.Profile.OpenWrt.SourceDateEpoch, ImageBuilder: o.Lock.Image.Ref,
		ProfileSHA256: o.Profile.SHA256, Board: o.Profile.Board, Timings: map[string]string{},
		ProfileFrom: stableOrigin(o.Profile.Origin), BrandFrom: stableOrigin(o.Brand.Dir),
	}
	if o.Simulated {
		rep.Note = "SIMULATED ImageBuilder: this image is a test artifact of torwrt's simulated ImageBuilder, not firmware for a real device"
	}
	pr.Printf("profile from %s, brand %s from %s", o.Profile.Origin, o.Brand.ID, o.Brand.Dir)

	work := o.WorkDir
	if work == "" {
		var err error
		if work, err = os.MkdirTemp("", "torwrt-build-"); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	res := &Result{Report: rep, WorkDir: work}
	r := &runner{pr: pr, log: pr.Logger(), rep: rep, until: o.Until}
	start := time.Now()
	err := pipeline(ctx, o, work, r)
	if errors.Is(err, errStopped) {
		res.StoppedAfter = r.stopped
		pr.Printf("stopped after %s in %s (%s); its outputs are in %s", r.stopped, progress.Duration(time.Since(start)), strings.Join(r.took, ", "), work)
		return res, nil
	}
	if err != nil {
		// A failed build keeps its scratch directory: it holds the
		// ImageBuilder's full log and the inputs it was given.
		return nil, fmt.Errorf("%s: %w\n(scratch directory kept for inspection: %s)", o.Profile.ID, err, work)
	}
	pr.Printf("built in %s (%s)", progress.Duration(time.Since(start)), strings.Join(r.took, ", "))
	if !o.KeepWork {
		os.RemoveAll(work)
	}
	return res, nil
}

// pipeline is the one place the steps are called, in order. Each step's
// inputs are named here; its output is a local value the later steps take.
func pipeline(ctx context.Context, o Options, work string, r *runner) error {
	rep := r.rep
	cache := &StepCache{Dir: o.CacheDir}
	if o.NoStepCache {
		cache.Dir = ""
	}
	var lockBytes []byte
	err := r.step("resolve", func() (bool, error) {
		if err := o.Lock.Check(o.Profile); err != nil {
			return false, fmt.Errorf("lock file: %w", err)
		}
		if err := checkSignerTrusted(o.Signer, o.ReleaseKeys); err != nil {
			return false, err
		}
		if _, err := wifiCountry(o.Country, o.Brand); err != nil {
			return false, err
		}
		var err error
		if lockBytes, err = o.Lock.Marshal(); err != nil {
			return false, err
		}
		rep.LockSHA256 = sha256Hex(lockBytes)
		return false, nil
	})
	if err != nil {
		return err
	}

	var daemon *gobuild.Result
	err = r.step("compile", func() (bool, error) {
		in, err := compileInput(ctx, o)
		if err != nil {
			return false, err
		}
		var cached bool
		daemon, cached, err = compileCached(ctx, cache, in, o.ToolVersion)
		if err != nil {
			return false, err
		}
		r.pr.Printf("daemon %s/%s: %d bytes, sha256 %.16s…, %s, from %s", in.GOARCH, in.GOMIPS, daemon.Size, daemon.SHA256, daemon.GoVersion, daemon.From)
		rep.Daemon = daemon
		return cached, nil
	})
	if err != nil {
		return err
	}

	var rendered *Rendered
	err = r.step("render", func() (bool, error) {
		var err error
		rendered, err = Render(ctx, RenderInput{
			Profile: o.Profile, Brand: o.Brand, ReleaseKeys: o.ReleaseKeys, Country: o.Country,
			Version: o.Version, Build: o.Build, Simulated: o.Simulated, Daemon: daemon.Binary,
			Dir: filepath.Join(work, "files"),
		})
		if err != nil {
			return false, err
		}
		rep.OverlaySHA256 = rendered.TreeSHA256
		return false, nil
	})
	if err != nil {
		return err
	}

	// The run step's key; when it hits, the run is replayed and the fetch
	// it would need is skipped.
	bin := filepath.Join(work, "bin")
	key := RunKey{
		ImageBuilder: o.Lock.Image.Ref, ScriptsSHA256: imagebuilder.ScriptsSHA256(), FilesSHA256: rendered.TreeSHA256,
		LockSHA256: rep.LockSHA256, IBProfile: o.Profile.IBProfile, Packages: o.Profile.MakePackages(),
		DisabledServices: o.Profile.DisabledServices, SourceDateEpoch: o.Profile.OpenWrt.SourceDateEpoch, Tool: o.ToolVersion,
	}
	runKey, err := cache.Key("run", runStepVersion, key)
	if err != nil {
		return err
	}
	var ran Ran
	replayed := cache.Get("run", runKey, &ran, bin)
	if replayed {
		ran.BinDir = bin
	}

	var fetched *Fetched
	err = r.step("fetch", func() (bool, error) {
		if replayed {
			r.log.Info("fetch: not needed, the run is replayed from the step cache", "key", runKey)
			return true, nil
		}
		var err error
		fetched, err = Fetch(ctx, FetchInput{
			Lock: o.Lock, CacheDir: o.CacheDir, PackageSources: o.PackageSources,
			InsecureRegistry: o.InsecureRegistry, RegistryMirrors: o.RegistryMirrors, FeedDir: filepath.Join(work, "feed"),
		})
		return false, err
	})
	if err != nil {
		return err
	}

	err = r.step("run", func() (bool, error) {
		if replayed {
			rep.Engine, rep.PackageManager = ran.Engine, ran.PackageManager
			return true, nil
		}
		out, err := runCached(ctx, r, cache, RunInput{
			Engine: o.Engine, Image: fetched.Image, Profile: o.Profile, Lock: o.Lock, Files: rendered.Dir,
			Feed: fetched.FeedDir, WorkDir: work, Key: key, Logf: r.pr.Printf,
		}, o.CacheDir, runKey, bin)
		if err != nil {
			return false, err
		}
		ran = *out
		rep.Engine, rep.PackageManager = ran.Engine, ran.PackageManager
		return false, nil
	})
	if err != nil {
		return err
	}

	var checked *Checked
	err = r.step("check", func() (bool, error) {
		in, err := IBOutput(ran.BinDir, o.Profile)
		if err != nil {
			return false, err
		}
		in.Lock, in.Firewall = o.Lock, rendered.Firewall
		if checked, err = Check(in); err != nil {
			return false, err
		}
		for _, w := range checked.Warnings {
			r.pr.Printf("WARNING (test profile %s, not a release target): %s", o.Profile.ID, w)
		}
		rep.Packages, rep.Warnings = checked.Packages(), checked.Warnings
		rep.StrippedIBSig, rep.SizeLimit, rep.RootfsBytes = checked.StrippedIBSig, checked.SizeLimit, int64(len(checked.Payload))
		rep.InstalledInImage = len(checked.DB.Packages)
		return false, nil
	})
	if err != nil {
		return err
	}

	unsigned := filepath.Join(work, "unsigned.bin")
	err = r.step("normalize", func() (bool, error) {
		var fps []string
		for _, k := range o.ReleaseKeys {
			fps = append(fps, k.Fingerprint.String())
		}
		n, err := Normalize(ctx, NormalizeInput{Checked: checked, Epoch: o.Profile.OpenWrt.SourceDateEpoch, Keys: fps, Scratch: filepath.Join(work, "normalize")})
		if err != nil {
			return false, err
		}
		rep.Normalize = n.Result
		return false, os.WriteFile(unsigned, n.Unsigned, 0o644)
	})
	if err != nil {
		return err
	}

	var stage *dist.Stage
	defer func() {
		if stage != nil {
			stage.Abort()
		}
	}()
	var signed *Signed
	err = r.step("sign", func() (bool, error) {
		var err error
		if stage, err = dist.NewStage(o.OutDir, o.Profile.ID); err != nil {
			return false, err
		}
		rep.Image = dist.ImageName(o.Brand.ID, o.Version, o.Profile.ID, o.Simulated)
		signed, err = Sign(ctx, SignInput{
			Unsigned: unsigned, Dest: stage.Path(rep.Image), Signer: o.Signer, BuildKey: o.BuildKey,
			ReleaseKeys: o.ReleaseKeys, Board: o.Profile.Board,
		})
		if err != nil {
			return false, err
		}
		rep.ImageSHA256, rep.SignedBy, rep.ImageSize = signed.SHA256, signed.Key, signed.Size
		return false, nil
	})
	if err != nil {
		return err
	}

	builder := o.BuilderID
	if builder == "" {
		builder = "https://torwrt.org/imgbuild/local"
	}
	return r.step("write", func() (bool, error) {
		return false, Write(ctx, WriteInput{
			Stage: stage, Report: rep, Signed: signed, Manifest: checked.Manifest, Lock: o.Lock,
			Installed: checked.DB, Daemon: daemon.Binary, ReleaseKeys: o.ReleaseKeys, Signer: o.Signer, Tool: o.ToolVersion,
			Statement: dist.StatementInput{BuilderID: builder, Invocation: o.Invocation, SourceRepo: o.SourceRepo, SourceCommit: o.SourceCommit},
		})
	})
}

// runCached runs make image (RunImage) in a runner for in.Engine, with
// the installed package tree from the step cache when it is there, and
// stores the tree and the run's output for the next build.
func runCached(ctx context.Context, r *runner, cache *StepCache, in RunInput, cacheDir, runKey, bin string) (*Ran, error) {
	cr, err := container.NewRunner(ctx, in.Engine, container.RunnerOptions{
		WorkRoot: filepath.Join(cacheDir, "host-runner"), Logf: r.pr.Printf, Debugf: r.pr.Debugf,
	})
	if err != nil {
		return nil, err
	}
	in.Runner = cr
	installed, installedKey, err := installedTree(cache, in.Key, filepath.Join(in.WorkDir, "installed"))
	if err != nil {
		return nil, err
	}
	if installed != nil && installed.Restore {
		r.log.Info("run: the installed package tree is replayed from the step cache; make image runs from FILES on", "key", installedKey)
		r.rep.Cached = append(r.rep.Cached, "run/installed")
	}
	in.Installed = installed
	ran, err := RunImage(ctx, in, bin)
	if err != nil {
		return nil, err
	}
	if installed != nil && !installed.Restore {
		if _, err := os.Stat(filepath.Join(installed.Dir, imagebuilder.InstalledArchive)); err == nil {
			if err := cache.Put("install", installedKey, in.Key.Install(), installed.Dir); err != nil {
				r.log.Warn("step cache: not storing the installed package tree", "err", err)
			}
		}
	}
	if err := cache.Put("run", runKey, ran, bin); err != nil {
		r.log.Warn("step cache: not storing the run", "err", err)
	}
	return ran, nil
}

// installedTree is the run's installed package tree: restored from the
// step cache when an entry for key's InstallKey is there, else an empty
// directory make image saves it into; nil without a step cache.
func installedTree(cache *StepCache, key RunKey, dir string) (*imagebuilder.InstalledTree, string, error) {
	if cache.Dir == "" {
		return nil, "", nil
	}
	k, err := cache.Key("install", installStepVersion, key.Install())
	if err != nil {
		return nil, "", err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, "", err
	}
	var recorded InstallKey
	if cache.Get("install", k, &recorded, dir) {
		// The container's build user reads it, whatever the caller's umask.
		if err := container.MakeReadable(dir); err != nil {
			return nil, "", err
		}
		return &imagebuilder.InstalledTree{Dir: dir, Restore: true}, k, nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	return &imagebuilder.InstalledTree{Dir: dir}, k, os.Chmod(dir, 0o755)
}

// compileInput names the daemon's source and toolchain by hash.
func compileInput(ctx context.Context, o Options) (CompileInput, error) {
	in := CompileInput{ModuleDir: o.Root, GOARCH: o.Profile.Daemon.GOARCH, GOMIPS: o.Profile.Daemon.GOMIPS, Version: o.Version}
	in.From = stableOrigin(o.Root)
	if o.Root == "" {
		in.Source, in.From = torwrt.Source, gobuild.EmbeddedSource
	}
	var err error
	if in.SourceSHA256, err = SourceSHA256(o.Root); err != nil {
		return in, fmt.Errorf("hashing the daemon's source: %w", err)
	}
	if in.GoVersion, err = gobuild.GoVersion(ctx); err != nil {
		return in, err
	}
	return in, nil
}

// compileCached is Compile through the step cache: the binary is replayed
// when source, toolchain, target, version and imgbuild are unchanged, and
// checked against the recorded sha256 and size.
func compileCached(ctx context.Context, c *StepCache, in CompileInput, tool string) (*gobuild.Result, bool, error) {
	key, err := c.Key("compile", compileStepVersion, struct {
		In   CompileInput `json:"in"`
		Tool string       `json:"tool"`
	}{in, tool})
	if err != nil {
		return nil, false, err
	}
	unlock, err := c.Lock("compile", key)
	if err != nil {
		return nil, false, err
	}
	defer unlock()
	tmp, err := os.MkdirTemp("", "torwrt-compile-")
	if err != nil {
		return nil, false, err
	}
	defer os.RemoveAll(tmp)
	var res gobuild.Result
	if c.Get("compile", key, &res, tmp) {
		bin, err := os.ReadFile(filepath.Join(tmp, "daemon"))
		if err == nil && sha256Hex(bin) == res.SHA256 && len(bin) == res.Size {
			res.Binary = bin
			return &res, true, nil
		}
	}
	out, err := Compile(ctx, in)
	if err != nil {
		return nil, false, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "daemon"), out.Binary, 0o644); err != nil {
		return nil, false, err
	}
	if err := c.Put("compile", key, out, tmp); err != nil {
		return nil, false, err
	}
	return out, false, nil
}

// stableOrigin is where an input came from, as the build report records
// it: a directory on this machine by its last two elements only
// ("profiles/gl-ar150"), so that the report is the same wherever the
// checkout or vendor directory is; embedded inputs as they say.
func stableOrigin(origin string) string {
	if !filepath.IsAbs(origin) {
		return origin
	}
	return "directory " + filepath.ToSlash(filepath.Join(filepath.Base(filepath.Dir(origin)), filepath.Base(origin)))
}

func checkSignerTrusted(s signer.Signer, keys []*usign.PublicKey) error {
	fp, err := signer.UsignFingerprint(s)
	if err != nil {
		return fmt.Errorf("build: %w", err)
	}
	for _, k := range keys {
		if k.Fingerprint == fp {
			return nil
		}
	}
	return fmt.Errorf("build: signing key %s is not among the release keys shipped in the image; routers would refuse this image's updates", fp)
}

func sortStrings(s []string) { sort.Strings(s) }

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
