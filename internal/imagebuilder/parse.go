package imagebuilder

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// Info is what `make info` prints.
type Info struct {
	Target          string        `json:"target"`
	Architecture    string        `json:"architecture"`
	Revision        string        `json:"revision"`
	DefaultPackages []string      `json:"default_packages"`
	Profiles        []InfoProfile `json:"profiles"`
}

// InfoProfile is one profile in `make info`.
type InfoProfile struct {
	ID               string   `json:"id"`
	Title            string   `json:"title"`
	Packages         []string `json:"packages"`
	HasImageMetadata bool     `json:"has_image_metadata"`
	SupportedDevices []string `json:"supported_devices"`
}

// Profile returns the profile with the given id.
func (i *Info) Profile(id string) (*InfoProfile, bool) {
	for k := range i.Profiles {
		if i.Profiles[k].ID == id {
			return &i.Profiles[k], true
		}
	}
	return nil, false
}

var quotedRE = regexp.MustCompile(`^"(.*)"$`)

// ParseInfo parses `make info` output.
func ParseInfo(out []byte) (*Info, error) {
	info := &Info{}
	var cur *InfoProfile
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	inProfiles := false
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trim := strings.TrimSpace(line)
		key, val, hasColon := strings.Cut(trim, ":")
		val = strings.TrimSpace(val)
		switch {
		case trim == "":
			continue
		case !inProfiles && key == "Current Target":
			info.Target = unquote(val)
		case !inProfiles && key == "Current Architecture":
			info.Architecture = unquote(val)
		case !inProfiles && key == "Current Revision":
			info.Revision = unquote(val)
		case !inProfiles && key == "Default Packages":
			info.DefaultPackages = strings.Fields(val)
		case trim == "Available Profiles:":
			inProfiles = true
		case inProfiles && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") && hasColon && val == "":
			info.Profiles = append(info.Profiles, InfoProfile{ID: key})
			cur = &info.Profiles[len(info.Profiles)-1]
		case inProfiles && cur != nil && hasColon && key == "Packages":
			cur.Packages = strings.Fields(val)
		case inProfiles && cur != nil && hasColon && key == "hasImageMetadata":
			cur.HasImageMetadata = val == "1"
		case inProfiles && cur != nil && hasColon && key == "SupportedDevices":
			cur.SupportedDevices = strings.Fields(val)
		case inProfiles && cur != nil && cur.Title == "":
			cur.Title = trim
		case !inProfiles:
			// make's own chatter (entering directory, warnings) is ignored
		default:
			return nil, fmt.Errorf("make info: line %d: unexpected %q", n, line)
		}
	}
	if info.Target == "" || len(info.Profiles) == 0 {
		return nil, fmt.Errorf("make info: output has no target or no profiles")
	}
	return info, nil
}

func unquote(s string) string {
	if m := quotedRE.FindStringSubmatch(s); m != nil {
		return m[1]
	}
	return s
}

// Package is one `name - version` line of a manifest.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// A manifest line is one package: opkg's `name - version`
// (`opkg list-installed`), or apk's `name version` (`apk list --manifest`).
// A version starts with a digit, which keeps make's two-word chatter
// ("Building images") out.
var (
	opkgManifestRE = regexp.MustCompile(`^(\S+) - (\S+)$`)
	apkManifestRE  = regexp.MustCompile(`^([a-z0-9][a-z0-9+._-]*) ([0-9][0-9A-Za-z.+~_:-]*)$`)
)

// ParseManifest parses `make manifest` output or a <image>.manifest file,
// in opkg's or apk's format. Other lines (make's chatter) are skipped, but
// a package listed twice is an error.
func ParseManifest(out []byte) ([]Package, error) {
	var pkgs []Package
	seen := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		m := opkgManifestRE.FindStringSubmatch(line)
		if m == nil {
			m = apkManifestRE.FindStringSubmatch(line)
		}
		if m == nil {
			continue
		}
		if seen[m[1]] {
			return nil, fmt.Errorf("manifest lists package %s twice", m[1])
		}
		seen[m[1]] = true
		pkgs = append(pkgs, Package{Name: m[1], Version: m[2]})
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("manifest lists no packages")
	}
	sort.Slice(pkgs, func(i, j int) bool { return pkgs[i].Name < pkgs[j].Name })
	return pkgs, nil
}

// ParseSHA256Sums parses `<hex> *<name>` lines into name → hex.
func ParseSHA256Sums(data []byte) (map[string]string, error) {
	out := map[string]string{}
	for n, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		sum, name, ok := strings.Cut(line, " ")
		name = strings.TrimPrefix(name, "*")
		if !ok || len(sum) != 64 || strings.Trim(strings.ToLower(sum), "0123456789abcdef") != "" || name == "" || strings.Contains(name, "/") {
			return nil, fmt.Errorf("sha256sums line %d: %q is not `<sha256> *<file>`", n+1, line)
		}
		out[name] = strings.ToLower(sum)
	}
	return out, nil
}

// ProfilesJSON is the ImageBuilder's profiles.json.
type ProfilesJSON struct {
	MetadataVersion int                        `json:"metadata_version"`
	Target          string                     `json:"target"`
	VersionCode     string                     `json:"version_code"`
	VersionNumber   string                     `json:"version_number"`
	SourceDateEpoch int64                      `json:"source_date_epoch"`
	DefaultPackages []string                   `json:"default_packages"`
	ArchPackages    string                     `json:"arch_packages"`
	Profiles        map[string]ProfilesProfile `json:"profiles"`
}

// ProfilesProfile is one device of profiles.json.
type ProfilesProfile struct {
	DevicePackages   []string      `json:"device_packages"`
	ImagePrefix      string        `json:"image_prefix"`
	Images           []ProfilesImg `json:"images"`
	SupportedDevices []string      `json:"supported_devices"`
}

// ProfilesImg is one image file of a device.
type ProfilesImg struct {
	Filesystem     string `json:"filesystem"`
	Name           string `json:"name"`
	SHA256         string `json:"sha256"`
	SHA256Unsigned string `json:"sha256_unsigned"`
	Type           string `json:"type"`
}

// ParseProfilesJSON parses profiles.json.
func ParseProfilesJSON(data []byte) (*ProfilesJSON, error) {
	var p ProfilesJSON
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("profiles.json: %w", err)
	}
	if len(p.Profiles) == 0 {
		return nil, fmt.Errorf("profiles.json: no profiles")
	}
	return &p, nil
}

// Sysupgrade returns the squashfs sysupgrade image of device id.
func (p *ProfilesJSON) Sysupgrade(id string) (*ProfilesImg, error) {
	dev, ok := p.Profiles[id]
	if !ok {
		return nil, fmt.Errorf("profiles.json: no profile %q", id)
	}
	for i := range dev.Images {
		if dev.Images[i].Type == "sysupgrade" && dev.Images[i].Filesystem == "squashfs" {
			img := dev.Images[i]
			if strings.ContainsAny(img.Name, "/\\") || img.Name == "" || strings.HasPrefix(img.Name, ".") {
				return nil, fmt.Errorf("profiles.json: image name %q is not a plain file name", img.Name)
			}
			return &img, nil
		}
	}
	return nil, fmt.Errorf("profiles.json: profile %q has no squashfs sysupgrade image", id)
}
