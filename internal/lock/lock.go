// Package lock resolves a profile into a lock file: the ImageBuilder
// image's digest, and every package the image installs with its version,
// file name, size and SHA-256, taken from feed indexes whose usign
// signatures check against the pinned upstream keys.
//
// This is the only step that looks anything up on the network; `imgbuild
// build` then consumes the lock with the network off.
package lock

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/torwrt/torwrt/internal/container"
	"github.com/torwrt/torwrt/internal/imagebuilder"
	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/usign"
)

// Upstream OpenWrt usign keys (public) that sign feed indexes.
var UpstreamKeys = map[string]string{
	"d310c6f2833e97f7": "untrusted comment: OpenWrt 24.10 release key\nRWTTEMbygz6X95lKDAulctZy3aj15823THXfyrfXgwGbxZlXBd2brNcw\n",
	"b5043e70f9a75cde": "untrusted comment: OpenWrt 23.05 / snapshot key\nRWS1BD5w+adc3j2Hqg9+b66CvLR7NlHbsj7wjNVj0XGt/othDgIAOJS+\n",
}

// UpstreamKeyring returns the pinned upstream keys.
func UpstreamKeyring() (*usign.Keyring, error) {
	kr := &usign.Keyring{}
	for fp, text := range UpstreamKeys {
		k, err := usign.ParsePublicKey([]byte(text))
		if err != nil {
			return nil, fmt.Errorf("upstream key %s: %w", fp, err)
		}
		if k.Fingerprint.String() != fp {
			return nil, fmt.Errorf("upstream key %s has fingerprint %s", fp, k.Fingerprint)
		}
		if err := kr.Add(k); err != nil {
			return nil, err
		}
	}
	return kr, nil
}

// Feed is one package feed: a base URL holding Packages and Packages.sig.
type Feed struct {
	Name string
	URL  string
}

// DefaultFeeds are OpenWrt's release feeds for a profile.
func DefaultFeeds(p *profile.Profile) []Feed {
	base := "https://downloads.openwrt.org/releases/" + p.OpenWrt.Version
	feeds := []Feed{{"core", base + "/targets/" + p.OpenWrt.Target + "/" + p.OpenWrt.Subtarget + "/packages"}}
	for _, f := range []string{"base", "packages", "routing", "telephony"} {
		feeds = append(feeds, Feed{f, base + "/packages/" + p.OpenWrt.Arch + "/" + f})
	}
	return feeds
}

// Options configure Resolve.
type Options struct {
	Profile *profile.Profile
	// ImageRef is the digest reference of the ImageBuilder image; when
	// empty, ResolveTag turns the profile's tag into one.
	ImageRef   string
	ResolveTag func(ctx context.Context, ref string) (string, error)
	Cache      *container.Cache
	Runner     container.Runner
	Feeds      []Feed
	Keys       *usign.Keyring
	HTTPClient *http.Client
	WorkDir    string
	Progress   io.Writer
	Simulated  bool
	// APKKeys are the keys apk feeds' packages.adb must be signed by; when
	// empty, the ImageBuilder image's own keys/*.pem (pinned by its
	// digest) are used. Opkg feeds use Keys.
	APKKeys []profile.LockedKey
}

func (o Options) progressf(format string, a ...any) {
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, format, a...)
	}
}

// apkFileRE is a safe .apk file name (apk names files <name>-<version>.apk).
var apkFileRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+._-]*-[0-9A-Za-z][0-9A-Za-z.+~_-]*\.apk$`)

// newLock is a lock for o.Profile and the pinned image ref, packages to
// come.
func newLock(o Options, ref string) *profile.Lock {
	p := o.Profile
	l := &profile.Lock{LockVersion: profile.LockVersion, Profile: p.ID, ProfileSHA256: p.SHA256, Simulated: o.Simulated,
		Image: profile.LockedImage{Ref: ref, Tag: p.ImageBuilder.Ref}}
	if p.ImageBuilder.Imported() {
		l.Image.Tag = "imported from " + p.ImageBuilder.Archive + " (sha256 " + p.ImageBuilder.ArchiveSHA256 + ")"
	}
	return l
}

// maxIndex bounds a downloaded Packages index.
const maxIndex = 32 << 20

// Entry is one package of a feed index.
type Entry struct {
	Package, Version, Architecture, Filename, SHA256, Depends string
	Size                                                      int64
	Feed                                                      Feed
	Raw                                                       string
}

// Resolve builds the lock for o.Profile.
func Resolve(ctx context.Context, o Options) (*profile.Lock, error) {
	p := o.Profile
	ref := o.ImageRef
	if ref == "" {
		if o.ResolveTag == nil {
			return nil, errors.New("lock: no way to resolve the image tag to a digest")
		}
		var err error
		if ref, err = o.ResolveTag(ctx, p.ImageBuilder.Ref); err != nil {
			return nil, fmt.Errorf("resolving %s: %w", p.ImageBuilder.Ref, err)
		}
	}
	if _, err := container.ParseDigest(ref); err != nil {
		return nil, err
	}
	img, err := o.Cache.Pull(ctx, ref)
	if err != nil {
		return nil, err
	}
	d := &imagebuilder.Driver{Runner: o.Runner, IBImage: img, LogDir: filepath.Join(o.WorkDir, "logs")}
	caps, err := d.Capabilities()
	if err != nil {
		return nil, err
	}
	if caps.PackageManager == profile.APK {
		return resolveAPK(ctx, o, ref, img, d)
	}
	feeds := o.Feeds
	if len(feeds) == 0 {
		// The pinned ImageBuilder names its own feeds (core, base,
		// packages, …, and the kmods feed of its exact kernel).
		feeds, err = ImageFeeds(img)
		switch {
		case errors.Is(err, ErrNoFeeds):
			// An ImageBuilder that builds offline from its own packages/
			// (GL.iNet's, for one): the image digest pins them all.
			if o.Progress != nil {
				fmt.Fprintf(o.Progress, "lock: the ImageBuilder lists no network feeds; every package comes from its bundled packages/\n")
			}
		case err != nil:
			return nil, err
		}
	}
	var entries []Entry
	for _, f := range feeds {
		es, err := fetchIndex(ctx, o, f)
		if err != nil {
			return nil, err
		}
		entries = append(entries, es...)
	}
	byName := map[string]Entry{}
	var index strings.Builder
	for _, e := range entries {
		if _, dup := byName[e.Package]; dup {
			continue // earlier feeds win, as in opkg's feed order
		}
		byName[e.Package] = e
		index.WriteString(e.Raw)
		index.WriteString("\n\n")
	}
	feedDir := filepath.Join(o.WorkDir, "feed")
	if err := os.MkdirAll(feedDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(feedDir, "Packages"), []byte(index.String()), 0o644); err != nil {
		return nil, err
	}
	if err := d.WriteRepositories(feedDir, true); err != nil {
		return nil, err
	}
	if err := container.MakeReadable(feedDir); err != nil {
		return nil, err
	}
	installed, err := d.Manifest(ctx, imagebuilder.Request{Profile: p.IBProfile, Packages: p.MakePackages(), Feed: feedDir, SourceDateEpoch: p.OpenWrt.SourceDateEpoch})
	if err != nil {
		return nil, err
	}
	bundled, err := BundledPackages(img)
	if err != nil {
		return nil, err
	}
	l := newLock(o, ref)
	for _, pk := range installed {
		e, ok := byName[pk.Name]
		if !ok || e.Version != pk.Version {
			// Not in any feed at this version: the ImageBuilder installs it
			// from its own packages/ directory, pinned by the image digest.
			lp := profile.LockedPackage{Name: pk.Name, Version: pk.Version, Arch: p.OpenWrt.Arch, Bundled: true}
			if f, ok := bundled.find(pk.Name, pk.Version); ok {
				lp.Filename, lp.Size, lp.SHA256 = f.Name, f.Size, f.SHA256
				if a := f.arch(pk.Name, pk.Version); a != "" {
					lp.Arch = a
				}
				if lp.Arch != "all" && lp.Arch != p.OpenWrt.Arch {
					return nil, fmt.Errorf("this ImageBuilder installs %s for architecture %s, but the profile's openwrt.arch is %s: the ImageBuilder is for another target (check imagebuilder in profiles/%s/profile.yaml)", f.Name, lp.Arch, p.OpenWrt.Arch, p.ID)
				}
			}
			l.Packages = append(l.Packages, lp)
			continue
		}
		lp := profile.LockedPackage{Name: e.Package, Version: e.Version, Arch: e.Architecture, Filename: e.Filename, Size: e.Size, SHA256: e.SHA256}
		if strings.HasPrefix(e.Feed.URL, "https://") {
			lp.URL = e.Feed.URL + "/" + e.Filename
		}
		l.Packages = append(l.Packages, lp)
	}
	if err := l.Check(p); err != nil {
		return nil, fmt.Errorf("resolved lock is invalid: %w", err)
	}
	return l, nil
}

// fetchIndex downloads a feed's Packages and Packages.sig (or reads them
// from a local directory) and verifies the signature before parsing.
func fetchIndex(ctx context.Context, o Options, f Feed) ([]Entry, error) {
	index, err := get(ctx, o, f.URL+"/Packages")
	if err != nil {
		return nil, err
	}
	sigData, err := get(ctx, o, f.URL+"/Packages.sig")
	if err != nil {
		return nil, err
	}
	sig, err := usign.ParseSignature(sigData)
	if err != nil {
		return nil, fmt.Errorf("feed %s: Packages.sig: %w", f.Name, err)
	}
	if _, err := o.Keys.VerifyReader(bytes.NewReader(index), sig); err != nil {
		return nil, fmt.Errorf("feed %s (%s): Packages index signature: %w", f.Name, f.URL, err)
	}
	entries, err := ParseIndex(index)
	if err != nil {
		return nil, fmt.Errorf("feed %s: %w", f.Name, err)
	}
	for i := range entries {
		entries[i].Feed = f
	}
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "feed %s: %d packages, index signed by %s\n", f.Name, len(entries), sig.Fingerprint)
	}
	return entries, nil
}

func get(ctx context.Context, o Options, url string) ([]byte, error) {
	if dir, ok := strings.CutPrefix(url, "file://"); ok {
		data, err := os.ReadFile(dir)
		if err != nil {
			return nil, err
		}
		if len(data) > maxIndex {
			return nil, fmt.Errorf("%s: larger than %d bytes", url, maxIndex)
		}
		return data, nil
	}
	if !strings.HasPrefix(url, "https://") {
		return nil, fmt.Errorf("feed URL %s: only https:// or file:// feeds are used", url)
	}
	if o.HTTPClient == nil {
		return nil, fmt.Errorf("%s: no network client", url)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := o.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching %s: %s", url, resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxIndex+1))
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", url, err)
	}
	if len(data) > maxIndex {
		return nil, fmt.Errorf("%s: larger than %d bytes", url, maxIndex)
	}
	return data, nil
}

// ParseIndex parses an opkg Packages index.
func ParseIndex(data []byte) ([]Entry, error) {
	var out []Entry
	var cur Entry
	var raw []string
	flush := func(line int) error {
		if len(raw) == 0 {
			return nil
		}
		switch {
		case !profile.ValidPackageName(cur.Package):
			return fmt.Errorf("feed index (Packages) line %d: invalid package name %q", line, cur.Package)
		case cur.Version == "" || cur.Filename == "" || len(cur.SHA256) != 64 || cur.Size <= 0:
			return fmt.Errorf("feed index (Packages) line %d: package %s lacks Version, Filename, Size or SHA256sum", line, cur.Package)
		case strings.ContainsAny(cur.Filename, "/\\") || strings.HasPrefix(cur.Filename, "."):
			return fmt.Errorf("feed index (Packages) line %d: package %s has file name %q", line, cur.Package, cur.Filename)
		}
		cur.Raw = strings.Join(raw, "\n")
		out = append(out, cur)
		cur, raw = Entry{}, nil
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if line == "" {
			if err := flush(n); err != nil {
				return nil, err
			}
			continue
		}
		raw = append(raw, line)
		if line[0] == ' ' || line[0] == '\t' {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("feed index (Packages) line %d: %q is not a field", n, line)
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Package":
			cur.Package = v
		case "Version":
			cur.Version = v
		case "Architecture":
			cur.Architecture = v
		case "Filename":
			cur.Filename = v
		case "SHA256sum":
			cur.SHA256 = strings.ToLower(v)
		case "Depends":
			cur.Depends = v
		case "Size":
			s, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("feed index (Packages) line %d: size %q", n, v)
			}
			cur.Size = s
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(n); err != nil {
		return nil, err
	}
	return out, nil
}

// maxReposConf bounds the repositories.conf read out of an image.
const maxReposConf = 64 << 10

// ImageFeeds reads the https feeds an ImageBuilder image lists in its
// repositories.conf (in its working directory).
func ImageFeeds(img *container.Image) ([]Feed, error) {
	data, err := feedList(img, "repositories.conf")
	if err != nil {
		return nil, err
	}
	return ParseReposConf(data)
}

// ParseReposConf returns the https feeds of an opkg repositories.conf:
// `src/gz NAME URL` and `src NAME URL` lines. Local feeds (file:) are the
// ImageBuilder's bundled packages, pinned by its digest; other schemes are
// refused.
func ParseReposConf(data []byte) ([]Feed, error) {
	var feeds []Feed
	for n, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") || f[0] == "option" || f[0] == "dest" || f[0] == "arch" {
			continue
		}
		if (f[0] != "src/gz" && f[0] != "src") || len(f) != 3 {
			return nil, fmt.Errorf("repositories.conf line %d: %q is not `src/gz NAME URL`", n+1, line)
		}
		switch {
		case strings.HasPrefix(f[2], "file:"):
			continue
		case strings.HasPrefix(f[2], "https://"):
			feeds = append(feeds, Feed{Name: f[1], URL: strings.TrimSuffix(f[2], "/")})
		default:
			return nil, fmt.Errorf("repositories.conf line %d: feed %s is not https", n+1, f[2])
		}
	}
	if len(feeds) == 0 {
		return nil, ErrNoFeeds
	}
	return feeds, nil
}

// ErrNoFeeds: a repositories.conf with only local (file:) feeds.
var ErrNoFeeds = errors.New("repositories.conf lists no https feeds")

// BundledFile is a package file in the ImageBuilder's packages/ directory.
type BundledFile struct {
	Name   string // file name, e.g. tor_0.2.9.10-1_mipsel_24kc.ipk
	Size   int64
	SHA256 string
}

// Bundled are the package files an ImageBuilder image carries, by name.
type Bundled map[string]BundledFile

// find returns the file of package name at version: apk names files
// <name>-<version>.apk, opkg <name>_<version>_<arch>.ipk (package names
// have no underscore).
func (b Bundled) find(name, version string) (BundledFile, bool) {
	if f, ok := b[name+"-"+version+".apk"]; ok {
		return f, true
	}
	prefix := name + "_" + version + "_"
	var found []BundledFile
	for n, f := range b {
		if strings.HasPrefix(n, prefix) && strings.HasSuffix(n, ".ipk") {
			found = append(found, f)
		}
	}
	if len(found) != 1 {
		return BundledFile{}, false
	}
	return found[0], true
}

func (f BundledFile) arch(name, version string) string {
	return strings.TrimSuffix(strings.TrimPrefix(f.Name, name+"_"+version+"_"), ".ipk")
}

// maxBundledFile bounds one package file read out of an image.
const maxBundledFile = 256 << 20

// BundledPackages hashes every *.ipk and *.apk directly in the image's
// <workdir>/packages/, reading the flattened image (no container runs).
func BundledPackages(img *container.Image) (Bundled, error) {
	dir := path.Join(imageWorkDir(img), "packages") + "/"
	out := Bundled{}
	err := eachImageFile(img, func(name string) bool {
		base := strings.TrimPrefix(name, dir)
		return base != name && !strings.Contains(base, "/") && (strings.HasSuffix(base, ".ipk") || strings.HasSuffix(base, ".apk"))
	}, func(name string, h *tar.Header, r io.Reader) error {
		if h.Size > maxBundledFile {
			return fmt.Errorf("image %s: /%s is larger than %d bytes", img.Digest, name, maxBundledFile)
		}
		hash := sha256.New()
		n, err := io.Copy(hash, io.LimitReader(r, maxBundledFile))
		if err != nil {
			return fmt.Errorf("reading /%s in image %s: %w", name, img.Digest, err)
		}
		base := strings.TrimPrefix(name, dir)
		out[base] = BundledFile{Name: base, Size: n, SHA256: hex.EncodeToString(hash.Sum(nil))}
		return nil
	})
	return out, err
}

// flatTar reads an image's flattened filesystem as a tar stream.
type flatTar struct {
	*tar.Reader
	digest string
}

func imageTar(img *container.Image, v1img v1.Image) (*flatTar, func()) {
	rc := mutate.Extract(v1img)
	return &flatTar{Reader: tar.NewReader(rc), digest: img.Digest}, func() { rc.Close() }
}

// next is tar's Next with the image named in errors.
func (t *flatTar) next() (*tar.Header, error) {
	h, err := t.Next()
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("reading image %s: %w", t.digest, err)
	}
	return h, err
}
