// Package build runs the image pipeline for one profile:
//
//	resolve → fetch → compile → render → run → post → outputs
//
// resolve checks the profile against its lock; fetch pulls the ImageBuilder
// by digest and the locked packages into content-addressed caches; compile
// cross-builds the router daemon; render writes the normalized overlay;
// run drives `make image` in the container with no network; post strips
// the ImageBuilder's signature, normalizes the root filesystem's times,
// checks board, version and size, and signs; outputs lands everything in
// dist/<profile>/ in one rename.
package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/torwrt/torwrt"
	"github.com/torwrt/torwrt/internal/brand"
	"github.com/torwrt/torwrt/internal/container"
	"github.com/torwrt/torwrt/internal/feed"
	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/gobuild"
	"github.com/torwrt/torwrt/internal/imagebuilder"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/nftmods"
	"github.com/torwrt/torwrt/internal/normalize"
	"github.com/torwrt/torwrt/internal/pkgdb"
	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/progress"
	"github.com/torwrt/torwrt/internal/provenance"
	"github.com/torwrt/torwrt/internal/release"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/squashfs"
	"github.com/torwrt/torwrt/internal/usign"
)

// Options configure one build. Paths are host paths.
type Options struct {
	Root     string // torwrt checkout to compile the daemon from; "": the source embedded in imgbuild
	Profile  *profile.Profile
	Lock     *profile.Lock
	Brand    *brand.Brand
	OutDir   string // dist
	CacheDir string
	WorkDir  string // scratch; removed unless KeepWork
	KeepWork bool
	Engine   string
	Signer   imagesig.Signer
	// ReleaseKeys are shipped in /etc/opkg/keys and trusted by the
	// updater. The signer's key must be one of them.
	ReleaseKeys []*usign.PublicKey
	// BuildKey, when set, signs the image with a short-lived build key
	// the release key certifies (a 2-element ucert chain, as OpenWrt's
	// own build does); nil: the release key signs directly.
	BuildKey *imagesig.BuildKeyOptions
	// PackageSources are local directories holding package files.
	PackageSources []string
	// Simulated marks a build against the simulated ImageBuilder; it is
	// written into output names and the report.
	Simulated bool
	// InsecureRegistry allows a plain-HTTP registry on 127.0.0.1 (the
	// in-process one the simulated ImageBuilder is served from).
	InsecureRegistry bool
	// ToolVersion is imgbuild's own version, for the SBOM's tools entry.
	ToolVersion string
	// RegistryMirrors: see container.Cache.Mirrors (Simulation.Mirrors).
	RegistryMirrors map[string]string
	Version         string // firmware version, e.g. 0.1.0
	// Country overrides the brand's Wi-Fi country (ISO 3166-1 alpha-2);
	// a build with neither fails.
	Country string
	// Build is the monotonic build number the image states in
	// /etc/torwrt/release.json and the release manifest lists; 0 means 1.
	Build uint64
	// Invocation, BuilderID, SourceRepo and SourceCommit go into the
	// provenance as they are; they must not depend on the machine.
	Invocation   []string
	BuilderID    string
	SourceRepo   string
	SourceCommit string
	Progress     io.Writer
}

// Report is the build report, written as build-report.json.
type Report struct {
	Profile         string          `json:"profile"`
	Brand           string          `json:"brand"`
	Channel         string          `json:"channel"` // the brand's release channel; release prepare writes it into the manifest
	Simulated       bool            `json:"simulated"`
	Note            string          `json:"note,omitempty"`
	Version         string          `json:"version"`
	Build           uint64          `json:"build"`
	SourceDateEpoch int64           `json:"source_date_epoch"`
	ImageBuilder    string          `json:"imagebuilder_image"`
	Engine          string          `json:"engine"`
	LockSHA256      string          `json:"lock_sha256"`
	ProfileSHA256   string          `json:"profile_sha256"`
	Daemon          *gobuild.Result `json:"daemon"`
	OverlaySHA256   string          `json:"overlay_sha256"`
	Packages        []string        `json:"packages"`
	// PackageManager is the ImageBuilder's: apk or opkg.
	PackageManager string `json:"package_manager"`
	// InstalledInImage counts the packages the image's own package
	// database (apk's installed, opkg's status) lists; they must equal
	// Packages.
	InstalledInImage int               `json:"installed_in_image"`
	Normalize        *normalize.Result `json:"normalize"`
	StrippedIBSig    bool              `json:"stripped_imagebuilder_signature"`
	Image            string            `json:"image"`
	ImageSHA256      string            `json:"image_sha256"`
	ImageSize        int64             `json:"image_size"`
	RootfsBytes      int64             `json:"payload_size"`
	SizeLimit        int64             `json:"size_limit"`
	SignedBy         string            `json:"signed_by"`
	Board            string            `json:"board"`
	Outputs          []string          `json:"outputs"`
	// DistDir and Timings are this run's, not the build's: they are not
	// written into build-report.json, which is byte-reproducible like
	// every other file in dist/ (`build --json` shows them).
	DistDir string            `json:"-"`
	Timings map[string]string `json:"-"`
	// Warnings are problems a test profile is built with; a release
	// profile fails on them instead.
	Warnings []string `json:"warnings,omitempty"`
	// ProfileFrom and BrandFrom say where the profile and the brand were
	// read: a directory, or embedded in imgbuild.
	ProfileFrom string `json:"profile_from"`
	BrandFrom   string `json:"brand_from"`
}

// ErrTooBig: the image does not fit the board's flash.
var ErrTooBig = errors.New("image is larger than the profile's image_size_limit")

// ErrDrift: the ImageBuilder installed packages the lock does not pin.
var ErrDrift = errors.New("installed packages differ from the lock file")

type pipeline struct {
	o      Options
	rep    *Report
	work   string
	logf   func(format string, a ...any)
	pr     *progress.Printer // the profile's progress lines, on stderr
	runner container.Runner
	image  *container.Image
	// ibManifest is the ImageBuilder's .manifest as written, installed
	// the packages it lists.
	ibManifest []byte
	// imageDB is the package database read out of the built image.
	imageDB   *pkgdb.Installed
	installed []imagebuilder.Package
}

// Run builds one profile.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Profile == nil || o.Lock == nil || o.Signer == nil {
		return nil, errors.New("build: profile, lock and signer are required")
	}
	if o.Brand == nil {
		return nil, errors.New("build: brand is required")
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Build == 0 {
		o.Build = 1
	}
	if err := o.Lock.Check(o.Profile); err != nil {
		return nil, fmt.Errorf("lock file: %w", err)
	}
	if err := checkSignerTrusted(o); err != nil {
		return nil, err
	}
	if _, err := wifiCountry(o); err != nil {
		return nil, err
	}
	p := &pipeline{o: o}
	// The caller's progress printer (a terminal's live line, --verbose),
	// else plain lines on o.Progress; the context carries it to the
	// ImageBuilder driver's heartbeat.
	pr := progress.FromContext(ctx)
	if pr == nil {
		pr = progress.New(o.Progress, progress.Options{})
	}
	p.pr = pr.For(o.Profile.ID)
	ctx = progress.NewContext(ctx, p.pr)
	p.logf = p.pr.Printf
	p.rep = &Report{
		Profile: o.Profile.ID, Brand: o.Brand.ID, Channel: o.Brand.Channel, Simulated: o.Simulated, Version: o.Version, Build: o.Build,
		SourceDateEpoch: o.Profile.OpenWrt.SourceDateEpoch, ImageBuilder: o.Lock.Image.Ref,
		ProfileSHA256: o.Profile.SHA256, Board: o.Profile.Board, Timings: map[string]string{},
	}
	p.rep.ProfileFrom, p.rep.BrandFrom = stableOrigin(o.Profile.Origin), stableOrigin(o.Brand.Dir)
	p.logf("profile from %s, brand %s from %s", o.Profile.Origin, o.Brand.ID, o.Brand.Dir)
	if o.Simulated {
		p.rep.Note = "SIMULATED ImageBuilder: this image is a test artifact of torwrt's simulated ImageBuilder, not firmware for a real device"
	}
	lockBytes, err := o.Lock.Marshal()
	if err != nil {
		return nil, err
	}
	p.rep.LockSHA256 = sha256Hex(lockBytes)

	work := o.WorkDir
	if work == "" {
		if work, err = os.MkdirTemp("", "torwrt-build-"); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	p.work = work
	failed := true
	defer func() {
		// A failed build keeps its scratch directory: it holds the
		// ImageBuilder's full log and the inputs it was given.
		if !failed && !o.KeepWork {
			os.RemoveAll(work)
		}
	}()
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"fetch", p.fetch},
		{"compile", p.compile},
		{"render", p.render},
		{"run", p.run},
		{"post", p.post},
		{"outputs", p.outputs},
	}
	start := time.Now()
	var took []string
	for _, s := range steps {
		t0 := time.Now()
		st := p.pr.Step(s.name)
		if err := s.fn(ctx); err != nil {
			st.Fail()
			return nil, fmt.Errorf("%s: %s: %w\n(scratch directory kept for inspection: %s)", o.Profile.ID, s.name, err, work)
		}
		took = append(took, s.name+" "+progress.Duration(st.Done()))
		p.rep.Timings[s.name] = time.Since(t0).Round(time.Millisecond).String()
	}
	p.logf("built in %s (%s)", progress.Duration(time.Since(start)), strings.Join(took, ", "))
	failed = false
	return p.rep, nil
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

func checkSignerTrusted(o Options) error {
	fp := o.Signer.Fingerprint()
	for _, k := range o.ReleaseKeys {
		if k.Fingerprint == fp {
			return nil
		}
	}
	return fmt.Errorf("build: signing key %s is not among the release keys shipped in the image; routers would refuse this image's updates", fp)
}

func (p *pipeline) fetch(ctx context.Context) error {
	cache := &container.Cache{Dir: filepath.Join(p.o.CacheDir, "images"), Progress: p.pr, Insecure: p.o.InsecureRegistry, Mirrors: p.o.RegistryMirrors}
	img, err := cache.Pull(ctx, p.o.Lock.Image.Ref)
	if err != nil {
		return err
	}
	p.image = img
	pc := &feed.Cache{Dir: filepath.Join(p.o.CacheDir, "packages"), Sources: p.o.PackageSources, Progress: p.pr.DebugWriter()}
	if err := pc.Fetch(ctx, p.o.Lock); err != nil {
		return err
	}
	feedDir := filepath.Join(p.work, "feed")
	switch p.o.Lock.Manager() {
	case profile.APK:
		err = pc.WriteAPK(ctx, p.o.Lock, feedDir, imagebuilder.FeedKeyName)
	default:
		err = pc.Write(ctx, p.o.Lock, feedDir, controlFields)
	}
	if err != nil {
		return err
	}
	// The container user reads the feed; modes are set explicitly so the
	// caller's umask cannot make it unreadable (or change anything else).
	return chmodTree(feedDir, 0o755, 0o644)
}

func chmodTree(dir string, dirMode, fileMode os.FileMode) error {
	return filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(path, dirMode)
		}
		if d.Type().IsRegular() {
			return os.Chmod(path, fileMode)
		}
		return nil
	})
}

func (p *pipeline) compile(ctx context.Context) error {
	res, err := gobuild.Build(ctx, gobuild.Request{
		ModuleDir: p.o.Root, Source: torwrt.Source, Package: "./cmd/verify", GOOS: "linux",
		GOARCH: p.o.Profile.Daemon.GOARCH, GOMIPS: p.o.Profile.Daemon.GOMIPS, Version: p.o.Version,
	})
	if err != nil {
		return err
	}
	p.rep.Daemon = res
	p.logf("daemon %s/%s: %d bytes, sha256 %.16s…, %s, from %s", p.o.Profile.Daemon.GOARCH, p.o.Profile.Daemon.GOMIPS, res.Size, res.SHA256, res.GoVersion, res.From)
	res.From = stableOrigin(res.From)
	return nil
}

func (p *pipeline) render(ctx context.Context) error {
	sum, err := renderOverlay(ctx, p.o, p.rep.Daemon.Binary, filepath.Join(p.work, "files"))
	if err != nil {
		return err
	}
	p.rep.OverlaySHA256 = sum
	return nil
}

func (p *pipeline) run(ctx context.Context) error {
	runner, err := container.NewRunner(p.o.Engine, container.RunnerOptions{
		WorkRoot: filepath.Join(p.o.CacheDir, "host-runner"),
		Logf:     p.logf,
		Debugf:   p.pr.Debugf,
	})
	if err != nil {
		return err
	}
	p.runner = runner
	p.rep.Engine = runner.Engine()
	d := &imagebuilder.Driver{Runner: runner, IBImage: p.image, LogDir: filepath.Join(p.work, "logs"), Progress: nil}
	feedDir := filepath.Join(p.work, "feed")
	caps, err := d.Capabilities()
	if err != nil {
		return err
	}
	if caps.PackageManager != p.o.Lock.Manager() {
		return fmt.Errorf("%w: the ImageBuilder %s uses %s, its lock was made for %s; run: imgbuild lock --profile %s", ErrDrift, p.image.Digest, caps.PackageManager, p.o.Lock.Manager(), p.o.Profile.ID)
	}
	p.rep.PackageManager = caps.PackageManager
	if err := d.WriteRepositories(feedDir, p.o.Lock.HasBundled()); err != nil {
		return err
	}
	bin := filepath.Join(p.work, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	req := imagebuilder.Request{
		Profile:          p.o.Profile.IBProfile,
		Packages:         p.o.Profile.MakePackages(),
		DisabledServices: p.o.Profile.DisabledServices,
		Files:            filepath.Join(p.work, "files"),
		Feed:             feedDir,
		BinDir:           bin,
		SourceDateEpoch:  p.o.Profile.OpenWrt.SourceDateEpoch,
	}
	p.logf("make image PROFILE=%s in %s (%s), network off", req.Profile, runner.Engine(), p.image.Digest)
	return d.Image(ctx, req)
}

// post turns the ImageBuilder's output into the unsigned, normalized,
// checked image.
func (p *pipeline) post(ctx context.Context) error {
	bin := filepath.Join(p.work, "bin")
	out, err := imagebuilder.Outputs(bin, p.o.Profile.IBProfile)
	if err != nil {
		return err
	}
	sumsData, err := os.ReadFile(filepath.Join(bin, "sha256sums"))
	if err != nil {
		return fmt.Errorf("imagebuilder output: %w", err)
	}
	sums, err := imagebuilder.ParseSHA256Sums(sumsData)
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(filepath.Join(bin, out.Sysupgrade))
	if err != nil {
		return fmt.Errorf("imagebuilder output: %w", err)
	}
	if got := sha256Hex(raw); sums[out.Sysupgrade] != got {
		return fmt.Errorf("imagebuilder output: %s has sha256 %s, its sha256sums says %q", out.Sysupgrade, got, sums[out.Sysupgrade])
	}
	if err := p.checkManifest(out.Manifest); err != nil {
		return err
	}
	if err := p.checkFirewallModules(); err != nil {
		return err
	}

	layout, err := fwimage.Parse(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		return fmt.Errorf("imagebuilder image: %w", err)
	}
	if _, ok := layout.Last(fwimage.TypeSignature); ok {
		p.rep.StrippedIBSig = true
	}
	metaChunk, ok := layout.Last(fwimage.TypeMetadata)
	if !ok {
		return errors.New("imagebuilder image has no metadata chunk; stock sysupgrade on this target would refuse it")
	}
	metaData := raw[metaChunk.Offset : metaChunk.Offset+metaChunk.Len]
	meta, _, err := fwimage.ParseMetadataChunk(metaData)
	if err != nil {
		return err
	}
	if !meta.Supports(p.o.Profile.Board) {
		return fmt.Errorf("image metadata supports %v, not the profile's board %q", meta.SupportedDevices, p.o.Profile.Board)
	}
	if meta.Version.Version != p.o.Profile.OpenWrt.Version {
		return fmt.Errorf("image metadata says OpenWrt %s, the profile says %s", meta.Version.Version, p.o.Profile.OpenWrt.Version)
	}

	scratch := filepath.Join(p.work, "normalize")
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return err
	}
	var fps []string
	for _, k := range p.o.ReleaseKeys {
		fps = append(fps, k.Fingerprint.String())
	}
	payload, nres, err := normalize.Rootfs(ctx, raw[:layout.PayloadEnd], p.o.Profile.OpenWrt.SourceDateEpoch, scratch,
		normalize.KeepOnlyKeys("etc/opkg/keys", fps), normalize.KeepOnlyKeys("etc/torwrt/keys", fps),
		// No package manager runs on the router: apk's keys and feed list
		// are removed like opkg, so nothing on it trusts upstream feeds.
		normalize.KeepOnlyKeys("etc/apk/keys", nil), normalize.KeepOnlyKeys("etc/apk/repositories.d", nil))
	if err != nil {
		return err
	}
	if nres.Repacked {
		// The tree was normalized inside the ImageBuilder, before its own
		// mksquashfs ran with its own options (imagebuilder's hook).
		// Re-packing here would use the host's squashfs-tools and options,
		// so the image would depend on the machine: refuse instead.
		return fmt.Errorf("the ImageBuilder's root filesystem is not normalized (%s): torwrt normalizes the tree inside the ImageBuilder, before its own mksquashfs4 runs; this one's did not take effect, and re-packing with the host's squashfs-tools would make the image depend on the host", strings.Join(nres.Reasons, "; "))
	}
	os.RemoveAll(scratch)
	p.rep.Normalize = nres
	if err := p.checkInstalled(payload); err != nil {
		return err
	}
	limit, _ := p.o.Profile.ImageSizeBytes()
	p.rep.SizeLimit, p.rep.RootfsBytes = limit, int64(len(payload))
	if int64(len(payload)) > limit {
		return fmt.Errorf("%w: %d bytes, limit %d (%s); remove packages or overlay files", ErrTooBig, len(payload), limit, p.o.Profile.ImageSizeLimit)
	}
	var unsigned bytes.Buffer
	if err := fwimage.AppendChunk(&unsigned, bytes.NewReader(payload), fwimage.TypeMetadata, metaData); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(p.work, "unsigned.bin"), unsigned.Bytes(), 0o644)
}

func (p *pipeline) checkManifest(data []byte) error {
	installed, err := imagebuilder.ParseManifest(data)
	if err != nil {
		return err
	}
	p.installed = installed
	var problems []string
	got := map[string]bool{}
	for _, pk := range installed {
		got[pk.Name] = true
		l, ok := p.o.Lock.Package(pk.Name)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s %s is installed but not pinned", pk.Name, pk.Version))
		case l.Version != pk.Version:
			problems = append(problems, fmt.Sprintf("%s installed at %s, lock pins %s", pk.Name, pk.Version, l.Version))
		}
		p.rep.Packages = append(p.rep.Packages, pk.Name+" "+pk.Version)
	}
	for _, l := range p.o.Lock.Packages {
		if !got[l.Name] {
			problems = append(problems, fmt.Sprintf("%s is pinned but not installed", l.Name))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return fmt.Errorf("%w: %s; run: imgbuild lock --profile %s", ErrDrift, strings.Join(problems, "; "), p.o.Profile.ID)
	}
	p.ibManifest = data
	return nil
}

// checkFirewallModules refuses an image whose kernel-module packages
// cannot load the rendered firewall: nft -f would fail at boot and the
// router would sit in the panic table, offline.
func (p *pipeline) checkFirewallModules() error {
	const onRouter = "/etc/torwrt/firewall.nft"
	ruleset, err := os.ReadFile(filepath.Join(p.work, "files", filepath.FromSlash(onRouter)))
	if err != nil {
		return fmt.Errorf("reading the rendered firewall: %w", err)
	}
	names := make([]string, 0, len(p.installed))
	for _, pk := range p.installed {
		names = append(names, pk.Name)
	}
	err = nftmods.Check(onRouter, ruleset, names)
	if err != nil && p.o.Profile.TestProfile != "" {
		// A test profile (an older ImageBuilder generation kept to test
		// the pipeline against) is built and reported, never released.
		p.rep.Warnings = append(p.rep.Warnings, "firewall kernel modules: "+err.Error())
		p.logf("WARNING (test profile %s, not a release target): the firewall would not load on this image: %v", p.o.Profile.ID, err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("firewall kernel modules: %w (profiles/%s/profile.yaml), then run: imgbuild lock --profile %s", err, p.o.Profile.ID, p.o.Profile.ID)
	}
	return nil
}

// checkInstalled reads the package database out of the image's own root
// filesystem (what is really installed, whatever the ImageBuilder's
// .manifest says: apk's /lib/apk/db/installed or opkg's status) and
// requires it to list exactly the manifest's packages at the same
// versions. The lock was already compared with the manifest.
func (p *pipeline) checkInstalled(payload []byte) error {
	fsys, _, err := squashfs.OpenInImage(bytes.NewReader(payload), int64(len(payload)))
	if err != nil {
		return fmt.Errorf("reading the image's root filesystem: %w", err)
	}
	db, err := pkgdb.Read(fsys, p.o.Lock.Manager())
	if err != nil {
		return err
	}
	names := make([]string, len(p.installed))
	versions := make([]string, len(p.installed))
	for i, pk := range p.installed {
		names[i], versions[i] = pk.Name, pk.Version
	}
	if problems := db.Compare("ImageBuilder's .manifest", names, versions); len(problems) > 0 {
		return fmt.Errorf("%w: the image's package database (/%s) disagrees with the ImageBuilder's .manifest: %s", ErrDrift, db.Path, strings.Join(problems, "; "))
	}
	p.rep.InstalledInImage = len(db.Packages)
	p.imageDB = db
	return nil
}

// ImageName is the published file name of the sysupgrade image.
func ImageName(o Options) string {
	sim := ""
	if o.Simulated {
		sim = "-SIMULATED"
	}
	return fmt.Sprintf("%s-%s-%s%s-squashfs-sysupgrade.bin", o.Brand.ID, o.Version, o.Profile.ID, sim)
}

// outputs signs the image and moves the finished directory into place.
func (p *pipeline) outputs(ctx context.Context) error {
	stage, err := os.MkdirTemp(p.o.OutDir, "."+p.o.Profile.ID+".incomplete-")
	if err != nil {
		if err := os.MkdirAll(p.o.OutDir, 0o755); err != nil {
			return err
		}
		if stage, err = os.MkdirTemp(p.o.OutDir, "."+p.o.Profile.ID+".incomplete-"); err != nil {
			return err
		}
	}
	defer os.RemoveAll(stage)
	if err := os.Chmod(stage, 0o755); err != nil {
		return err
	}
	name := ImageName(p.o)
	var res *imagesig.FileResult
	verifyAt := time.Time{}
	if bk := p.o.BuildKey; bk != nil {
		res, err = imagesig.SignFileWithBuildKey(filepath.Join(p.work, "unsigned.bin"), filepath.Join(stage, name), p.o.Signer, *bk)
		verifyAt = bk.NotBefore
	} else {
		res, err = imagesig.SignFile(filepath.Join(p.work, "unsigned.bin"), filepath.Join(stage, name), p.o.Signer)
	}
	if err != nil {
		return err
	}
	p.rep.Image, p.rep.ImageSHA256, p.rep.SignedBy = name, res.SHA256, res.Key
	fi, err := os.Stat(filepath.Join(stage, name))
	if err != nil {
		return err
	}
	p.rep.ImageSize = fi.Size()
	// Verify what was written with the keys that go into the image, as the
	// router will.
	kr, err := usign.NewKeyring(p.o.ReleaseKeys...)
	if err != nil {
		return err
	}
	if _, err := imagesig.VerifyFile(filepath.Join(stage, name), kr, imagesig.Options{Board: p.o.Profile.Board, Now: verifyAt}); err != nil {
		return fmt.Errorf("self-check of the signed image failed: %w", err)
	}
	manifestName := strings.TrimSuffix(name, "-squashfs-sysupgrade.bin") + ".manifest"
	ibManifest := p.ibManifest
	lockBytes, err := p.o.Lock.Marshal()
	if err != nil {
		return err
	}
	files, err := p.attestations(ctx, stage, name, ibManifest)
	if err != nil {
		return err
	}
	files[manifestName] = ibManifest
	files[release.LockFile] = lockBytes
	for n, data := range files {
		if err := os.WriteFile(filepath.Join(stage, n), data, 0o644); err != nil {
			return err
		}
	}
	published := []string{name, name + ".sig"}
	for n := range files {
		published = append(published, n)
	}
	sort.Strings(published)
	p.rep.Outputs = append(append([]string{}, published...), "build-report.json", "sha256sums")
	final := filepath.Join(p.o.OutDir, p.o.Profile.ID)
	p.rep.DistDir = final
	rep, err := json.MarshalIndent(p.rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(stage, "build-report.json"), append(rep, '\n'), 0o644); err != nil {
		return err
	}
	// sha256sums covers what two builds of the same inputs reproduce; the
	// build report (timings, paths) is left out.
	if err := writeSHA256Sums(stage, published); err != nil {
		return err
	}
	old := final + ".old"
	os.RemoveAll(old)
	if _, err := os.Stat(final); err == nil {
		if err := os.Rename(final, old); err != nil {
			return err
		}
	}
	if err := os.Rename(stage, final); err != nil {
		os.Rename(old, final)
		return err
	}
	os.RemoveAll(old)
	return nil
}

// attestations makes the files that let anyone check the image without
// trusting this machine: the cosign-format detached signature and public
// key, the CycloneDX SBOM, and the SLSA provenance statement, plain and as
// a DSSE envelope signed with the release key. All are deterministic.
func (p *pipeline) attestations(ctx context.Context, stage, name string, ibManifest []byte) (map[string][]byte, error) {
	detached, err := usign.ReadSignatureFile(filepath.Join(stage, name+".sig"))
	if err != nil {
		return nil, err
	}
	var pub *usign.PublicKey
	for _, k := range p.o.ReleaseKeys {
		if k.Fingerprint == detached.Fingerprint {
			pub = k
		}
	}
	if pub == nil {
		return nil, fmt.Errorf("no release key has fingerprint %s", detached.Fingerprint)
	}
	pem, err := signer.PublicKeyPEM(pub.Key)
	if err != nil {
		return nil, err
	}
	img := provenance.Subject{Name: name, SHA256: p.rep.ImageSHA256}
	sbom, err := provenance.SBOM(provenance.SBOMInput{
		Image: img, ImageSize: p.rep.ImageSize, Profile: p.o.Profile.ID, Brand: p.o.Brand.ID,
		Version: p.o.Version, Board: p.o.Profile.Board, Simulated: p.o.Simulated,
		ImageBuilder: p.o.Lock.Image.Ref, Manifest: ibManifest, Lock: p.o.Lock, Installed: p.imageDB,
		Daemon: p.rep.Daemon.Binary, SourceDateEpoch: p.o.Profile.OpenWrt.SourceDateEpoch, Tool: p.o.ToolVersion,
	})
	if err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	builder := p.o.BuilderID
	if builder == "" {
		builder = "https://torwrt.org/imgbuild/local"
	}
	stmt, err := provenance.Statement(provenance.StatementInput{
		Subjects: []provenance.Subject{img}, BuilderID: builder, Invocation: p.o.Invocation,
		Profile: p.o.Profile.ID, Brand: p.o.Brand.ID, Version: p.o.Version, Simulated: p.o.Simulated,
		ImageBuilder: p.o.Lock.Image.Ref, LockSHA256: p.rep.LockSHA256, ProfileSHA256: p.o.Profile.SHA256,
		GoVersion: p.rep.Daemon.GoVersion, DaemonSHA256: p.rep.Daemon.SHA256,
		DaemonArgv: p.rep.Daemon.Argv, DaemonEnv: p.rep.Daemon.Env,
		SourceRepo: p.o.SourceRepo, SourceCommit: p.o.SourceCommit,
		SourceDateEpoch: p.o.Profile.OpenWrt.SourceDateEpoch, Engine: p.rep.Engine,
		Byproducts: []provenance.Subject{{Name: release.SBOMFile, SHA256: sha256Hex(sbom)}},
	})
	if err != nil {
		return nil, fmt.Errorf("provenance: %w", err)
	}
	env, err := provenance.SignDSSE(ctx, provenance.PayloadType, stmt, provenance.UsignDSSE(p.o.Signer))
	if err != nil {
		return nil, fmt.Errorf("signing provenance: %w", err)
	}
	return map[string][]byte{
		name + release.CosignSuffix: release.CosignSignature(detached),
		release.CosignPubFile:       pem,
		release.SBOMFile:            sbom,
		release.StatementFile:       stmt,
		release.ProvenanceFile:      env,
	}, nil
}

func writeSHA256Sums(dir string, names []string) error {
	var b strings.Builder
	sorted := append([]string{}, names...)
	sort.Strings(sorted)
	for _, n := range sorted {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s *%s\n", sha256Hex(data), n)
	}
	return os.WriteFile(filepath.Join(dir, "sha256sums"), []byte(b.String()), 0o644)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
