package lock

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/torwrt/torwrt/internal/apk"
	"github.com/torwrt/torwrt/internal/container"
	"github.com/torwrt/torwrt/internal/feed"
	"github.com/torwrt/torwrt/internal/imagebuilder"
	"github.com/torwrt/torwrt/internal/profile"
)

// apkCandidate is one package an index offers, and the feed offering it.
type apkCandidate struct {
	entry apk.IndexEntry
	feed  Feed
}

// resolveAPK is Resolve for an apk ImageBuilder (OpenWrt 25.12 and later).
//
// Every packages.adb is verified against the trusted keys before a byte of
// it is parsed into the package set; every .apk is fetched, read (each
// file's hash checked against its data) and must have the identity its
// signed index lists, so its SHA-256 can be pinned. Which packages to
// fetch is worked out from the indexes' dependencies (a superset is
// harmless); which are installed is the ImageBuilder's own answer (`make
// manifest`), run offline against exactly the fetched packages.
func resolveAPK(ctx context.Context, o Options, ref string, img *container.Image, d *imagebuilder.Driver) (*profile.Lock, error) {
	p := o.Profile
	keys := o.APKKeys
	if len(keys) == 0 {
		var err error
		if keys, err = ImageAPKKeys(img); err != nil {
			return nil, err
		}
	}
	kr := apk.NewKeyring()
	for _, k := range keys {
		pk, err := apk.ParsePublicKeyPEM([]byte(k.PEM))
		if err != nil {
			return nil, fmt.Errorf("apk key %s (%s): %w", k.Name, k.Source, err)
		}
		kr.Add(pk)
	}
	feeds := o.Feeds
	if len(feeds) == 0 {
		var err error
		feeds, err = ImageAPKFeeds(img)
		switch {
		case errors.Is(err, ErrNoFeeds):
			o.progressf("lock: the ImageBuilder lists no network feeds; every package comes from its bundled packages/\n")
		case err != nil:
			return nil, err
		}
	}
	byName := map[string]apkCandidate{}
	provides := map[string]string{}
	for _, f := range feeds {
		data, err := get(ctx, o, f.URL+"/"+feed.APKIndexName)
		if err != nil {
			return nil, err
		}
		idx, err := apk.ReadIndex(data, kr)
		if err != nil {
			return nil, fmt.Errorf("feed %s (%s): %s: %w", f.Name, f.URL, feed.APKIndexName, err)
		}
		o.progressf("feed %s: %d packages, packages.adb signed by key %s\n", f.Name, len(idx.Packages), idx.SignedBy)
		for _, e := range idx.Packages {
			if _, dup := byName[e.Name]; dup {
				continue // earlier feeds win, as in apk's repository order
			}
			if !profile.ValidPackageName(e.Name) {
				return nil, fmt.Errorf("feed %s: invalid package name %q", f.Name, e.Name)
			}
			byName[e.Name] = apkCandidate{entry: e, feed: f}
			for _, pv := range e.Provides {
				if n := depName(pv); n != "" && provides[n] == "" {
					provides[n] = e.Name
				}
			}
		}
	}
	info, err := d.Info(ctx)
	if err != nil {
		return nil, err
	}
	roots := append([]string{}, info.DefaultPackages...)
	if ip, ok := info.Profile(p.IBProfile); ok {
		roots = append(roots, ip.Packages...)
	}
	roots = append(roots, p.Packages.Add...)
	need := apkClosure(roots, byName, provides)

	feedDir := filepath.Join(o.WorkDir, "feed")
	if err := os.MkdirAll(feedDir, 0o755); err != nil {
		return nil, err
	}
	fetched := map[string]profile.LockedPackage{}
	var local apk.Index
	local.Description = "torwrt lock: packages fetched for make manifest"
	for _, name := range need {
		c := byName[name]
		lp, entry, err := fetchAPK(ctx, o, c, feedDir)
		if err != nil {
			return nil, err
		}
		fetched[name] = lp
		local.Packages = append(local.Packages, entry)
	}
	o.progressf("lock: fetched %d packages (the dependency closure of %d requested), each matching its signed index entry\n", len(fetched), len(roots))
	if err := feed.WriteAPKIndex(feedDir, &local, imagebuilder.FeedKeyName); err != nil {
		return nil, err
	}
	bundled, err := BundledPackages(img)
	if err != nil {
		return nil, err
	}
	if err := d.WriteRepositories(feedDir, bundled.hasAPK()); err != nil {
		return nil, err
	}
	if err := container.MakeReadable(feedDir); err != nil {
		return nil, err
	}
	installed, err := d.Manifest(ctx, imagebuilder.Request{Profile: p.IBProfile, Packages: p.MakePackages(), Feed: feedDir, SourceDateEpoch: p.OpenWrt.SourceDateEpoch})
	if err != nil {
		return nil, err
	}
	l := newLock(o, ref)
	l.PackageManager, l.APKKeys = profile.APK, keys
	for _, pk := range installed {
		if lp, ok := fetched[pk.Name]; ok && lp.Version == pk.Version {
			l.Packages = append(l.Packages, lp)
			continue
		}
		// Not fetched at this version: the ImageBuilder installs it from
		// its own packages/ directory, pinned by the image digest.
		lp := profile.LockedPackage{Name: pk.Name, Version: pk.Version, Arch: p.OpenWrt.Arch, Bundled: true}
		if f, ok := bundled.find(pk.Name, pk.Version); ok {
			lp.Filename, lp.Size, lp.SHA256 = f.Name, f.Size, f.SHA256
		}
		l.Packages = append(l.Packages, lp)
	}
	if err := l.Check(p); err != nil {
		return nil, fmt.Errorf("resolved lock is invalid: %w", err)
	}
	return l, nil
}

// fetchAPK fetches one package into dir and checks it against its signed
// index entry.
func fetchAPK(ctx context.Context, o Options, c apkCandidate, dir string) (profile.LockedPackage, apk.IndexEntry, error) {
	e := c.entry
	name := e.Name + "-" + e.Version + ".apk"
	if !apkFileRE.MatchString(name) {
		return profile.LockedPackage{}, apk.IndexEntry{}, fmt.Errorf("feed %s: package %s version %q makes no safe file name", c.feed.Name, e.Name, e.Version)
	}
	url := c.feed.URL + "/" + name
	data, err := get(ctx, o, url)
	if err != nil {
		return profile.LockedPackage{}, apk.IndexEntry{}, err
	}
	pkg, err := apk.ReadPackage(bytes.NewReader(data), maxIndex)
	if err != nil {
		return profile.LockedPackage{}, apk.IndexEntry{}, fmt.Errorf("%s: %w", url, err)
	}
	if err := pkg.MatchIndex(&e); err != nil {
		return profile.LockedPackage{}, apk.IndexEntry{}, fmt.Errorf("%s: not the package its signed index lists: %w", url, err)
	}
	sum := sha256.Sum256(data)
	lp := profile.LockedPackage{Name: e.Name, Version: e.Version, Arch: pkg.Info.Arch, Filename: name, Size: int64(len(data)), SHA256: hex.EncodeToString(sum[:])}
	if strings.HasPrefix(c.feed.URL, "https://") {
		lp.URL = url
	}
	if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
		return profile.LockedPackage{}, apk.IndexEntry{}, err
	}
	return lp, apk.EntryFor(pkg, uint64(len(data))), nil
}

// depName is the package or virtual name an apk dependency or provides
// entry names ("so:libc.so", "kernel=6.12.94-r1" → "kernel"), or "" for a
// conflict ("!name").
func depName(d string) string {
	if strings.HasPrefix(d, "!") {
		return ""
	}
	if i := strings.IndexAny(d, "<>=~"); i >= 0 {
		d = d[:i]
	}
	return d
}

// apkClosure is every package of the indexes that roots may pull in, by
// name or through what packages provide, sorted. Roots no index offers
// (the ImageBuilder's bundled kernel packages, say) are left to it.
func apkClosure(roots []string, byName map[string]apkCandidate, provides map[string]string) []string {
	seen := map[string]bool{}
	queue := append([]string{}, roots...)
	for len(queue) > 0 {
		n := depName(queue[0])
		queue = queue[1:]
		if _, ok := byName[n]; !ok {
			n = provides[n]
		}
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		queue = append(queue, byName[n].entry.Depends...)
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// hasAPK reports whether the ImageBuilder bundles any .apk.
func (b Bundled) hasAPK() bool {
	for name := range b {
		if strings.HasSuffix(name, ".apk") {
			return true
		}
	}
	return false
}

// maxKeyFile bounds a key file read out of an image.
const maxKeyFile = 16 << 10

// ImageAPKKeys returns the apk keys an ImageBuilder image trusts (the
// *.pem files of its keys/ directory), recorded with their source. The
// image is pinned by digest, so they are exactly the keys upstream
// shipped in that ImageBuilder.
func ImageAPKKeys(img *container.Image) ([]profile.LockedKey, error) {
	dir := path.Join(imageWorkDir(img), "keys") + "/"
	files, err := imageFiles(img, func(name string) bool {
		base := strings.TrimPrefix(name, dir)
		return base != name && !strings.Contains(base, "/") && strings.HasSuffix(base, ".pem") && !strings.Contains(base, "private")
	}, maxKeyFile)
	if err != nil {
		return nil, err
	}
	var keys []profile.LockedKey
	for name, data := range files {
		base := strings.TrimPrefix(name, dir)
		if _, err := apk.ParsePublicKeyPEM(data); err != nil {
			// The IB's own local-public-key.pem has an "untrusted
			// comment" line; a key that does not parse is not trusted.
			continue
		}
		pemText := string(data)
		if i := strings.Index(pemText, "-----BEGIN PUBLIC KEY-----"); i > 0 {
			pemText = pemText[i:]
		}
		keys = append(keys, profile.LockedKey{Name: base, PEM: pemText, Source: "ImageBuilder image " + img.Digest + ": /" + name})
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Name < keys[j].Name })
	if len(keys) == 0 {
		return nil, fmt.Errorf("image %s has no apk public keys in /%s: nothing to check its feeds' packages.adb signatures against", img.Digest, dir)
	}
	return keys, nil
}

// ImageAPKFeeds reads the https feeds an apk ImageBuilder image lists in
// its `repositories` file.
func ImageAPKFeeds(img *container.Image) ([]Feed, error) {
	data, err := feedList(img, "repositories")
	if err != nil {
		return nil, err
	}
	return ParseAPKRepositories(data)
}

// feedList reads the ImageBuilder's feed list (repositories.conf, or
// apk's repositories) out of its working directory.
func feedList(img *container.Image, name string) ([]byte, error) {
	want := path.Join(imageWorkDir(img), name)
	files, err := imageFiles(img, func(name string) bool { return name == want }, maxReposConf)
	if err != nil {
		return nil, err
	}
	data, ok := files[want]
	if !ok {
		return nil, fmt.Errorf("image %s has no /%s; pass the feeds explicitly", img.Digest, want)
	}
	return data, nil
}

// ParseAPKRepositories returns the https feeds of an apk repositories
// file: one packages.adb URL per line. Local indexes (paths, file:) are
// the ImageBuilder's bundled packages, pinned by its digest; other
// schemes are refused.
func ParseAPKRepositories(data []byte) ([]Feed, error) {
	var feeds []Feed
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "https://"):
			base, ok := strings.CutSuffix(line, "/"+feed.APKIndexName)
			if !ok || strings.ContainsAny(base, " \t") {
				return nil, fmt.Errorf("repositories line %d: %q is not a URL of a %s", n+1, line, feed.APKIndexName)
			}
			feeds = append(feeds, Feed{Name: feedName(base), URL: base})
		case strings.HasPrefix(line, "/") || strings.HasPrefix(line, "file:") || !strings.Contains(line, "://"):
			continue
		default:
			return nil, fmt.Errorf("repositories line %d: feed %s is not https", n+1, line)
		}
	}
	if len(feeds) == 0 {
		return nil, ErrNoFeeds
	}
	return feeds, nil
}

// feedName names a feed by its URL as OpenWrt's feeds are known: core
// (targets/…/packages), kmods, or the feed directory (base, luci, …).
func feedName(base string) string {
	switch {
	case strings.Contains(base, "/kmods/"):
		return "kmods"
	case strings.Contains(base, "/targets/"):
		return "core"
	}
	return path.Base(base)
}

func imageWorkDir(img *container.Image) string {
	if wd := strings.Trim(img.WorkingDir, "/"); wd != "" {
		return wd
	}
	return "builder"
}

// imageFiles reads the regular files of an image's flattened filesystem
// whose names (no leading slash) match, each at most max bytes.
func imageFiles(img *container.Image, match func(string) bool, max int64) (map[string][]byte, error) {
	out := map[string][]byte{}
	err := eachImageFile(img, match, func(name string, _ *tar.Header, r io.Reader) error {
		data, err := io.ReadAll(io.LimitReader(r, max+1))
		if err != nil {
			return err
		}
		if int64(len(data)) > max {
			return fmt.Errorf("/%s in %s is larger than %d bytes", name, img.Digest, max)
		}
		out[name] = data
		return nil
	})
	return out, err
}

// eachImageFile calls fn for every regular file of an image's flattened
// filesystem whose name (no leading slash) matches, without running
// anything.
func eachImageFile(img *container.Image, match func(string) bool, fn func(name string, h *tar.Header, r io.Reader) error) error {
	v1img, err := img.OpenImage()
	if err != nil {
		return err
	}
	tr, done := imageTar(img, v1img)
	defer done()
	for {
		h, err := tr.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(h.Name, "./")
		if h.Typeflag != tar.TypeReg || !match(name) {
			continue
		}
		if err := fn(name, h, tr); err != nil {
			return err
		}
	}
}
