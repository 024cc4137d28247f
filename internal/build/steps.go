package build

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/torwrt/torwrt/internal/brand"
	"github.com/torwrt/torwrt/internal/container"
	"github.com/torwrt/torwrt/internal/dist"
	"github.com/torwrt/torwrt/internal/feed"
	"github.com/torwrt/torwrt/internal/fwimage"
	"github.com/torwrt/torwrt/internal/gobuild"
	"github.com/torwrt/torwrt/internal/imagebuilder"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/imagesig/imagesign"
	"github.com/torwrt/torwrt/internal/normalize"
	"github.com/torwrt/torwrt/internal/pkgdb"
	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/progress"
	"github.com/torwrt/torwrt/internal/provenance"
	"github.com/torwrt/torwrt/internal/signer"
	"github.com/torwrt/torwrt/internal/usign"
)

// The steps, each a function of explicit inputs with an explicit output.
// Run (build.go) calls them in order and owns the cache, the timings and
// the work directory; a step sees none of them.

// FetchInput: the ImageBuilder image and the locked packages.
type FetchInput struct {
	Lock             *profile.Lock
	CacheDir         string
	PackageSources   []string
	InsecureRegistry bool
	RegistryMirrors  map[string]string
	// FeedDir is where the local feed is written.
	FeedDir string
}

// Fetched is the pulled image and the local feed.
type Fetched struct {
	Image   *container.Image
	FeedDir string
}

// Fetch pulls the ImageBuilder by digest, the locked packages by sha256,
// and writes them as a local feed (opkg Packages or signed apk
// packages.adb).
func Fetch(ctx context.Context, in FetchInput) (*Fetched, error) {
	pr := progress.FromContext(ctx)
	cache := &container.Cache{Dir: filepath.Join(in.CacheDir, "images"), Progress: pr, Insecure: in.InsecureRegistry, Mirrors: in.RegistryMirrors}
	img, err := cache.Pull(ctx, in.Lock.Image.Ref)
	if err != nil {
		return nil, err
	}
	pc := &feed.Cache{Dir: filepath.Join(in.CacheDir, "packages"), Sources: in.PackageSources, Progress: pr.DebugWriter()}
	if err := pc.Fetch(ctx, in.Lock); err != nil {
		return nil, err
	}
	switch in.Lock.Manager() {
	case profile.APK:
		err = pc.WriteAPK(ctx, in.Lock, in.FeedDir, imagebuilder.FeedKeyName)
	default:
		err = pc.Write(ctx, in.Lock, in.FeedDir, controlFields)
	}
	if err != nil {
		return nil, err
	}
	// The container user reads the feed; modes are set explicitly so the
	// caller's umask cannot make it unreadable (or change anything else).
	if err := container.MakeReadable(in.FeedDir); err != nil {
		return nil, err
	}
	return &Fetched{Image: img, FeedDir: in.FeedDir}, nil
}

// CompileInput: the router daemon's source and target. SourceSHA256 is
// the source tree's hash (SourceSHA256) and GoVersion the toolchain's,
// for the cache key; the compile itself reads ModuleDir or Source.
type CompileInput struct {
	ModuleDir    string `json:"-"`
	Source       fs.FS  `json:"-"`
	SourceSHA256 string `json:"source_sha256"`
	// From is where the source is, as the report records it.
	From      string `json:"from"`
	GoVersion string `json:"go_version"`
	GOARCH    string `json:"goarch"`
	GOMIPS    string `json:"gomips"`
	Version   string `json:"version"`
}

// Compile cross-builds cmd/verify for the router.
func Compile(ctx context.Context, in CompileInput) (*gobuild.Result, error) {
	res, err := gobuild.Build(ctx, gobuild.Request{
		ModuleDir: in.ModuleDir, Source: in.Source, Package: "./cmd/verify", GOOS: "linux",
		GOARCH: in.GOARCH, GOMIPS: in.GOMIPS, Version: in.Version,
	})
	if err != nil {
		return nil, err
	}
	if res.GoVersion != in.GoVersion {
		return nil, fmt.Errorf("the go command changed during the build: %s, then %s", in.GoVersion, res.GoVersion)
	}
	res.From = in.From
	return res, nil
}

// RenderInput: everything the router's files are made of.
type RenderInput struct {
	Profile     *profile.Profile
	Brand       *brand.Brand
	ReleaseKeys []*usign.PublicKey
	Country     string
	Version     string
	Build       uint64
	Simulated   bool
	Daemon      []byte
	// Dir is where the tree is written (the ImageBuilder's FILES=).
	Dir string
}

// Rendered is the overlay tree.
type Rendered struct {
	Dir        string
	TreeSHA256 string
	// Firewall is the rendered FirewallPath, which check compares with
	// the installed kernel modules.
	Firewall []byte
}

// Render writes the overlay.
func Render(ctx context.Context, in RenderInput) (*Rendered, error) {
	sum, err := renderOverlay(ctx, in, in.Dir)
	if err != nil {
		return nil, err
	}
	fw, err := os.ReadFile(filepath.Join(in.Dir, filepath.FromSlash(FirewallPath)))
	if err != nil {
		return nil, fmt.Errorf("reading the rendered firewall: %w", err)
	}
	return &Rendered{Dir: in.Dir, TreeSHA256: sum, Firewall: fw}, nil
}

// RunInput: one `make image`. The fields with JSON names are its cache key
// (runKey): the ImageBuilder by digest, the FILES tree by hash, the lock
// (which pins every package by sha256, so the feed) by hash, the make
// arguments and the epoch. The engine is not part of it: the image does
// not depend on it.
type RunInput struct {
	Engine  string               `json:"-"`
	Runner  container.Runner     `json:"-"`
	Image   *container.Image     `json:"-"`
	Profile *profile.Profile     `json:"-"`
	Lock    *profile.Lock        `json:"-"`
	Files   string               `json:"-"`
	Feed    string               `json:"-"`
	WorkDir string               `json:"-"`
	Key     RunKey               `json:"key"`
	Logf    func(string, ...any) `json:"-"`
	// Installed saves or restores the installed package tree (nil: plain
	// make image); see InstallKey.
	Installed *imagebuilder.InstalledTree `json:"-"`
}

// InstallKey is what the tree the ImageBuilder's package_install leaves
// depends on: a RunKey without the overlay (FilesSHA256) and the
// services to disable, which only later steps read. A build whose overlay
// changed restores that tree and runs make image from FILES on.
type InstallKey struct {
	ImageBuilder    string   `json:"imagebuilder"`
	ScriptsSHA256   string   `json:"scripts_sha256"`
	LockSHA256      string   `json:"lock_sha256"`
	IBProfile       string   `json:"ib_profile"`
	Packages        []string `json:"packages"`
	SourceDateEpoch int64    `json:"source_date_epoch"`
	Tool            string   `json:"tool"`
}

// Install is the RunKey's InstallKey.
func (k RunKey) Install() InstallKey {
	return InstallKey{
		ImageBuilder: k.ImageBuilder, ScriptsSHA256: k.ScriptsSHA256, LockSHA256: k.LockSHA256,
		IBProfile: k.IBProfile, Packages: k.Packages, SourceDateEpoch: k.SourceDateEpoch, Tool: k.Tool,
	}
}

// RunKey is what a run's output depends on.
type RunKey struct {
	ImageBuilder     string   `json:"imagebuilder"`
	ScriptsSHA256    string   `json:"scripts_sha256"`
	FilesSHA256      string   `json:"files_sha256"`
	LockSHA256       string   `json:"lock_sha256"`
	IBProfile        string   `json:"ib_profile"`
	Packages         []string `json:"packages"`
	DisabledServices []string `json:"disabled_services"`
	SourceDateEpoch  int64    `json:"source_date_epoch"`
	Tool             string   `json:"tool"`
}

// Ran is the run's output: BIN_DIR, and what the run learnt.
type Ran struct {
	BinDir         string `json:"-"`
	Engine         string `json:"engine"`
	PackageManager string `json:"package_manager"`
}

// RunImage runs `make image` offline in the container.
func RunImage(ctx context.Context, in RunInput, binDir string) (*Ran, error) {
	d := &imagebuilder.Driver{Runner: in.Runner, IBImage: in.Image, LogDir: filepath.Join(in.WorkDir, "logs")}
	caps, err := d.Capabilities()
	if err != nil {
		return nil, err
	}
	if caps.PackageManager != in.Lock.Manager() {
		return nil, fmt.Errorf("%w: the ImageBuilder %s uses %s, its lock was made for %s; run: imgbuild lock --profile %s", ErrDrift, in.Image.Digest, caps.PackageManager, in.Lock.Manager(), in.Profile.ID)
	}
	if err := d.WriteRepositories(in.Feed, in.Lock.HasBundled()); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return nil, err
	}
	req := imagebuilder.Request{
		Profile:          in.Profile.IBProfile,
		Packages:         in.Profile.MakePackages(),
		DisabledServices: in.Profile.DisabledServices,
		Files:            in.Files,
		Feed:             in.Feed,
		BinDir:           binDir,
		SourceDateEpoch:  in.Profile.OpenWrt.SourceDateEpoch,
		Installed:        in.Installed,
	}
	if in.Installed != nil && !caps.InstallTarget {
		in.Logf("this ImageBuilder's Makefile has no package_install sub-make: its installed package tree is not cached")
		req.Installed = nil
	}
	in.Logf("make image PROFILE=%s in %s (%s), network off", req.Profile, in.Runner.Engine(), in.Image.Digest)
	if err := d.Image(ctx, req); err != nil {
		return nil, err
	}
	return &Ran{BinDir: binDir, Engine: in.Runner.Engine(), PackageManager: caps.PackageManager}, nil
}

// IBOutput reads what `make image` wrote to binDir for profile into a
// CheckInput (Profile, Lock and Firewall are the caller's).
func IBOutput(binDir string, p *profile.Profile) (CheckInput, error) {
	out, err := imagebuilder.Outputs(binDir, p.IBProfile)
	if err != nil {
		return CheckInput{}, err
	}
	sums, err := os.ReadFile(filepath.Join(binDir, "sha256sums"))
	if err != nil {
		return CheckInput{}, fmt.Errorf("imagebuilder output: %w", err)
	}
	img, err := os.ReadFile(filepath.Join(binDir, out.Sysupgrade))
	if err != nil {
		return CheckInput{}, fmt.Errorf("imagebuilder output: %w", err)
	}
	return CheckInput{Profile: p, Sums: sums, ImageName: out.Sysupgrade, Image: img, Manifest: out.Manifest}, nil
}

// NormalizeInput: the checked image and what its tree must look like.
type NormalizeInput struct {
	Checked *Checked
	Epoch   int64
	// Keys are the fingerprints of the release keys, the only keys the
	// image may trust.
	Keys    []string
	Scratch string
}

// Normalized is the unsigned image: the payload with its metadata chunk.
type Normalized struct {
	Unsigned []byte
	Result   *normalize.Result
}

// Normalize checks that the root filesystem came normalized out of the
// ImageBuilder (times at the epoch, only release keys, no package feeds)
// and assembles the unsigned image. It never re-packs: a tree that is not
// normalized is refused.
func Normalize(ctx context.Context, in NormalizeInput) (*Normalized, error) {
	if err := os.MkdirAll(in.Scratch, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(in.Scratch)
	_, res, err := normalize.Rootfs(ctx, in.Checked.Payload, in.Epoch, in.Scratch,
		normalize.KeepOnlyKeys("etc/opkg/keys", in.Keys), normalize.KeepOnlyKeys("etc/torwrt/keys", in.Keys),
		// No package manager runs on the router: apk's keys and feed list
		// are removed like opkg, so nothing on it trusts upstream feeds.
		normalize.KeepOnlyKeys("etc/apk/keys", nil), normalize.KeepOnlyKeys("etc/apk/repositories.d", nil))
	if err != nil {
		return nil, err
	}
	if res.Repacked {
		// The tree was normalized inside the ImageBuilder, before its own
		// mksquashfs ran with its own options (imagebuilder's hook).
		// Re-packing here would use the host's squashfs-tools and options,
		// so the image would depend on the machine: refuse instead.
		return nil, fmt.Errorf("the ImageBuilder's root filesystem is not normalized (%s): torwrt normalizes the tree inside the ImageBuilder, before its own mksquashfs4 runs; this one's did not take effect, and re-packing with the host's squashfs-tools would make the image depend on the host", strings.Join(res.Reasons, "; "))
	}
	var unsigned bytes.Buffer
	if err := fwimage.AppendChunk(&unsigned, bytes.NewReader(in.Checked.Payload), fwimage.TypeMetadata, in.Checked.Metadata); err != nil {
		return nil, err
	}
	return &Normalized{Unsigned: unsigned.Bytes(), Result: res}, nil
}

// SignInput: the unsigned image file and who signs it.
type SignInput struct {
	Unsigned    string // path of the unsigned image
	Dest        string // path of the signed image; IMAGE.sig goes beside it
	Signer      signer.Signer
	BuildKey    *imagesig.BuildKeyOptions
	ReleaseKeys []*usign.PublicKey
	Board       string
}

// Signed is the signed image.
type Signed struct {
	SHA256 string
	Size   int64
	Key    string // the signing key's fingerprint
	// Detached is IMAGE.sig as written.
	Detached *usign.Signature
}

// Sign signs the image (fwtool chunk and detached IMAGE.sig) and checks
// the result with the keys that go into the image, as the router will.
func Sign(ctx context.Context, in SignInput) (*Signed, error) {
	var res *imagesign.FileResult
	var err error
	verifyAt := time.Time{}
	if bk := in.BuildKey; bk != nil {
		res, err = imagesign.SignFileWithBuildKey(ctx, in.Unsigned, in.Dest, in.Signer, *bk)
		verifyAt = bk.NotBefore
	} else {
		res, err = imagesign.SignFile(ctx, in.Unsigned, in.Dest, in.Signer)
	}
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(in.Dest)
	if err != nil {
		return nil, err
	}
	kr, err := usign.NewKeyring(in.ReleaseKeys...)
	if err != nil {
		return nil, err
	}
	if _, err := imagesig.VerifyFile(in.Dest, kr, imagesig.Options{Board: in.Board, Now: verifyAt}); err != nil {
		return nil, fmt.Errorf("self-check of the signed image failed: %w", err)
	}
	return &Signed{SHA256: res.SHA256, Size: fi.Size(), Key: res.Key, Detached: res.Signature}, nil
}

// WriteInput: everything dist/<profile>/ holds besides the signed image,
// which Sign already wrote into Stage.
type WriteInput struct {
	Stage  *dist.Stage
	Report *dist.Report
	Signed *Signed
	// Manifest is the ImageBuilder's .manifest; Lock the lock as used.
	Manifest    []byte
	Lock        *profile.Lock
	Installed   *pkgdb.Installed
	Daemon      []byte
	ReleaseKeys []*usign.PublicKey
	Signer      signer.Signer
	Tool        string
	Statement   dist.StatementInput
}

// Write makes the attestations (SBOM, provenance statement and its DSSE
// envelope, cosign signature and key), the lock, the .manifest, the report
// and sha256sums in the stage, and moves it into place. It fills the
// report's Outputs and DistDir.
func Write(ctx context.Context, in WriteInput) error {
	r := in.Report
	var pub *usign.PublicKey
	for _, k := range in.ReleaseKeys {
		if k.Fingerprint == in.Signed.Detached.Fingerprint {
			pub = k
		}
	}
	if pub == nil {
		return fmt.Errorf("no release key has fingerprint %s", in.Signed.Detached.Fingerprint)
	}
	files, err := dist.CosignFiles(r.Image, in.Signed.Detached, pub)
	if err != nil {
		return err
	}
	sbom, err := dist.SBOM(r, dist.SBOMInput{Manifest: in.Manifest, Lock: in.Lock, Installed: in.Installed, Daemon: in.Daemon, Tool: in.Tool})
	if err != nil {
		return err
	}
	st := in.Statement
	st.Byproducts = []provenance.Subject{{Name: dist.SBOMFile, SHA256: sha256Hex(sbom)}}
	stmt, err := dist.Statement(r, st)
	if err != nil {
		return err
	}
	env, err := provenance.SignDSSE(ctx, provenance.PayloadType, stmt, in.Signer)
	if err != nil {
		return fmt.Errorf("signing provenance: %w", err)
	}
	lockBytes, err := in.Lock.Marshal()
	if err != nil {
		return err
	}
	files[dist.SBOMFile] = sbom
	files[dist.StatementFile] = stmt
	files[dist.ProvenanceFile] = env
	files[dist.ManifestName(r.Image)] = in.Manifest
	files[dist.LockFile] = lockBytes
	published := []string{r.Image, r.Image + dist.SigSuffix}
	for n, data := range files {
		if err := in.Stage.Write(n, data); err != nil {
			return err
		}
		published = append(published, n)
	}
	sortStrings(published)
	r.Outputs = append(append([]string{}, published...), dist.ReportFile, dist.SumsFile)
	rep, err := r.Marshal()
	if err != nil {
		return err
	}
	if err := in.Stage.Write(dist.ReportFile, rep); err != nil {
		return err
	}
	// sha256sums covers the published files, not the report.
	if err := in.Stage.WriteSums(published); err != nil {
		return err
	}
	r.DistDir, err = in.Stage.Commit()
	return err
}
