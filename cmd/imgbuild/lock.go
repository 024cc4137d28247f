package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/torwrt/torwrt/internal/container"
	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/lock"
	"github.com/torwrt/torwrt/internal/profile"
)

type lockOptions struct {
	profileOptions
	cacheOptions
	outputOptions
	engine string
	out    string
	check  bool
}

func runLock(ctx context.Context, e env, args []string) error {
	var o lockOptions
	fs := newFlags(e, "lock", "", "Resolve a profile's ImageBuilder image tag to a digest and its package set to\nexact versions and SHA-256 sums (from feed indexes whose usign signatures check\nagainst the pinned OpenWrt keys), and write profiles/<id>/lock.json.\nNeeds the network; builds never do this themselves.")
	o.profileOptions.addFlags(fs)
	o.cacheOptions.addFlags(fs)
	o.outputOptions.addFlags(fs)
	fs.StringVar(&o.engine, "engine", "", "container engine for make manifest: podman, docker or host")
	fs.StringVar(&o.out, "o", "", "write the lock here instead of profiles/<id>/lock.json")
	fs.BoolVar(&o.check, "check", false, "only report what would change; exit 1 if the lock is stale")
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
	if o.engine == "" {
		o.engine = e.getenv("TORWRT_ENGINE")
	}
	keys, err := lock.UpstreamKeyring()
	if err != nil {
		return err
	}
	cacheDir := o.cacheOptions.dir(e)
	runner, err := container.NewRunner(o.engine, container.RunnerOptions{WorkRoot: filepath.Join(cacheDir, "host-runner")})
	if err != nil {
		return err
	}
	stale := false
	for _, p := range profiles {
		work, err := os.MkdirTemp("", "torwrt-lock-")
		if err != nil {
			return err
		}
		imageRef := ""
		if p.ImageBuilder.Imported() {
			rec, err := readImportRecord(cacheDir, p.ImageBuilder.ArchiveSHA256)
			if err != nil {
				return fmt.Errorf("%s: %w", p.ID, err)
			}
			imageRef = rec.LockRef
			fmt.Fprintf(e.stderr, "%s: ImageBuilder imported from %s as %s\n", p.ID, rec.Archive, rec.LockRef)
		}
		l, err := lock.Resolve(ctx, lock.Options{
			Profile: p, ResolveTag: resolveTag, ImageRef: imageRef,
			Cache:  &container.Cache{Dir: filepath.Join(cacheDir, "images"), Progress: e.stderr},
			Runner: runner, Keys: keys, // feeds: the pinned image's own repositories.conf
			HTTPClient: http.DefaultClient, WorkDir: work, Progress: e.stderr,
		})
		if err != nil {
			// The scratch directory holds the ImageBuilder's full log.
			return fmt.Errorf("%w\n(scratch directory kept for inspection: %s)", err, work)
		}
		os.RemoveAll(work)
		path := o.out
		if path == "" {
			path = p.LockPath()
		}
		old, _ := profile.ReadLock(path, p)
		changes := l.Diff(old)
		for _, c := range changes {
			fmt.Fprintf(e.stdout, "%s: %s\n", p.ID, c)
		}
		if len(changes) == 0 {
			fmt.Fprintf(e.stdout, "%s: lock is up to date\n", p.ID)
			continue
		}
		stale = true
		if o.check {
			continue
		}
		data, err := l.Marshal()
		if err != nil {
			return err
		}
		if err := imagesig.WriteFileAtomic(path, data, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%s: wrote %s\n", p.ID, path)
	}
	if o.check && stale {
		return fmt.Errorf("locks are stale; run: imgbuild lock --all")
	}
	return nil
}

// resolveTag asks the registry which digest a tag points at now.
func resolveTag(ctx context.Context, ref string) (string, error) {
	tag, err := name.NewTag(ref)
	if err != nil {
		return "", err
	}
	desc, err := remote.Head(tag, remote.WithContext(ctx))
	if err != nil {
		return "", err
	}
	return tag.Context().Digest(desc.Digest.String()).String(), nil
}
