// Package manifest encodes, signs and verifies the signed update manifest
// that tells routers which release to install.
//
// The signed payload is the canonical JSON of a Manifest (Encode). It travels
// base64-encoded inside an envelope next to its usign signatures, so the
// bytes that were signed are the bytes that are verified: no
// re-serialisation sits between a signer and a verifier. A verifier accepts a
// payload only if it re-encodes to itself, which rules out duplicate keys,
// case-folded keys, unknown fields, odd number forms and whitespace games.
//
// The package is pure: bytes in, values or errors out. Time is passed in.
package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/torwrt/torwrt/internal/usign"
)

// Sentinel errors. cmd/verify maps each to a fixed exit code, and the
// updater logs the refusal reason with it.
var (
	ErrTooLarge   = errors.New("manifest: too large")
	ErrMalformed  = errors.New("manifest: malformed")
	ErrThreshold  = errors.New("manifest: not enough valid signatures from trusted keys")
	ErrExpired    = errors.New("manifest: expired")
	ErrReplay     = errors.New("manifest: older than the last accepted manifest (replay or freeze)")
	ErrRollback   = errors.New("manifest: release is not newer than the installed firmware")
	ErrWrongBoard = errors.New("manifest: no release for this board")
	ErrUpToDate   = errors.New("manifest: installed firmware is the newest release")
	ErrBadSchema  = errors.New("manifest: unsupported schema version")
	ErrConfig     = errors.New("manifest: bad verifier configuration")
)

// Limits. A router fetches the manifest over Tor into RAM, so every count
// and length is bounded before anything is parsed.
const (
	// MaxSize bounds an envelope in bytes; the updater stops reading there.
	MaxSize = 64 << 10
	// MaxSignatures bounds the signatures one envelope may carry.
	MaxSignatures = 16
	// MaxReleases bounds the releases one manifest may list.
	MaxReleases = 64
	// MaxBoards bounds the board names of one release.
	MaxBoards = 16
	// MaxString bounds every string field.
	MaxString = 128
	// MaxImageSize bounds a release's image size. The largest image for a
	// 32 MB-flash board fits easily; anything larger is a typo or an attack.
	MaxImageSize = 256 << 20
	// MaxLifetime bounds not_after - issued_at. A manifest that stays
	// valid for years would let an attacker freeze a router on an old
	// release for years; the release pipeline re-signs well within this.
	MaxLifetime = 90 * 24 * time.Hour
	// MaxSpreadHours bounds a staged rollout (30 days).
	MaxSpreadHours = 30 * 24
	// Schema is the only schema version this package reads and writes.
	Schema = 1
)

// Manifest is the signed content.
type Manifest struct {
	Schema  int    `json:"schema"`
	Channel string `json:"channel"`
	// IssuedAt and NotAfter are UTC with second precision.
	IssuedAt time.Time `json:"issued_at"`
	NotAfter time.Time `json:"not_after"`
	// Sequence grows with every manifest the pipeline signs. A router
	// refuses a sequence lower than the last it accepted (freeze and replay
	// protection) and a different manifest with the same sequence.
	Sequence uint64    `json:"sequence"`
	Releases []Release `json:"releases"`
}

// Release is one image for one device profile.
type Release struct {
	Profile string `json:"profile"`
	// Board lists the board names (fwtool supported_devices) the image is
	// for; the router matches /tmp/sysinfo/board_name against it.
	Board   []string `json:"board"`
	Version string   `json:"version"`
	// Build is the monotonic build number that anti-rollback compares.
	Build uint64 `json:"build"`
	// Image is a bare file name, resolved against each mirror's base URL.
	Image string `json:"image"`
	// Size and SHA256 describe the image file exactly as served.
	Size       int64  `json:"size"`
	SHA256     string `json:"sha256"`
	TorVersion string `json:"tor_version"`
	// MinVersion is the floor build: no router may install a build of this
	// profile below it. Routers remember the highest floor they have seen.
	MinVersion uint64  `json:"min_version"`
	Rollout    Rollout `json:"rollout"`
}

// Rollout staggers installation over time.
type Rollout struct {
	Group string `json:"group"`
	// Priority 100 installs at once; 0 spreads over the full SpreadHours.
	Priority    int `json:"priority"`
	SpreadHours int `json:"spread_hours"`
}

// Delay is how long after first seeing a release a device installs it.
// fraction is the device's stable position in [0,1) for this release.
func (r Rollout) Delay(fraction float64) time.Duration {
	if fraction < 0 || fraction >= 1 || r.Priority >= 100 || r.SpreadHours <= 0 {
		return 0
	}
	spread := time.Duration(r.SpreadHours) * time.Hour
	return time.Duration(float64(spread) * float64(100-r.Priority) / 100 * fraction)
}

// State is what a router remembers of the last manifest it accepted.
type State struct {
	Sequence uint64    `json:"sequence"`
	IssuedAt time.Time `json:"issued_at"`
	// Digest is the hex sha256 of the accepted payload; a different
	// payload under the same sequence is refused.
	Digest string `json:"digest,omitempty"`
}

// Next returns the state after accepting v.
func (st State) Next(v *Verified) State {
	return State{Sequence: v.Manifest.Sequence, IssuedAt: v.Manifest.IssuedAt, Digest: v.Digest}
}

// Verified is a manifest that passed every check.
type Verified struct {
	Manifest *Manifest
	// Digest is the hex sha256 of the signed payload.
	Digest string
	// Keys are the fingerprints of the trusted keys whose signatures
	// counted, sorted.
	Keys []string
	// Ignored says, per signature that did not count, why not.
	Ignored []string
	// Envelope is the envelope exactly as verified, for a second verifier
	// (the root install helper) that trusts no one's word for it.
	Envelope []byte
}

// Verify checks b, an envelope, and returns its manifest. In order: size,
// envelope syntax, the verifier's own configuration, M-of-N signatures over
// the payload, payload syntax and canonical form, schema, expiry against
// now, and freshness against st. It returns nil error only after every
// check ran and passed. Board and version are Select's job.
func Verify(b []byte, keys *usign.Keyring, threshold int, now time.Time, st State) (*Manifest, error) {
	v, err := Check(b, keys, threshold, now, st)
	if err != nil {
		return nil, err
	}
	return v.Manifest, nil
}

// Check is Verify returning the details callers log and persist.
func Check(b []byte, keys *usign.Keyring, threshold int, now time.Time, st State) (*Verified, error) {
	env, err := Decode(b, MaxSize)
	if err != nil {
		return nil, err
	}
	signers, ignored, err := env.verifySignatures(keys, threshold)
	if err != nil {
		return nil, err
	}
	m, err := DecodeManifest(env.Signed)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(env.Signed)
	v := &Verified{Manifest: m, Digest: hex.EncodeToString(sum[:]), Keys: signers, Ignored: ignored, Envelope: b}
	if err := checkTime(m, now); err != nil {
		return nil, err
	}
	if err := checkFresh(m, v.Digest, st); err != nil {
		return nil, err
	}
	return v, nil
}

func checkTime(m *Manifest, now time.Time) error {
	if now.IsZero() {
		return fmt.Errorf("%w: no current time given", ErrConfig)
	}
	if now.After(m.NotAfter) {
		return fmt.Errorf("%w: not_after %s is before now %s; the mirror serves a stale manifest or the release pipeline stopped re-signing",
			ErrExpired, m.NotAfter.Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

func checkFresh(m *Manifest, digest string, st State) error {
	switch {
	case m.Sequence < st.Sequence:
		return fmt.Errorf("%w: sequence %d is lower than the accepted %d", ErrReplay, m.Sequence, st.Sequence)
	case m.IssuedAt.Before(st.IssuedAt):
		return fmt.Errorf("%w: issued_at %s is before the accepted %s", ErrReplay,
			m.IssuedAt.Format(time.RFC3339), st.IssuedAt.UTC().Format(time.RFC3339))
	case m.Sequence == st.Sequence && st.Digest != "" && digest != st.Digest:
		return fmt.Errorf("%w: sequence %d was already accepted with different content (digest %s, now %s)",
			ErrReplay, m.Sequence, short(st.Digest), short(digest))
	}
	return nil
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}

// Select returns the newest release of m for board and checks it against
// the installed build: ErrWrongBoard if m has nothing for the board,
// ErrUpToDate if the newest is the installed build, ErrRollback if it is
// older than installed or below its own floor.
func Select(m *Manifest, board string, installedBuild uint64) (*Release, error) {
	var best *Release
	for i := range m.Releases {
		r := &m.Releases[i]
		if !r.Supports(board) {
			continue
		}
		if best == nil || r.Build > best.Build {
			best = r
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%w: board %q is not in any of the %d releases of channel %q", ErrWrongBoard, board, len(m.Releases), m.Channel)
	}
	switch {
	case best.Build < best.MinVersion:
		return nil, fmt.Errorf("%w: build %d is below its floor %d", ErrRollback, best.Build, best.MinVersion)
	case best.Build == installedBuild:
		return nil, fmt.Errorf("%w: build %d (%s)", ErrUpToDate, best.Build, best.Version)
	case best.Build < installedBuild:
		return nil, fmt.Errorf("%w: newest release for %q is build %d (%s), installed is build %d",
			ErrRollback, board, best.Build, best.Version, installedBuild)
	}
	return best, nil
}

// Floor returns the highest min_version among board's releases.
func Floor(m *Manifest, board string) uint64 {
	var f uint64
	for _, r := range m.Releases {
		if r.Supports(board) && r.MinVersion > f {
			f = r.MinVersion
		}
	}
	return f
}

// Supports reports whether r lists board.
func (r *Release) Supports(board string) bool {
	for _, b := range r.Board {
		if b == board {
			return true
		}
	}
	return false
}
