package userland

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Suites are the apt releases (Codename fields) Resolve accepts package
// indexes from.
var Suites = []string{"bookworm", "bookworm-security", "bookworm-updates"}

// apt programs; tests may point them elsewhere.
var (
	aptGet   = "apt-get"
	aptCache = "apt-cache"
)

// Resolve asks the host's apt for pkgs and their dependency closure, as if
// installing into an empty system (a private empty dpkg status, an empty
// archive cache, no recommends), and returns a lock pinning each .deb's
// URL, size and SHA-256.
//
// It reads the host's apt lists and changes nothing on the host. Keeping
// the lists fresh (apt-get update) is the caller's job; a lock made from
// stale lists pins versions the mirror may no longer have. The host's apt
// sources must be Debian bookworm, bookworm-updates and bookworm-security
// for amd64 only; anything else is an error.
func Resolve(ctx context.Context, pkgs []string) (*Lock, error) {
	if len(pkgs) == 0 {
		return nil, errors.New("userland: resolve: no packages requested")
	}
	for _, p := range pkgs {
		if !pkgNameRE.MatchString(p) {
			return nil, fmt.Errorf("userland: resolve: %q is not a Debian package name", p)
		}
	}
	tmp, err := os.MkdirTemp("", "userland-resolve-")
	if err != nil {
		return nil, fmt.Errorf("userland: resolve: %w", err)
	}
	defer os.RemoveAll(tmp)
	status := filepath.Join(tmp, "status")
	archives := filepath.Join(tmp, "archives") + "/"
	if err := os.WriteFile(status, nil, 0o644); err != nil {
		return nil, fmt.Errorf("userland: resolve: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(archives, "partial"), 0o755); err != nil {
		return nil, fmt.Errorf("userland: resolve: %w", err)
	}
	// Options for both apt programs: an empty system, and no writes to the
	// host's package caches or locks.
	common := []string{
		"-o", "Dir::State::status=" + status,
		"-o", "Dir::Cache::Archives=" + archives,
		"-o", "Dir::Cache::pkgcache=",
		"-o", "Dir::Cache::srcpkgcache=",
		"-o", "Debug::NoLocking=1",
		"-o", "APT::Architecture=amd64",
	}

	policy, err := runApt(ctx, aptCache, append(slices.Clone(common), "policy"))
	if err != nil {
		return nil, err
	}
	suite, err := checkPolicy(policy)
	if err != nil {
		return nil, err
	}

	args := append(slices.Clone(common), "install", "--print-uris", "-qq", "--no-install-recommends", "-o", "APT::Install-Suggests=0")
	out, err := runApt(ctx, aptGet, append(args, pkgs...))
	if err != nil {
		return nil, err
	}
	uris, err := parsePrintURIs(out)
	if err != nil {
		return nil, err
	}

	// apt-get prints MD5 sums (or nothing, for indexes without them), so
	// the SHA-256 comes from the same signed index through apt-cache show.
	show := append(slices.Clone(common), "show")
	for _, u := range uris {
		show = append(show, u.Name+"="+u.Version)
	}
	out, err = runApt(ctx, aptCache, show)
	if err != nil {
		return nil, err
	}
	stanzas, err := parseStanzas(out)
	if err != nil {
		return nil, fmt.Errorf("userland: resolve: apt-cache show: %w", err)
	}
	l := &Lock{Suite: suite}
	for _, u := range uris {
		e, err := matchStanza(u, stanzas)
		if err != nil {
			return nil, fmt.Errorf("userland: resolve: %s %s: %w", u.Name, u.Version, err)
		}
		l.Entries = append(l.Entries, e)
	}
	slices.SortFunc(l.Entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return l, nil
}

func runApt(ctx context.Context, prog string, args []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = []string{"LC_ALL=C", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("userland: resolve: %s %s: %w\n%s", prog, strings.Join(args, " "), err, lastLines(stderr.String(), 40))
	}
	return stdout.Bytes(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// checkPolicy reads `apt-cache policy` and refuses package indexes from
// anything but Debian's bookworm suites for amd64. It returns the suites
// seen, for the lock header.
func checkPolicy(out []byte) (string, error) {
	var seen []string
	version := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 || f[0] != "release" || f[1] == "a=now" {
			continue
		}
		kv := map[string]string{}
		for _, p := range strings.Split(f[1], ",") {
			k, v, _ := strings.Cut(p, "=")
			kv[k] = v
		}
		if kv["o"] != "Debian" || !slices.Contains(Suites, kv["n"]) || (kv["b"] != "amd64" && kv["b"] != "all") {
			return "", fmt.Errorf("userland: resolve: apt has an index from %q, want only Debian %s for amd64; fix the apt sources and run apt-get update", f[1], strings.Join(Suites, ", "))
		}
		if !slices.Contains(seen, kv["n"]) {
			seen = append(seen, kv["n"])
		}
		if kv["n"] == "bookworm" {
			version = kv["v"]
		}
	}
	if !slices.Contains(seen, "bookworm") {
		return "", errors.New("userland: resolve: apt has no Debian bookworm index; add it to the apt sources and run apt-get update")
	}
	slices.Sort(seen)
	return fmt.Sprintf("Debian %s amd64 (%s)", version, strings.Join(seen, ", ")), nil
}

// aptURI is one line of `apt-get install --print-uris`.
type aptURI struct {
	URL, File, Name, Version, Arch string
	Size                           int64
}

// parsePrintURIs reads lines of the form
//
//	'http://deb.debian.org/debian/pool/main/b/bash/bash_5.2.15-2%2bb13_amd64.deb' bash_5.2.15-2+b13_amd64.deb 1490652 MD5Sum:f973...
//
// (the hash field is empty for indexes without MD5 sums). Name, version and
// architecture come from the file name, whose version has ':' escaped.
func parsePrintURIs(out []byte) ([]aptURI, error) {
	var us []aptURI
	sc := bufio.NewScanner(bytes.NewReader(out))
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		rest, ok := strings.CutPrefix(line, "'")
		var raw string
		if ok {
			raw, rest, ok = strings.Cut(rest, "' ")
		}
		f := strings.Fields(rest)
		if !ok || len(f) < 2 || len(f) > 3 {
			return nil, fmt.Errorf("userland: resolve: apt-get --print-uris line %d: unexpected %q", n, line)
		}
		size, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || size <= 0 {
			return nil, fmt.Errorf("userland: resolve: apt-get --print-uris line %d: bad size %q", n, f[1])
		}
		u := aptURI{URL: raw, File: f[0], Size: size}
		base, ok := strings.CutSuffix(f[0], ".deb")
		parts := strings.Split(base, "_")
		if !ok || len(parts) != 3 {
			return nil, fmt.Errorf("userland: resolve: apt-get --print-uris line %d: %q is not name_version_arch.deb", n, f[0])
		}
		u.Name, u.Arch = parts[0], parts[2]
		if u.Version, err = url.PathUnescape(parts[1]); err != nil {
			return nil, fmt.Errorf("userland: resolve: apt-get --print-uris line %d: version %q: %w", n, parts[1], err)
		}
		us = append(us, u)
	}
	if len(us) == 0 {
		return nil, errors.New("userland: resolve: apt-get --print-uris printed no packages")
	}
	return us, nil
}

// parseStanzas reads deb822 paragraphs (apt-cache show) into field maps;
// continuation lines are dropped, as no field Resolve reads has any.
func parseStanzas(out []byte) ([]map[string]string, error) {
	var all []map[string]string
	cur := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if len(cur) > 0 {
				all = append(all, cur)
				cur = map[string]string{}
			}
		case line[0] == ' ' || line[0] == '\t':
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf("unexpected line %q", line)
			}
			cur[k] = strings.TrimSpace(v)
		}
	}
	if len(cur) > 0 {
		all = append(all, cur)
	}
	return all, sc.Err()
}

// matchStanza finds the index record for u: same package, version and
// pool file, and the same size apt-get printed.
func matchStanza(u aptURI, stanzas []map[string]string) (Entry, error) {
	pu, err := url.Parse(u.URL)
	if err != nil {
		return Entry{}, fmt.Errorf("url %q: %w", u.URL, err)
	}
	pu.RawPath = "" // print "+" and "~" as themselves, not %2b and %7e
	for _, s := range stanzas {
		if s["Package"] != u.Name || s["Version"] != u.Version || s["Filename"] == "" {
			continue
		}
		if !strings.HasSuffix(pu.Path, "/"+path.Clean(s["Filename"])) {
			continue
		}
		if s["Architecture"] != u.Arch {
			return Entry{}, fmt.Errorf("index says architecture %q, file name says %q", s["Architecture"], u.Arch)
		}
		if s["Size"] != strconv.FormatInt(u.Size, 10) {
			return Entry{}, fmt.Errorf("index says size %s, apt-get printed %d", s["Size"], u.Size)
		}
		return Entry{Name: u.Name, Version: u.Version, Arch: u.Arch, SHA256: strings.ToLower(s["SHA256"]), Size: u.Size, URL: pu.String()}, nil
	}
	return Entry{}, fmt.Errorf("apt-cache show has no record for %s", u.URL)
}
