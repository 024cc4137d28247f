// Package profile loads and validates device profiles (profiles/<id>/
// profile.yaml) and their lock files (lock.json).
//
// A profile says what to build; its lock file pins everything the build
// consumes: the ImageBuilder image by digest and every package by name,
// version and SHA-256. `imgbuild lock` writes locks where the network
// allows, `imgbuild build` only reads them.
package profile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/torwrt/torwrt/internal/overlay/device"
)

// Profile is the declarative description of one device's image.
type Profile struct {
	ID               string   `yaml:"id" json:"id"`
	Title            string   `yaml:"title" json:"title"`
	OpenWrt          OpenWrt  `yaml:"openwrt" json:"openwrt"`
	ImageBuilder     IBImage  `yaml:"imagebuilder" json:"imagebuilder"`
	IBProfile        string   `yaml:"ib_profile" json:"ib_profile"`
	Board            string   `yaml:"board" json:"board"`
	SupportedDevices []string `yaml:"supported_devices" json:"supported_devices"`
	ImageSizeLimit   string   `yaml:"image_size_limit" json:"image_size_limit"`
	Daemon           Daemon   `yaml:"daemon" json:"daemon"`
	Packages         Packages `yaml:"packages" json:"packages"`
	DisabledServices []string `yaml:"disabled_services" json:"disabled_services"`
	BridgeRelay      bool     `yaml:"bridge_relay" json:"bridge_relay"`
	// TestProfile, when set, says why this profile exists although it is
	// no release target (an older ImageBuilder generation kept to test
	// against, say). `--all` leaves such profiles out.
	TestProfile string `yaml:"test_profile,omitempty" json:"test_profile,omitempty"`
	// Device names the device whose board facts (ports, radio, switch) the
	// router's configuration is rendered from, when this profile is not
	// that device's primary one: a profile for another OpenWrt series of
	// the same board (gl-ar150-24.10 has device gl-ar150). `--all` builds
	// primary profiles only. Empty means the profile's own id.
	Device string `yaml:"device,omitempty" json:"device,omitempty"`
	// DeviceFacts are the device's RAM, ports, switch and radio, and
	// Tor's default queue memory: what the router's configuration is
	// rendered from, so that a new board needs only its profile. A
	// profile without device: must give them all. A variant (device:
	// set) inherits its primary's and may give some of the sections
	// (ram_mb, ports, switch, radio, max_mem_in_queues_mb): each one it
	// gives replaces the primary's whole section (switch: {} for none).
	// This field is the file as written; Facts returns what applies.
	DeviceFacts device.Facts `yaml:"device_facts,omitempty" json:"device_facts"`

	// Dir is the directory the profile was loaded from; empty for a
	// profile embedded in imgbuild.
	Dir string `yaml:"-" json:"-"`
	// Origin says where the profile came from, for the build report and
	// the log: its directory, or that it is embedded in imgbuild.
	Origin string `yaml:"-" json:"-"`
	// fsys holds <id>/lock.json for an embedded profile.
	fsys fs.FS
	// SHA256 is the hash of the profile file's bytes; locks record it.
	SHA256 string `yaml:"-" json:"sha256"`

	// file and node are where the profile was parsed from, for the line
	// numbers of a variant's device_facts once its primary is known.
	file string
	node *yaml.Node
	// facts are the device facts that apply, once resolved: the
	// profile's own, or its primary's with its sections laid over them.
	facts    device.Facts
	resolved bool
}

// OpenWrt names the release the ImageBuilder is from.
type OpenWrt struct {
	Version         string `yaml:"version" json:"version"`
	Revision        string `yaml:"revision" json:"revision"`
	Target          string `yaml:"target" json:"target"`
	Subtarget       string `yaml:"subtarget" json:"subtarget"`
	Arch            string `yaml:"arch" json:"arch"`
	SourceDateEpoch int64  `yaml:"source_date_epoch" json:"source_date_epoch"`
}

// IBImage is where the ImageBuilder comes from: a container image (Ref,
// which may carry a tag for humans; the digest the build uses comes from
// the lock file), or an upstream archive imported with `imgbuild ib
// import` (Archive and ArchiveSHA256; the lock pins the image the import
// made of it). Exactly one of the two.
type IBImage struct {
	Ref           string `yaml:"ref,omitempty" json:"ref,omitempty"`
	Archive       string `yaml:"archive,omitempty" json:"archive,omitempty"`
	ArchiveSHA256 string `yaml:"archive_sha256,omitempty" json:"archive_sha256,omitempty"`
}

// Imported reports whether the ImageBuilder is an imported archive.
func (i IBImage) Imported() bool { return i.ArchiveSHA256 != "" }

// Daemon says how to cross-compile the router binary.
type Daemon struct {
	GOARCH string `yaml:"goarch" json:"goarch"`
	GOMIPS string `yaml:"gomips" json:"gomips"`
}

// Packages lists additions and removals on top of the IB's defaults.
type Packages struct {
	Add    []string `yaml:"add" json:"add"`
	Remove []string `yaml:"remove" json:"remove"`
}

var (
	idRE       = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]|\.[a-z0-9]){0,31}$`)
	ibIDRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)
	packageRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9+._-]*$`)
	removeRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9+._-]*\*?$`)
	versionRE  = regexp.MustCompile(`^[0-9][0-9A-Za-z.+~_-]{0,31}$`)
	wordRE     = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,31}$`)
	deviceRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9,_.-]{0,63}$`)
	revisionRE = regexp.MustCompile(`^r[0-9]+-[0-9a-f]+$`)
	archiveRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9+._-]{0,200}\.tar(\.(xz|zst|gz))?$`)
)

// ValidPackageName reports whether s is a package name the ImageBuilder
// may be given. Names reach `make` as arguments; anything outside this
// set (spaces, quotes, $, ;) is refused before it gets near a command.
func ValidPackageName(s string) bool { return packageRE.MatchString(s) && len(s) <= 128 }

// Error is a validation error with the file and line it is about.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	return fmt.Sprintf("%s: %s: %s", loc, e.Field, e.Msg)
}

// ErrNotFound is returned for an unknown profile.
var ErrNotFound = errors.New("unknown profile")

// Load reads profiles/<id>/profile.yaml under root.
func Load(root, id string) (*Profile, error) {
	if !idRE.MatchString(id) {
		return nil, fmt.Errorf("%w %q: ids are lowercase letters, digits, dashes and dots (gl-ar150-24.10)", ErrNotFound, id)
	}
	dir := filepath.Join(root, id)
	path := filepath.Join(dir, "profile.yaml")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		known, _ := List(root)
		return nil, fmt.Errorf("%w %q (no %s); known profiles: %s", ErrNotFound, id, path, strings.Join(known, ", "))
	}
	if err != nil {
		return nil, err
	}
	p, err := Parse(path, data)
	if err != nil {
		return nil, err
	}
	if p.ID != id {
		return nil, &Error{File: path, Field: "id", Msg: fmt.Sprintf("%q does not match its directory %q", p.ID, id)}
	}
	p.Dir, p.Origin = dir, dir
	if err := p.resolveDevice(func(id string) (*Profile, error) { return loadOne(root, id) }); err != nil {
		return nil, err
	}
	return p, nil
}

// loadOne is Load without resolving a variant's device facts.
func loadOne(root, id string) (*Profile, error) {
	if !idRE.MatchString(id) {
		return nil, fmt.Errorf("%w %q", ErrNotFound, id)
	}
	path := filepath.Join(root, id, "profile.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := Parse(path, data)
	if err == nil && p.ID != id {
		err = &Error{File: path, Field: "id", Msg: fmt.Sprintf("%q does not match its directory %q", p.ID, id)}
	}
	return p, err
}

// List returns the ids of the profiles under root.
func List(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(root, e.Name(), "profile.yaml")); err == nil {
			ids = append(ids, e.Name())
		}
	}
	sort.Strings(ids)
	return ids, nil
}

// Parse decodes and validates a profile. Unknown keys are errors: a typo
// in a security setting must not be silently ignored.
func Parse(path string, data []byte) (*Profile, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var p Profile
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sum := sha256.Sum256(data)
	p.SHA256 = hex.EncodeToString(sum[:])
	p.file, p.node = path, &root
	if err := p.validate(path, &root); err != nil {
		return nil, err
	}
	if p.DeviceID() == p.ID {
		if !hasKey(&root, "device_facts") {
			return nil, &Error{File: path, Field: "device_facts", Msg: "missing: a profile without device: describes its device (ram_mb, ports, radio, max_mem_in_queues_mb, and switch if it has one; see profiles/gl-mt300a/profile.yaml)"}
		}
		if err := p.checkFacts(p.DeviceFacts, nil); err != nil {
			return nil, err
		}
		p.facts, p.resolved = p.DeviceFacts.Clone(), true
	}
	return &p, nil
}

// factSections are the keys of device_facts a variant may give, each
// replacing its primary's whole value.
var factSections = []string{"ram_mb", "ports", "switch", "radio", "max_mem_in_queues_mb"}

// checkFacts returns the first problem of f as an *Error at its line in
// p's file. For a variant, primary is the profile its other sections
// come from; a problem in one of those is reported at device_facts.
func (p *Profile) checkFacts(f device.Facts, primary *Profile) error {
	probs := f.Check()
	if len(probs) == 0 {
		return nil
	}
	pr := probs[0]
	field := "device_facts." + pr.Field
	section, _, _ := strings.Cut(pr.Field, ".")
	section, _, _ = strings.Cut(section, "[")
	if primary != nil && !p.givesFact(section) {
		return &Error{File: p.file, Line: lineOf(p.node, "device_facts"), Field: field,
			Msg: fmt.Sprintf("%s (%s as inherited from %s, with this profile's device_facts)", pr.Msg, section, primary.ID)}
	}
	return &Error{File: p.file, Line: lineOf(p.node, field), Field: field, Msg: pr.Msg}
}

// givesFact reports whether p's file has device_facts.<section>.
func (p *Profile) givesFact(section string) bool {
	return p.node != nil && hasKey(p.node, "device_facts."+section)
}

// hasKey reports whether the YAML document has the dotted mapping key.
func hasKey(doc *yaml.Node, dotted string) bool {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, part := range strings.Split(dotted, ".") {
		if n.Kind != yaml.MappingNode {
			return false
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			return false
		}
		n = next
	}
	return true
}

// resolveDevice lays a variant's device_facts sections over its primary's
// facts; load reads a profile without resolving it. A profile that is
// its own device has nothing to resolve.
func (p *Profile) resolveDevice(load func(id string) (*Profile, error)) error {
	if p.resolved {
		return nil
	}
	fail := func(field, format string, a ...any) error {
		return &Error{File: p.file, Line: lineOf(p.node, field), Field: field, Msg: fmt.Sprintf(format, a...)}
	}
	prim, err := load(p.Device)
	if err != nil {
		return fail("device", "%q names no profile to take device facts from: %v", p.Device, err)
	}
	if !prim.resolved {
		return fail("device", "%q is itself a variant of %q; name the device's primary profile, %s", prim.ID, prim.Device, prim.Device)
	}
	f := prim.facts.Clone()
	for _, s := range factSections {
		if !p.givesFact(s) {
			continue
		}
		switch s {
		case "ram_mb":
			f.RAMMB = p.DeviceFacts.RAMMB
		case "ports":
			f.Ports = p.DeviceFacts.Ports
		case "switch":
			f.Switch = p.DeviceFacts.Switch
		case "radio":
			f.Radio = p.DeviceFacts.Radio
		case "max_mem_in_queues_mb":
			f.MaxMemInQueuesMB = p.DeviceFacts.MaxMemInQueuesMB
		}
	}
	if err := p.checkFacts(f, prim); err != nil {
		return err
	}
	p.facts, p.resolved = f.Clone(), true
	return nil
}

// Facts returns the device facts the router's configuration is rendered
// from: the profile's own device_facts, or for a variant (device:) its
// primary's with the variant's sections laid over them. Load resolves a
// variant; Parse alone cannot, since it does not know the primary.
func (p *Profile) Facts() (device.Facts, error) {
	if !p.resolved {
		return device.Facts{}, fmt.Errorf("profile %s: device facts of %s not resolved: load the profile with profile.Load or Path.Load, which reads its primary", p.ID, p.Device)
	}
	return p.facts.Clone(), nil
}

func (p *Profile) validate(path string, root *yaml.Node) error {
	fail := func(field, format string, a ...any) error {
		return &Error{File: path, Line: lineOf(root, field), Field: field, Msg: fmt.Sprintf(format, a...)}
	}
	checks := []struct {
		field string
		val   string
		re    *regexp.Regexp
	}{
		{"id", p.ID, idRE},
		{"openwrt.version", p.OpenWrt.Version, versionRE},
		{"openwrt.revision", p.OpenWrt.Revision, revisionRE},
		{"openwrt.target", p.OpenWrt.Target, wordRE},
		{"openwrt.subtarget", p.OpenWrt.Subtarget, wordRE},
		{"openwrt.arch", p.OpenWrt.Arch, wordRE},
		{"ib_profile", p.IBProfile, ibIDRE},
		{"board", p.Board, deviceRE},
	}
	if p.Device != "" && !idRE.MatchString(p.Device) {
		return fail("device", "%q must be a profile id (%s), the device's primary profile", p.Device, idRE)
	}
	for _, c := range checks {
		if c.val == "" {
			return fail(c.field, "missing")
		}
		if !c.re.MatchString(c.val) {
			return fail(c.field, "%q must match %s", c.val, c.re)
		}
	}
	if p.OpenWrt.SourceDateEpoch <= 0 {
		return fail("openwrt.source_date_epoch", "missing or not positive; use the ImageBuilder release's SOURCE_DATE_EPOCH")
	}
	ib := p.ImageBuilder
	switch {
	case ib.Ref != "" && (ib.Archive != "" || ib.ArchiveSHA256 != ""):
		return fail("imagebuilder", "give either ref (a container image) or archive and archive_sha256 (an imported archive), not both")
	case ib.Ref == "" && ib.ArchiveSHA256 == "":
		return fail("imagebuilder.ref", "missing; e.g. ghcr.io/openwrt/imagebuilder:ath79-generic-v24.10.3 (or archive and archive_sha256 for an archive imported with `imgbuild ib import`)")
	case ib.Ref != "" && strings.ContainsAny(ib.Ref, " \t\n$;'\"`\\"):
		return fail("imagebuilder.ref", "%q contains characters no image reference has", ib.Ref)
	case ib.Ref == "" && !sha256RE.MatchString(ib.ArchiveSHA256):
		return fail("imagebuilder.archive_sha256", "%q must be 64 lowercase hex digits (the archive's sha256 as its sha256sums lists it)", ib.ArchiveSHA256)
	case ib.Ref == "" && !archiveRE.MatchString(ib.Archive):
		return fail("imagebuilder.archive", "%q must be the archive's file name (no directories), as its sha256sums lists it", ib.Archive)
	}
	if len(p.SupportedDevices) == 0 {
		return fail("supported_devices", "missing")
	}
	hasBoard := false
	for _, d := range p.SupportedDevices {
		if !deviceRE.MatchString(d) {
			return fail("supported_devices", "%q must match %s", d, deviceRE)
		}
		hasBoard = hasBoard || d == p.Board
	}
	if !hasBoard {
		return fail("supported_devices", "does not list the board %q", p.Board)
	}
	if _, err := p.ImageSizeBytes(); err != nil {
		return fail("image_size_limit", "%v", err)
	}
	if want := goarchFor(p.OpenWrt.Arch); want != "" && p.Daemon.GOARCH != want {
		return fail("daemon.goarch", "%q, but openwrt.arch %s needs %q: the daemon would not run on this device", p.Daemon.GOARCH, p.OpenWrt.Arch, want)
	}
	switch p.Daemon.GOARCH {
	case "mips", "mipsle":
		if p.Daemon.GOMIPS != "softfloat" {
			return fail("daemon.gomips", "%q: these SoCs have no FPU; use softfloat", p.Daemon.GOMIPS)
		}
	case "arm", "arm64", "amd64":
	default:
		return fail("daemon.goarch", "%q is not a supported GOARCH", p.Daemon.GOARCH)
	}
	for _, n := range p.Packages.Add {
		if !ValidPackageName(n) {
			return fail("packages.add", "%q is not a valid package name (%s)", n, packageRE)
		}
	}
	for _, n := range p.Packages.Remove {
		if !removeRE.MatchString(n) {
			return fail("packages.remove", "%q is not a valid package name or prefix* pattern", n)
		}
	}
	for _, s := range p.DisabledServices {
		if !ValidPackageName(s) {
			return fail("disabled_services", "%q is not a valid service name", s)
		}
	}
	return nil
}

// goarchFor is the GOARCH of an OpenWrt package architecture, where the
// two must agree ("" when torwrt does not know the architecture).
func goarchFor(arch string) string {
	switch {
	case strings.HasPrefix(arch, "mipsel_"):
		return "mipsle"
	case strings.HasPrefix(arch, "mips_"):
		return "mips"
	case strings.HasPrefix(arch, "aarch64_"):
		return "arm64"
	case strings.HasPrefix(arch, "arm_"):
		return "arm"
	case strings.HasPrefix(arch, "x86_64"):
		return "amd64"
	}
	return ""
}

// DeviceID is the device whose board facts the profile uses.
func (p *Profile) DeviceID() string {
	if p.Device != "" {
		return p.Device
	}
	return p.ID
}

// Primary reports whether `--all` builds this profile: a release target
// that is its device's main profile, not a variant for another OpenWrt
// series or a test profile.
func (p *Profile) Primary() bool { return p.TestProfile == "" && p.DeviceID() == p.ID }

// ImageSizeBytes parses image_size_limit, written as the ImageBuilder's
// IMAGE_SIZE (e.g. 16000k).
func (p *Profile) ImageSizeBytes() (int64, error) {
	s := p.ImageSizeLimit
	if s == "" {
		return 0, errors.New("missing; use the device's IMAGE_SIZE, e.g. 16000k")
	}
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1024, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "m"):
		mult, s = 1024*1024, strings.TrimSuffix(s, "m")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n*mult > 1<<30 {
		return 0, fmt.Errorf("%q: want a size like 16000k", p.ImageSizeLimit)
	}
	return n * mult, nil
}

// MakePackages returns the PACKAGES= words for make: additions, then
// removals prefixed with "-".
func (p *Profile) MakePackages() []string {
	out := append([]string{}, p.Packages.Add...)
	for _, r := range p.Packages.Remove {
		out = append(out, "-"+r)
	}
	return out
}

// lineOf finds the line of a dotted field in the YAML document, or 0.
func lineOf(doc *yaml.Node, dotted string) int {
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := 0
	for _, part := range strings.Split(dotted, ".") {
		// A part may index a list: tor_max[0].
		var idx []int
		for strings.HasSuffix(part, "]") {
			open := strings.LastIndexByte(part, '[')
			i, err := strconv.Atoi(part[open+1 : len(part)-1])
			if open < 0 || err != nil {
				return line
			}
			idx = append([]int{i}, idx...)
			part = part[:open]
		}
		if n.Kind != yaml.MappingNode {
			return line
		}
		found := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				line = n.Content[i].Line
				n = n.Content[i+1]
				found = true
				break
			}
		}
		if !found {
			return line
		}
		for _, i := range idx {
			if n.Kind != yaml.SequenceNode || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
		}
	}
	return line
}
