// Package dist owns the output directory of imgbuild build:
// dist/<profile>/ and every file in it. It names the files, defines the
// build report (build-report.json), reads a dist directory back (release
// prepare, attest and verify), writes one profile's directory atomically
// (a staging directory renamed into place), and makes the SBOM and the
// provenance statement from a build report: `imgbuild build` and
// `imgbuild release attest` call the same functions, so the two cannot
// drift apart.
//
// A new output file is one constant here and one entry in Files (attest.go)
// or in internal/build's write step; a reader finds it by the same name.
package dist

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/torwrt/torwrt/internal/gobuild"
	"github.com/torwrt/torwrt/internal/normalize"
)

// File names in dist/<profile>/. The image's own name is ImageName's.
const (
	ReportFile     = "build-report.json"
	SumsFile       = "sha256sums"
	LockFile       = "lock.json"
	SBOMFile       = "sbom.cdx.json"
	StatementFile  = "provenance.intoto.json"
	ProvenanceFile = "provenance.intoto.jsonl"
	CosignPubFile  = "cosign.pub"
	// CosignSuffix follows the image's name: IMAGE.cosign.sig.
	CosignSuffix = ".cosign.sig"
	// SigSuffix follows the image's name: IMAGE.sig, the usign/signify
	// detached signature.
	SigSuffix = ".sig"
	// imageSuffix ends every sysupgrade image's name.
	imageSuffix = "-squashfs-sysupgrade.bin"
)

// ImageName is the published file name of a sysupgrade image:
// BRAND-VERSION-PROFILE[-SIMULATED]-squashfs-sysupgrade.bin.
func ImageName(brand, version, profile string, simulated bool) string {
	sim := ""
	if simulated {
		sim = "-SIMULATED"
	}
	return fmt.Sprintf("%s-%s-%s%s%s", brand, version, profile, sim, imageSuffix)
}

// ManifestName is the name the ImageBuilder's .manifest (the installed
// package list) is published under, next to image.
func ManifestName(image string) string {
	return strings.TrimSuffix(image, imageSuffix) + ".manifest"
}

// Report is the build report, written as build-report.json: what was
// built from what. It is byte-reproducible like every other file in
// dist/; fields that are this run's only (DistDir, Timings) are not
// written.
type Report struct {
	Profile         string          `json:"profile"`
	Brand           string          `json:"brand"`
	Channel         string          `json:"channel"` // the brand's release channel; release prepare writes it into the manifest
	Simulated       bool            `json:"simulated"`
	Note            string          `json:"note,omitempty"`
	Version         string          `json:"version"`
	Build           uint64          `json:"build"`
	SourceDateEpoch int64           `json:"source_date_epoch"`
	ImageBuilder    string          `json:"imagebuilder_image"`
	Engine          string          `json:"engine"`
	LockSHA256      string          `json:"lock_sha256"`
	ProfileSHA256   string          `json:"profile_sha256"`
	Daemon          *gobuild.Result `json:"daemon"`
	OverlaySHA256   string          `json:"overlay_sha256"`
	Packages        []string        `json:"packages"`
	// PackageManager is the ImageBuilder's: apk or opkg.
	PackageManager string `json:"package_manager"`
	// InstalledInImage counts the packages the image's own package
	// database (apk's installed, opkg's status) lists; they must equal
	// Packages.
	InstalledInImage int               `json:"installed_in_image"`
	Normalize        *normalize.Result `json:"normalize"`
	StrippedIBSig    bool              `json:"stripped_imagebuilder_signature"`
	Image            string            `json:"image"`
	ImageSHA256      string            `json:"image_sha256"`
	ImageSize        int64             `json:"image_size"`
	RootfsBytes      int64             `json:"payload_size"`
	SizeLimit        int64             `json:"size_limit"`
	SignedBy         string            `json:"signed_by"`
	Board            string            `json:"board"`
	Outputs          []string          `json:"outputs"`
	// DistDir and Timings are this run's, not the build's: they are not
	// written into build-report.json (`build --json` shows them).
	// Timings maps a step to its duration; Cached lists the steps whose
	// output was replayed from the step cache, and "run/installed" when
	// the run restored the installed package tree from it and ran make
	// image from FILES on.
	DistDir string            `json:"-"`
	Timings map[string]string `json:"-"`
	Cached  []string          `json:"-"`
	// Warnings are problems a test profile is built with; a release
	// profile fails on them instead.
	Warnings []string `json:"warnings,omitempty"`
	// ProfileFrom and BrandFrom say where the profile and the brand were
	// read: a directory, or embedded in imgbuild.
	ProfileFrom string `json:"profile_from"`
	BrandFrom   string `json:"brand_from"`
}

// Marshal is the report as build-report.json holds it.
func (r *Report) Marshal() ([]byte, error) {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

// Profile is one built profile found in dist/.
type Profile struct {
	Dir    string
	Report *Report
}

// ImagePath is the image file of p.
func (p *Profile) ImagePath() string { return filepath.Join(p.Dir, p.Report.Image) }

// Path is the file name in p's directory.
func (p *Profile) Path(name string) string { return filepath.Join(p.Dir, name) }

// FindProfiles returns the profiles in dist (every dist/*/build-report.json),
// sorted by profile id.
func FindProfiles(dist string) ([]*Profile, error) {
	matches, err := filepath.Glob(filepath.Join(dist, "*", ReportFile))
	if err != nil {
		return nil, err
	}
	var out []*Profile
	for _, m := range matches {
		dir := filepath.Dir(m)
		if strings.HasPrefix(filepath.Base(dir), ".") {
			continue // an incomplete build's staging directory
		}
		data, err := os.ReadFile(m)
		if err != nil {
			return nil, err
		}
		var r Report
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, fmt.Errorf("%s: %w", m, err)
		}
		if r.Profile == "" || r.Image == "" || strings.ContainsAny(r.Image, `/\`) {
			return nil, fmt.Errorf("%s: no profile or image name", m)
		}
		if r.Profile != filepath.Base(dir) {
			return nil, fmt.Errorf("%s: report is for profile %q but lives in %s/", m, r.Profile, filepath.Base(dir))
		}
		out = append(out, &Profile{Dir: dir, Report: &r})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no built profiles in %s (want %s/<profile>/%s); run: imgbuild build --all --out %s", dist, dist, ReportFile, dist)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Report.Profile < out[j].Report.Profile })
	return out, nil
}
