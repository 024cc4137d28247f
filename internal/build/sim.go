package build

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/torwrt/torwrt/internal/container"
	"github.com/torwrt/torwrt/internal/ibsim"
	"github.com/torwrt/torwrt/internal/lock"
	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/progress"
	"github.com/torwrt/torwrt/internal/usign"
)

// SimOptions configure StartSimulated.
type SimOptions struct {
	Root     string
	Profiles []*profile.Profile
	CacheDir string
	Engine   string
	Progress io.Writer
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
	stop    func()
}

// SimulatedRegistry is the registry the simulated ImageBuilder images are
// named by in locks and attestations, whatever port serves them in a run
// (".invalid" names nothing on any network: RFC 2606).
const SimulatedRegistry = "simulated-imagebuilder.invalid"

// Stop shuts the registry down.
func (s *Simulation) Stop() {
	if s.stop != nil {
		s.stop()
	}
}

// StartSimulated builds the simulated ImageBuilder for each profile, serves
// it, and locks each profile against it through the same code as `imgbuild
// lock`: the feed index is signed by ibsim's test key (standing in for
// OpenWrt's release key) and checked, and `make manifest` decides the
// package set. The lock is marked simulated.
func StartSimulated(ctx context.Context, o SimOptions) (*Simulation, error) {
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
	targets := map[string]ibsim.Target{}
	for _, t := range ibsim.Targets() {
		targets[t.Profile] = t
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
	sim := &Simulation{Locks: map[string]*profile.Lock{}}
	images := map[string]v1.Image{}
	pkgDirs := map[string]string{}
	for _, p := range o.Profiles {
		t, ok := targets[p.ID]
		if !ok {
			return nil, fmt.Errorf("the simulated ImageBuilder has no target for profile %s", p.ID)
		}
		dir := filepath.Join(o.CacheDir, "simulated", p.ID, "packages")
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		if _, err := ibsim.Packages(t, dir); err != nil {
			return nil, fmt.Errorf("simulated package feed for %s: %w", p.ID, err)
		}
		pkgDirs[p.ID] = dir
		sim.PackageDirs = append(sim.PackageDirs, dir)
		st := pr.For(p.ID).Step(fmt.Sprintf("SIMULATED ImageBuilder image (%s/%s)", t.Target, t.Subtarget))
		img, err := ibsim.BuildImage(ctx, t, ibsim.BuildOptions{ModuleDir: o.Root, Progress: pr})
		if err != nil {
			st.Fail()
			return nil, fmt.Errorf("simulated ImageBuilder image for %s: %w", p.ID, err)
		}
		st.Done()
		images[p.ID] = img
	}
	served, stop, err := ibsim.Serve(ctx, images)
	if err != nil {
		return nil, err
	}
	sim.stop = stop
	refs := map[string]string{}
	for id, ref := range served {
		d, err := container.ParseDigest(ref)
		if err != nil {
			stop()
			return nil, err
		}
		refs[id] = SimulatedRegistry + "/" + d.Context().RepositoryStr() + "@" + d.DigestStr()
		sim.Mirrors = map[string]string{SimulatedRegistry: d.Context().RegistryStr()}
	}
	runner, err := container.NewRunner(o.Engine, container.RunnerOptions{WorkRoot: filepath.Join(o.CacheDir, "host-runner"), Debugf: pr.Debugf})
	if err != nil {
		sim.Stop()
		return nil, err
	}
	for _, p := range o.Profiles {
		work, err := os.MkdirTemp("", "torwrt-simlock-")
		if err != nil {
			sim.Stop()
			return nil, err
		}
		pp := pr.For(p.ID)
		pp.Printf("SIMULATED ImageBuilder %s served at %s; locking against it", refs[p.ID], sim.Mirrors[SimulatedRegistry])
		st := pp.Step("lock")
		l, err := lock.Resolve(progress.NewContext(ctx, pp), lock.Options{
			Profile: p, ImageRef: refs[p.ID],
			Cache:  &container.Cache{Dir: filepath.Join(o.CacheDir, "images"), Progress: pr, Insecure: true, Mirrors: sim.Mirrors},
			Runner: runner, Feeds: []lock.Feed{{Name: "simulated", URL: "file://" + pkgDirs[p.ID]}},
			Keys: feedKeys, APKKeys: apkKeys, WorkDir: work, Progress: pr, Simulated: true,
		})
		os.RemoveAll(work)
		if err != nil {
			st.Fail()
			sim.Stop()
			return nil, fmt.Errorf("locking %s against the simulated ImageBuilder: %w", p.ID, err)
		}
		st.Done()
		sim.Locks[p.ID] = l
	}
	return sim, nil
}
