// Package feed fetches the packages a lock file pins into a
// content-addressed cache and lays them out as a local opkg feed that the
// ImageBuilder reads with no network.
package feed

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/torwrt/torwrt/internal/profile"
)

// ErrHashMismatch: a package file's SHA-256 differs from the lock.
var ErrHashMismatch = errors.New("package hash does not match the lock file")

// maxPackage bounds one download; OpenWrt packages are far smaller.
const maxPackage = 64 << 20

// Cache stores package files by SHA-256 under Dir/sha256/<hex>.
type Cache struct {
	Dir string
	// Sources are local directories searched by file name before URLs are
	// tried (the simulated feed, or an offline mirror).
	Sources  []string
	Progress io.Writer
	// HTTPClient fetches locked URLs; nil means no network: a package not
	// found locally is then an error.
	HTTPClient *http.Client
}

func (c *Cache) path(sum string) string { return filepath.Join(c.Dir, "sha256", sum) }

// Fetch makes sure every locked package is in the cache with the right
// hash.
func (c *Cache) Fetch(ctx context.Context, l *profile.Lock) error {
	if err := os.MkdirAll(filepath.Join(c.Dir, "sha256"), 0o755); err != nil {
		return err
	}
	for i, p := range l.Packages {
		if err := ctx.Err(); err != nil {
			return err
		}
		if p.Bundled {
			continue
		}
		if ok, err := c.have(p); err != nil {
			return err
		} else if ok {
			continue
		}
		if err := c.fetchOne(ctx, p); err != nil {
			return err
		}
		if c.Progress != nil {
			fmt.Fprintf(c.Progress, "package %d/%d %s %s\n", i+1, len(l.Packages), p.Name, p.Version)
		}
	}
	return nil
}

func (c *Cache) have(p profile.LockedPackage) (bool, error) {
	sum, err := fileSHA256(c.path(p.SHA256))
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if sum != p.SHA256 {
		// A corrupted cache entry is dropped and fetched again.
		os.Remove(c.path(p.SHA256))
		return false, nil
	}
	return true, nil
}

func (c *Cache) fetchOne(ctx context.Context, p profile.LockedPackage) error {
	// apk names files <name>-<version>.apk, without the architecture, so
	// two sources (two targets' feeds) may hold different files of one
	// name: the first whose hash is the locked one is taken.
	var mismatch error
	for _, dir := range c.Sources {
		src := filepath.Join(dir, p.Filename)
		f, err := os.Open(src)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		err = c.store(p, f, src)
		f.Close()
		if errors.Is(err, ErrHashMismatch) {
			mismatch = err
			continue
		}
		return err
	}
	if mismatch != nil && (p.URL == "" || c.HTTPClient == nil) {
		return mismatch
	}
	if p.URL == "" || c.HTTPClient == nil {
		return fmt.Errorf("package %s %s (%s) is not in the cache or any package source, and the network is off", p.Name, p.Version, p.Filename)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL, nil)
	if err != nil {
		return err
	}
	resp, err := c.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("fetching %s: %w", p.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching %s: %s", p.URL, resp.Status)
	}
	return c.store(p, resp.Body, p.URL)
}

// store copies r into the cache if, and only if, its hash is the locked
// one; a wrong file never gets a cache name.
func (c *Cache) store(p profile.LockedPackage, r io.Reader, from string) error {
	tmp, err := os.CreateTemp(filepath.Join(c.Dir, "sha256"), ".incoming-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, maxPackage+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", from, err)
	}
	if n > maxPackage {
		return fmt.Errorf("%s: larger than %d bytes", from, maxPackage)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.SHA256 {
		return fmt.Errorf("%w: %s from %s has sha256 %s, lock says %s; the source changed or the lock is stale (run: imgbuild lock)", ErrHashMismatch, p.Filename, from, got, p.SHA256)
	}
	return os.Rename(tmp.Name(), c.path(p.SHA256))
}

// Open opens a cached package after checking its hash again.
func (c *Cache) Open(p profile.LockedPackage) (*os.File, error) {
	f, err := os.Open(c.path(p.SHA256))
	if err != nil {
		return nil, fmt.Errorf("package %s not in cache: %w", p.Name, err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		f.Close()
		return nil, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != p.SHA256 {
		f.Close()
		return nil, fmt.Errorf("%w: cached %s has sha256 %s", ErrHashMismatch, p.Filename, got)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ControlReader extracts the control fields of a package file. The ipk
// reader provides it; tests may pass another.
type ControlReader func(ctx context.Context, r io.Reader) (fields []Field, err error)

// Field is one control field.
type Field struct{ Name, Value string }

// Write lays out the locked packages in dir with an opkg `Packages` index.
// Index entries take Package, Version and Architecture from the package's
// own control file and must agree with the lock; Filename, Size and
// SHA256sum come from the lock.
func (c *Cache) Write(ctx context.Context, l *profile.Lock, dir string, control ControlReader) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var index strings.Builder
	for _, p := range l.Packages {
		if err := ctx.Err(); err != nil {
			return err
		}
		if p.Bundled {
			continue
		}
		f, err := c.Open(p)
		if err != nil {
			return err
		}
		fields, err := control(ctx, f)
		if err == nil {
			_, err = f.Seek(0, io.SeekStart)
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("package %s: %w", p.Filename, err)
		}
		get := func(name string) string {
			for _, fl := range fields {
				if strings.EqualFold(fl.Name, name) {
					return fl.Value
				}
			}
			return ""
		}
		// The package must be what the lock says before it enters the feed.
		arch := get("Architecture")
		if get("Package") != p.Name || get("Version") != p.Version || (p.Arch != "" && arch != p.Arch && arch != "all") {
			f.Close()
			return fmt.Errorf("package %s: control says %s %s (%s), lock says %s %s (%s)", p.Filename, get("Package"), get("Version"), arch, p.Name, p.Version, p.Arch)
		}
		dst, err := os.OpenFile(filepath.Join(dir, p.Filename), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
		if err == nil {
			_, err = io.Copy(dst, f)
			if cerr := dst.Close(); err == nil {
				err = cerr
			}
		}
		f.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(&index, "Package: %s\nVersion: %s\n", p.Name, p.Version)
		if d := get("Depends"); d != "" {
			fmt.Fprintf(&index, "Depends: %s\n", d)
		}
		for _, extra := range []string{"Provides", "Conflicts", "License", "Section", "Installed-Size", "Description"} {
			if v := get(extra); v != "" && !strings.Contains(v, "\n") {
				fmt.Fprintf(&index, "%s: %s\n", extra, v)
			}
		}
		fmt.Fprintf(&index, "Architecture: %s\nFilename: %s\nSize: %d\nSHA256sum: %s\n\n", get("Architecture"), p.Filename, p.Size, p.SHA256)
	}
	return os.WriteFile(filepath.Join(dir, "Packages"), []byte(index.String()), 0o644)
}
