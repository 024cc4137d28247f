package build

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/torwrt/torwrt"
)

// StepCache is a content-addressed cache of step outputs under
// CACHE/steps/<step>/<key>/: key is the SHA-256 of the step's name, its
// version constant and its inputs' canonical JSON (64 hex characters,
// never truncated). An entry holds the step's files and output.json,
// written last; a directory without output.json is garbage. Every file
// replayed from an entry is checked against the hash output.json records
// for it, so a damaged entry is a miss, never a wrong output.
type StepCache struct {
	Dir string // "": no cache, every lookup misses
}

// cacheEntry is output.json.
type cacheEntry struct {
	Key string `json:"key"`
	// Files maps each file of the entry (slash path under files/) to its
	// sha256.
	Files  map[string]string `json:"files"`
	Output json.RawMessage   `json:"output"`
}

// Key is the cache key of step at version for inputs in.
func (c *StepCache) Key(step string, version int, in any) (string, error) {
	data, err := json.Marshal(in)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "torwrt step %s v%d\n", step, version)
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (c *StepCache) dir(step, key string) string { return filepath.Join(c.Dir, "steps", step, key) }

// Lock holds step/key for one computation: builds side by side (build
// --all, or two imgbuild processes) that need the same entry wait for
// the first to store it and then replay it, rather than all computing
// it. The returned function releases the lock; without a cache it does
// nothing.
func (c *StepCache) Lock(step, key string) (func(), error) {
	if c == nil || c.Dir == "" {
		return func() {}, nil
	}
	dir := filepath.Join(c.Dir, "steps", step)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "."+key+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("step cache: locking %s/%s: %w", step, key, err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// Get replays the entry of step/key: the output into out and the files
// into dest (made if missing). It reports false on a miss, and on an entry
// whose files do not match their recorded hashes (which it removes).
func (c *StepCache) Get(step, key string, out any, dest string) bool {
	if c == nil || c.Dir == "" {
		return false
	}
	dir := c.dir(step, key)
	data, err := os.ReadFile(filepath.Join(dir, "output.json"))
	if err != nil {
		return false
	}
	var e cacheEntry
	if err := json.Unmarshal(data, &e); err != nil || e.Key != key || json.Unmarshal(e.Output, out) != nil {
		os.RemoveAll(dir)
		return false
	}
	if err := copyVerified(filepath.Join(dir, "files"), dest, e.Files); err != nil {
		os.RemoveAll(dir)
		return false
	}
	return true
}

// Put stores out and the files under src (nil: none) as step/key: into a
// temporary sibling first, output.json last, then one rename. A failure to
// store is not the build's failure; it is returned for the caller to log.
func (c *StepCache) Put(step, key string, out any, src string) error {
	if c == nil || c.Dir == "" {
		return nil
	}
	final := c.dir(step, key)
	if err := os.MkdirAll(filepath.Dir(final), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(final), "."+key[:16]+".incomplete-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	files := map[string]string{}
	if src != "" {
		if files, err = copyTree(src, filepath.Join(tmp, "files")); err != nil {
			return err
		}
	}
	outJSON, err := json.Marshal(out)
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(cacheEntry{Key: key, Files: files, Output: outJSON}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "output.json"), data, 0o644); err != nil {
		return err
	}
	os.RemoveAll(final)
	return os.Rename(tmp, final)
}

// copyTree copies the regular files under src to dst and returns their
// hashes by slash path. Anything but directories and regular files is
// refused.
func copyTree(src, dst string) (map[string]string, error) {
	files := map[string]string{}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		case !d.Type().IsRegular():
			return fmt.Errorf("step cache: %s is not a regular file", p)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = sha256Hex(data)
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	return files, err
}

// copyVerified copies exactly the files want names from src to dst,
// checking each one's sha256.
func copyVerified(src, dst string, want map[string]string) error {
	names := make([]string, 0, len(want))
	for n := range want {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !fs.ValidPath(n) || n == "." {
			return fmt.Errorf("step cache: bad path %q", n)
		}
		data, err := os.ReadFile(filepath.Join(src, filepath.FromSlash(n)))
		if err != nil {
			return err
		}
		if sha256Hex(data) != want[n] {
			return fmt.Errorf("step cache: %s has sha256 %s, recorded %s", n, sha256Hex(data), want[n])
		}
		out := filepath.Join(dst, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(out, data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// SourceSHA256 hashes the daemon's source: go.mod, go.sum and the .go
// files of every package directory torwrt.Source holds (the router
// daemon's import closure: TestSourceHoldsEveryPackage keeps that list
// equal to `go list -deps ./cmd/verify`), read from root, or from the
// embedded copy when root is "".
func SourceSHA256(root string) (string, error) {
	dirs := map[string]bool{}
	var embedded []string
	err := fs.WalkDir(torwrt.Source, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		embedded = append(embedded, p)
		dirs[path.Dir(p)] = true
		return nil
	})
	if err != nil {
		return "", err
	}
	var names []string
	if root == "" {
		names = embedded
	} else {
		for d := range dirs {
			if d == "." {
				names = append(names, "go.mod", "go.sum")
				continue
			}
			entries, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(d)))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return "", err
			}
			for _, e := range entries {
				if e.Type().IsRegular() && filepath.Ext(e.Name()) == ".go" {
					names = append(names, d+"/"+e.Name())
				}
			}
		}
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		var data []byte
		if root == "" {
			data, err = fs.ReadFile(torwrt.Source, n)
		} else {
			data, err = os.ReadFile(filepath.Join(root, filepath.FromSlash(n)))
		}
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d %s\n", n, len(data), sha256Hex(data))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
