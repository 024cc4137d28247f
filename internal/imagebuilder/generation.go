package imagebuilder

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/torwrt/torwrt/internal/container"
)

// Capabilities are the interfaces that differ between ImageBuilder
// generations. They are read from the ImageBuilder's own Makefile, never
// guessed from a version number: vendors (GL.iNet's LEDE 17.01 fork, for
// one) change their Makefiles.
type Capabilities struct {
	// ManifestTarget: `make manifest` prints the package set without
	// building (OpenWrt 19.07 and later).
	ManifestTarget bool `json:"manifest_target"`
	// DisabledServices: `make image DISABLED_SERVICES=...` (OpenWrt 18.06
	// and later).
	DisabledServices bool `json:"disabled_services"`
	// PackageManager is "apk" when the ImageBuilder was configured with
	// CONFIG_USE_APK=y (OpenWrt 25.12 and later: packages.adb feeds, a
	// `repositories` file, PEM keys), else "opkg" (Packages feeds,
	// repositories.conf, usign keys).
	PackageManager string `json:"package_manager"`
	// InstallTarget: `make image` installs the packages in a
	// `$(MAKE) package_install` sub-make (LEDE 17.01 and later), which
	// hooks/installed.mk can save and restore.
	InstallTarget bool `json:"install_target"`
}

var useAPKRE = regexp.MustCompile(`(?m)^CONFIG_USE_APK=y\s*$`)

// ParsePackageManager reads the package manager from an ImageBuilder's
// .config; an ImageBuilder without one predates apk.
func ParsePackageManager(config []byte) string {
	if useAPKRE.Match(config) {
		return "apk"
	}
	return "opkg"
}

var (
	manifestTargetRE = regexp.MustCompile(`(?m)^manifest:`)
	installTargetRE  = regexp.MustCompile(`(?m)^\t[@+-]*\$\(MAKE\)( -s)? package_install\b`)
)

// ParseCapabilities reads Capabilities from an ImageBuilder's top-level
// Makefile.
func ParseCapabilities(makefile []byte) Capabilities {
	return Capabilities{
		ManifestTarget:   manifestTargetRE.Match(makefile),
		DisabledServices: strings.Contains(string(makefile), "DISABLED_SERVICES"),
		InstallTarget:    installTargetRE.Match(makefile) && strings.Contains(string(makefile), "\npackage_install:"),
	}
}

// Capabilities reads the Makefile in the image's working directory once.
func (d *Driver) Capabilities() (Capabilities, error) {
	if d.caps != nil {
		return *d.caps, nil
	}
	wd := d.IBImage.WorkingDir
	if wd == "" {
		wd = "/builder"
	}
	mk, err := d.IBImage.ReadFile(path.Join(wd, "Makefile"))
	if err != nil {
		return Capabilities{}, fmt.Errorf("imagebuilder: %w: no Makefile in its working directory %s: %v (is this an ImageBuilder image, and was the archive's top-level directory stripped?)", ErrMissingInterface, wd, err)
	}
	c := ParseCapabilities(mk)
	// An ImageBuilder without a .config predates apk (older archives,
	// vendors' forks): opkg.
	config, err := d.IBImage.ReadFile(path.Join(wd, ".config"))
	if err != nil && !errors.Is(err, container.ErrNotInImage) {
		return Capabilities{}, fmt.Errorf("imagebuilder: reading %s/.config: %w", wd, err)
	}
	c.PackageManager = ParsePackageManager(config)
	d.caps = &c
	return c, nil
}

// Output is what one `make image` wrote to BIN_DIR for one profile.
type Output struct {
	// Sysupgrade is the file name of the squashfs sysupgrade image.
	Sysupgrade string
	// ManifestName and Manifest are the installed-package list.
	ManifestName string
	Manifest     []byte
	// FromProfilesJSON says Sysupgrade was named by profiles.json (OpenWrt
	// 19.07 and later); older ImageBuilders write none, and the image is
	// then the one *-squashfs-sysupgrade.bin whose name carries the
	// profile.
	FromProfilesJSON bool
}

// Outputs finds the sysupgrade image and the manifest of profile in binDir.
func Outputs(binDir, profile string) (*Output, error) {
	out := &Output{}
	pj, err := os.ReadFile(filepath.Join(binDir, "profiles.json"))
	switch {
	case err == nil:
		profiles, err := ParseProfilesJSON(pj)
		if err != nil {
			return nil, err
		}
		img, err := profiles.Sysupgrade(profile)
		if err != nil {
			return nil, err
		}
		out.Sysupgrade, out.FromProfilesJSON = img.Name, true
	case errors.Is(err, os.ErrNotExist):
		if out.Sysupgrade, err = findOne(binDir, "-squashfs-sysupgrade.bin", "-"+profile+"-"); err != nil {
			return nil, fmt.Errorf("imagebuilder output (no profiles.json, an ImageBuilder older than OpenWrt 19.07): %w", err)
		}
	default:
		return nil, fmt.Errorf("imagebuilder output: %w", err)
	}
	if out.ManifestName, err = findOne(binDir, ".manifest", ""); err != nil {
		return nil, fmt.Errorf("imagebuilder output: %w", err)
	}
	if out.Manifest, err = os.ReadFile(filepath.Join(binDir, out.ManifestName)); err != nil {
		return nil, fmt.Errorf("imagebuilder output: %w", err)
	}
	return out, nil
}

// findOne returns the one regular file in dir whose name ends in suffix
// and contains infix.
func findOne(dir, suffix, infix string) (string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var found, all []string
	for _, e := range entries {
		all = append(all, e.Name())
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), suffix) && strings.Contains(e.Name(), infix) {
			found = append(found, e.Name())
		}
	}
	sort.Strings(found)
	pattern := "*" + suffix
	if infix != "" {
		pattern = "*" + infix + "*" + suffix
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fmt.Errorf("no %s in %s (it holds: %s)", pattern, dir, strings.Join(all, ", "))
	}
	return "", fmt.Errorf("%d files match %s in %s: %s", len(found), pattern, dir, strings.Join(found, ", "))
}

// diagnoses turn the ImageBuilder's own words for a failure into its cause
// and the fix. The first that matches wins; each names what to change.
var diagnoses = []struct {
	re   *regexp.Regexp
	hint func(m []string) string
}{
	{regexp.MustCompile(`Profile "([^"]+)" does not exist|Invalid PROFILE '([^']*)'|Unknown profile "?([^"\s]+)`), func(m []string) string {
		return fmt.Sprintf("this ImageBuilder has no profile %q: set ib_profile in the profile to one that `make info` lists", firstNonEmpty(m[1:]...))
	}},
	{regexp.MustCompile(`No rule to make target '([^']+)'`), func(m []string) string {
		return fmt.Sprintf("this ImageBuilder has no make target %q (an older generation, or not an ImageBuilder tree at /builder)", m[1])
	}},
	{regexp.MustCompile(`Prerequisite check failed|Build dependency: (.*)`), func(m []string) string {
		return "the build image lacks a tool the ImageBuilder's prerequisite check asks for" + suffix(": ", m[1]) + " (the userland's package list is internal/userland/packages.go; re-lock with scripts/userland-lock.sh)"
	}},
	{regexp.MustCompile(`incompatible with the architectures configured|Architecture ([a-z0-9_]+) is not|wrong architecture`), func(m []string) string {
		return "a package is built for another architecture than this ImageBuilder's: check the profile's openwrt.arch and the packages in the lock against the ImageBuilder's target"
	}},
	{regexp.MustCompile(`Unknown package '([^']+)'|cannot find dependency ([^ ]+) for|Cannot satisfy the following dependencies for ([^:]+)|No packages? .*match(?:es)? ([^\s]+)|\n\s*(\S+) \(no such package\)`), func(m []string) string {
		return fmt.Sprintf("package %q is in neither the ImageBuilder's packages/ nor the pinned feed: fix packages in the profile, then run imgbuild lock", firstNonEmpty(m[1:]...))
	}},
	{regexp.MustCompile(`is too big|exceeds.*IMAGE_SIZE|image too big`), func(m []string) string {
		return "the image does not fit the device's flash: remove packages or overlay files"
	}},
}

// Diagnose returns the likely cause of a failed make run and its fix, from
// the run's last lines of output, or "".
func Diagnose(output string) string {
	for _, d := range diagnoses {
		if m := d.re.FindStringSubmatch(output); m != nil {
			return d.hint(m)
		}
	}
	return ""
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

func suffix(sep, s string) string {
	if s == "" {
		return ""
	}
	return sep + s
}
