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
	"github.com/torwrt/torwrt/internal/progress"
)

type lockOptions struct {
	profileOptions
	cacheOptions
	outputOptions
	engine  string
	out     string
	check   bool
	verbose bool
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
	addVerboseFlag(fs, &o.verbose)
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
	pr := newProgress(e, o.verbose)
	runner, err := container.NewRunner(ctx, o.engine, container.RunnerOptions{WorkRoot: filepath.Join(cacheDir, "host-runner"), Logf: pr.Printf, Debugf: pr.Debugf})
	if err != nil {
		return err
	}
	stale := false
	var res lockResult
	// Text lines go to stdout, or with --json to stderr beside the progress.
	out := e.stdout
	if o.json {
		out = e.stderr
	}
	for _, p := range profiles {
		if o.out == "" && p.LockPath() == "" {
			return fmt.Errorf("profile %s is %s, which has no directory to write lock.json to: put its profile.yaml in profiles/%s/ of your own directory (found from the working directory, or --root) and lock it there, or pass -o FILE", p.ID, p.Origin, p.ID)
		}
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
		pp := pr.For(p.ID)
		st := pp.Step("lock")
		l, err := lock.Resolve(progress.NewContext(ctx, pp), lock.Options{
			Profile: p, ResolveTag: resolveTag, ImageRef: imageRef,
			Cache:  &container.Cache{Dir: filepath.Join(cacheDir, "images"), Progress: pr},
			Runner: runner, Keys: keys, // feeds: the pinned image's own repositories.conf
			HTTPClient: http.DefaultClient, WorkDir: work, Progress: pr,
		})
		if err != nil {
			st.Fail()
			// The scratch directory holds the ImageBuilder's full log.
			return fmt.Errorf("%w\n(scratch directory kept for inspection: %s)", err, work)
		}
		st.Done()
		os.RemoveAll(work)
		path := o.out
		if path == "" {
			path = p.LockPath()
		}
		old, _ := profile.ReadLock(path, p)
		changes := l.Diff(old)
		pr := lockProfile{Profile: p.ID, LockFile: path, UpToDate: len(changes) == 0, Changes: []string{}}
		for _, c := range changes {
			pr.Changes = append(pr.Changes, c)
			fmt.Fprintf(out, "%s: %s\n", p.ID, c)
		}
		res.Profiles = append(res.Profiles, pr)
		if len(changes) == 0 {
			fmt.Fprintf(out, "%s: lock is up to date\n", p.ID)
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
		res.Profiles[len(res.Profiles)-1].Wrote = true
		fmt.Fprintf(out, "%s: wrote %s\n", p.ID, path)
	}
	if o.json {
		if err := setResult(e, res); err != nil {
			return err
		}
	}
	if o.check && stale {
		return fmt.Errorf("%w; run: imgbuild lock --all", errStale)
	}
	return nil
}

// lockResult is the result of `lock --json` (torwrt.imgbuild.lock/v1);
// with --check and a stale lock it comes with error code "stale".
type lockResult struct {
	Profiles []lockProfile `json:"profiles"`
}

type lockProfile struct {
	Profile  string   `json:"profile"`
	LockFile string   `json:"lock_file"`
	UpToDate bool     `json:"up_to_date"`
	Changes  []string `json:"changes"` // what differs from the lock file, for people
	Wrote    bool     `json:"wrote"`   // the lock file was (re)written
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
