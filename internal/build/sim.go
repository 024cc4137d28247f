package build

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/torwrt/torwrt/internal/container"
	"github.com/torwrt/torwrt/internal/ibsim"
	"github.com/torwrt/torwrt/internal/ipk"
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
// lock`: the feed index is signed by a key made for this run (standing in
// for OpenWrt's release key) and checked, and `make manifest` decides the
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
	feedKey, err := usign.GenerateKey(rand.Reader, "SIMULATED upstream feed key (this run only)")
	if err != nil {
		return nil, err
	}
	feedKeys, err := usign.NewKeyring(feedKey.Public())
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
		if err := writeSignedIndex(dir, feedKey); err != nil {
			return nil, err
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

// writeSignedIndex writes dir/Packages from the control files of the .ipk
// files in dir, and dir/Packages.sig signed with key.
func writeSignedIndex(dir string, key *usign.SecretKey) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".ipk") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return err
		}
		pk, err := ipk.Read(strings.NewReader(string(data)), ipk.Limits{})
		if err != nil {
			return fmt.Errorf("%s: %w", n, err)
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&b, "Package: %s\nVersion: %s\n", pk.Name(), pk.Version())
		if d := pk.Control.Get("Depends"); d != "" {
			fmt.Fprintf(&b, "Depends: %s\n", d)
		}
		fmt.Fprintf(&b, "Architecture: %s\nFilename: %s\nSize: %d\nSHA256sum: %s\n\n", pk.Architecture(), n, len(data), hex.EncodeToString(sum[:]))
	}
	index := []byte(b.String())
	sig, err := key.Sign(index)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "Packages"), index, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "Packages.sig"), sig.Marshal(), 0o644)
}
