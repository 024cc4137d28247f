package manifest

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// TimeFormat is the only accepted timestamp form: RFC 3339, UTC, whole
// seconds, "Z". One spelling per instant keeps the encoding canonical.
const TimeFormat = "2006-01-02T15:04:05Z"

// wire is the JSON shape of a Manifest. Field order here is the canonical
// key order; times are strings so their spelling is fixed.
type wire struct {
	Schema   int       `json:"schema"`
	Channel  string    `json:"channel"`
	IssuedAt string    `json:"issued_at"`
	NotAfter string    `json:"not_after"`
	Sequence uint64    `json:"sequence"`
	Releases []Release `json:"releases"`
}

// Encode returns the canonical payload of m: compact JSON with keys in the
// fixed order of the struct definitions, followed by one "\n". It refuses a
// manifest that Verify would refuse as malformed, so nobody signs one.
func Encode(m *Manifest) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return encode(m)
}

func encode(m *Manifest) ([]byte, error) {
	w := wire{
		Schema: m.Schema, Channel: m.Channel,
		IssuedAt: m.IssuedAt.UTC().Format(TimeFormat),
		NotAfter: m.NotAfter.UTC().Format(TimeFormat),
		Sequence: m.Sequence, Releases: m.Releases,
	}
	if w.Releases == nil {
		w.Releases = []Release{}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // Encode appends the "\n"
	if err := enc.Encode(&w); err != nil {
		return nil, fmt.Errorf("manifest: encoding: %w", err)
	}
	return buf.Bytes(), nil
}

// DecodeManifest parses a signed payload. Unknown fields, trailing data,
// non-canonical spelling and invalid values are ErrMalformed; a schema other
// than Schema is ErrBadSchema.
func DecodeManifest(payload []byte) (*Manifest, error) {
	if len(payload) > MaxSize {
		return nil, fmt.Errorf("%w: payload is %d bytes, limit %d", ErrTooLarge, len(payload), MaxSize)
	}
	// The schema is read on its own first so that a future schema gets a
	// clear "upgrade" error instead of "unknown field".
	var probe struct {
		Schema json.RawMessage `json:"schema"`
	}
	if err := json.Unmarshal(payload, &probe); err != nil {
		return nil, fmt.Errorf("%w: payload json: %v", ErrMalformed, err)
	}
	if string(probe.Schema) != "1" {
		return nil, fmt.Errorf("%w: schema %s, this router reads schema %d; it needs a firmware update by hand", ErrBadSchema, probe.Schema, Schema)
	}
	var w wire
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("%w: payload json: %v", ErrMalformed, err)
	}
	m := &Manifest{Schema: w.Schema, Channel: w.Channel, Sequence: w.Sequence, Releases: w.Releases}
	var err error
	if m.IssuedAt, err = parseTime("issued_at", w.IssuedAt); err != nil {
		return nil, err
	}
	if m.NotAfter, err = parseTime("not_after", w.NotAfter); err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	again, err := encode(m)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(again, payload) {
		return nil, fmt.Errorf("%w: payload is not in canonical form (first difference at byte %d); sign what manifest.Encode produces",
			ErrMalformed, firstDiff(again, payload))
	}
	return m, nil
}

func firstDiff(a, b []byte) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func parseTime(field, s string) (time.Time, error) {
	t, err := time.Parse(TimeFormat, s)
	if err != nil || t.Format(TimeFormat) != s {
		return time.Time{}, fmt.Errorf("%w: %s %q: want UTC like %s", ErrMalformed, field, s, TimeFormat)
	}
	return t, nil
}

// Validate checks every field of m against the format's rules.
func (m *Manifest) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	if m.Schema != Schema {
		return fmt.Errorf("%w: schema %d, want %d", ErrBadSchema, m.Schema, Schema)
	}
	if err := checkName("channel", m.Channel); err != nil {
		return err
	}
	if m.IssuedAt.IsZero() || m.NotAfter.IsZero() {
		return bad("issued_at and not_after are required")
	}
	if m.IssuedAt.Year() < 2000 || m.NotAfter.Year() > 9999 {
		return bad("issued_at or not_after out of range")
	}
	if !m.IssuedAt.Before(m.NotAfter) {
		return bad("not_after %s is not after issued_at %s", m.NotAfter.UTC().Format(TimeFormat), m.IssuedAt.UTC().Format(TimeFormat))
	}
	if life := m.NotAfter.Sub(m.IssuedAt); life > MaxLifetime {
		return bad("valid for %s, longer than the %s a router accepts", life, MaxLifetime)
	}
	if m.IssuedAt.Nanosecond() != 0 || m.NotAfter.Nanosecond() != 0 {
		return bad("timestamps must be whole seconds")
	}
	if m.Sequence == 0 {
		return bad("sequence must be at least 1")
	}
	if len(m.Releases) > MaxReleases {
		return bad("%d releases, limit %d", len(m.Releases), MaxReleases)
	}
	images := map[string]bool{}
	for i := range m.Releases {
		r := &m.Releases[i]
		if err := r.validate(); err != nil {
			return fmt.Errorf("%w (releases[%d])", err, i)
		}
		if images[r.Image] {
			return bad("releases[%d]: image %q listed twice", i, r.Image)
		}
		images[r.Image] = true
	}
	return nil
}

func (r *Release) validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, a...))
	}
	for _, f := range []struct{ name, v string }{
		{"profile", r.Profile}, {"version", r.Version}, {"tor_version", r.TorVersion}, {"rollout.group", r.Rollout.Group},
	} {
		if err := checkName(f.name, f.v); err != nil {
			return err
		}
	}
	// The profile is a directory on the mirrors (<mirror>/<profile>/<image>).
	if err := checkPathName("profile", r.Profile); err != nil {
		return err
	}
	if len(r.Board) == 0 || len(r.Board) > MaxBoards {
		return bad("board: want 1 to %d names, have %d", MaxBoards, len(r.Board))
	}
	for _, b := range r.Board {
		if err := checkName("board", b); err != nil {
			return err
		}
	}
	if err := checkFileName(r.Image); err != nil {
		return err
	}
	if r.Build == 0 {
		return bad("build must be at least 1")
	}
	if r.MinVersion > r.Build {
		return bad("min_version %d is above build %d", r.MinVersion, r.Build)
	}
	if r.Size <= 0 || r.Size > MaxImageSize {
		return bad("size %d: want 1 to %d", r.Size, MaxImageSize)
	}
	if len(r.SHA256) != 64 {
		return bad("sha256 %q: want 64 lowercase hex digits", r.SHA256)
	}
	if _, err := hex.DecodeString(r.SHA256); err != nil || !isLowerHex(r.SHA256) {
		return bad("sha256 %q: want 64 lowercase hex digits", r.SHA256)
	}
	if r.Rollout.Priority < 0 || r.Rollout.Priority > 100 {
		return bad("rollout.priority %d: want 0 to 100", r.Rollout.Priority)
	}
	if r.Rollout.SpreadHours < 0 || r.Rollout.SpreadHours > MaxSpreadHours {
		return bad("rollout.spread_hours %d: want 0 to %d", r.Rollout.SpreadHours, MaxSpreadHours)
	}
	return nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// checkName allows the characters that OpenWrt board names, versions and
// channel names use, and nothing that needs escaping in JSON, HTML, a URL
// path or a shell.
func checkName(field, s string) error {
	if s == "" || len(s) > MaxString {
		return fmt.Errorf("%w: %s: want 1 to %d characters, have %d", ErrMalformed, field, MaxString, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.' || c == '_' || c == '-' || c == '+' || c == ',' || c == ':' || c == '~' || c == '@':
		default:
			return fmt.Errorf("%w: %s %q: byte %d (0x%02x) not allowed; use letters, digits and . _ - + , : ~ @", ErrMalformed, field, s, i, c)
		}
	}
	return nil
}

// checkFileName keeps image names usable as a URL path segment and as a
// file name in the download directory: no separators, no dot files.
func checkFileName(s string) error { return checkPathName("image", s) }

// checkPathName accepts s as one path component of a mirror URL.
func checkPathName(field, s string) error {
	if err := checkName(field, s); err != nil {
		return err
	}
	if s[0] == '.' || s[0] == '-' {
		return fmt.Errorf("%w: %s %q must not start with '.' or '-'", ErrMalformed, field, s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] == ':' || s[i] == '@' || s[i] == ',' || s[i] == '~' {
			return fmt.Errorf("%w: %s %q: %q not allowed in a file name", ErrMalformed, field, s, s[i])
		}
	}
	return nil
}
