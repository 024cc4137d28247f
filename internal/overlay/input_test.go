package overlay

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/status"
)

// TestDefaultsFromFacts: Defaults takes everything board-specific from
// the facts it is given, and ForProfile the identity from the profile.
func TestDefaultsFromFacts(t *testing.T) {
	p := loadProfile(t, "gl-mt300a")
	f, err := p.Facts()
	if err != nil {
		t.Fatal(err)
	}
	in := Defaults(f)
	if in.WAN.Device != "eth0.2" || !reflect.DeepEqual(in.TorMax.Ports, []string{"eth0.1"}) || in.Switch.Name != "switch0" || len(in.Switch.VLANs) != 2 ||
		in.Radio.Path != "platform/10180000.wmac" || in.RAMMB != 128 || in.TorMaxMemMB != 64 || in.Profile != "" || in.Board != "" {
		t.Errorf("Defaults(gl-mt300a facts) = %+v", in)
	}
	// The Input owns its slices: changing it does not change the facts.
	in.TorMax.Ports[0] = "eth9"
	in.Switch.VLANs[0].Ports = "0"
	if f.Ports.TorMax[0] != "eth0.1" || f.Switch.VLANs[0].Ports != "1 2 3 4 6t" {
		t.Errorf("Defaults shares slices with its facts: %+v", f)
	}
	full, err := ForProfile(p)
	if err != nil {
		t.Fatal(err)
	}
	if full.Profile != "gl-mt300a" || full.Board != "glinet,gl-mt300a" || full.Target != "ramips/mt7620" {
		t.Errorf("ForProfile identity: %q %q %q", full.Profile, full.Board, full.Target)
	}
	lede := testInput(t, "gl-mt300a-lede17")
	if lede.Profile != "gl-mt300a-lede17" || lede.Board != "gl-mt300a" || lede.Target != "ramips/mt7620" || lede.WAN.Device != "eth0.2" {
		t.Errorf("gl-mt300a-lede17: %q %q %q %q", lede.Profile, lede.Board, lede.Target, lede.WAN.Device)
	}
	// A parsed variant does not know its primary: no facts, and the
	// error says how to get them.
	data, err := os.ReadFile(filepath.Join(shippedProfiles, "gl-ar150-24.10", "profile.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := profile.Parse("gl-ar150-24.10/profile.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ForProfile(v); err == nil || !strings.Contains(err.Error(), "not resolved") {
		t.Errorf("ForProfile of an unresolved variant: %v", err)
	}
}

// TestVariantsRenderTheirPrimary: every shipped profile has an Input, and
// a variant for another OpenWrt series (device:) gets exactly its
// primary's, so it renders the primary's golden tree.
func TestVariantsRenderTheirPrimary(t *testing.T) {
	ids, err := profile.List(shippedProfiles)
	if err != nil {
		t.Fatal(err)
	}
	variants := 0
	for _, id := range ids {
		p := loadProfile(t, id)
		in := testInput(t, id)
		if err := in.Validate(); err != nil {
			t.Errorf("%s: %v", id, err)
		}
		if p.DeviceID() == id {
			continue
		}
		variants++
		if want := testInput(t, p.DeviceID()); !reflect.DeepEqual(in, want) {
			t.Errorf("%s renders from\n%+v\nnot its primary's\n%+v", id, in, want)
		}
	}
	if variants < 2 {
		t.Fatalf("%d variants among %v: want gl-ar150-24.10 and gl-mt300a-24.10", variants, ids)
	}
}

func TestDefaultsNeedARelease(t *testing.T) {
	in, err := ForProfile(loadProfile(t, "gl-ar150"))
	if err != nil {
		t.Fatal(err)
	}
	err = in.Validate()
	for _, want := range []string{
		"overlay: input.release_keys 0: at least one release key is required",
		"overlay: input.update_mirrors 0: at least one update mirror is required",
		`overlay: input.firmware_version "": must match`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate of bare defaults: %v\nwant it to contain %q", err, want)
		}
	}
}

func TestInputJSONRoundTrip(t *testing.T) {
	in := testInput(t, "gl-mt300a")
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var back Input
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, back) {
		t.Fatalf("Input changed through JSON:\n%+v\n%+v", in, back)
	}
}

// TestValidate feeds one bad value at a time and wants an error that names
// the field, shows the value and says what is allowed.
func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Input)
		want   string
	}{
		{"hostname with space", func(in *Input) { in.Hostname = "a b" }, `overlay: input.hostname "a b": must match ^[a-z0-9-]{1,63}$`},
		{"hostname shell", func(in *Input) { in.Hostname = "x;reboot" }, `input.hostname "x;reboot": must match`},
		{"hostname hyphen", func(in *Input) { in.Hostname = "-x" }, `input.hostname "-x": must not start or end with '-'`},
		{"profile", func(in *Input) { in.Profile = "../x" }, `input.profile "../x": must match`},
		{"board", func(in *Input) { in.Board = "GL,ar150" }, `input.board "GL,ar150": must match`},
		{"board with two vendors", func(in *Input) { in.Board = "glinet,x,gl-ar150" }, `input.board "glinet,x,gl-ar150": must match`},
		{"target", func(in *Input) { in.Target = "ath79" }, `input.target "ath79": must match`},
		{"ssid quote", func(in *Input) { in.SSIDPrefix = "my'net" }, `input.ssid_prefix "my'net": must match`},
		{"ssid too long", func(in *Input) { in.SSIDPrefix = strings.Repeat("a", 22) }, `input.ssid_prefix`},
		{"product newline", func(in *Input) { in.ProductName = "x\nUser root" }, `input.product_name "x\nUser root": must match`},
		{"banner control", func(in *Input) { in.Banner = "hi\x1b[2J" }, `input.banner "hi\x1b[2J": contains control character U+001B`},
		{"banner size", func(in *Input) { in.Banner = strings.Repeat("x", 5000) }, `is 5000 bytes, at most 4096 allowed`},
		{"wan quote", func(in *Input) { in.WAN.Device = `eth1"` }, `input.wan.device "eth1\"": must match`},
		{"wan long", func(in *Input) { in.WAN.Device = "a234567890123456" }, `input.wan.device "a234567890123456": must match`},
		{"wan loopback", func(in *Input) { in.WAN.Device = "lo" }, `input.wan.device "lo": must not be the loopback device`},
		{"bridge same as wan", func(in *Input) { in.TorOff.Bridge = in.WAN.Device }, `input.tor_off.bridge "eth1": already used by input.wan.device`},
		{"port in two nets", func(in *Input) { in.TorOff.Ports = []string{"eth0"} }, `input.tor_max.ports[0] "eth0": already used by input.tor_off.ports[0]`},
		{"address not cidr", func(in *Input) { in.TorOff.Address = "10.71.0.1" }, `input.tor_off.address "10.71.0.1": must be an IPv4 address with prefix length`},
		{"address ipv6", func(in *Input) { in.TorOff.Address = "fd00::1/64" }, `must be IPv4`},
		{"address public", func(in *Input) { in.TorMedium.Address = "8.8.8.1/24" }, `input.tor_medium.address "8.8.8.1/24": must be inside 10.0.0.0/8`},
		{"address network", func(in *Input) { in.TorMax.Address = "10.73.0.0/24" }, `is the network or broadcast address; use a host address such as 10.73.0.1`},
		{"address overlap", func(in *Input) { in.TorMax.Address = "10.71.0.254/24" }, `input.tor_max.address "10.71.0.254/24": overlaps input.tor_off.address`},
		{"address virtual net", func(in *Input) { in.TorOff.Address = "10.200.0.1/24" }, `overlaps Tor's VirtualAddrNetworkIPv4 10.192.0.0/10`},
		{"prefix too small", func(in *Input) { in.TorOff.Address = "10.71.0.1/31" }, `prefix length must be between /16 and /30`},
		{"dhcp range", func(in *Input) { in.TorOff.DHCPLimit = 200 }, `input.tor_off.dhcp_start 100: with dhcp_limit 200 must give a range inside 10.71.0.0/24`},
		{"switch ports", func(in *Input) {
			in.Switch = Switch{Name: "switch0", VLANs: []SwitchVLAN{{VLAN: 1, Ports: "1 6t; reboot"}}}
		}, `input.switch.vlans[0].ports "1 6t; reboot": must match`},
		{"switch vlan twice", func(in *Input) {
			in.Switch = Switch{Name: "switch0", VLANs: []SwitchVLAN{{VLAN: 1, Ports: "1"}, {VLAN: 1, Ports: "2"}}}
		}, `input.switch.vlans[1].vlan 1: is listed twice`},
		{"vlans without switch", func(in *Input) { in.Switch = Switch{VLANs: []SwitchVLAN{{VLAN: 1, Ports: "1"}}} }, `input.switch.vlans 1: need input.switch.name`},
		{"radio band", func(in *Input) { in.Radio.Band = "11g" }, `input.radio.band "11g": must be one of 2g, 5g, 6g`},
		{"radio channel", func(in *Input) { in.Radio.Channel = "01" }, `input.radio.channel "01": must be "auto" or a channel number`},
		{"radio country lower case", func(in *Input) { in.Radio.Country = "us" }, `input.radio.country "us": "us": write the country code in capitals: "US"`},
		{"radio country unassigned", func(in *Input) { in.Radio.Country = "ZZ" }, `input.radio.country "ZZ": "ZZ" is not an officially assigned ISO 3166-1 alpha-2 country code`},
		{"radio country world", func(in *Input) { in.Radio.Country = "00" }, `input.radio.country "00": "00" is not an ISO 3166-1 alpha-2 country code`},
		{"radio country injection", func(in *Input) { in.Radio.Country = "DE'\n\toption txpower '30" }, `input.radio.country`},
		// Wi-Fi is enabled at first boot: no image without a country.
		{"radio country missing", func(in *Input) { in.Radio.Country = "" }, `input.radio.country "": is required: the image enables Wi-Fi at first boot`},
		{"channel missing", func(in *Input) { in.Channel = "" }, `input.channel "": must be the brand's release channel`},
		{"channel path", func(in *Input) { in.Channel = "../beta" }, `input.channel "../beta": must be the brand's release channel`},
		{"radio path", func(in *Input) { in.Radio.Path = "platform/x'" }, `input.radio.path "platform/x'": must match`},
		{"tor uid", func(in *Input) { in.TorUID = 0 }, `input.tor_uid 0: must be between 1 and 65533`},
		{"bridge orport", func(in *Input) { in.BridgeRelay = true; in.Bridge.ORPort = 9050 }, `input.bridge.orport 9050: is used by the router itself`},
		{"bridge rate", func(in *Input) { in.BridgeRelay = true; in.Bridge.RateKBytes = 10 }, `input.bridge.rate_kbytes 10: must be between 75 and 1000000`},
		{"bridge burst", func(in *Input) { in.BridgeRelay = true; in.Bridge.BurstKBytes = 100 }, `input.bridge.burst_kbytes 100: must be between rate_kbytes (128) and 1000000`},
		{"bridge memory", func(in *Input) { in.RAMMB = 128; in.BridgeRelay = true }, `input.tor_max_mem_mb 24: must be at least 64 with bridge_relay`},
		// The GL-AR150 has 64 MB of RAM: no bridge, whatever tor_max_mem_mb says.
		{"bridge on 64 MB board", func(in *Input) { in.BridgeRelay = true; in.TorMaxMemMB = 64 }, `input.bridge_relay true: needs a board with more than 64 MB of RAM`},
		{"bridge on 64 MB board, small queues", func(in *Input) { in.BridgeRelay = true }, `input.bridge_relay true: needs a board with more than 64 MB of RAM`},
		{"queues above half the RAM", func(in *Input) { in.TorMaxMemMB = 64 }, `input.tor_max_mem_mb 64: must be at most 32: the gl-ar150 has 64 MB of RAM`},
		{"bridge without a RAM figure", func(in *Input) { in.RAMMB = 0; in.BridgeRelay = true; in.TorMaxMemMB = 64 }, `input.bridge_relay true: needs a board with more than 64 MB of RAM`},
		{"no RAM figure", func(in *Input) { in.RAMMB = 0 }, `input.ram_mb 0: must be the board's RAM in MB (its profile's device_facts.ram_mb), between 16 and 1048576`},
		{"RAM in bytes", func(in *Input) { in.RAMMB = 64 << 20 }, `input.ram_mb 67108864: must be the board's RAM in MB`},
		{"queues above half of a 128 MB board", func(in *Input) { in.RAMMB = 128; in.TorMaxMemMB = 65 }, `input.tor_max_mem_mb 65: must be at most 64: the gl-ar150 has 128 MB of RAM`},
		{"bridge contact", func(in *Input) {
			in.RAMMB = 128
			in.BridgeRelay = true
			in.TorMaxMemMB = 64
			in.Bridge.ContactInfo = "me\nExitRelay 1"
		}, `input.bridge.contact_info "me\nExitRelay 1": must match`},
		{"ssh options", func(in *Input) { in.SSHAuthorizedKeys = []string{`command="sh" ` + testSSHKey} }, `input.ssh_authorized_keys[0]`},
		{"ssh wrong type", func(in *Input) {
			in.SSHAuthorizedKeys = []string{strings.Replace(testSSHKey, "ssh-ed25519", "ssh-rsa", 1)}
		}, `key data does not start with its type "ssh-rsa"`},
		{"ssh newline", func(in *Input) { in.SSHAuthorizedKeys = []string{testSSHKey + "\n" + testSSHKey} }, `must be one OpenSSH public key line`},
		{"key fingerprint", func(in *Input) { in.ReleaseKeys[0].Fingerprint = "ABCDEF0123456789" }, `input.release_keys[0].fingerprint "ABCDEF0123456789": must be 16 lowercase hex digits`},
		{"key mismatch", func(in *Input) { in.ReleaseKeys[0].Fingerprint = in.ReleaseKeys[1].Fingerprint }, `input.release_keys[1].fingerprint`},
		{"key garbage", func(in *Input) { in.ReleaseKeys[0].PublicKey = []byte("hello\n") }, `input.release_keys[0].public_key (6 bytes): is not a usign public key file`},
		{"key is secret", func(in *Input) {
			in.ReleaseKeys[0].PublicKey = testKey(t, "release-1").Marshal()
		}, `input.release_keys[0].public_key (`},
		{"same key twice", func(in *Input) {
			k := testKey(t, "release-1").Public()
			k.Fingerprint[0] ^= 0xff
			in.ReleaseKeys[1] = ReleaseKey{Fingerprint: k.Fingerprint.String(), PublicKey: k.Marshal()}
		}, `is the same Ed25519 key as release_keys[0]`},
		{"threshold", func(in *Input) { in.UpdateThreshold = 3 }, `input.update_threshold 3: must be between 1 and 2`},
		{"mirror http", func(in *Input) { in.UpdateMirrors = []string{"http://updates.example.org/"} }, `input.update_mirrors[0] "http://updates.example.org/": plain http is only allowed for .onion hosts`},
		{"mirror quote", func(in *Input) { in.UpdateMirrors = []string{`https://x.org/"$(reboot)`} }, `must be a URL of at most 512 printable characters without spaces or quotes`},
		{"mirror user", func(in *Input) { in.UpdateMirrors = []string{"https://u:p@x.org/"} }, `must not carry user info`},
		{"mirror scheme", func(in *Input) { in.UpdateMirrors = []string{"ftp://x.org/"} }, `scheme must be https`},
		{"version", func(in *Input) { in.FirmwareVersion = "1.0 beta" }, `input.firmware_version "1.0 beta": must match`},
		{"epoch", func(in *Input) { in.SourceDateEpoch = -1 }, `input.source_date_epoch -1: must be between 0 and`},
		{"build zero", func(in *Input) { in.FirmwareBuild = 0 }, `input.firmware_build 0: must be at least 1`},
		{"brand colour", func(in *Input) { in.Brand.Colors.Primary = "red" }, `input.brand.colors.primary "red": must match`},
		{"brand colour css", func(in *Input) { in.Brand.Colors.Text = "#000;}body{" }, `input.brand.colors.text`},
		{"brand tagline markup", func(in *Input) { in.Brand.Tagline = "<b>hi</b>" }, `input.brand.tagline "<b>hi</b>": must be at most 200 characters`},
		{"brand footer newline", func(in *Input) { in.Brand.Footer = "a\nb" }, `input.brand.footer`},
		{"brand vendor long", func(in *Input) { in.Brand.Vendor = strings.Repeat("v", 129) }, `input.brand.vendor`},
		{"brand support url", func(in *Input) { in.Brand.SupportURL = "javascript:alert(1)" }, `input.brand.support_url "javascript:alert(1)": must be an http(s) URL`},
		{"brand language", func(in *Input) { in.Brand.Language = "EN" }, `input.brand.language "EN": must match`},
		{"logo name", func(in *Input) { in.Brand.LogoName = "logo.gif" }, `input.brand.logo_name "logo.gif": must be a file name ending in .svg or .png`},
		{"logo name without logo", func(in *Input) { in.Brand.Logo = nil }, `input.brand.logo_name "logo.svg": names a logo but brand.logo is empty`},
		{"logo not svg", func(in *Input) { in.Brand.Logo = []byte("GIF89a") }, `input.brand.logo (6 bytes): is not an SVG file`},
		{"logo not png", func(in *Input) { in.Brand.LogoName = "logo.png" }, `input.brand.logo (`},
		{"logo script", func(in *Input) { in.Brand.Logo = []byte("<svg><script>alert(1)</script></svg>") }, `SVG must not contain scripts or external references`},
		{"logo size", func(in *Input) { in.Brand.Logo = append([]byte("<svg>"), make([]byte, MaxLogo)...) }, `is larger than 12288 bytes, the status page's limit`},
		{"extra path dots", func(in *Input) { in.ExtraFiles[0].Path = "/usr/../etc/shadow" }, `input.extra_files[0].path "/usr/../etc/shadow": must be a clean absolute path`},
		{"extra path relative", func(in *Input) { in.ExtraFiles[0].Path = "usr/sbin/x" }, `must be a clean absolute path`},
		{"extra setuid", func(in *Input) { in.ExtraFiles[0].Mode = 0o4755 }, `input.extra_files[0].mode "04755": must be permission bits only`},
		{"extra twice", func(in *Input) { in.ExtraFiles = append(in.ExtraFiles, in.ExtraFiles[0]) }, `input.extra_files[1].path "/usr/sbin/torwrt-verify": duplicates extra_files[0]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := testInput(t, "gl-ar150")
			tc.mutate(&in)
			err := in.Validate()
			if err == nil {
				t.Fatalf("Validate passed, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate: %v\nwant it to contain %q", err, tc.want)
			}
			// Render must refuse the same input before writing anything.
			if _, rerr := Render(t.Context(), in, t.TempDir()+"/out"); rerr == nil || rerr.Error() != err.Error() {
				t.Fatalf("Render: %v, want the Validate error", rerr)
			}
		})
	}
}

func TestValidateCollectsAll(t *testing.T) {
	in := testInput(t, "gl-ar150")
	in.Hostname = "A"
	in.TorUID = -1
	in.Radio.Band = "x"
	err := in.Validate()
	if err == nil || strings.Count(err.Error(), "overlay: input.") != 3 {
		t.Fatalf("want three problems reported at once, got: %v", err)
	}
}

// TestQuotingFunctions exercises the template functions on values that
// validation would never let through: a validation gap must still not
// become an injection.
func TestQuotingFunctions(t *testing.T) {
	if got, err := uciQuote("it's"); err != nil || got != `'it'\''s'` {
		t.Errorf("uciQuote = %q, %v", got, err)
	}
	if _, err := uciQuote("a\noption key 'x'"); err == nil {
		t.Error("uciQuote accepted a newline")
	}
	if got, err := shQuote("a'b $(reboot)"); err != nil || got != `'a'\''b $(reboot)'` {
		t.Errorf("shQuote = %q, %v", got, err)
	}
	if _, err := shQuote("a\nb"); err == nil {
		t.Error("shQuote accepted a newline")
	}
	for _, bad := range []string{`eth0" accept`, "", "a234567890123456", "eth0 ", "*"} {
		if _, err := nftString(bad); err == nil {
			t.Errorf("nftString(%q) accepted", bad)
		}
	}
	if got, _ := nftString("br-tor_off"); got != `"br-tor_off"` {
		t.Errorf("nftString = %s", got)
	}
}

func TestExtraFileConflicts(t *testing.T) {
	for _, tc := range []struct {
		path, want string
	}{
		{"/etc/tor/torrc", "/etc/tor/torrc is produced twice"},
		{"/etc/config", "/etc/config is a file but /etc/config/dhcp needs it to be a directory"},
	} {
		in := testInput(t, "gl-ar150")
		in.ExtraFiles = append(in.ExtraFiles, ExtraFile{Path: tc.path, Mode: 0o644, Data: []byte("x\n")})
		_, err := Render(t.Context(), in, t.TempDir()+"/out")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("extra file %s: %v, want %q", tc.path, err, tc.want)
		}
	}
}

func TestExtraConfigMustLint(t *testing.T) {
	in := testInput(t, "gl-ar150")
	in.ExtraFiles = append(in.ExtraFiles, ExtraFile{Path: "/etc/config/uhttpd", Mode: 0o644, Data: []byte("config uhttpd 'main'\n\toption listen_http\n")})
	_, err := Render(t.Context(), in, t.TempDir()+"/out")
	if err == nil || !strings.Contains(err.Error(), "rendered /etc/config/uhttpd does not lint: /etc/config/uhttpd:2: option listen_http: missing value") {
		t.Fatalf("Render: %v", err)
	}
}

// The logo limit is the status page's: a bigger logo would be dropped on
// the router without a word.
func TestMaxLogoMatchesStatusPage(t *testing.T) {
	if MaxLogo != status.MaxLogo {
		t.Fatalf("overlay.MaxLogo %d, status.MaxLogo %d", MaxLogo, status.MaxLogo)
	}
}
