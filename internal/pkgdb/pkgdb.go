// Package pkgdb reads the installed-package database out of a built root
// filesystem: apk's /lib/apk/db/installed (OpenWrt 25.12 and later) or
// opkg's /usr/lib/opkg/status. It is what the image really holds, whatever
// the ImageBuilder's .manifest says; build checks the two against each
// other and the lock, and the SBOM lists what the database lists.
package pkgdb

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"
	"strings"

	"github.com/torwrt/torwrt/internal/apk"
	"github.com/torwrt/torwrt/internal/ipk"
)

// Database paths inside a root filesystem (no leading slash, io/fs style).
const (
	APKInstalled = "lib/apk/db/installed"
	OPKGStatus   = "usr/lib/opkg/status"
)

// maxDB bounds a database read out of an image: OpenWrt's are tens of KB.
const maxDB = 16 << 20

// Package is one installed package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch,omitempty"`
	License string `json:"license,omitempty"`
}

// Installed is a root filesystem's package database.
type Installed struct {
	// Manager is "apk" or "opkg".
	Manager string
	// Path is the database file read, e.g. lib/apk/db/installed.
	Path     string
	Packages []Package // sorted by name
}

// ErrNoDatabase: the root filesystem has neither database.
var ErrNoDatabase = errors.New("no installed-package database")

// Read reads the database of manager ("apk" or "opkg") from a root
// filesystem.
func Read(root fs.FS, manager string) (*Installed, error) {
	path := OPKGStatus
	if manager == "apk" {
		path = APKInstalled
	} else if manager != "opkg" {
		return nil, fmt.Errorf("pkgdb: unknown package manager %q", manager)
	}
	data, err := readBounded(root, path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: the image has no /%s (a %s ImageBuilder writes it)", ErrNoDatabase, path, manager)
		}
		return nil, fmt.Errorf("pkgdb: /%s: %w", path, err)
	}
	var pkgs []Package
	if manager == "apk" {
		pkgs, err = parseAPK(data)
	} else {
		pkgs, err = parseOPKG(data)
	}
	if err != nil {
		return nil, fmt.Errorf("pkgdb: /%s: %w", path, err)
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	for i := 1; i < len(pkgs); i++ {
		if pkgs[i].Name == pkgs[i-1].Name {
			return nil, fmt.Errorf("pkgdb: /%s lists %s twice", path, pkgs[i].Name)
		}
	}
	return &Installed{Manager: manager, Path: path, Packages: pkgs}, nil
}

func readBounded(root fs.FS, path string) ([]byte, error) {
	f, err := root.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxDB+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxDB {
		return nil, fmt.Errorf("larger than %d bytes", maxDB)
	}
	return data, nil
}

func parseAPK(data []byte) ([]Package, error) {
	db, err := apk.ParseInstalled(data)
	if err != nil {
		return nil, err
	}
	out := make([]Package, 0, len(db))
	for _, p := range db {
		out = append(out, Package{Name: p.Name, Version: p.Version, Arch: p.Arch, License: p.License})
	}
	return out, nil
}

func parseOPKG(data []byte) ([]Package, error) {
	var out []Package
	for i, stanza := range strings.Split(string(data), "\n\n") {
		if strings.TrimSpace(stanza) == "" {
			continue
		}
		c, err := ipk.ParseControl([]byte(stanza + "\n"))
		if err != nil {
			return nil, fmt.Errorf("entry %d: %w", i+1, err)
		}
		if name := c.Get("Package"); name != "" && strings.HasSuffix(c.Get("Status"), " installed") {
			out = append(out, Package{Name: name, Version: c.Get("Version"), Arch: c.Get("Architecture"), License: c.Get("License")})
		}
	}
	return out, nil
}

// Versions maps name to version.
func (in *Installed) Versions() map[string]string {
	m := make(map[string]string, len(in.Packages))
	for _, p := range in.Packages {
		m[p.Name] = p.Version
	}
	return m
}

// Compare lists the differences between the database and a package list
// (the ImageBuilder's .manifest), as sentences; none means they agree.
func (in *Installed) Compare(listName string, names, versions []string) []string {
	db := in.Versions()
	var problems []string
	for i, name := range names {
		v, ok := db[name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s is in the %s but not installed in the image", name, listName))
		case v != versions[i]:
			problems = append(problems, fmt.Sprintf("%s is %s in the image, %s in the %s", name, v, versions[i], listName))
		}
		delete(db, name)
	}
	for name, v := range db {
		problems = append(problems, fmt.Sprintf("%s %s is installed in the image but not in the %s", name, v, listName))
	}
	sort.Strings(problems)
	return problems
}
