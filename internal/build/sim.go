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
	stop        func()
}

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
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
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
		fmt.Fprintf(progress, "[%s] building the SIMULATED ImageBuilder image (%s/%s)\n", p.ID, t.Target, t.Subtarget)
		img, err := ibsim.BuildImage(ctx, t, ibsim.BuildOptions{ModuleDir: o.Root, Progress: progress})
		if err != nil {
			return nil, fmt.Errorf("simulated ImageBuilder image for %s: %w", p.ID, err)
		}
		images[p.ID] = img
	}
	refs, stop, err := ibsim.Serve(ctx, images)
	if err != nil {
		return nil, err
	}
	sim.stop = stop
	runner, err := container.NewRunner(o.Engine, container.RunnerOptions{WorkRoot: filepath.Join(o.CacheDir, "host-runner")})
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
		fmt.Fprintf(progress, "[%s] SIMULATED ImageBuilder served as %s; locking against it\n", p.ID, refs[p.ID])
		l, err := lock.Resolve(ctx, lock.Options{
			Profile: p, ImageRef: refs[p.ID],
			Cache:  &container.Cache{Dir: filepath.Join(o.CacheDir, "images"), Progress: progress, Insecure: true},
			Runner: runner, Feeds: []lock.Feed{{Name: "simulated", URL: "file://" + pkgDirs[p.ID]}},
			Keys: feedKeys, WorkDir: work, Progress: progress, Simulated: true,
		})
		os.RemoveAll(work)
		if err != nil {
			sim.Stop()
			return nil, fmt.Errorf("locking %s against the simulated ImageBuilder: %w", p.ID, err)
		}
		sim.Locks[p.ID] = l
	}
	return sim, nil
}
