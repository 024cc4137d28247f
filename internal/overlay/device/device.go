// Package device holds the facts about a device that the router's
// configuration is rendered from: its WAN port, the ports bridged into
// tor_max, its swconfig switch, its Wi-Fi radio and its RAM. They are
// data, written in each device's profile (profiles/<id>/profile.yaml,
// section device_facts), so that a new board needs a profile and no Go
// code.
//
// The rules here are the ones the overlay's Input validation uses for the
// same values, so that a profile is refused with its file and line for
// exactly what the overlay would refuse later.
package device

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
)

// Facts are one device's facts. The board name (the profile's board) and
// the OpenWrt target (the profile's openwrt.target/subtarget) are not
// repeated here: they depend on the ImageBuilder generation, these do
// not as long as the port names stay the same.
type Facts struct {
	// RAMMB is the device's RAM in MB. Tor's cell queues may take at most
	// half of it, and a bridge relay needs more than MinBridgeRAMMB.
	RAMMB int   `yaml:"ram_mb" json:"ram_mb"`
	Ports Ports `yaml:"ports" json:"ports"`
	// Switch is the device's swconfig switch; none (the zero value) on a
	// device whose ports are separate network devices.
	Switch Switch `yaml:"switch,omitempty" json:"switch,omitempty"`
	Radio  Radio  `yaml:"radio" json:"radio"`
	// MaxMemInQueuesMB is Tor's default MaxMemInQueues in MB on this
	// device, at most half of RAMMB.
	MaxMemInQueuesMB int `yaml:"max_mem_in_queues_mb" json:"max_mem_in_queues_mb"`
}

// Ports names the device's wired network devices.
type Ports struct {
	// WAN is the uplink's network device: "eth1" on the GL-AR150,
	// "eth0.2" (VLAN 2 of switch0) on the GL-MT300A.
	WAN string `yaml:"wan" json:"wan"`
	// TorMax are the wired ports bridged into the tor_max network.
	TorMax []string `yaml:"tor_max" json:"tor_max"`
}

// Switch is a swconfig switch and its VLANs.
type Switch struct {
	Name  string       `yaml:"name" json:"name,omitempty"`
	VLANs []SwitchVLAN `yaml:"vlans" json:"vlans,omitempty"`
}

// SwitchVLAN is one switch_vlan section.
type SwitchVLAN struct {
	VLAN  int    `yaml:"vlan" json:"vlan"`
	Ports string `yaml:"ports" json:"ports"`
}

// Radio is the device's Wi-Fi radio.
type Radio struct {
	// Path is the radio's device path, e.g. "platform/ahb/18100000.wmac".
	Path    string `yaml:"path" json:"path"`
	Band    string `yaml:"band" json:"band"`
	Channel string `yaml:"channel" json:"channel"`
	HTMode  string `yaml:"htmode" json:"htmode"`
}

// The rules for the values above, shared with the overlay's validation.
var (
	// IfnameRE is a Linux network device name (IFNAMSIZ 16, with its NUL).
	IfnameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$`)
	SwitchRE = regexp.MustCompile(`^switch[0-9]$`)
	// SwitchPortsRE is a switch_vlan ports list: port numbers, each
	// optionally tagged (t), untagged (u) or as-is (*).
	SwitchPortsRE = regexp.MustCompile(`^[0-9]{1,2}[tu*]?( [0-9]{1,2}[tu*]?)*$`)
	RadioPathRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9/._:+-]{0,127}$`)
	Bands         = []string{"2g", "5g", "6g"}
	HTModes       = []string{"HT20", "HT40", "VHT20", "VHT40", "VHT80", "VHT160", "HE20", "HE40", "HE80", "HE160"}
)

const (
	// MinBridgeRAMMB: Tor raises MaxMemInQueues to 64 MB on any relay, so
	// a device with 64 MB of RAM or less (the GL-AR150) cannot run a
	// bridge.
	MinBridgeRAMMB = 64
	// MinMemMB and MaxMemMB bound MaxMemInQueuesMB.
	MinMemMB = 8
	MaxMemMB = 4096
	// MinRAMMB is the least RAM that leaves Tor MinMemMB at half of it;
	// MaxRAMMB is a sanity bound (1 TB).
	MinRAMMB = 2 * MinMemMB
	MaxRAMMB = 1 << 20
)

// ValidChannel reports whether s is a Wi-Fi channel: "auto" or a channel
// number written without leading zeros.
func ValidChannel(s string) bool {
	if s == "auto" {
		return true
	}
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 233 && strconv.Itoa(n) == s
}

// ValidIfname reports whether s may name one of the device's network
// devices.
func ValidIfname(s string) bool { return IfnameRE.MatchString(s) && s != "lo" }

// Problem is one thing wrong with Facts. Field is the YAML path below the
// facts, e.g. "ports.tor_max[0]" or "switch.vlans[1].ports".
type Problem struct {
	Field string
	Msg   string
}

// Check returns every problem of f, in field order; none for valid facts.
func (f Facts) Check() []Problem {
	var ps []Problem
	add := func(field, format string, a ...any) {
		ps = append(ps, Problem{Field: field, Msg: fmt.Sprintf(format, a...)})
	}
	if f.RAMMB < MinRAMMB || f.RAMMB > MaxRAMMB {
		add("ram_mb", "%d: want the device's RAM in MB, between %d and %d", f.RAMMB, MinRAMMB, MaxRAMMB)
	}
	ifname := func(field, s string) bool {
		if !ValidIfname(s) {
			add(field, "%q must be a network device name matching %s (not lo)", s, IfnameRE)
			return false
		}
		return true
	}
	if f.Ports.WAN == "" {
		add("ports.wan", "missing: the uplink's network device, e.g. eth1")
	} else {
		ifname("ports.wan", f.Ports.WAN)
	}
	seen := map[string]string{f.Ports.WAN: "ports.wan"}
	for i, p := range f.Ports.TorMax {
		field := fmt.Sprintf("ports.tor_max[%d]", i)
		if !ifname(field, p) {
			continue
		}
		if prev, dup := seen[p]; dup {
			add(field, "%q is already %s", p, prev)
		}
		seen[p] = field
	}
	f.checkSwitch(add)
	r := f.Radio
	if !RadioPathRE.MatchString(r.Path) {
		add("radio.path", "%q must be the radio's device path (as in /etc/config/wireless), matching %s", r.Path, RadioPathRE)
	}
	if !slices.Contains(Bands, r.Band) {
		add("radio.band", "%q must be one of %v", r.Band, Bands)
	}
	if !ValidChannel(r.Channel) {
		add("radio.channel", `%q must be "auto" or a channel number`, r.Channel)
	}
	if !slices.Contains(HTModes, r.HTMode) {
		add("radio.htmode", "%q must be one of %v", r.HTMode, HTModes)
	}
	switch m := f.MaxMemInQueuesMB; {
	case m < MinMemMB || m > MaxMemMB:
		add("max_mem_in_queues_mb", "%d: want Tor's MaxMemInQueues in MB, between %d and %d", m, MinMemMB, MaxMemMB)
	case f.RAMMB >= MinRAMMB && m > f.RAMMB/2:
		add("max_mem_in_queues_mb", "%d is more than half of ram_mb %d: Tor's queues may take at most half of the RAM", m, f.RAMMB)
	}
	return ps
}

func (f Facts) checkSwitch(add func(field, format string, a ...any)) {
	s := f.Switch
	if s.Name == "" {
		if len(s.VLANs) > 0 {
			add("switch.name", "missing: VLANs need the switch's name, e.g. switch0")
		}
		return
	}
	if !SwitchRE.MatchString(s.Name) {
		add("switch.name", "%q must match %s", s.Name, SwitchRE)
	}
	if len(s.VLANs) == 0 {
		add("switch.vlans", "missing: a switch needs at least one VLAN")
	}
	seen := map[int]bool{}
	for i, v := range s.VLANs {
		field := fmt.Sprintf("switch.vlans[%d]", i)
		if v.VLAN < 1 || v.VLAN > 4094 {
			add(field+".vlan", "%d must be between 1 and 4094", v.VLAN)
		} else if seen[v.VLAN] {
			add(field+".vlan", "%d is listed twice", v.VLAN)
		}
		seen[v.VLAN] = true
		if !SwitchPortsRE.MatchString(v.Ports) {
			add(field+".ports", "%q must be switch port numbers, each optionally followed by t, u or * (e.g. \"1 2 3 4 6t\"), matching %s", v.Ports, SwitchPortsRE)
		}
	}
}

// Clone returns a copy of f that shares no slices with it.
func (f Facts) Clone() Facts {
	f.Ports.TorMax = slices.Clone(f.Ports.TorMax)
	f.Switch.VLANs = slices.Clone(f.Switch.VLANs)
	return f
}
