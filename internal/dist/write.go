package dist

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/torwrt/torwrt/internal/imagesig"
)

// Stage is one profile's output directory being written: a hidden
// sibling of dist/<profile>/ that Commit renames into place, so a failed
// build never leaves a half-written dist/<profile>/.
type Stage struct {
	Dir     string // the staging directory; files are written here
	outDir  string
	profile string
}

// NewStage makes the staging directory for profile under outDir.
func NewStage(outDir, profile string) (*Stage, error) {
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(outDir, "."+profile+".incomplete-")
	if err != nil {
		return nil, err
	}
	// MkdirTemp makes 0700; dist/ is published.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	return &Stage{Dir: dir, outDir: outDir, profile: profile}, nil
}

// Path is name inside the staging directory.
func (s *Stage) Path(name string) string { return filepath.Join(s.Dir, name) }

// Write writes one file (mode 0644) into the staging directory.
func (s *Stage) Write(name string, data []byte) error {
	if name == "" || strings.ContainsAny(name, `/\`) || strings.HasPrefix(name, ".") {
		return fmt.Errorf("dist: bad file name %q", name)
	}
	return os.WriteFile(s.Path(name), data, 0o644)
}

// WriteSums writes sha256sums over names (sorted), which must already be
// in the staging directory.
func (s *Stage) WriteSums(names []string) error {
	sums, err := sumLines(s.Dir, names, nil)
	if err != nil {
		return err
	}
	return os.WriteFile(s.Path(SumsFile), sums, 0o644)
}

// Commit moves the staging directory to outDir/<profile> in one rename,
// replacing what was there, and returns that path.
func (s *Stage) Commit() (string, error) {
	final := filepath.Join(s.outDir, s.profile)
	old := final + ".old"
	os.RemoveAll(old)
	if _, err := os.Stat(final); err == nil {
		if err := os.Rename(final, old); err != nil {
			return "", err
		}
	}
	if err := os.Rename(s.Dir, final); err != nil {
		os.Rename(old, final)
		return "", err
	}
	os.RemoveAll(old)
	return final, nil
}

// Abort removes the staging directory; after Commit it does nothing.
func (s *Stage) Abort() { os.RemoveAll(s.Dir) }

// ExtendSums adds (or refreshes) names in dir/sha256sums, sorted, and
// writes it atomically.
func ExtendSums(dir string, names []string) error {
	path := filepath.Join(dir, SumsFile)
	lines := map[string]string{}
	if data, err := os.ReadFile(path); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if sum, name, ok := strings.Cut(l, " *"); ok {
				lines[name] = sum
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	sums, err := sumLines(dir, names, lines)
	if err != nil {
		return err
	}
	return imagesig.WriteFileAtomic(path, sums, 0o644)
}

// sumLines is a sha256sums file ("HEX *NAME" lines, sorted by name) over
// have and the files names in dir.
func sumLines(dir string, names []string, have map[string]string) ([]byte, error) {
	lines := map[string]string{}
	for n, s := range have {
		lines[n] = s
	}
	for _, n := range names {
		// A line names a file in dir itself: no path, and nothing that
		// would break the line format.
		if n == "" || n == "." || n == ".." || strings.ContainsAny(n, "/\\\n") {
			return nil, fmt.Errorf("dist: %s: bad file name %q (want a name in %s, no path)", SumsFile, n, dir)
		}
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, err
		}
		lines[n] = SHA256Hex(data)
	}
	keys := make([]string, 0, len(lines))
	for k := range lines {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s *%s\n", lines[k], k)
	}
	return []byte(b.String()), nil
}

// SHA256Hex is the lowercase hex SHA-256 of b.
func SHA256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
