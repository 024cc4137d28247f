package userland

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// LockFileName is the committed lock's name in this package's directory.
const LockFileName = "bookworm-amd64.lock"

//go:embed bookworm-amd64.lock
var committedLock []byte

// Committed returns the lock file committed with this package.
func Committed() (*Lock, error) {
	l, err := ParseLock(committedLock)
	if err != nil {
		return nil, fmt.Errorf("userland: committed %s: %w", LockFileName, err)
	}
	return l, nil
}

// Entry pins one .deb.
type Entry struct {
	Name    string // Debian package name
	Version string // full version, epoch included ("1:1.2.13.dfsg-1+deb12u1")
	Arch    string // "amd64" or "all"
	SHA256  string // 64 lowercase hex digits, from apt's signed index
	Size    int64  // bytes of the .deb
	URL     string // absolute http(s) URL of the .deb
}

// Lock is a parsed lock file. Entries are sorted by Name, one per name;
// Layer merges the packages in that order.
type Lock struct {
	Suite   string // "# suite:" header: the apt releases it was resolved from
	Made    string // "# made:" header: when, as YYYY-MM-DD
	Command string // "# command:" header: what regenerates it
	Entries []Entry
}

// Header keys ParseLock reads back from "# key: value" comment lines.
const (
	hdrSuite   = "suite"
	hdrMade    = "made"
	hdrCommand = "command"
)

var (
	pkgNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	versionRE = regexp.MustCompile(`^([0-9]+:)?[0-9A-Za-z][0-9A-Za-z.+~-]*$`)
	sha256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	sizeRE    = regexp.MustCompile(`^[1-9][0-9]{0,11}$`)
)

// archs are the architectures a bookworm-amd64 lock may name.
var archs = []string{"all", "amd64"}

// ParseLock parses a lock file. It is strict: every non-comment line must be
// "name version arch sha256 size url" with valid fields, names sorted and
// unique; errors say which line.
func ParseLock(b []byte) (*Lock, error) {
	l := &Lock{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		if c, ok := strings.CutPrefix(line, "#"); ok {
			k, v, ok := strings.Cut(strings.TrimSpace(c), ":")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			switch k {
			case hdrSuite:
				l.Suite = v
			case hdrMade:
				l.Made = v
			case hdrCommand:
				l.Command = v
			}
			continue
		}
		e, err := parseEntry(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if len(l.Entries) > 0 {
			prev := l.Entries[len(l.Entries)-1].Name
			switch {
			case prev == e.Name:
				return nil, fmt.Errorf("line %d: duplicate package %q", n, e.Name)
			case prev > e.Name:
				return nil, fmt.Errorf("line %d: package %q is not sorted (after %q)", n, e.Name, prev)
			}
		}
		l.Entries = append(l.Entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", n+1, err)
	}
	if len(l.Entries) == 0 {
		return nil, errors.New("no packages")
	}
	return l, nil
}

func parseEntry(line string) (Entry, error) {
	f := strings.Fields(line)
	if len(f) != 6 {
		return Entry{}, fmt.Errorf("want 6 fields (name version arch sha256 size url), got %d", len(f))
	}
	size, _ := strconv.ParseInt(f[4], 10, 64)
	e := Entry{Name: f[0], Version: f[1], Arch: f[2], SHA256: f[3], Size: size, URL: f[5]}
	if !sizeRE.MatchString(f[4]) {
		return Entry{}, fmt.Errorf("size: %q is not a positive decimal number", f[4])
	}
	return e, e.validate()
}

func (e Entry) validate() error {
	switch {
	case !pkgNameRE.MatchString(e.Name):
		return fmt.Errorf("name: %q is not a Debian package name", e.Name)
	case !versionRE.MatchString(e.Version):
		return fmt.Errorf("version: %q is not a Debian version", e.Version)
	case !slices.Contains(archs, e.Arch):
		return fmt.Errorf("arch: %q is not one of %s", e.Arch, strings.Join(archs, ", "))
	case !sha256RE.MatchString(e.SHA256):
		return fmt.Errorf("sha256: %q is not 64 lowercase hex digits", e.SHA256)
	case e.Size <= 0:
		return fmt.Errorf("size: %d is not positive", e.Size)
	}
	u, err := url.Parse(e.URL)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "", u.User != nil:
		return fmt.Errorf("url: %q is not an absolute http(s) URL without user info", e.URL)
	case u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return fmt.Errorf("url: %q has a query or fragment", e.URL)
	case !strings.HasSuffix(u.Path, ".deb") || !strings.HasPrefix(u.Path[strings.LastIndexByte(u.Path, '/')+1:], e.Name+"_"):
		return fmt.Errorf("url: %q does not name a %s_*.deb file", e.URL, e.Name)
	case strings.ContainsAny(e.URL, " \t"):
		return fmt.Errorf("url: %q contains white space", e.URL)
	}
	return nil
}

// Marshal returns the lock file: the header comments, then one line per
// entry, sorted by name, ending with a newline. ParseLock(l.Marshal())
// gives l back.
func (l *Lock) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString("# Pinned Debian packages of the ImageBuilder userland (internal/userland).\n")
	fmt.Fprintf(&b, "# %s: %s\n", hdrSuite, oneLine(l.Suite))
	fmt.Fprintf(&b, "# %s: %s\n", hdrMade, oneLine(l.Made))
	fmt.Fprintf(&b, "# %s: %s\n", hdrCommand, oneLine(l.Command))
	b.WriteString("# The userland layer's DiffID follows from the package lines below and the\n")
	b.WriteString("# epoch alone (userland.Layer); the comment lines do not count.\n")
	b.WriteString("# name version arch sha256 size url\n")
	b.Write(l.entryLines())
	return b.Bytes()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func (l *Lock) entryLines() []byte {
	es := slices.Clone(l.Entries)
	slices.SortStableFunc(es, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	var b bytes.Buffer
	for _, e := range es {
		fmt.Fprintf(&b, "%s %s %s %s %d %s\n", e.Name, e.Version, e.Arch, e.SHA256, e.Size, e.URL)
	}
	return b.Bytes()
}

// Sum is the hex SHA-256 of the lock's package lines in canonical form. The
// header comments are not part of it, so re-dating a lock whose packages
// did not change keeps cached layers valid.
func (l *Lock) Sum() string {
	s := sha256.Sum256(l.entryLines())
	return hex.EncodeToString(s[:])
}

// Validate checks every entry and that names are unique and sorted, as
// ParseLock does. The order matters: Layer merges packages in it, and Sum
// assumes it.
func (l *Lock) Validate() error {
	if len(l.Entries) == 0 {
		return errors.New("userland: lock has no packages")
	}
	for i, e := range l.Entries {
		if err := e.validate(); err != nil {
			return fmt.Errorf("userland: lock entry %s: %w", e.Name, err)
		}
		if i > 0 && l.Entries[i-1].Name >= e.Name {
			return fmt.Errorf("userland: lock entries %q and %q are not sorted by name or not unique", l.Entries[i-1].Name, e.Name)
		}
	}
	return nil
}

// Diff describes how new differs from old, one line per package: "+name
// version", "-name version" or "~name old -> new". Equal locks give nil.
func Diff(old, new *Lock) []string {
	o := map[string]Entry{}
	for _, e := range old.Entries {
		o[e.Name] = e
	}
	var out []string
	seen := map[string]bool{}
	for _, e := range new.Entries {
		seen[e.Name] = true
		p, ok := o[e.Name]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("+%s %s", e.Name, e.Version))
		case p.Version != e.Version:
			out = append(out, fmt.Sprintf("~%s %s -> %s", e.Name, p.Version, e.Version))
		case p != e:
			out = append(out, fmt.Sprintf("~%s %s (same version, different file)", e.Name, e.Version))
		}
	}
	for _, e := range old.Entries {
		if !seen[e.Name] {
			out = append(out, fmt.Sprintf("-%s %s", e.Name, e.Version))
		}
	}
	slices.SortFunc(out, func(a, b string) int { return strings.Compare(a[1:], b[1:]) })
	return out
}
