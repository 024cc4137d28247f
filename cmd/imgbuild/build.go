package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/torwrt/torwrt/internal/brand"
	"github.com/torwrt/torwrt/internal/build"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/profile"
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
	profiles stringList
	all      bool
	brand    string
}

func (o *profileOptions) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.root, "root", "", "torwrt source tree (default: the enclosing directory with profiles/)")
	fs.Var(&o.profiles, "profile", "profile to build (repeatable), e.g. gl-ar150")
	fs.BoolVar(&o.all, "all", false, "build every profile under profiles/")
	fs.StringVar(&o.brand, "brand", "torwrt", "brand under brands/ to render into the image")
}

func (o *profileOptions) resolve() ([]*profile.Profile, error) {
	if o.root == "" {
		r, err := findRoot()
		if err != nil {
			return nil, err
		}
		o.root = r
	}
	ids := []string(o.profiles)
	if o.all {
		all, err := profile.List(filepath.Join(o.root, "profiles"))
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
		p, err := profile.Load(filepath.Join(o.root, "profiles"), id)
		if err != nil {
			if errors.Is(err, profile.ErrNotFound) {
				return nil, usageError{err}
			}
			return nil, err
		}
		if o.all && p.TestProfile != "" {
			// Test profiles (an older ImageBuilder generation, say) are
			// built by name only, never as part of a release.
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// redactedInvocation is the command line as it goes into the provenance,
// with secrets in key URIs (a PKCS#11 pin-value, say) blanked.
func redactedInvocation(args []string) []string {
	out := []string{"imgbuild", "build"}
	for _, a := range args {
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

// findRoot walks up from the working directory to the torwrt tree.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(filepath.Join(d, "profiles")); err == nil && fi.IsDir() {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				return d, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no torwrt source tree (profiles/ and go.mod) at or above %s; pass --root", dir)
		}
	}
}

// cacheOptions locate caches and scratch space.
type cacheOptions struct {
	cache    string
	workDir  string
	keepWork bool
}

func (o *cacheOptions) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.cache, "cache", "", "cache directory for images and packages (default: $XDG_CACHE_HOME/torwrt or ~/.cache/torwrt)")
	fs.StringVar(&o.workDir, "work-dir", "", "scratch directory (default: a fresh temporary directory)")
	fs.BoolVar(&o.keepWork, "keep-work", false, "keep the scratch directory for inspection")
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

func (o *signerOptions) signer(ctx context.Context, e env) (imagesig.Signer, error) {
	if o.key == "" {
		return nil, usagef("want --key RELEASE.sec (a usign key file, a PEM file, pkcs11:… or a KMS URI; make a throwaway one with: imgbuild keygen -o /tmp/k)")
	}
	s, err := signer.Open(ctx, o.key, signer.Options{Getenv: e.getenv})
	if err != nil {
		return nil, err
	}
	return signer.Usign(ctx, s)
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
	o.buildKeyFlags.addFlags(fs)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 0 {
		return usagef("unexpected arguments %q", rest)
	}
	profiles, err := o.resolve()
	if err != nil {
		return err
	}
	b, err := brand.Load(filepath.Join(o.root, "brands"), o.brand)
	if err != nil {
		return err
	}
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
	keys, err := o.keys(b)
	if err != nil {
		return err
	}
	if o.engine == "" {
		o.engine = e.getenv("TORWRT_ENGINE")
	}
	cacheDir := o.cacheOptions.dir(e)
	locks := map[string]*profile.Lock{}
	pkgDirs := append([]string{}, o.packageDirs...)
	if o.simulated {
		sim, err := build.StartSimulated(ctx, build.SimOptions{
			Root: o.root, Profiles: profiles, CacheDir: cacheDir, Engine: o.engine, Progress: e.stderr,
		})
		if err != nil {
			return err
		}
		defer sim.Stop()
		locks = sim.Locks
		pkgDirs = append(pkgDirs, sim.PackageDirs...)
	}
	var reports []*build.Report
	for _, p := range profiles {
		l := locks[p.ID]
		if l == nil {
			if l, err = profile.ReadLock(p.LockPath(), p); err != nil {
				return err
			}
		}
		rep, err := build.Run(ctx, build.Options{
			Root: o.root, Profile: p, Lock: l, Brand: b, OutDir: o.out, CacheDir: cacheDir,
			WorkDir: o.workDir, KeepWork: o.keepWork, Engine: o.engine, Signer: imageSigner,
			ReleaseKeys: keys, BuildKey: buildKey, PackageSources: pkgDirs, Simulated: o.simulated,
			InsecureRegistry: o.simulated, Version: o.version, Build: o.buildNumber, Progress: e.stderr,
			Invocation: redactedInvocation(args), BuilderID: e.getenv("TORWRT_BUILDER_ID"),
			SourceRepo: "https://github.com/torwrt/torwrt", SourceCommit: sourceCommit(ctx, o.root),
		})
		if err != nil {
			return err
		}
		reports = append(reports, rep)
	}
	if o.json {
		return writeJSON(e.stdout, reports)
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
