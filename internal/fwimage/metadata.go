package fwimage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
)

// Metadata is the JSON of an image's metadata chunk.
type Metadata struct {
	MetadataVersion     string   `json:"metadata_version"`
	CompatVersion       string   `json:"compat_version"`
	CompatMessage       string   `json:"compat_message,omitempty"`
	NewSupportedDevices []string `json:"new_supported_devices,omitempty"`
	SupportedDevices    []string `json:"supported_devices"`
	Version             Version  `json:"version"`
}

// Version is the "version" object of the metadata.
type Version struct {
	Dist     string `json:"dist"`
	Version  string `json:"version"`
	Revision string `json:"revision"`
	Target   string `json:"target"`
	Board    string `json:"board"`
}

// Supports reports whether the image is for the given board name (the
// content of /tmp/sysinfo/board_name).
func (m *Metadata) Supports(board string) bool {
	devs := m.SupportedDevices
	if m.CompatVersion != "1.0" && len(m.NewSupportedDevices) > 0 {
		devs = m.NewSupportedDevices
	}
	for _, d := range devs {
		if d == board {
			return true
		}
	}
	return false
}

// safeString keeps metadata values inside what OpenWrt's build writes
// without escaping, so that our bytes and stock bytes never differ because
// of quoting rules.
func safeString(field, s string) error {
	if s == "" {
		return fmt.Errorf("fwimage: metadata %s is empty", field)
	}
	for _, r := range s {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return fmt.Errorf("fwimage: metadata %s %q: only printable ASCII without quotes or backslashes", field, s)
		}
	}
	return nil
}

// MarshalStock returns the metadata JSON byte-for-byte as OpenWrt's image
// build writes it. The odd spacing is GNU make's: the template is one
// expression continued over lines, each continuation becomes one space, and
// an empty $(if ...) still leaves its spaces.
func (m *Metadata) MarshalStock() ([]byte, error) {
	checks := map[string]string{
		"metadata_version": m.MetadataVersion, "compat_version": m.CompatVersion,
		"version.dist": m.Version.Dist, "version.version": m.Version.Version,
		"version.revision": m.Version.Revision, "version.target": m.Version.Target,
		"version.board": m.Version.Board,
	}
	for f, v := range checks {
		if err := safeString(f, v); err != nil {
			return nil, err
		}
	}
	if len(m.SupportedDevices) == 0 {
		return nil, fmt.Errorf("fwimage: metadata supported_devices is empty")
	}
	// The stock template writes new_supported_devices exactly when
	// compat_version is not 1.0; refuse what it cannot express instead of
	// writing `[""]` or silently dropping the list.
	if m.CompatVersion != "1.0" && len(m.NewSupportedDevices) == 0 {
		return nil, fmt.Errorf("fwimage: metadata new_supported_devices is empty with compat_version %q", m.CompatVersion)
	}
	if m.CompatVersion == "1.0" && len(m.NewSupportedDevices) != 0 {
		return nil, fmt.Errorf("fwimage: metadata new_supported_devices needs a compat_version other than 1.0")
	}
	for _, d := range append(append([]string{}, m.SupportedDevices...), m.NewSupportedDevices...) {
		if err := safeString("supported_devices", d); err != nil {
			return nil, err
		}
	}
	if m.CompatMessage != "" {
		if err := safeString("compat_message", m.CompatMessage); err != nil {
			return nil, err
		}
	}
	list := func(devs []string) string { return `"` + strings.Join(devs, `","`) + `"` }
	var compatMsg, newDevs, oldDevs string
	if m.CompatMessage != "" {
		compatMsg = fmt.Sprintf(`"compat_message": "%s",`, m.CompatMessage)
	}
	if m.CompatVersion != "1.0" {
		newDevs = fmt.Sprintf(`"new_supported_devices": [%s], "supported_devices": [%s],`, list(m.NewSupportedDevices), list(m.SupportedDevices))
	} else {
		oldDevs = fmt.Sprintf(`"supported_devices":[%s],`, list(m.SupportedDevices))
	}
	parts := []string{
		"{", "",
		fmt.Sprintf(`"metadata_version": "%s",`, m.MetadataVersion),
		fmt.Sprintf(`"compat_version": "%s",`, m.CompatVersion),
		compatMsg, newDevs, oldDevs,
		`"version": {`,
		fmt.Sprintf(`"dist": "%s",`, m.Version.Dist),
		fmt.Sprintf(`"version": "%s",`, m.Version.Version),
		fmt.Sprintf(`"revision": "%s",`, m.Version.Revision),
		fmt.Sprintf(`"target": "%s",`, m.Version.Target),
		fmt.Sprintf(`"board": "%s"`, m.Version.Board),
		"}", "}",
	}
	return []byte(strings.Join(parts, " ") + "\n"), nil
}

// MetadataChunk returns the chunk data: the 8-byte header (version 0,
// flags 0) followed by the JSON.
func MetadataChunk(json []byte) []byte {
	out := make([]byte, 8, 8+len(json))
	return append(out, json...)
}

// ParseMetadataChunk decodes metadata chunk data. Unknown JSON fields are
// allowed (the format grows), a non-zero header version is refused because
// stock fwtool would skip such a chunk.
func ParseMetadataChunk(data []byte) (*Metadata, []byte, error) {
	if len(data) < 8 {
		return nil, nil, fmt.Errorf("%w: metadata chunk of %d bytes has no header", ErrMalformed, len(data))
	}
	if len(data) > MaxMetadataLen {
		return nil, nil, fmt.Errorf("%w: metadata is %d bytes, limit %d", ErrTooLarge, len(data), MaxMetadataLen)
	}
	if v := binary.BigEndian.Uint32(data); v != 0 {
		return nil, nil, fmt.Errorf("%w: metadata header version %d; stock fwtool only reads version 0", ErrMalformed, v)
	}
	raw := data[8:]
	if err := exactKeys(raw); err != nil {
		return nil, nil, err
	}
	var m Metadata
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&m); err != nil {
		return nil, nil, fmt.Errorf("%w: metadata json: %v", ErrMalformed, err)
	}
	if dec.More() {
		return nil, nil, fmt.Errorf("%w: metadata json: data after the object", ErrMalformed)
	}
	// metadata_version came with OpenWrt 18.06; LEDE 17.01 images carry
	// only supported_devices and version, and their fwtool.sh checks only
	// supported_devices. Without supported_devices no board check is
	// possible, so that stays required.
	if len(m.SupportedDevices) == 0 {
		return nil, nil, fmt.Errorf("%w: metadata json lacks supported_devices", ErrMalformed)
	}
	return &m, raw, nil
}

// metadataKeys are the object keys Metadata reads, at the top level and in
// "version".
var metadataKeys = map[string][]string{
	"":        {"metadata_version", "compat_version", "compat_message", "new_supported_devices", "supported_devices", "version"},
	"version": {"dist", "version", "revision", "target", "board"},
}

// exactKeys refuses a key that names a metadata field in another case
// ("supported_deviCes"). encoding/json matches keys case-insensitively;
// stock fwtool.sh reads the metadata with jsonfilter, which does not. A
// verifier that read such a key while the router's own check did not
// would judge another document than the one sysupgrade acts on.
func exactKeys(raw []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil // not an object: Decode reports it
	}
	check := func(obj map[string]json.RawMessage, known []string, where string) error {
		for k := range obj {
			for _, want := range known {
				if k != want && strings.EqualFold(k, want) {
					return fmt.Errorf("%w: metadata json%s key %q is %q in another case; stock fwtool matches keys exactly", ErrMalformed, where, k, want)
				}
			}
		}
		return nil
	}
	if err := check(top, metadataKeys[""], ""); err != nil {
		return err
	}
	var version map[string]json.RawMessage
	if json.Unmarshal(top["version"], &version) == nil {
		return check(version, metadataKeys["version"], " version")
	}
	return nil
}
