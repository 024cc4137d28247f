// Package provenance writes what a torwrt image is made of and how it was
// made: a CycloneDX 1.5 SBOM per image, a SLSA v1 provenance statement
// (in-toto Statement v1), and DSSE envelopes that sign them.
//
// Everything here is bytes in, bytes out, and deterministic: no clock (the
// only time written comes from SOURCE_DATE_EPOCH), no randomness, lists
// sorted, documents built from structs so key order is fixed. Two builds of
// the same inputs produce the same SBOM and statement bytes; Ed25519 DSSE
// signatures are deterministic too.
package provenance

import (
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

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

// CycloneDX 1.5 document shapes; field order is output order.
type (
	cdxBOM struct {
		Schema       string          `json:"$schema"`
		BOMFormat    string          `json:"bomFormat"`
		SpecVersion  string          `json:"specVersion"`
		SerialNumber string          `json:"serialNumber"`
		Version      int             `json:"version"`
		Metadata     cdxMetadata     `json:"metadata"`
		Components   []cdxComponent  `json:"components"`
		Dependencies []cdxDependency `json:"dependencies"`
	}
	cdxMetadata struct {
		Timestamp  string        `json:"timestamp"`
		Lifecycles []cdxPhase    `json:"lifecycles"`
		Tools      cdxTools      `json:"tools"`
		Component  cdxComponent  `json:"component"`
		Properties []cdxProperty `json:"properties,omitempty"`
	}
	cdxPhase struct {
		Phase string `json:"phase"`
	}
	cdxTools struct {
		Components []cdxComponent `json:"components"`
	}
	cdxComponent struct {
		Type        string         `json:"type"`
		BOMRef      string         `json:"bom-ref,omitempty"`
		Supplier    *cdxOrg        `json:"supplier,omitempty"`
		Name        string         `json:"name"`
		Version     string         `json:"version,omitempty"`
		Description string         `json:"description,omitempty"`
		Hashes      []cdxHash      `json:"hashes,omitempty"`
		Licenses    []cdxLicense   `json:"licenses,omitempty"`
		PURL        string         `json:"purl,omitempty"`
		Properties  []cdxProperty  `json:"properties,omitempty"`
		Components  []cdxComponent `json:"components,omitempty"`
	}
	cdxOrg struct {
		Name string `json:"name"`
	}
	// cdxLicense names a license as the package declares it (OpenWrt's
	// PKG_LICENSE, not always an SPDX id).
	cdxLicense struct {
		License cdxOrg `json:"license"`
	}
	cdxHash struct {
		Alg     string `json:"alg"`
		Content string `json:"content"`
	}
	cdxProperty struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	cdxDependency struct {
		Ref       string   `json:"ref"`
		DependsOn []string `json:"dependsOn"`
	}
)

// SBOM returns the CycloneDX 1.5 JSON SBOM of one image: the image itself
// (metadata.component), the ImageBuilder image by digest, every installed
// package with its version and, from the lock, its file's sha256, and the
// router daemon with the Go modules and toolchain from its build info.
func SBOM(in SBOMInput) ([]byte, error) {
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
	image := cdxComponent{
		Type: "firmware", BOMRef: "image:" + in.Image.Name, Name: in.Image.Name, Version: in.Version,
		Description: fmt.Sprintf("OpenWrt sysupgrade image for %s, profile %s", in.Board, in.Profile),
		Hashes:      []cdxHash{{"SHA-256", in.Image.SHA256}},
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
		image.Supplier = &cdxOrg{Name: in.Brand}
	}
	comps := []cdxComponent{ib}
	var pkgRefs []string
	for _, pk := range installed {
		c := cdxComponent{
			Type: "library", BOMRef: "openwrt-package:" + pk.Name, Name: pk.Name, Version: pk.Version,
			PURL: purlType + url.PathEscape(pk.Name) + "@" + url.PathEscape(pk.Version),
		}
		db, inDB := fromDB[pk.Name]
		if db.License != "" {
			c.Licenses = []cdxLicense{{License: cdxOrg{Name: db.License}}}
		}
		if l, ok := in.Lock.Package(pk.Name); ok {
			arch := l.Arch
			if inDB && db.Arch != "" {
				arch = db.Arch
			}
			props := map[string]string{"torwrt:arch": arch}
			if l.Bundled {
				props["torwrt:bundled_in_imagebuilder"] = "true"
			} else {
				c.Hashes = []cdxHash{{"SHA-256", l.SHA256}}
				props["torwrt:filename"] = l.Filename
				props["torwrt:size"] = strconv.FormatInt(l.Size, 10)
			}
			if l.Version != pk.Version {
				return nil, fmt.Errorf("%w: sbom of %s: %s installed at %s, the lock pins %s", ErrInput, in.Image.Name, pk.Name, pk.Version, l.Version)
			}
			if arch != "" {
				c.PURL += "?arch=" + url.QueryEscape(arch)
			}
			c.Properties = sortedProps(props)
		} else {
			return nil, fmt.Errorf("%w: sbom of %s: package %s is installed but not in the lock", ErrInput, in.Image.Name, pk.Name)
		}
		comps = append(comps, c)
		pkgRefs = append(pkgRefs, c.BOMRef)
	}
	comps = append(comps, daemon)
	deps := []cdxDependency{
		{Ref: image.BOMRef, DependsOn: sortedCopy(append([]string{ib.BOMRef, daemon.BOMRef}, pkgRefs...))},
	}
	var modRefs []string
	for _, m := range daemon.Components {
		modRefs = append(modRefs, m.BOMRef)
	}
	deps = append(deps, cdxDependency{Ref: daemon.BOMRef, DependsOn: sortedCopy(modRefs)})
	bom := cdxBOM{
		Schema:    "http://cyclonedx.org/schema/bom-1.5.schema.json",
		BOMFormat: "CycloneDX", SpecVersion: "1.5",
		SerialNumber: serialNumber(in.Image.SHA256),
		Version:      1,
		Metadata: cdxMetadata{
			Timestamp:  time.Unix(in.SourceDateEpoch, 0).UTC().Format(time.RFC3339),
			Lifecycles: []cdxPhase{{"build"}},
			Tools: cdxTools{Components: []cdxComponent{{
				Type: "application", Name: "imgbuild", Version: tool, Supplier: &cdxOrg{Name: "torwrt"},
			}}},
			Component: image,
		},
		Components:   comps,
		Dependencies: deps,
	}
	return marshal(bom)
}

// packagesSource says where the SBOM's package list was read.
func packagesSource(db *pkgdb.Installed) string {
	if db == nil {
		return "ImageBuilder .manifest"
	}
	return "/" + db.Path + " in the image (" + db.Manager + "), equal to the ImageBuilder .manifest"
}

func imageBuilderComponent(ref string) (cdxComponent, error) {
	m := ibRefRE.FindStringSubmatch(ref)
	if m == nil {
		return cdxComponent{}, fmt.Errorf("%w: ImageBuilder %q is not pinned as registry/repo@sha256:<64 hex>", ErrInput, ref)
	}
	repo, digest := m[1], m[3]
	name := repo
	if i := strings.LastIndexByte(repo, '/'); i >= 0 {
		name = repo[i+1:]
	}
	return cdxComponent{
		Type: "container", BOMRef: "imagebuilder", Name: name, Version: "sha256:" + digest,
		Description: "OpenWrt ImageBuilder image the firmware was assembled in",
		Hashes:      []cdxHash{{"SHA-256", digest}},
		PURL:        "pkg:oci/" + url.PathEscape(name) + "@" + url.PathEscape("sha256:"+digest) + "?repository_url=" + url.QueryEscape(repo),
		Properties:  []cdxProperty{{"torwrt:ref", ref}},
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

func daemonComponent(bin []byte) (cdxComponent, error) {
	bi, err := DaemonInfo(bin)
	if err != nil {
		return cdxComponent{}, err
	}
	sum := sha256.Sum256(bin)
	props := map[string]string{"torwrt:path": DaemonPath, "torwrt:go_version": bi.GoVersion, "torwrt:go_package": bi.Path}
	for _, s := range bi.Settings {
		switch s.Key {
		case "GOOS", "GOARCH", "GOMIPS", "CGO_ENABLED", "-trimpath", "-buildmode", "-ldflags":
			props["torwrt:go_build:"+s.Key] = s.Value
		}
	}
	c := cdxComponent{
		Type: "application", BOMRef: "daemon", Name: "torwrt-verify", Version: bi.Main.Version,
		Description: "torwrt's router daemon (cmd/verify), cross-compiled with " + bi.GoVersion,
		Hashes:      []cdxHash{{"SHA-256", hex.EncodeToString(sum[:])}},
		PURL:        "pkg:golang/" + bi.Main.Path + "@" + url.PathEscape(bi.Main.Version),
		Properties:  sortedProps(props),
	}
	c.Components = append(c.Components, cdxComponent{
		Type: "application", BOMRef: "go-toolchain", Name: "go", Version: strings.TrimPrefix(bi.GoVersion, "go"),
		PURL: "pkg:golang/std@" + url.PathEscape(bi.GoVersion),
	})
	deps := append([]*debug.Module{}, bi.Deps...)
	sort.Slice(deps, func(i, j int) bool { return deps[i].Path < deps[j].Path })
	for _, d := range deps {
		m := d
		if d.Replace != nil {
			m = d.Replace
		}
		mc := cdxComponent{
			Type: "library", BOMRef: "go-module:" + d.Path, Name: d.Path, Version: m.Version,
			PURL: "pkg:golang/" + m.Path + "@" + url.PathEscape(m.Version),
		}
		if m.Sum != "" {
			// go.sum's h1: hash is SHA-256 over a file list, not over
			// a file, so it is a property rather than a CycloneDX hash.
			mc.Properties = []cdxProperty{{"torwrt:go_sum", m.Sum}}
		}
		c.Components = append(c.Components, mc)
	}
	return c, nil
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

func sortedProps(m map[string]string) []cdxProperty {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]cdxProperty, 0, len(keys))
	for _, k := range keys {
		out = append(out, cdxProperty{k, m[k]})
	}
	return out
}

func sortedCopy(s []string) []string {
	out := append([]string{}, s...)
	sort.Strings(out)
	return out
}

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("provenance: encoding: %w", err)
	}
	return buf.Bytes(), nil
}
