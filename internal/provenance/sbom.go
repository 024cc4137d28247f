// Package provenance writes what a torwrt image is made of and how it was
// made: a CycloneDX 1.5 SBOM per image, a SLSA v1 provenance statement
// (in-toto Statement v1), and DSSE envelopes that sign them.
//
// Everything here is bytes in, bytes out, and deterministic: no clock (the
// only time written comes from SOURCE_DATE_EPOCH), no randomness, lists
// sorted. The SBOM is cyclonedx-go's BOM, encoded by its encoder (structs,
// so key order is fixed); the statement is in-toto's Go types, encoded in
// canonical form (keys sorted, see canonicalJSON). Two builds of the same
// inputs produce the same SBOM and statement bytes; Ed25519 DSSE
// signatures are deterministic too.
package provenance

import (
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"

	"github.com/torwrt/torwrt/internal/imagebuilder"
	"github.com/torwrt/torwrt/internal/pkgdb"
	"github.com/torwrt/torwrt/internal/profile"
)

// ErrInput marks an input the documents cannot be made from.
var ErrInput = errors.New("provenance: bad input")

// DaemonPath is where the router daemon lives in the image.
const DaemonPath = "/usr/sbin/torwrt-verify"

// SBOMInput is what one image's SBOM is made from.
type SBOMInput struct {
	// Image is the signed sysupgrade image file as published.
	Image Subject
	// ImageSize is its size in bytes.
	ImageSize int64
	Profile   string
	Brand     string
	Version   string // firmware version
	Board     string
	Simulated bool
	// ImageBuilder is the ImageBuilder image, "registry/repo@sha256:<hex>".
	ImageBuilder string
	// Manifest is the ImageBuilder's .manifest output ("name - version"
	// per installed package).
	Manifest []byte
	// Lock pins the packages: versions, file names and sha256. Packages
	// that are bundled in the ImageBuilder carry no hash of their own (the
	// ImageBuilder digest covers them).
	Lock *profile.Lock
	// Daemon is the router daemon binary exactly as installed; its Go
	// build info (modules, toolchain) is read from it.
	Daemon []byte
	// SourceDateEpoch stamps the document (metadata.timestamp).
	SourceDateEpoch int64
	// Tool is the version of imgbuild that wrote the SBOM.
	Tool string
	// Installed is the package database read out of the image's own root
	// filesystem (apk's /lib/apk/db/installed or opkg's status). When
	// set, it must list exactly the Manifest's packages and versions, and
	// the packages' architectures and licenses come from it.
	Installed *pkgdb.Installed
}

// Subject is a named file and its sha256 (lowercase hex).
type Subject struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

var (
	sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	ibRefRE  = regexp.MustCompile(`^([a-z0-9][a-z0-9.:_/-]*?)(:[A-Za-z0-9_.-]+)?@sha256:([0-9a-f]{64})$`)
)

// The SBOM is built from cyclonedx-go's types and encoded for spec
// version 1.5 by its own encoder (cdx.NewBOMEncoder, which is
// encoding/json over those structs: fixed key order, no maps, no clock, no
// random fields). The conversion to 1.5 deep-copies the BOM through
// encoding/gob, which turns empty non-nil lists into absent ones; every
// list here is either nil or non-empty, so nothing is lost. License and
// tools are written by cyclonedx-go's own MarshalJSON methods, which
// escape <, > and & as \u003c, \u003e and \u0026: the same string to a
// JSON reader, and the same bytes every time.
const sbomSpec = cdx.SpecVersion1_5

// SBOM returns the CycloneDX 1.5 JSON SBOM of one image: the image itself
// (metadata.component), the ImageBuilder image by digest, every installed
// package with its version and, from the lock, its file's sha256, and the
// router daemon with the Go modules and toolchain from its build info.
func SBOM(in SBOMInput) ([]byte, error) {
	bom, err := sbomDocument(in)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := cdx.NewBOMEncoder(&buf, cdx.BOMFileFormatJSON)
	enc.SetPretty(true).SetEscapeHTML(false)
	if err := enc.EncodeVersion(bom, sbomSpec); err != nil {
		return nil, fmt.Errorf("provenance: encoding sbom of %s: %w", in.Image.Name, err)
	}
	return buf.Bytes(), nil
}

func sbomDocument(in SBOMInput) (*cdx.BOM, error) {
	if err := checkSubject(in.Image); err != nil {
		return nil, err
	}
	if in.Lock == nil {
		return nil, fmt.Errorf("%w: sbom of %s: a lock file is required (package hashes come from it)", ErrInput, in.Image.Name)
	}
	ib, err := imageBuilderComponent(in.ImageBuilder)
	if err != nil {
		return nil, err
	}
	installed, err := imagebuilder.ParseManifest(in.Manifest)
	if err != nil {
		return nil, fmt.Errorf("%w: sbom of %s: ImageBuilder .manifest: %v", ErrInput, in.Image.Name, err)
	}
	fromDB := map[string]pkgdb.Package{}
	if in.Installed != nil {
		names, versions := make([]string, len(installed)), make([]string, len(installed))
		for i, pk := range installed {
			names[i], versions[i] = pk.Name, pk.Version
		}
		if problems := in.Installed.Compare(".manifest", names, versions); len(problems) > 0 {
			return nil, fmt.Errorf("%w: sbom of %s: the image's /%s disagrees with the .manifest: %s", ErrInput, in.Image.Name, in.Installed.Path, strings.Join(problems, "; "))
		}
		for _, pk := range in.Installed.Packages {
			fromDB[pk.Name] = pk
		}
	}
	purlType := "pkg:generic/openwrt/"
	if in.Lock.Manager() == profile.APK {
		// purl's apk type: namespace is the distribution.
		purlType = "pkg:apk/openwrt/"
	}
	daemon, err := daemonComponent(in.Daemon)
	if err != nil {
		return nil, err
	}
	tool := in.Tool
	if tool == "" {
		tool = "devel"
	}
	image := cdx.Component{
		Type: cdx.ComponentTypeFirmware, BOMRef: "image:" + in.Image.Name, Name: in.Image.Name, Version: in.Version,
		Description: fmt.Sprintf("OpenWrt sysupgrade image for %s, profile %s", in.Board, in.Profile),
		Hashes:      sha256Hashes(in.Image.SHA256),
		Properties: sortedProps(map[string]string{
			"torwrt:profile":    in.Profile,
			"torwrt:brand":      in.Brand,
			"torwrt:board":      in.Board,
			"torwrt:size":       strconv.FormatInt(in.ImageSize, 10),
			"torwrt:simulated":  strconv.FormatBool(in.Simulated),
			"torwrt:lock_image": in.Lock.Image.Ref,
			"torwrt:packages":   packagesSource(in.Installed),
		}),
	}
	if in.Brand != "" {
		image.Supplier = &cdx.OrganizationalEntity{Name: in.Brand}
	}
	comps := []cdx.Component{ib}
	var pkgRefs []string
	for _, pk := range installed {
		c := cdx.Component{
			Type: cdx.ComponentTypeLibrary, BOMRef: "openwrt-package:" + pk.Name, Name: pk.Name, Version: pk.Version,
			PackageURL: purlType + url.PathEscape(pk.Name) + "@" + url.PathEscape(pk.Version),
		}
		db, inDB := fromDB[pk.Name]
		if db.License != "" {
			// The license as the package declares it (OpenWrt's
			// PKG_LICENSE, not always an SPDX id), so by name.
			c.Licenses = &cdx.Licenses{{License: &cdx.License{Name: db.License}}}
		}
		l, ok := in.Lock.Package(pk.Name)
		if !ok {
			return nil, fmt.Errorf("%w: sbom of %s: package %s is installed but not in the lock", ErrInput, in.Image.Name, pk.Name)
		}
		if l.Version != pk.Version {
			return nil, fmt.Errorf("%w: sbom of %s: %s installed at %s, the lock pins %s", ErrInput, in.Image.Name, pk.Name, pk.Version, l.Version)
		}
		arch := l.Arch
		if inDB && db.Arch != "" {
			arch = db.Arch
		}
		props := map[string]string{"torwrt:arch": arch}
		if l.Bundled {
			props["torwrt:bundled_in_imagebuilder"] = "true"
		} else {
			c.Hashes = sha256Hashes(l.SHA256)
			props["torwrt:filename"] = l.Filename
			props["torwrt:size"] = strconv.FormatInt(l.Size, 10)
		}
		if arch != "" {
			c.PackageURL += "?arch=" + url.QueryEscape(arch)
		}
		c.Properties = sortedProps(props)
		comps = append(comps, c)
		pkgRefs = append(pkgRefs, c.BOMRef)
	}
	comps = append(comps, daemon)
	var modRefs []string
	if daemon.Components != nil {
		for _, m := range *daemon.Components {
			modRefs = append(modRefs, m.BOMRef)
		}
	}
	deps := []cdx.Dependency{
		{Ref: image.BOMRef, Dependencies: sortedCopy(append([]string{ib.BOMRef, daemon.BOMRef}, pkgRefs...))},
		{Ref: daemon.BOMRef, Dependencies: sortedCopy(modRefs)},
	}
	return &cdx.BOM{
		JSONSchema: "http://cyclonedx.org/schema/bom-1.5.schema.json",
		BOMFormat:  cdx.BOMFormat, SpecVersion: sbomSpec,
		SerialNumber: serialNumber(in.Image.SHA256),
		Version:      1,
		Metadata: &cdx.Metadata{
			Timestamp:  time.Unix(in.SourceDateEpoch, 0).UTC().Format(time.RFC3339),
			Lifecycles: &[]cdx.Lifecycle{{Phase: cdx.LifecyclePhaseBuild}},
			Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{{
				Type: cdx.ComponentTypeApplication, Name: "imgbuild", Version: tool,
				Supplier: &cdx.OrganizationalEntity{Name: "torwrt"},
			}}},
			Component: &image,
		},
		Components:   &comps,
		Dependencies: &deps,
	}, nil
}

// packagesSource says where the SBOM's package list was read.
func packagesSource(db *pkgdb.Installed) string {
	if db == nil {
		return "ImageBuilder .manifest"
	}
	return "/" + db.Path + " in the image (" + db.Manager + "), equal to the ImageBuilder .manifest"
}

func imageBuilderComponent(ref string) (cdx.Component, error) {
	m := ibRefRE.FindStringSubmatch(ref)
	if m == nil {
		return cdx.Component{}, fmt.Errorf("%w: ImageBuilder %q is not pinned as registry/repo@sha256:<64 hex>", ErrInput, ref)
	}
	repo, digest := m[1], m[3]
	name := repo
	if i := strings.LastIndexByte(repo, '/'); i >= 0 {
		name = repo[i+1:]
	}
	return cdx.Component{
		Type: cdx.ComponentTypeContainer, BOMRef: "imagebuilder", Name: name, Version: "sha256:" + digest,
		Description: "OpenWrt ImageBuilder image the firmware was assembled in",
		Hashes:      sha256Hashes(digest),
		PackageURL:  "pkg:oci/" + url.PathEscape(name) + "@" + url.PathEscape("sha256:"+digest) + "?repository_url=" + url.QueryEscape(repo),
		Properties:  &[]cdx.Property{{Name: "torwrt:ref", Value: ref}},
	}, nil
}

// DaemonInfo reads the Go build info of a daemon binary.
func DaemonInfo(bin []byte) (*debug.BuildInfo, error) {
	if len(bin) == 0 {
		return nil, fmt.Errorf("%w: no daemon binary", ErrInput)
	}
	bi, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		return nil, fmt.Errorf("%w: daemon binary: reading Go build info: %v", ErrInput, err)
	}
	return bi, nil
}

func daemonComponent(bin []byte) (cdx.Component, error) {
	bi, err := DaemonInfo(bin)
	if err != nil {
		return cdx.Component{}, err
	}
	sum := sha256.Sum256(bin)
	props := map[string]string{"torwrt:path": DaemonPath, "torwrt:go_version": bi.GoVersion, "torwrt:go_package": bi.Path}
	for _, s := range bi.Settings {
		switch s.Key {
		case "GOOS", "GOARCH", "GOMIPS", "CGO_ENABLED", "-trimpath", "-buildmode", "-ldflags":
			props["torwrt:go_build:"+s.Key] = s.Value
		}
	}
	mods := []cdx.Component{{
		Type: cdx.ComponentTypeApplication, BOMRef: "go-toolchain", Name: "go", Version: strings.TrimPrefix(bi.GoVersion, "go"),
		PackageURL: "pkg:golang/std@" + url.PathEscape(bi.GoVersion),
	}}
	deps := append([]*debug.Module{}, bi.Deps...)
	sort.Slice(deps, func(i, j int) bool { return deps[i].Path < deps[j].Path })
	for _, d := range deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		mc := cdx.Component{
			Type: cdx.ComponentTypeLibrary, BOMRef: "go-module:" + d.Path, Name: d.Path, Version: m.Version,
			PackageURL: "pkg:golang/" + m.Path + "@" + url.PathEscape(m.Version),
		}
		if m.Sum != "" {
			// go.sum's h1: hash is SHA-256 over a file list, not over
			// a file, so it is a property rather than a CycloneDX hash.
			mc.Properties = &[]cdx.Property{{Name: "torwrt:go_sum", Value: m.Sum}}
		}
		mods = append(mods, mc)
	}
	return cdx.Component{
		Type: cdx.ComponentTypeApplication, BOMRef: "daemon", Name: "torwrt-verify", Version: bi.Main.Version,
		Description: "torwrt's router daemon (cmd/verify), cross-compiled with " + bi.GoVersion,
		Hashes:      sha256Hashes(hex.EncodeToString(sum[:])),
		PackageURL:  "pkg:golang/" + bi.Main.Path + "@" + url.PathEscape(bi.Main.Version),
		Properties:  sortedProps(props),
		Components:  &mods,
	}, nil
}

func sha256Hashes(hexDigest string) *[]cdx.Hash {
	return &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: hexDigest}}
}

func serialNumber(imageSHA256 string) string {
	// A name-based UUID (version 5 layout) of the image digest: stable for
	// identical images, distinct for different ones.
	h := sha256.Sum256([]byte("torwrt-sbom:" + imageSHA256))
	u := h[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	x := hex.EncodeToString(u)
	return "urn:uuid:" + x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

func checkSubject(s Subject) error {
	if s.Name == "" || strings.ContainsAny(s.Name, "/\\") {
		return fmt.Errorf("%w: subject name %q: want a bare file name", ErrInput, s.Name)
	}
	if !sha256RE.MatchString(s.SHA256) {
		return fmt.Errorf("%w: subject %s: sha256 %q is not 64 lowercase hex digits", ErrInput, s.Name, s.SHA256)
	}
	return nil
}

// sortedProps turns m into properties sorted by name, leaving out empty
// values; nil when none is left (an absent list, not an empty one).
func sortedProps(m map[string]string) *[]cdx.Property {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v != "" {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Strings(keys)
	out := make([]cdx.Property, 0, len(keys))
	for _, k := range keys {
		out = append(out, cdx.Property{Name: k, Value: m[k]})
	}
	return &out
}

// sortedCopy returns s sorted, or nil for an empty s (see sbomSpec).
func sortedCopy(s []string) *[]string {
	if len(s) == 0 {
		return nil
	}
	out := append([]string{}, s...)
	sort.Strings(out)
	return &out
}
