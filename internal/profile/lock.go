package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"sort"
	"strings"
)

// LockVersion is the lock file format this code reads and writes.
const LockVersion = 1

// Lock pins everything a build of one profile consumes.
type Lock struct {
	LockVersion   int         `json:"lock_version"`
	Profile       string      `json:"profile"`
	ProfileSHA256 string      `json:"profile_sha256"`
	Simulated     bool        `json:"simulated,omitempty"`
	Image         LockedImage `json:"image"`
	// PackageManager is the ImageBuilder's: "apk" (OpenWrt 25.12 and
	// later) or "opkg"; empty in locks written before apk, meaning opkg.
	PackageManager string `json:"package_manager,omitempty"`
	// APKKeys are the public keys whose signatures on packages.adb indexes
	// the lock trusted, recorded with where each came from, so a review
	// of the lock shows what the package set's trust rests on.
	APKKeys  []LockedKey     `json:"apk_keys,omitempty"`
	Packages []LockedPackage `json:"packages"`
}

// Package managers an ImageBuilder can use.
const (
	OPKG = "opkg"
	APK  = "apk"
)

// Manager is the lock's package manager, opkg for locks that name none.
func (l *Lock) Manager() string {
	if l.PackageManager == "" {
		return OPKG
	}
	return l.PackageManager
}

// LockedKey is one trusted apk index key.
type LockedKey struct {
	// Name is the key file's name as apk knows it (its key id comes from
	// the key itself), e.g. openwrt-25.12.pem.
	Name string `json:"name"`
	// PEM is the public key, "-----BEGIN PUBLIC KEY-----…".
	PEM string `json:"pem"`
	// Source says where the key was read: the pinned ImageBuilder image
	// and path, or the simulated ImageBuilder's test key.
	Source string `json:"source"`
}

// LockedImage is the ImageBuilder image, pinned by digest.
type LockedImage struct {
	// Ref is "registry/repo@sha256:<hex>": the only form a build pulls.
	Ref string `json:"ref"`
	// Tag is what Ref was resolved from, for humans and `imgbuild lock`.
	Tag string `json:"tag,omitempty"`
}

// LockedPackage pins one package file.
type LockedPackage struct {
	Name     string `json:"name"`
	Version  string `json:"version"`
	Arch     string `json:"arch"`
	Filename string `json:"filename"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	// URL is where `imgbuild build` may fetch the file when it is not in
	// the package cache; the hash decides whether it is used.
	URL string `json:"url,omitempty"`
	// Bundled packages ship inside the ImageBuilder image (its packages/
	// directory: kernel modules and target packages). The image digest
	// pins them; where `imgbuild lock` read the file out of the image,
	// its name, size and sha256 are recorded too (for the SBOM and for
	// review), never a URL: a build never fetches them.
	Bundled bool `json:"bundled,omitempty"`
}

var (
	digestRefRE = regexp.MustCompile(`^[a-z0-9][a-z0-9.:_/-]*(:[A-Za-z0-9_.-]+)?@sha256:[0-9a-f]{64}$`)
	sha256RE    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	filenameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._~-]*\.(ipk|apk)$`)
	keyNameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\.pem$`)
	pkgVerRE    = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+~_:-]{0,63}$`)
)

// ErrNoLock means the profile has never been locked.
var ErrNoLock = errors.New("no lock file")

// LockPath is where a profile's lock lives on disk; "" for a profile
// embedded in imgbuild, which has no directory to write one to.
func (p *Profile) LockPath() string {
	if p.Dir == "" {
		return ""
	}
	return p.Dir + "/lock.json"
}

// ReadLock reads and validates a lock file for p.
func ReadLock(path string, p *Profile) (*Lock, error) {
	data, err := os.ReadFile(path)
	return decodeLock(path, data, err, p)
}

func decodeLock(path string, data []byte, err error, p *Profile) (*Lock, error) {
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w for profile %s at %s; the ImageBuilder digest and package hashes are not pinned yet. Run, where the network allows: imgbuild lock --profile %s (or build against the simulated ImageBuilder: imgbuild build --simulated-ib --profile %s)", ErrNoLock, p.ID, path, p.ID, p.ID)
	}
	if err != nil {
		return nil, err
	}
	var l Lock
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := l.Check(p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &l, nil
}

// Check validates the lock and that it belongs to p as p is now.
func (l *Lock) Check(p *Profile) error {
	if l.LockVersion != LockVersion {
		return fmt.Errorf("lock_version %d, this imgbuild reads %d", l.LockVersion, LockVersion)
	}
	if l.Profile != p.ID {
		return fmt.Errorf("lock is for profile %q, not %q", l.Profile, p.ID)
	}
	if l.ProfileSHA256 != p.SHA256 {
		return fmt.Errorf("profile %s changed since it was locked (profile_sha256 %.12s…, now %.12s…); run: imgbuild lock --profile %s", p.ID, l.ProfileSHA256, p.SHA256, p.ID)
	}
	if !digestRefRE.MatchString(l.Image.Ref) {
		return fmt.Errorf("image.ref %q is not pinned by digest (want registry/repo@sha256:<64 hex>); a tag can move, so builds never use one; run: imgbuild lock --profile %s", l.Image.Ref, p.ID)
	}
	switch l.PackageManager {
	case "", OPKG:
		if len(l.APKKeys) > 0 {
			return errors.New("apk_keys: only an apk lock has them")
		}
	case APK:
		if len(l.APKKeys) == 0 {
			return errors.New("apk_keys: an apk lock must record the keys its packages.adb indexes were checked against")
		}
		for i, k := range l.APKKeys {
			if !keyNameRE.MatchString(k.Name) || !strings.HasPrefix(k.PEM, "-----BEGIN PUBLIC KEY-----\n") || k.Source == "" {
				return fmt.Errorf("apk_keys[%d] (%s): want a file name (%s), a PEM public key and its source", i, k.Name, keyNameRE)
			}
		}
	default:
		return fmt.Errorf("package_manager %q: want apk or opkg", l.PackageManager)
	}
	if len(l.Packages) == 0 {
		return errors.New("packages: empty")
	}
	seen := map[string]bool{}
	for i, pk := range l.Packages {
		where := fmt.Sprintf("packages[%d] (%s)", i, pk.Name)
		switch {
		case !ValidPackageName(pk.Name):
			return fmt.Errorf("%s: invalid name", where)
		case seen[pk.Name]:
			return fmt.Errorf("%s: listed twice", where)
		case !pkgVerRE.MatchString(pk.Version):
			return fmt.Errorf("%s: invalid version %q", where, pk.Version)
		case pk.Bundled && pk.URL != "":
			return fmt.Errorf("%s: a bundled package ships in the ImageBuilder image and has no url", where)
		case pk.Bundled && pk.SHA256 == "" && (pk.Filename != "" || pk.Size != 0):
			return fmt.Errorf("%s: a bundled package with a filename or size needs its sha256", where)
		case pk.Bundled && pk.SHA256 == "":
		case pk.Bundled && (!sha256RE.MatchString(pk.SHA256) || !filenameRE.MatchString(pk.Filename) || pk.Size <= 0):
			return fmt.Errorf("%s: a bundled package's sha256 (64 lowercase hex), filename and size must all be valid", where)
		case pk.Bundled:
		case !sha256RE.MatchString(pk.SHA256):
			return fmt.Errorf("%s: sha256 must be 64 lowercase hex digits", where)
		case !filenameRE.MatchString(pk.Filename):
			return fmt.Errorf("%s: invalid filename %q", where, pk.Filename)
		case pk.Size <= 0:
			return fmt.Errorf("%s: size must be positive", where)
		case pk.URL != "" && !strings.HasPrefix(pk.URL, "https://"):
			return fmt.Errorf("%s: url must be https", where)
		}
		seen[pk.Name] = true
	}
	return nil
}

// HasBundled reports whether any package comes from the ImageBuilder's
// own packages/ directory.
func (l *Lock) HasBundled() bool {
	for _, p := range l.Packages {
		if p.Bundled {
			return true
		}
	}
	return false
}

// Package returns the pinned package called name.
func (l *Lock) Package(name string) (LockedPackage, bool) {
	for _, p := range l.Packages {
		if p.Name == name {
			return p, true
		}
	}
	return LockedPackage{}, false
}

// Marshal returns the canonical lock file: packages sorted by name,
// indented, with a final newline, so that diffs of re-locks are readable.
func (l *Lock) Marshal() ([]byte, error) {
	c := *l
	c.Packages = append([]LockedPackage{}, l.Packages...)
	sort.Slice(c.Packages, func(i, j int) bool { return c.Packages[i].Name < c.Packages[j].Name })
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Diff describes what changed between two locks, for `imgbuild lock`.
func (l *Lock) Diff(old *Lock) []string {
	var out []string
	if old == nil {
		return []string{"new lock"}
	}
	if old.Image.Ref != l.Image.Ref {
		out = append(out, fmt.Sprintf("image %s -> %s", old.Image.Ref, l.Image.Ref))
	}
	prev := map[string]LockedPackage{}
	for _, p := range old.Packages {
		prev[p.Name] = p
	}
	for _, p := range l.Packages {
		o, ok := prev[p.Name]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("+ %s %s", p.Name, p.Version))
		case o.Version != p.Version:
			out = append(out, fmt.Sprintf("~ %s %s -> %s", p.Name, o.Version, p.Version))
		case o.SHA256 != p.SHA256:
			out = append(out, fmt.Sprintf("! %s %s: same version, new hash", p.Name, p.Version))
		}
		delete(prev, p.Name)
	}
	for name, o := range prev {
		out = append(out, fmt.Sprintf("- %s %s", name, o.Version))
	}
	sort.Strings(out)
	return out
}
