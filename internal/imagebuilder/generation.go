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
}

var manifestTargetRE = regexp.MustCompile(`(?m)^manifest:`)

// ParseCapabilities reads Capabilities from an ImageBuilder's top-level
// Makefile.
func ParseCapabilities(makefile []byte) Capabilities {
	return Capabilities{
		ManifestTarget:   manifestTargetRE.Match(makefile),
		DisabledServices: strings.Contains(string(makefile), "DISABLED_SERVICES"),
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
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fmt.Errorf("no *%s*%s in %s (it holds: %s)", infix, suffix, dir, strings.Join(all, ", "))
	}
	return "", fmt.Errorf("%d files match *%s*%s in %s: %s", len(found), infix, suffix, dir, strings.Join(found, ", "))
}
