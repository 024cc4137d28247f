package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/torwrt/torwrt"
	"github.com/torwrt/torwrt/internal/brand"
	"github.com/torwrt/torwrt/internal/profile"
)

// sources say where profiles, brands and the daemon's source come from
// (docs/cli.md, "Where profiles and brands come from"): a vendor's own
// directory first, then what imgbuild carries inside itself. A profile or
// brand in the directory wins over an embedded one with the same id.
type sources struct {
	// root is the vendor's directory with profiles/ and brands/: --root,
	// else the nearest directory at or above the working directory that
	// has either; "" when there is none.
	root string
	// checkout: root is a torwrt source tree (its go.mod is this module's),
	// so the router daemon and ibsim-tool are compiled from it; otherwise
	// from the source embedded in imgbuild.
	checkout bool
}

const modulePath = "github.com/torwrt/torwrt"

// findSources locates the vendor directory: root when given (it must
// exist), else the nearest one above the working directory.
func findSources(root string) (sources, error) {
	if root != "" {
		fi, err := os.Stat(root)
		if err != nil {
			return sources{}, fmt.Errorf("--root: %w", err)
		}
		if !fi.IsDir() {
			return sources{}, fmt.Errorf("--root %s is not a directory (want one with profiles/ and/or brands/)", root)
		}
		if !isDir(filepath.Join(root, "profiles")) && !isDir(filepath.Join(root, "brands")) {
			return sources{}, fmt.Errorf("--root %s has neither profiles/ nor brands/", root)
		}
		return sources{root: root, checkout: isCheckout(root)}, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return sources{}, err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if isDir(filepath.Join(d, "profiles")) || isDir(filepath.Join(d, "brands")) {
			return sources{root: d, checkout: isCheckout(d)}, nil
		}
		if filepath.Dir(d) == d {
			return sources{}, nil
		}
	}
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// isCheckout reports whether d is the root of a torwrt source tree.
func isCheckout(d string) bool {
	b, err := os.ReadFile(filepath.Join(d, "go.mod"))
	return err == nil && bytes.HasPrefix(b, []byte("module "+modulePath+"\n")) && isDir(filepath.Join(d, "cmd", "verify"))
}

// moduleDir is the checkout to compile the daemon from; "" means the
// source embedded in imgbuild.
func (s sources) moduleDir() string {
	if s.checkout {
		return s.root
	}
	return ""
}

// profiles is the profile lookup order.
func (s sources) profiles() profile.Path {
	var pp profile.Path
	if s.root != "" {
		pp = append(pp, profile.DirLayer(filepath.Join(s.root, "profiles")))
	}
	embedded, err := fs.Sub(torwrt.Profiles, "profiles")
	if err != nil {
		panic(err) // a constant, valid path
	}
	return append(pp, profile.EmbeddedLayer(embedded))
}

// brandDir is where brand init writes a new brand: the vendor directory's
// brands/, else ./brands.
func (s sources) brandDir() string {
	if s.root == "" {
		return "brands"
	}
	return filepath.Join(s.root, "brands")
}

// embeddedBrand is Brand.Dir of the brand imgbuild carries.
const embeddedBrand = profile.Embedded + " (brands/" + torwrt.DefaultBrand + ")"

// loadBrand loads brand id from the vendor directory, else the embedded
// default brand. Brand.Dir says which.
func (s sources) loadBrand(id string) (*brand.Brand, error) {
	if s.root != "" {
		if _, err := os.Stat(filepath.Join(s.brandDir(), id, "brand.yaml")); err == nil || id != torwrt.DefaultBrand {
			return brand.Load(s.brandDir(), id)
		}
	} else if id != torwrt.DefaultBrand {
		return nil, fmt.Errorf("%w %q: no ./brands/%s/brand.yaml here or above, and imgbuild carries only the %q brand; pass --root DIR with DIR/brands/%s, or scaffold it with: imgbuild brand init %s", brand.ErrNotFound, id, id, torwrt.DefaultBrand, id, id)
	}
	// brand.Load reads a directory: give it a copy of the embedded one.
	tmp, err := os.MkdirTemp("", "torwrt-brand-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	sub, err := fs.Sub(torwrt.Brands, "brands")
	if err != nil {
		return nil, err
	}
	if err := os.CopyFS(tmp, sub); err != nil {
		return nil, fmt.Errorf("unpacking the embedded brand: %w", err)
	}
	b, err := brand.Load(tmp, id)
	if err != nil {
		return nil, fmt.Errorf("the brand embedded in imgbuild: %w", err)
	}
	b.Dir = embeddedBrand
	return b, nil
}

// brandIDs lists the brands of the vendor directory and the embedded one.
func (s sources) brandIDs() ([]string, error) {
	var ids []string
	if s.root != "" && isDir(s.brandDir()) {
		var err error
		if ids, err = brand.List(s.brandDir()); err != nil {
			return nil, err
		}
	}
	if !slices.Contains(ids, torwrt.DefaultBrand) {
		ids = append(ids, torwrt.DefaultBrand)
	}
	slices.Sort(ids)
	return ids, nil
}

// sourceCommit is the git commit of the checkout, or the one imgbuild was
// built from (vcs.revision), or "".
func (s sources) sourceCommit(ctx context.Context) string {
	if s.checkout {
		return sourceCommit(ctx, s.root)
	}
	return buildVersion().Commit
}

// describe is the log line that says where things come from.
func (s sources) describe() string {
	switch {
	case s.checkout:
		return "torwrt checkout " + s.root + " (its profiles/, brands/ and daemon source; embedded copies for what it lacks)"
	case s.root != "":
		return "vendor directory " + s.root + " (its profiles/ and brands/ win over the ones embedded in imgbuild; daemon from the embedded source)"
	default:
		return "no profiles/ or brands/ at or above the working directory: profiles, brand and daemon source embedded in imgbuild"
	}
}
