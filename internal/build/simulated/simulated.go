// Package simulated serves torwrt's simulated ImageBuilder (internal/ibsim)
// to a build: it builds each profile's simulated image and package feed,
// serves the images from an in-process registry on 127.0.0.1 and locks
// each profile against them, all through the step cache. cmd/imgbuild
// wires it in for `imgbuild build --simulated-ib`; internal/build, the
// release pipeline, does not link it.
package simulated

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/torwrt/torwrt/internal/build"
	"github.com/torwrt/torwrt/internal/container"
	"github.com/torwrt/torwrt/internal/ibsim"
	"github.com/torwrt/torwrt/internal/lock"
	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/progress"
	"github.com/torwrt/torwrt/internal/usign"
)

// Options configure Start.
type Options struct {
	Root     string
	Profiles []*profile.Profile
	CacheDir string
	Engine   string
	Progress io.Writer
	// Jobs bounds how many profiles are prepared at once (their images
	// built, their locks resolved); 0: GOMAXPROCS.
	Jobs int
	// NoStepCache builds every image and feed and resolves every lock
	// again, neither replaying nor storing them (imgbuild build
	// --no-step-cache: a reproducibility check must really rebuild).
	NoStepCache bool
}

// Simulation is a running simulated ImageBuilder: its images served from
// an in-process registry on 127.0.0.1, its package feeds on disk, and the
// lock files resolved against both.
type Simulation struct {
	Locks       map[string]*profile.Lock
	PackageDirs []string
	// Mirrors is what container.Cache needs to pull the locks' image
	// references: their fixed registry name → the in-process registry's
	// address of this run.
	Mirrors map[string]string
	// Cached names, by profile, what was replayed from the cache rather
	// than made in this run: "feed", "image", "lock", in that order.
	Cached map[string][]string
	stop   func()
}

// Registry is the registry the simulated ImageBuilder images are
// named by in locks and attestations, whatever port serves them in a run
// (".invalid" names nothing on any network: RFC 2606).
const Registry = "simulated-imagebuilder.invalid"

// Stop shuts the registry down.
func (s *Simulation) Stop() {
	if s.stop != nil {
		s.stop()
	}
}

// Start builds the simulated ImageBuilder for each profile, serves
// it, and locks each profile against it through the same code as `imgbuild
// lock`: the feed index is signed by ibsim's test key (standing in for
// OpenWrt's release key) and checked, and `make manifest` decides the
// package set. The lock is marked simulated.
//
// Profiles are prepared in parallel, o.Jobs at a time. ibsim-tool, each
// image, feed and lock are replayed from the cache when their inputs are
// unchanged (see cache.go); o.NoStepCache makes and locks everything
// again.
func Start(ctx context.Context, o Options) (*Simulation, error) {
	out := o.Progress
	if out == nil {
		out = io.Discard
	}
	// The caller's progress printer, else plain lines on o.Progress; the
	// context carries it to make manifest's heartbeat.
	pr := progress.FromContext(ctx)
	if pr == nil {
		pr = progress.New(out, progress.Options{})
	}
	jobs := o.Jobs
	if jobs < 1 {
		jobs = runtime.GOMAXPROCS(0)
	}
	cache := &build.StepCache{Dir: o.CacheDir}
	if o.NoStepCache {
		cache.Dir = ""
	}
	targets := make([]ibsim.Target, len(o.Profiles))
	for i, p := range o.Profiles {
		t, ok := ibsim.TargetByProfile(p.ID)
		if !ok {
			return nil, fmt.Errorf("the simulated ImageBuilder has no target for profile %s", p.ID)
		}
		targets[i] = t
	}
	// The simulated feeds' Packages index is signed by ibsim's public test
	// key, standing in for OpenWrt's release key.
	feedKeys, err := usign.NewKeyring(ibsim.FeedKey())
	if err != nil {
		return nil, err
	}
	// The simulated apk feeds' packages.adb is signed by ibsim's public
	// P-256 test key, standing in for OpenWrt's openwrt-25.12.pem.
	apkPEM, err := ibsim.FeedAPKKey().MarshalPEM()
	if err != nil {
		return nil, err
	}
	apkKeys := []profile.LockedKey{{Name: ibsim.FeedAPKKeyName, PEM: string(apkPEM),
		Source: "the SIMULATED ImageBuilder's feed key (internal/ibsim, a test key whose secret is public)"}}
	imageDir := filepath.Join(o.CacheDir, "images")
	n := len(o.Profiles)
	var (
		tool     = sync.OnceValues(func() ([]byte, error) { b, _, err := simTool(ctx, cache, o.Root); return b, err })
		built    = make([]v1.Image, n)
		indexSum = make([]string, n)
		replayed = make([][]string, n)
	)
	pkgDirs := make([]string, n)
	// Feeds and images, o.Jobs profiles at a time.
	err = parallel(n, jobs, func(i int) error {
		p, t := o.Profiles[i], targets[i]
		pp := pr.For(p.ID)
		pkgDirs[i] = filepath.Join(o.CacheDir, "simulated", p.ID, "packages")
		sum, hit, err := simFeed(cache, t, pkgDirs[i])
		if err != nil {
			return fmt.Errorf("simulated package feed for %s: %w", p.ID, err)
		}
		indexSum[i] = sum
		if hit {
			replayed[i] = append(replayed[i], "feed")
		}
		st := pp.Step(fmt.Sprintf("SIMULATED ImageBuilder image (%s/%s)", t.Target, t.Subtarget))
		tb, err := tool()
		if err != nil {
			st.Fail()
			return fmt.Errorf("simulated ImageBuilder image for %s: %w", p.ID, err)
		}
		images := &container.Cache{Dir: imageDir, Progress: pp, Insecure: true}
		img, hit, err := simImage(ctx, cache, images, t, ibsim.BuildOptions{ModuleDir: o.Root, Progress: pp, Tool: tb})
		if err != nil {
			st.Fail()
			return fmt.Errorf("simulated ImageBuilder image for %s: %w", p.ID, err)
		}
		st.Done()
		if hit {
			replayed[i] = append(replayed[i], "image")
			d, _ := img.Digest()
			pp.Printf("SIMULATED ImageBuilder image %s replayed from the cache", d)
		}
		built[i] = img
		return nil
	})
	if err != nil {
		return nil, err
	}
	byID := map[string]v1.Image{}
	for i, p := range o.Profiles {
		byID[p.ID] = built[i]
	}
	served, stop, err := ibsim.Serve(ctx, byID)
	if err != nil {
		return nil, err
	}
	sim := &Simulation{Locks: map[string]*profile.Lock{}, PackageDirs: pkgDirs, Cached: map[string][]string{}, stop: stop}
	refs := map[string]string{}
	for id, ref := range served {
		d, err := container.ParseDigest(ref)
		if err != nil {
			stop()
			return nil, err
		}
		refs[id] = Registry + "/" + d.Context().RepositoryStr() + "@" + d.DigestStr()
		sim.Mirrors = map[string]string{Registry: d.Context().RegistryStr()}
	}
	// One container runner, made only when a lock is not replayed.
	runner := sync.OnceValues(func() (container.Runner, error) {
		return container.NewRunner(ctx, o.Engine, container.RunnerOptions{WorkRoot: filepath.Join(o.CacheDir, "host-runner"), Debugf: pr.Debugf})
	})
	locks := make([]*profile.Lock, n)
	err = parallel(n, jobs, func(i int) error {
		p := o.Profiles[i]
		pp := pr.For(p.ID)
		in := simLockInput{ImageRef: refs[p.ID], ProfileSHA256: p.SHA256, FeedIndexSHA256: indexSum[i],
			FeedKey: string(ibsim.FeedKey().Marshal()), APKKeys: apkKeys}
		key, err := cache.Key(simLockStep, simStepVersion, in)
		if err != nil {
			return err
		}
		if l := cachedLock(cache, key, in, p); l != nil {
			pp.Printf("lock against SIMULATED ImageBuilder %s replayed from the cache", refs[p.ID])
			locks[i] = l
			replayed[i] = append(replayed[i], "lock")
			return nil
		}
		r, err := runner()
		if err != nil {
			return err
		}
		work, err := os.MkdirTemp("", "torwrt-simlock-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(work)
		pp.Printf("SIMULATED ImageBuilder %s served at %s; locking against it", refs[p.ID], sim.Mirrors[Registry])
		st := pp.Step("lock")
		l, err := lock.Resolve(progress.NewContext(ctx, pp), lock.Options{
			Profile: p, ImageRef: refs[p.ID],
			Cache:  &container.Cache{Dir: imageDir, Progress: pp, Insecure: true, Mirrors: sim.Mirrors},
			Runner: r, Feeds: []lock.Feed{{Name: "simulated", URL: "file://" + pkgDirs[i]}},
			Keys: feedKeys, APKKeys: apkKeys, WorkDir: work, Progress: pp, Simulated: true,
		})
		if err != nil {
			st.Fail()
			return fmt.Errorf("locking %s against the simulated ImageBuilder: %w", p.ID, err)
		}
		st.Done()
		_ = cache.Put(simLockStep, key, simLockOutput{FeedIndexSHA256: indexSum[i], Lock: l}, "")
		locks[i] = l
		return nil
	})
	if err != nil {
		sim.Stop()
		return nil, err
	}
	for i, p := range o.Profiles {
		sim.Locks[p.ID] = locks[i]
		sim.Cached[p.ID] = replayed[i]
	}
	return sim, nil
}

// parallel runs f(0..n-1), at most jobs at a time, and returns their
// errors joined in index order.
func parallel(n, jobs int, f func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
