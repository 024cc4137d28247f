package profile

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/overlay/device"
)

func TestShippedDeviceFacts(t *testing.T) {
	want := map[string]device.Facts{
		"gl-ar150": {RAMMB: 64, Ports: device.Ports{WAN: "eth1", TorMax: []string{"eth0"}},
			Radio: device.Radio{Path: "platform/ahb/18100000.wmac", Band: "2g", Channel: "1", HTMode: "HT20"}, MaxMemInQueuesMB: 24},
		"gl-mt300a": {RAMMB: 128, Ports: device.Ports{WAN: "eth0.2", TorMax: []string{"eth0.1"}},
			Switch: device.Switch{Name: "switch0", VLANs: []device.SwitchVLAN{{VLAN: 1, Ports: "1 2 3 4 6t"}, {VLAN: 2, Ports: "0 6t"}}},
			Radio:  device.Radio{Path: "platform/10180000.wmac", Band: "2g", Channel: "1", HTMode: "HT20"}, MaxMemInQueuesMB: 64},
	}
	want["gl-mt300a-lede17"] = want["gl-mt300a"]
	want["gl-ar150-24.10"] = want["gl-ar150"]
	want["gl-mt300a-24.10"] = want["gl-mt300a"]
	for id, w := range want {
		p, err := Load(repoProfiles(t), id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p.Facts()
		if err != nil || !reflect.DeepEqual(got, w) {
			t.Errorf("%s: facts %+v, %v\nwant %+v", id, got, err, w)
		}
		// The variants state no facts of their own.
		if p.DeviceID() != id && !reflect.DeepEqual(p.DeviceFacts, device.Facts{}) {
			t.Errorf("%s: a variant with its own device_facts %+v", id, p.DeviceFacts)
		}
	}
}

// lineWith is the 1-based line of data that holds marker.
func lineWith(t *testing.T, data, marker string) int {
	t.Helper()
	i := strings.Index(data, marker)
	if i < 0 {
		t.Fatalf("test bug: %q not in profile", marker)
	}
	return strings.Count(data[:i], "\n") + 1
}

// TestBadDeviceFacts replaces one value of gl-mt300a's device_facts at a
// time and wants the error at that file, line and field.
func TestBadDeviceFacts(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(repoProfiles(t), "gl-mt300a", "profile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, old, new, field, msg string
	}{
		{"no RAM", "ram_mb: 128", "ram_mb: 0", "device_facts.ram_mb", "want the device's RAM in MB"},
		{"RAM in bytes", "ram_mb: 128", "ram_mb: 134217728", "device_facts.ram_mb", "between 16 and 1048576"},
		{"RAM not a number", "ram_mb: 128", "ram_mb: lots", "", "cannot unmarshal"},
		{"no WAN", "wan: eth0.2", "wan: ''", "device_facts.ports.wan", "missing"},
		{"WAN shell", "wan: eth0.2", "wan: \"eth0;reboot\"", "device_facts.ports.wan", "network device name"},
		{"WAN too long", "wan: eth0.2", "wan: eth0.2xxxxxxxxxxxxxx", "device_facts.ports.wan", "network device name"},
		{"WAN loopback", "wan: eth0.2", "wan: lo", "device_facts.ports.wan", "(not lo)"},
		{"tor_max port quote", "tor_max: [eth0.1]", "tor_max: [eth0.1, \"eth1'\"]", "device_facts.ports.tor_max[1]", "network device name"},
		{"tor_max port is the WAN", "tor_max: [eth0.1]", "tor_max: [eth0.2]", "device_facts.ports.tor_max[0]", "already ports.wan"},
		{"switch name", "name: switch0", "name: sw0", "device_facts.switch.name", "must match"},
		{"switch without VLANs", "name: switch0\n    vlans:", "name: switch0\n    vlanz:", "", "field vlanz not found"},
		{"VLAN ports", `ports: "0 6t"`, `ports: "0 6t; reboot"`, "device_facts.switch.vlans[1].ports", "switch port numbers"},
		{"VLAN twice", `{vlan: 2, ports: "0 6t"}`, `{vlan: 1, ports: "0 6t"}`, "device_facts.switch.vlans[1].vlan", "listed twice"},
		{"VLAN zero", `{vlan: 2, ports: "0 6t"}`, `{vlan: 0, ports: "0 6t"}`, "device_facts.switch.vlans[1].vlan", "between 1 and 4094"},
		{"radio path", "path: platform/10180000.wmac", "path: \"platform/x'\"", "device_facts.radio.path", "device path"},
		{"radio band", "band: 2g", "band: 3g", "device_facts.radio.band", "must be one of"},
		{"radio channel", `channel: "1"`, `channel: "01"`, "device_facts.radio.channel", "channel number"},
		{"radio htmode", "htmode: HT20", "htmode: HT30", "device_facts.radio.htmode", "must be one of"},
		{"queues above half the RAM", "max_mem_in_queues_mb: 64", "max_mem_in_queues_mb: 65", "device_facts.max_mem_in_queues_mb", "more than half of ram_mb 128"},
		{"queues too small", "max_mem_in_queues_mb: 64", "max_mem_in_queues_mb: 4", "device_facts.max_mem_in_queues_mb", "between 8 and 4096"},
		{"unknown key", "ram_mb: 128", "ram_mb: 128\n  rom_mb: 16", "", "field rom_mb not found"},
		{"board name repeated", "ram_mb: 128", "ram_mb: 128\n  board: glinet,gl-mt300a", "", "field board not found"},
	}
	const file = "profiles/gl-mt300a/profile.yaml"
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			data := strings.Replace(string(good), c.old, c.new, 1)
			if data == string(good) {
				t.Fatalf("test bug: %q not in profile", c.old)
			}
			_, err := Parse(file, []byte(data))
			if err == nil || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), file) {
				t.Fatalf("want an error of %s mentioning %q, got %v", file, c.msg, err)
			}
			if c.field == "" {
				return // a decoding error: yaml.v3 gives the line itself
			}
			var pe *Error
			// The line of the replaced value's last line, where the field is.
			line := lineWith(t, data, c.new) + strings.Count(c.new, "\n")
			if !errors.As(err, &pe) || pe.Field != c.field || pe.Line != line {
				t.Fatalf("want %s:%d: %s: …, got %v", file, line, c.field, err)
			}
		})
	}
}

func TestPrimaryNeedsDeviceFacts(t *testing.T) {
	good, err := os.ReadFile(filepath.Join(repoProfiles(t), "gl-ar150", "profile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	data := string(good)
	i, j := strings.Index(data, "device_facts:"), strings.Index(data, "image_size_limit:")
	_, err = Parse("gl-ar150/profile.yaml", []byte(data[:i]+data[j:]))
	var pe *Error
	if !errors.As(err, &pe) || pe.Field != "device_facts" || !strings.Contains(pe.Msg, "missing") {
		t.Fatalf("want device_facts missing, got %v", err)
	}
}

// variantTree writes gl-ar150 and a variant of it whose extra lines
// (below device:) are extra into a profile tree.
func variantTree(t *testing.T, extra string) string {
	t.Helper()
	root := t.TempDir()
	copyProfile := func(id, data string) {
		if err := os.MkdirAll(filepath.Join(root, id), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, id, "profile.yaml"), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"gl-ar150", "gl-mt300a-24.10"} {
		b, err := os.ReadFile(filepath.Join(repoProfiles(t), id, "profile.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		copyProfile(id, string(b))
	}
	b, err := os.ReadFile(filepath.Join(repoProfiles(t), "gl-ar150-24.10", "profile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	copyProfile("gl-ar150-24.10", strings.Replace(string(b), "device: gl-ar150\n", "device: gl-ar150\n"+extra, 1))
	return root
}

// TestVariantOverrides: a variant inherits its primary's facts; each
// section it gives replaces the primary's whole section, and the result
// is checked as a whole, at the variant's lines.
func TestVariantOverrides(t *testing.T) {
	// An older ImageBuilder generation (ar71xx) named the ports the other
	// way round and the radio differently.
	root := variantTree(t, "device_facts:\n  ports: {wan: eth0, tor_max: [eth1]}\n  radio: {path: platform/ar933x_wmac, band: 2g, channel: auto, htmode: HT20}\n")
	for _, load := range []func(string) (*Profile, error){
		func(id string) (*Profile, error) { return Load(root, id) },
		Path{DirLayer(root)}.Load,
	} {
		p, err := load("gl-ar150-24.10")
		if err != nil {
			t.Fatal(err)
		}
		f, err := p.Facts()
		want := device.Facts{RAMMB: 64, Ports: device.Ports{WAN: "eth0", TorMax: []string{"eth1"}},
			Radio: device.Radio{Path: "platform/ar933x_wmac", Band: "2g", Channel: "auto", HTMode: "HT20"}, MaxMemInQueuesMB: 24}
		if err != nil || !reflect.DeepEqual(f, want) {
			t.Fatalf("variant facts %+v, %v\nwant %+v", f, err, want)
		}
	}
	cases := []struct {
		name, extra, field string
		line               int
		msg                string
	}{
		{"bad override", "device_facts:\n  ports: {wan: 'eth0;x', tor_max: [eth1]}\n", "device_facts.ports.wan", 9, "network device name"},
		// Less RAM, and the inherited queue memory is more than half of it.
		{"override against inherited", "device_facts:\n  ram_mb: 32\n", "device_facts.max_mem_in_queues_mb", 8, "max_mem_in_queues_mb as inherited from gl-ar150"},
		{"variant of a variant", "", "device", 7, `"gl-mt300a-24.10" is itself a variant of "gl-mt300a"`},
		{"no such primary", "", "device", 7, `"gl-nope" names no profile`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := variantTree(t, c.extra)
			switch c.name {
			case "variant of a variant", "no such primary":
				path := filepath.Join(root, "gl-ar150-24.10", "profile.yaml")
				b, _ := os.ReadFile(path)
				to := map[string]string{"variant of a variant": "gl-mt300a-24.10", "no such primary": "gl-nope"}[c.name]
				if err := os.WriteFile(path, []byte(strings.Replace(string(b), "device: gl-ar150\n", "device: "+to+"\n", 1)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			for _, load := range []func(string) (*Profile, error){
				func(id string) (*Profile, error) { return Load(root, id) },
				Path{DirLayer(root)}.Load,
			} {
				_, err := load("gl-ar150-24.10")
				var pe *Error
				if !errors.As(err, &pe) || pe.Field != c.field || pe.Line != c.line || !strings.Contains(pe.Msg, c.msg) ||
					pe.File != filepath.Join(root, "gl-ar150-24.10", "profile.yaml") {
					t.Fatalf("want gl-ar150-24.10/profile.yaml:%d: %s: …%s…, got %v", c.line, c.field, c.msg, err)
				}
			}
		})
	}
}
