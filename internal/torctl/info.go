package torctl

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// VersionStatus is Tor's opinion of its own version, from the consensus's
// recommended-versions list (GETINFO status/version/current).
type VersionStatus string

const (
	VersionRecommended   VersionStatus = "recommended"
	VersionNew           VersionStatus = "new"
	VersionNewInSeries   VersionStatus = "new in series"
	VersionOld           VersionStatus = "old"
	VersionUnrecommended VersionStatus = "unrecommended"
	VersionObsolete      VersionStatus = "obsolete"
	// VersionUnknown is what Tor says without a consensus, e.g. offline.
	VersionUnknown VersionStatus = "unknown"
)

// ParseVersionStatus accepts exactly the values Tor's control spec lists.
func ParseVersionStatus(s string) (VersionStatus, error) {
	switch v := VersionStatus(s); v {
	case VersionRecommended, VersionNew, VersionNewInSeries, VersionOld,
		VersionUnrecommended, VersionObsolete, VersionUnknown:
		return v, nil
	}
	return "", fmt.Errorf("%w: unknown version status %q", ErrProtocol, clip(s))
}

// NeedsUpdate reports whether the directory authorities no longer
// recommend this Tor: the router then checks for a new image at once.
func (v VersionStatus) NeedsUpdate() bool {
	return v == VersionOld || v == VersionUnrecommended || v == VersionObsolete
}

// Bootstrap is the parsed status/bootstrap-phase value, e.g.
// `NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY="Done"`.
type Bootstrap struct {
	Severity string `json:"severity"`
	Progress int    `json:"progress"`
	Tag      string `json:"tag"`
	Summary  string `json:"summary"`
	// Warning and Reason are set when bootstrapping is stuck.
	Warning string `json:"warning,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// Done reports whether Tor has finished bootstrapping.
func (b *Bootstrap) Done() bool { return b.Progress >= 100 }

// ParseBootstrap parses a status/bootstrap-phase value.
func ParseBootstrap(s string) (*Bootstrap, error) {
	sev, rest, _ := strings.Cut(s, " ")
	word, rest, _ := strings.Cut(rest, " ")
	if word != "BOOTSTRAP" || sev == "" {
		return nil, fmt.Errorf("%w: bootstrap phase %q", ErrProtocol, clip(s))
	}
	kv, err := parseKV(rest)
	if err != nil {
		return nil, fmt.Errorf("%w: bootstrap phase: %v", ErrProtocol, err)
	}
	p, err := strconv.Atoi(kv["PROGRESS"])
	if err != nil || p < 0 || p > 100 {
		return nil, fmt.Errorf("%w: bootstrap PROGRESS %q", ErrProtocol, clip(kv["PROGRESS"]))
	}
	return &Bootstrap{Severity: sev, Progress: p, Tag: kv["TAG"], Summary: kv["SUMMARY"], Warning: kv["WARNING"], Reason: kv["REASON"]}, nil
}

// Version returns Tor's version string.
func (c *Conn) Version(ctx context.Context) (string, error) {
	v, err := c.GetInfo(ctx, "version")
	if err != nil {
		return "", err
	}
	return v["version"], nil
}

// VersionStatus returns Tor's recommendation for its own version.
func (c *Conn) VersionStatus(ctx context.Context) (VersionStatus, error) {
	v, err := c.GetInfo(ctx, "status/version/current")
	if err != nil {
		return "", err
	}
	return ParseVersionStatus(v["status/version/current"])
}

// Bootstrap returns the bootstrap phase.
func (c *Conn) Bootstrap(ctx context.Context) (*Bootstrap, error) {
	v, err := c.GetInfo(ctx, "status/bootstrap-phase")
	if err != nil {
		return nil, err
	}
	return ParseBootstrap(v["status/bootstrap-phase"])
}

// ConsensusTimeFormat is how Tor prints consensus times (UTC).
const ConsensusTimeFormat = "2006-01-02 15:04:05"

// ConsensusValidAfter returns the valid-after time of Tor's current
// consensus: signed by the directory authorities, it is a lower bound for
// the real time on a router without a clock. Without a consensus the
// error matches ErrUnavailable.
func (c *Conn) ConsensusValidAfter(ctx context.Context) (time.Time, error) {
	v, err := c.GetInfo(ctx, "consensus/valid-after")
	if err != nil {
		return time.Time{}, err
	}
	s := v["consensus/valid-after"]
	if s == "" {
		// Tor 0.4.9 answers 250 with an empty value when it has no
		// consensus; older versions answer 551.
		return time.Time{}, fmt.Errorf("%w: tor has no consensus yet", ErrUnavailable)
	}
	return ParseConsensusTime(s)
}

// ParseConsensusTime parses "2006-01-02 15:04:05" as UTC.
func ParseConsensusTime(s string) (time.Time, error) {
	t, err := time.Parse(ConsensusTimeFormat, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: consensus time %q", ErrProtocol, clip(s))
	}
	return t, nil
}

// Status is everything the router shows about Tor, read in one go.
type Status struct {
	Version       string        `json:"version"`
	VersionStatus VersionStatus `json:"version_status"`
	Bootstrap     *Bootstrap    `json:"bootstrap"`
	// ValidAfter is zero when Tor has no live consensus.
	ValidAfter time.Time `json:"consensus_valid_after,omitzero"`
}

// Status reads version, version status, bootstrap phase and, if Tor has
// one, the consensus time.
func (c *Conn) Status(ctx context.Context) (*Status, error) {
	v, err := c.GetInfo(ctx, "version", "status/version/current", "status/bootstrap-phase")
	if err != nil {
		return nil, err
	}
	st := &Status{Version: v["version"]}
	if st.VersionStatus, err = ParseVersionStatus(v["status/version/current"]); err != nil {
		return nil, err
	}
	if st.Bootstrap, err = ParseBootstrap(v["status/bootstrap-phase"]); err != nil {
		return nil, err
	}
	// Asked separately: without a consensus Tor fails the whole GETINFO.
	va, err := c.ConsensusValidAfter(ctx)
	switch {
	case err == nil:
		st.ValidAfter = va
	case !errors.Is(err, ErrUnavailable):
		return nil, err
	}
	return st, nil
}

// parseKV parses space-separated KEY=VALUE pairs where VALUE may be a
// quoted string with backslash escapes. Bare words without '=' (flags)
// are ignored.
func parseKV(s string) (map[string]string, error) {
	out := map[string]string{}
	for {
		s = strings.TrimLeft(s, " ")
		if s == "" {
			return out, nil
		}
		eq := strings.IndexAny(s, "= ")
		if eq < 0 || s[eq] == ' ' {
			// A flag without a value.
			_, s, _ = strings.Cut(s, " ")
			continue
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			v, n, err := unquote(s)
			if err != nil {
				return nil, fmt.Errorf("value of %s: %w", key, err)
			}
			val, s = v, s[n:]
			if s != "" && s[0] != ' ' {
				return nil, fmt.Errorf("value of %s: text after the closing quote", key)
			}
		} else {
			val, s, _ = strings.Cut(s, " ")
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("key %s repeated", key)
		}
		out[key] = val
	}
}

// unquote reads a control-spec QuotedString at the start of s and returns
// its value and the number of bytes consumed.
func unquote(s string) (string, int, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			return b.String(), i + 1, nil
		case '\\':
			i++
			if i == len(s) {
				return "", 0, errors.New("unterminated escape")
			}
			switch e := s[i]; e {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			default:
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, errors.New("unterminated quoted string")
}
