package updater

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/torwrt/torwrt/internal/manifest"
)

// State is what the router remembers between checks and across reboots.
// It lives on the overlay (kept over sysupgrade) and is replaced
// atomically, so a power cut leaves the old or the new state, never half.
type State struct {
	// Manifest is the last accepted manifest: freeze/replay protection.
	Manifest manifest.State `json:"manifest"`
	// Floor is the highest min_version seen for this board.
	Floor uint64 `json:"floor"`
	// InstalledBuild and InstalledVersion are what the updater last
	// flashed; the running firmware's release file, when configured, wins.
	InstalledBuild   uint64 `json:"installed_build"`
	InstalledVersion string `json:"installed_version,omitempty"`
	// Seed is 32 random bytes (hex) made on first start; it places this
	// router in staged rollouts without identifying it to anyone.
	Seed string `json:"seed"`
	// Pending is the release the router is waiting to install.
	Pending *Pending `json:"pending,omitempty"`

	LastCheck   time.Time `json:"last_check,omitzero"`
	LastResult  string    `json:"last_result,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	LastInstall time.Time `json:"last_install,omitzero"`
}

// Pending records when a release was first seen, the start of its
// rollout delay. Counting from first sight (not from issued_at) keeps the
// delay stable when the pipeline re-signs the manifest every few days.
type Pending struct {
	Build     uint64    `json:"build"`
	Version   string    `json:"version"`
	FirstSeen time.Time `json:"first_seen"`
	Until     time.Time `json:"until"`
}

const maxStateSize = 64 << 10

// LoadState reads the state at path. A missing file gives a fresh state
// with a new seed (saved at once, so the seed is stable). A corrupt file
// is moved aside to path+".corrupt" and replaced by a fresh state that
// keeps every floor it can still read (the replay state, the rollback
// floor, the installed build): they only ever go up, so damage — a flash
// error, a crafted file — must not lower them. The returned note says what
// happened, for the log.
func LoadState(path string) (st *State, note string, err error) {
	b, err := readLimited(path, maxStateSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		st, err = freshState()
		if err != nil {
			return nil, "", err
		}
		return st, "no state file; created one", SaveState(path, st)
	case err != nil:
		return nil, "", fmt.Errorf("reading state: %w", err)
	}
	st = &State{}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err = dec.Decode(st)
	if err == nil && dec.More() {
		err = errors.New("data after the state object")
	}
	if err == nil && strings.TrimSpace(string(b[dec.InputOffset():])) != "" {
		err = errors.New("data after the state object")
	}
	if err != nil || !validSeed(st.Seed) {
		why := "bad seed"
		if err != nil {
			why = err.Error()
		}
		if rerr := os.Rename(path, path+".corrupt"); rerr != nil {
			return nil, "", fmt.Errorf("state %s is corrupt (%s) and cannot be moved aside: %w", path, why, rerr)
		}
		fresh, err := freshState()
		if err != nil {
			return nil, "", err
		}
		kept := salvage(b, fresh)
		return fresh, fmt.Sprintf("state %s was corrupt (%s); moved to %s.corrupt and started afresh, keeping %s", path, why, path, kept), SaveState(path, fresh)
	}
	return st, "", nil
}

// salvage copies into st the floors it can read from a damaged state file,
// field by field, so that one bad field does not cost the others, and says
// what it kept.
func salvage(b []byte, st *State) string {
	var fields map[string]json.RawMessage
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&fields); err != nil {
		return "nothing (unreadable): replay protection restarts from the next manifest; the running firmware's build still bounds rollback"
	}
	var kept []string
	var m manifest.State
	if json.Unmarshal(fields["manifest"], &m) == nil && m.Sequence > 0 {
		st.Manifest = m
		kept = append(kept, fmt.Sprintf("manifest sequence %d", m.Sequence))
	}
	var n uint64
	if json.Unmarshal(fields["floor"], &n) == nil && n > 0 {
		st.Floor = n
		kept = append(kept, fmt.Sprintf("floor %d", n))
	}
	n = 0
	if json.Unmarshal(fields["installed_build"], &n) == nil && n > 0 {
		st.InstalledBuild = n
		var v string
		if json.Unmarshal(fields["installed_version"], &v) == nil {
			st.InstalledVersion = v
		}
		kept = append(kept, fmt.Sprintf("installed build %d", n))
	}
	if len(kept) == 0 {
		return "no floor (none readable): replay protection restarts from the next manifest"
	}
	return strings.Join(kept, ", ")
}

// ReadState reads the state at path without creating, repairing or
// locking anything, for readers such as the status page.
func ReadState(path string) (*State, error) {
	b, err := readLimited(path, maxStateSize)
	if err != nil {
		return nil, fmt.Errorf("reading state: %w", err)
	}
	st := &State{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("state %s: %w", path, err)
	}
	return st, nil
}

func freshState() (*State, error) {
	seed := make([]byte, 32)
	if _, err := rand.Read(seed); err != nil {
		return nil, fmt.Errorf("making rollout seed: %w", err)
	}
	return &State{Seed: hex.EncodeToString(seed)}, nil
}

func validSeed(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == 32
}

// SaveState writes st to path atomically: a temporary file in the same
// directory, fsync, rename, fsync of the directory.
func SaveState(path string, st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(path, append(b, '\n'), 0o600)
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	// The rename is durable only once the directory entry is on disk.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

func readLimited(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return b, nil
}

// rolloutFraction places this router in [0,1) for one release: stable for
// the router and the release, independent between releases, and
// meaningless to anyone without the seed.
func rolloutFraction(seed string, r *manifest.Release) float64 {
	h := sha256.New()
	h.Write([]byte("torwrt rollout\x00"))
	h.Write([]byte(seed))
	h.Write([]byte{0})
	h.Write([]byte(r.Rollout.Group))
	h.Write([]byte{0})
	h.Write([]byte(strconv.FormatUint(r.Build, 10)))
	x := binary.BigEndian.Uint64(h.Sum(nil))
	return float64(x>>11) / (1 << 53)
}
