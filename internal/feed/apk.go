package feed

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/torwrt/torwrt/internal/apk"
	"github.com/torwrt/torwrt/internal/profile"
)

// APKIndexName is the index file of an apk repository directory.
const APKIndexName = "packages.adb"

// maxAPK bounds one .apk read for the index, compressed and not.
const maxAPK = maxPackage

// WriteAPK lays out the locked packages in dir as a local apk repository:
// the .apk files, a packages.adb describing them, and keyName, the public
// half of the throwaway key that signed the index.
//
// Each package is read (bounded, every file's hash checked against its
// data) and must be the package the lock names before it enters the
// index. The key is made for this one directory and its secret half is
// never written: the index only ever vouches for files whose SHA-256 the
// lock pinned, and it never reaches the image, so its signature need not
// be reproducible.
func (c *Cache) WriteAPK(ctx context.Context, l *profile.Lock, dir, keyName string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var idx apk.Index
	idx.Description = "torwrt local feed: the packages " + l.Profile + "'s lock pins"
	for _, p := range l.Packages {
		if err := ctx.Err(); err != nil {
			return err
		}
		if p.Bundled {
			continue
		}
		e, err := c.copyAPK(p, dir)
		if err != nil {
			return fmt.Errorf("package %s: %w", p.Filename, err)
		}
		idx.Packages = append(idx.Packages, e)
	}
	return WriteAPKIndex(dir, &idx, keyName)
}

// WriteAPKIndex writes idx as dir/packages.adb, signed by a key made for
// this one directory, and the key's public half as dir/keyName. The
// secret half is never written.
func WriteAPKIndex(dir string, idx *apk.Index, keyName string) error {
	key, err := apk.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	data, err := apk.WriteIndex(idx, key)
	if err != nil {
		return err
	}
	pub, err := key.Public().MarshalPEM()
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, APKIndexName), data, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, keyName), pub, 0o644)
}

// copyAPK copies one cached package into dir and returns its index entry.
func (c *Cache) copyAPK(p profile.LockedPackage, dir string) (apk.IndexEntry, error) {
	f, err := c.Open(p)
	if err != nil {
		return apk.IndexEntry{}, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxAPK+1))
	if err != nil {
		return apk.IndexEntry{}, err
	}
	if len(data) > maxAPK {
		return apk.IndexEntry{}, fmt.Errorf("larger than %d bytes", maxAPK)
	}
	pkg, err := apk.ReadPackage(bytes.NewReader(data), maxAPK)
	if err != nil {
		return apk.IndexEntry{}, err
	}
	if err := CheckAPKInfo(pkg.Info, p); err != nil {
		return apk.IndexEntry{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, p.Filename), data, 0o644); err != nil {
		return apk.IndexEntry{}, err
	}
	return apk.EntryFor(pkg, uint64(len(data))), nil
}

// CheckAPKInfo requires a package's own metadata to be what the lock says.
func CheckAPKInfo(info apk.PackageInfo, p profile.LockedPackage) error {
	if info.Name != p.Name || info.Version != p.Version || (p.Arch != "" && info.Arch != p.Arch && info.Arch != "noarch" && info.Arch != "all") {
		return fmt.Errorf("the package says %s %s (%s), the lock says %s %s (%s)", info.Name, info.Version, info.Arch, p.Name, p.Version, p.Arch)
	}
	return nil
}
