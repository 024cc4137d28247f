// Command userland-lock regenerates internal/userland/bookworm-amd64.lock
// from this machine's apt lists, then fetches the pinned packages and prints
// the userland layer's digest. Run it through scripts/userland-lock.sh, on
// Debian 12 bookworm amd64, after apt-get update.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/torwrt/torwrt/internal/imagesig"
	"github.com/torwrt/torwrt/internal/userland"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fl := flag.NewFlagSet("userland-lock", flag.ContinueOnError)
	fl.SetOutput(stderr)
	lockFile := fl.String("lock-file", filepath.Join("internal", "userland", userland.LockFileName), "lock file to rewrite")
	cache := fl.String("cache", filepath.Join(".cache", "userland"), "download and layer cache directory")
	epoch := fl.Int64("epoch", 0, "layer timestamp in seconds since 1970; SOURCE_DATE_EPOCH overrides it")
	noLayer := fl.Bool("no-layer", false, "only rewrite the lock file; do not fetch or build the layer")
	if err := fl.Parse(args); err != nil {
		return 2
	}
	if fl.NArg() != 0 {
		fmt.Fprintf(stderr, "userland-lock: unexpected arguments %q\n", fl.Args())
		return 2
	}
	if s, ok := os.LookupEnv("SOURCE_DATE_EPOCH"); ok {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 0 {
			fmt.Fprintf(stderr, "userland-lock: SOURCE_DATE_EPOCH=%q: want seconds since 1970\n", s)
			return 2
		}
		*epoch = v
	}
	if err := lock(ctx, *lockFile, *cache, *epoch, *noLayer, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "userland-lock: %v\n", err)
		return 1
	}
	return 0
}

func lock(ctx context.Context, lockFile, cache string, epoch int64, noLayer bool, stdout, stderr io.Writer) error {
	l, err := userland.Resolve(ctx, userland.Packages)
	if err != nil {
		return err
	}
	l.Made = time.Now().UTC().Format("2006-01-02")
	l.Command = "scripts/userland-lock.sh (after apt-get update)"

	write := true
	old, err := os.ReadFile(lockFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(stderr, "userland-lock: writing a new %s\n", lockFile)
	case err != nil:
		return err
	default:
		prev, err := userland.ParseLock(old)
		if err != nil {
			fmt.Fprintf(stderr, "userland-lock: replacing unreadable %s: %v\n", lockFile, err)
			break
		}
		diff := userland.Diff(prev, l)
		if len(diff) == 0 {
			fmt.Fprintf(stderr, "userland-lock: %s is up to date (%d packages)\n", lockFile, len(l.Entries))
			l, write = prev, false
			break
		}
		for _, d := range diff {
			fmt.Fprintf(stderr, "  %s\n", d)
		}
	}
	if write {
		if err := imagesig.WriteFileAtomic(lockFile, l.Marshal(), 0o644); err != nil {
			return err
		}
	}
	var debBytes int64
	for _, e := range l.Entries {
		debBytes += e.Size
	}
	fmt.Fprintf(stdout, "lock          %s (sum %s)\npackages      %d\ndeb bytes     %d\n", lockFile, l.Sum(), len(l.Entries), debBytes)
	if noLayer {
		return nil
	}
	if err := userland.Fetch(ctx, l, cache, stderr); err != nil {
		return err
	}
	start := time.Now()
	layer, err := userland.Layer(ctx, l, cache, epoch)
	if err != nil {
		return err
	}
	diffID, err := layer.DiffID()
	if err != nil {
		return err
	}
	digest, err := layer.Digest()
	if err != nil {
		return err
	}
	size, err := layer.Size()
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "userland-lock: layer built in %s\n", time.Since(start).Round(100*time.Millisecond))
	fmt.Fprintf(stdout, "epoch         %d\nlayer diffid  %s\nlayer digest  %s (gzip level %d, %d bytes)\n", epoch, diffID, digest, userland.GzipLevel, size)
	return nil
}
