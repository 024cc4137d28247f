package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/torwrt/torwrt/internal/apk"
	"github.com/torwrt/torwrt/internal/ibsim/internal/siminfo"
	"github.com/torwrt/torwrt/internal/usign"
)

// pkg is one stanza of a feed's Packages index.
type pkg struct {
	Name, Version, Depends, Arch, Filename, SHA256 string
	Size                                           int64
	feed                                           *feed
	// apk only: the index entry and the repository.
	entry *apk.IndexEntry
	repo  *apkRepo
}

type feed struct {
	name, url, dir string
}

type feedSet struct {
	feeds []*feed
	pkgs  map[string]*pkg
	// apk: the feeds are apk repositories; offline lists the ones that
	// needed the network.
	apk     bool
	offline []string
}

// loadFeedsFor loads the feeds of the IB's package manager.
func loadFeedsFor(topdir string, ti *siminfo.TargetInfo) (*feedSet, error) {
	if ti.APK() {
		return loadAPKFeeds(topdir)
	}
	return loadFeeds(topdir)
}

// loadFeeds reads repositories.conf (opkg syntax, as in a real 24.10 IB) and
// every feed's Packages index. Only local feeds work: the simulated IB runs
// without network, like a hermetic build of the real one.
func loadFeeds(topdir string) (*feedSet, error) {
	confPath := filepath.Join(topdir, "repositories.conf")
	b, err := os.ReadFile(confPath)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %v", confPath, err)
	}
	fs := &feedSet{pkgs: map[string]*pkg{}}
	checkSig := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		switch f[0] {
		case "src", "src/gz":
			if len(f) != 3 {
				return nil, fmt.Errorf("repositories.conf:%d: want `%s NAME URL`, got %q", ln, f[0], line)
			}
			dir, err := feedDir(topdir, f[2])
			if err != nil {
				return nil, fmt.Errorf("repositories.conf:%d: feed %s: %v", ln, f[1], err)
			}
			fs.feeds = append(fs.feeds, &feed{name: f[1], url: f[2], dir: dir})
		case "option":
			if len(f) >= 2 && f[1] == "check_signature" {
				checkSig = true
			}
		case "dest", "arch", "lists_dir":
		default:
			return nil, fmt.Errorf("repositories.conf:%d: unknown directive %q", ln, f[0])
		}
	}
	if len(fs.feeds) == 0 {
		return nil, fmt.Errorf("repositories.conf lists no feed (want lines `src/gz NAME file:///path`)")
	}
	var keys *usign.Keyring
	if checkSig {
		keys, err = usign.LoadKeyDir(filepath.Join(topdir, "keys"))
		if err != nil {
			return nil, fmt.Errorf("option check_signature: loading %s: %v", filepath.Join(topdir, "keys"), err)
		}
	}
	for _, fd := range fs.feeds {
		index, err := readIndex(fd)
		if err != nil {
			return nil, err
		}
		if index == nil {
			continue // empty local feed
		}
		if checkSig {
			if err := verifyIndex(fd, index, keys); err != nil {
				return nil, err
			}
		}
		pkgs, err := parseIndex(index)
		if err != nil {
			return nil, fmt.Errorf("feed %s: %s/Packages: %v", fd.name, fd.dir, err)
		}
		for _, p := range pkgs {
			p.feed = fd
			if _, dup := fs.pkgs[p.Name]; !dup {
				fs.pkgs[p.Name] = p
			}
		}
	}
	return fs, nil
}

func feedDir(topdir, url string) (string, error) {
	switch {
	case strings.HasPrefix(url, "file://"):
		p := strings.TrimPrefix(url, "file://")
		if !filepath.IsAbs(p) {
			return "", fmt.Errorf("file URL %q is not absolute", url)
		}
		return filepath.Clean(p), nil
	case strings.HasPrefix(url, "file:"):
		p := strings.TrimPrefix(url, "file:")
		if !filepath.IsAbs(p) {
			p = filepath.Join(topdir, p)
		}
		return filepath.Clean(p), nil
	case strings.HasPrefix(url, "http://"), strings.HasPrefix(url, "https://"), strings.HasPrefix(url, "ftp://"):
		return "", fmt.Errorf("cannot download %s: the SIMULATED ImageBuilder has no network (like a hermetic build of the real one); bind-mount a repositories.conf whose feeds are local (`src/gz NAME file:///path`) over %s/repositories.conf", url, topdir)
	}
	return "", fmt.Errorf("unsupported feed URL %q (want file:///path)", url)
}

// readIndex returns the uncompressed Packages index, or nil for a local feed
// directory that holds no packages at all.
func readIndex(fd *feed) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(fd.dir, "Packages"))
	if err == nil {
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("feed %s: %v", fd.name, err)
	}
	gz, err := os.ReadFile(filepath.Join(fd.dir, "Packages.gz"))
	if err == nil {
		zr, err := gzip.NewReader(bytes.NewReader(gz))
		if err != nil {
			return nil, fmt.Errorf("feed %s: %s/Packages.gz: %v", fd.name, fd.dir, err)
		}
		return io.ReadAll(zr)
	}
	ents, _ := os.ReadDir(fd.dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".ipk") {
			return nil, fmt.Errorf("feed %s: %s has packages but no Packages index", fd.name, fd.dir)
		}
	}
	if ents == nil {
		if _, err := os.Stat(fd.dir); err != nil {
			return nil, fmt.Errorf("feed %s: %v", fd.name, err)
		}
	}
	return nil, nil
}

func verifyIndex(fd *feed, index []byte, keys *usign.Keyring) error {
	sigPath := filepath.Join(fd.dir, "Packages.sig")
	sigb, err := os.ReadFile(sigPath)
	if err != nil {
		return fmt.Errorf("feed %s: option check_signature is set in repositories.conf but %v", fd.name, err)
	}
	sig, err := usign.ParseSignature(sigb)
	if err != nil {
		return fmt.Errorf("feed %s: %s: %v", fd.name, sigPath, err)
	}
	if _, err := keys.VerifyReader(bytes.NewReader(index), sig); err != nil {
		return fmt.Errorf("feed %s: Packages index signature (key %s) does not verify with the keys in keys/: %v", fd.name, sig.Fingerprint, err)
	}
	return nil
}

func parseIndex(b []byte) ([]*pkg, error) {
	var out []*pkg
	for _, stanza := range bytes.Split(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n\n")) {
		if len(bytes.TrimSpace(stanza)) == 0 {
			continue
		}
		fields := map[string]string{}
		var last string
		for _, line := range strings.Split(string(stanza), "\n") {
			if line == "" {
				continue
			}
			if line[0] == ' ' || line[0] == '\t' {
				if last != "" {
					fields[last] += "\n" + line
				}
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf("malformed line %q", line)
			}
			last = k
			fields[k] = strings.TrimSpace(v)
		}
		p := &pkg{Name: fields["Package"], Version: fields["Version"], Depends: fields["Depends"],
			Arch: fields["Architecture"], Filename: fields["Filename"], SHA256: strings.ToLower(fields["SHA256sum"])}
		if p.Name == "" || p.Version == "" || p.Filename == "" || len(p.SHA256) != 64 {
			return nil, fmt.Errorf("stanza for %q lacks Package, Version, Filename or a SHA256sum", p.Name)
		}
		size, err := strconv.ParseInt(fields["Size"], 10, 64)
		if err != nil || size < 0 {
			return nil, fmt.Errorf("package %s: bad Size %q", p.Name, fields["Size"])
		}
		p.Size = size
		if strings.Contains(p.Filename, "..") || filepath.IsAbs(p.Filename) {
			return nil, fmt.Errorf("package %s: Filename %q escapes the feed", p.Name, p.Filename)
		}
		out = append(out, p)
	}
	return out, nil
}

// resolve computes the package set like the real IB: default packages,
// device packages, kernel and PACKAGES, minus every "-name" in the list,
// then the closure over Depends (a removed package comes back when another
// one depends on it, as with opkg).
func (fs *feedSet) resolve(ti *siminfo.TargetInfo, p *siminfo.Profile, packages string) ([]*pkg, error) {
	var want []string
	want = append(want, ti.DefaultPackages...)
	want = append(want, p.DevicePackages...)
	want = append(want, "kernel")
	removed := map[string]bool{}
	for _, w := range strings.Fields(packages) {
		if err := checkPkgName(w); err != nil {
			return nil, err
		}
		if strings.HasPrefix(w, "-") {
			removed[w[1:]] = true
		} else {
			want = append(want, w)
		}
	}
	selected := map[string]*pkg{}
	var queue []string
	for _, w := range want {
		if !removed[w] {
			queue = append(queue, w)
		}
	}
	via := map[string]string{}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		if selected[n] != nil {
			continue
		}
		pk := fs.pkgs[n]
		if pk == nil && fs.apk {
			return nil, fs.apkUnresolved(n, via[n])
		}
		if pk == nil {
			if from := via[n]; from != "" {
				// opkg's own wording, which torwrt's diagnosis reads.
				return nil, fmt.Errorf("cannot install package %s: it depends on %s, which no feed in repositories.conf provides\n * pkg_hash_check_unresolved: cannot find dependency %s for %s", from, n, n, from)
			}
			//lint:ignore ST1005 opkg's own words, which torwrt's Diagnose reads
			return nil, fmt.Errorf("cannot install package %s: unknown package (no feed in repositories.conf provides it)\n * opkg_install_cmd: Cannot install package %s.\n * Unknown package '%s'.", n, n, n)
		}
		selected[n] = pk
		for _, d := range splitDepends(pk.Depends) {
			alts := strings.Split(d, "|")
			choice := ""
			for _, a := range alts {
				a = strings.TrimSpace(a)
				if fs.pkgs[a] != nil || selected[a] != nil {
					choice = a
					break
				}
			}
			if choice == "" {
				choice = strings.TrimSpace(alts[0])
			}
			if selected[choice] == nil {
				if via[choice] == "" {
					via[choice] = n
				}
				queue = append(queue, choice)
			}
		}
	}
	out := make([]*pkg, 0, len(selected))
	for _, pk := range selected {
		out = append(out, pk)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// splitDepends returns the dependency names of a Depends field, version
// constraints removed.
func splitDepends(dep string) []string {
	var out []string
	for _, d := range strings.Split(dep, ",") {
		var alts []string
		for _, a := range strings.Split(d, "|") {
			a = strings.TrimSpace(a)
			if i := strings.IndexAny(a, " ("); i >= 0 {
				a = a[:i]
			}
			if a != "" {
				alts = append(alts, a)
			}
		}
		if len(alts) > 0 {
			out = append(out, strings.Join(alts, "|"))
		}
	}
	return out
}

// checkPkgName repeats the Makefile's validation: the tool may be run by
// other means than make.
func checkPkgName(w string) error {
	n := strings.TrimPrefix(w, "-")
	ok := n != ""
	for i, c := range n {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '+' || c == '.' || c == '_' || c == '-') && i > 0:
		default:
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("invalid package name %q in PACKAGES: want ^-?[a-z0-9][a-z0-9+._-]*$", w)
	}
	return nil
}

// apkUnresolved is apk's "unable to select packages" error (src/commit.c).
func (fs *feedSet) apkUnresolved(n, from string) error {
	req := "world[" + n + "]"
	if from != "" {
		if p := fs.pkgs[from]; p != nil {
			req = from + "-" + p.Version
		}
	}
	msg := fmt.Sprintf("unable to select packages:\n  %s (no such package):\n    required by: %s", n, req)
	if len(fs.offline) > 0 {
		msg += fmt.Sprintf("\n(%d repositories were not opened: the SIMULATED ImageBuilder has no network, e.g. %s)", len(fs.offline), fs.offline[0])
	}
	return errors.New(msg)
}
