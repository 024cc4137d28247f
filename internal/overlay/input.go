package overlay

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/torwrt/torwrt/internal/brand"
	"github.com/torwrt/torwrt/internal/overlay/device"
	"github.com/torwrt/torwrt/internal/profile"
	"github.com/torwrt/torwrt/internal/routerconf"
	"github.com/torwrt/torwrt/internal/usign"
)

// Input is everything that decides the rendered tree. It is plain data so
// the builder can hash it into a cache key and copy it into provenance;
// Render adds nothing to it but fixed constants (ports, paths).
//
// Start from ForProfile(profile) (or Defaults(facts) and set Profile,
// Board and Target) and set what the brand and the release decide;
// Validate says what is missing or wrong.
type Input struct {
	// Profile is the device's torwrt profile id, e.g. "gl-ar150" (also
	// for its variant gl-ar150-24.10).
	Profile string `json:"profile"`
	// Board is the board name the router reports in
	// /tmp/sysinfo/board_name, e.g. "glinet,gl-ar150".
	Board string `json:"board"`
	// Target is the OpenWrt target/subtarget, e.g. "ath79/generic".
	Target string `json:"target"`

	Hostname string `json:"hostname"`
	// SSIDPrefix starts each network's SSID: "<prefix>-tor_off" and so on.
	SSIDPrefix  string `json:"ssid_prefix"`
	ProductName string `json:"product_name"`
	// Banner replaces the text of /etc/banner when not empty.
	Banner string `json:"banner,omitempty"`

	WAN       WAN     `json:"wan"`
	TorOff    Network `json:"tor_off"`
	TorMedium Network `json:"tor_medium"`
	TorMax    Network `json:"tor_max"`
	// Switch configures a swconfig switch; empty Name means the board has
	// none (GL-AR150), "switch0" on the GL-MT300A.
	Switch Switch `json:"switch"`
	Radio  Radio  `json:"radio"`

	// TorUID is the numeric uid of the tor user. The firewall lets only
	// this uid reach the internet; OpenWrt's tor package uses 52.
	TorUID int `json:"tor_uid"`
	// TorMaxMemMB is Tor's MaxMemInQueues in MB, sized to the board's RAM.
	TorMaxMemMB int `json:"tor_max_mem_mb"`
	// RAMMB is the board's RAM in MB (its profile's device_facts.ram_mb):
	// Tor's queues may take at most half of it, and a bridge relay needs
	// more than 64 MB.
	RAMMB int `json:"ram_mb"`

	// BridgeRelay makes Tor donate bandwidth as a bridge with Bridge's
	// limits.
	BridgeRelay bool   `json:"bridge_relay"`
	Bridge      Bridge `json:"bridge"`

	// SSHAuthorizedKeys are OpenSSH public key lines for root. None
	// (the default) leaves SSH off.
	SSHAuthorizedKeys []string `json:"ssh_authorized_keys,omitempty"`

	// ReleaseKeys are the usign public keys images and update manifests
	// must be signed with.
	ReleaseKeys     []ReleaseKey `json:"release_keys"`
	UpdateMirrors   []string     `json:"update_mirrors"`
	UpdateThreshold int          `json:"update_threshold"`
	// Channel is the brand's release channel, e.g. "stable": written to
	// /etc/torwrt/verify.json, and the router's updater refuses a
	// manifest of any other channel.
	Channel         string `json:"channel"`
	FirmwareVersion string `json:"firmware_version"`
	// FirmwareBuild is the release's build number, written to
	// /etc/torwrt/release.json. The updater's anti-rollback compares it
	// with the manifest's "build", so it must grow with every release
	// and equal the build the manifest lists for this image.
	FirmwareBuild uint64 `json:"firmware_build"`
	// Brand is the status page's look. Zero fields take torwrt's
	// defaults; the product name is ProductName.
	Brand StatusBrand `json:"brand"`
	// SourceDateEpoch is the time of every file and directory in the tree.
	SourceDateEpoch int64 `json:"source_date_epoch"`

	// ExtraFiles are added as they are, e.g. the daemon binary at
	// /usr/sbin/torwrt-verify.
	ExtraFiles []ExtraFile `json:"extra_files,omitempty"`
}

// StatusBrand is what a vendor changes on the status page and the setup
// view (internal/brand fills it from brand.yaml).
type StatusBrand struct {
	Vendor string `json:"vendor,omitempty"`
	// Colors are #rrggbb.
	Colors  routerconf.Colors `json:"colors"`
	Tagline string            `json:"tagline,omitempty"`
	Footer  string            `json:"footer,omitempty"`
	// More holds the optional status page sentences (tor_up, net_off, …);
	// its Tagline and Footer are ignored in favour of the fields above.
	More       routerconf.Texts `json:"more_texts,omitempty"`
	SupportURL string           `json:"support_url,omitempty"`
	// Language is a tag like "en" or "de-CH".
	Language string `json:"language,omitempty"`
	// LogoName is the brand's logo file name; its extension (.svg or
	// .png) decides where Logo goes: /etc/torwrt/logo.svg or logo.png.
	LogoName string `json:"logo_name,omitempty"`
	Logo     []byte `json:"logo,omitempty"`
}

// LogoPath is where the logo is written, or "" without a logo.
func (b StatusBrand) LogoPath() string {
	if len(b.Logo) == 0 {
		return ""
	}
	return routerconf.LogoBase + path.Ext(b.LogoName)
}

// WAN is the uplink.
type WAN struct {
	// Device is the WAN's network device: "eth1" on the GL-AR150,
	// "eth0.2" on the GL-MT300A.
	Device string `json:"device"`
}

// Network is one of tor_off, tor_medium and tor_max.
type Network struct {
	// Address is the router's address and prefix, e.g. "10.71.0.1/24".
	Address string `json:"address"`
	// Bridge is the network's bridge device, e.g. "br-tor_off". Its Wi-Fi
	// network and Ports join it.
	Bridge string `json:"bridge"`
	// Ports are wired ports bridged into the network.
	Ports     []string `json:"ports,omitempty"`
	DHCPStart int      `json:"dhcp_start"`
	DHCPLimit int      `json:"dhcp_limit"`
}

// Switch is a swconfig switch and its VLANs, as a profile's
// device_facts.switch gives it.
type Switch = device.Switch

// SwitchVLAN is one switch_vlan section.
type SwitchVLAN = device.SwitchVLAN

// Radio is the board's Wi-Fi radio.
type Radio struct {
	// Path is the radio's device path, e.g. "platform/ahb/18100000.wmac".
	Path    string `json:"path"`
	Band    string `json:"band"`
	Channel string `json:"channel"`
	HTMode  string `json:"htmode"`
	// Country is the Wi-Fi regulatory domain, an officially assigned
	// ISO 3166-1 alpha-2 code (the brand's, or imgbuild build --country).
	// Required: every image enables Wi-Fi at first boot, and no radio may
	// transmit under the driver's guess.
	Country string `json:"country"`
}

// Bridge holds a bridge relay's limits. Tor counts bandwidth in bytes.
type Bridge struct {
	ORPort      int `json:"orport"`
	RateKBytes  int `json:"rate_kbytes"`
	BurstKBytes int `json:"burst_kbytes"`
	// AccountingMaxGBytes caps traffic per month; 0 means no cap.
	AccountingMaxGBytes int `json:"accounting_max_gbytes"`
	// ContactInfo is published in the bridge's descriptor; optional.
	ContactInfo string `json:"contact_info,omitempty"`
}

// ReleaseKey is a usign public key file and its fingerprint.
type ReleaseKey struct {
	// Fingerprint is 16 lowercase hex digits, as `usign -F` prints.
	Fingerprint string `json:"fingerprint"`
	// PublicKey is the whole public key file.
	PublicKey []byte `json:"public_key"`
}

// ExtraFile is a file added to the tree verbatim.
type ExtraFile struct {
	Path string `json:"path"`
	// Mode holds permission bits only, e.g. 0o755.
	Mode uint32 `json:"mode"`
	Data []byte `json:"data"`
}

// Constants shared by the templates, the firewall and the tests. They are
// not inputs: a vendor has no reason to move Tor's ports, and every
// moveable part is one more way to get the firewall and torrc out of step.
const (
	PortSSH     = 22
	PortDHCP    = 67
	PortStatus  = 80
	PortSocks   = 9050
	PortControl = 9051
	PortTrans   = 9040
	PortDNS     = 9053

	// StatusPath is where torwrt-verify serves the status page.
	StatusPath = "/torbox"
	// KeysDir holds the release keys that sysupgrade and the updater
	// trust. Only this image writes there; /etc/opkg/keys gets copies for
	// stock tools.
	KeysDir = routerconf.KeysDir
	// VirtualAddrNetwork is Tor's VirtualAddrNetworkIPv4 for .onion
	// addresses handed to tor_medium clients.
	VirtualAddrNetwork = "10.192.0.0/10"
)

// Defaults returns an Input with a device's facts (its profile's
// device_facts) and torwrt's defaults filled in. The caller sets Profile,
// Board and Target from the profile (ForProfile does), and the release
// (keys, mirrors, version, epoch).
func Defaults(f device.Facts) Input {
	f = f.Clone()
	return Input{
		Hostname:    "torwrt",
		SSIDPrefix:  "torwrt",
		ProductName: "torwrt",
		WAN:         WAN{Device: f.Ports.WAN},
		TorOff:      Network{Address: "10.71.0.1/24", Bridge: "br-tor_off", DHCPStart: 100, DHCPLimit: 100},
		TorMedium:   Network{Address: "10.72.0.1/24", Bridge: "br-tor_medium", DHCPStart: 100, DHCPLimit: 100},
		TorMax:      Network{Address: "10.73.0.1/24", Bridge: "br-tor_max", Ports: f.Ports.TorMax, DHCPStart: 100, DHCPLimit: 100},
		Switch:      f.Switch,
		Radio:       Radio{Path: f.Radio.Path, Band: f.Radio.Band, Channel: f.Radio.Channel, HTMode: f.Radio.HTMode},
		TorUID:      52,
		TorMaxMemMB: f.MaxMemInQueuesMB,
		RAMMB:       f.RAMMB,
		Bridge: Bridge{
			ORPort:              9001,
			RateKBytes:          128,
			BurstKBytes:         256,
			AccountingMaxGBytes: 50,
		},
		UpdateThreshold: 1,
		FirmwareBuild:   1,
	}
}

// ForProfile is Defaults for a loaded profile: its device facts (for a
// variant, its primary's with the variant's own sections laid over them),
// its device's id, its board name and its OpenWrt target.
func ForProfile(p *profile.Profile) (Input, error) {
	f, err := p.Facts()
	if err != nil {
		return Input{}, err
	}
	in := Defaults(f)
	in.Profile = p.DeviceID()
	in.Board = p.Board
	in.Target = p.OpenWrt.Target + "/" + p.OpenWrt.Subtarget
	return in, nil
}

var (
	reProfile = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	// vendor,board since OpenWrt 18.06; a bare board name on LEDE 17.01.
	reBoard    = regexp.MustCompile(`^([a-z0-9][a-z0-9-]*,)?[a-z0-9][a-z0-9._-]*$`)
	reTarget   = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9_-]+$`)
	reHostname = regexp.MustCompile(`^[a-z0-9-]{1,63}$`)
	reSSID     = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9 ._-]{0,19}[A-Za-z0-9._-])?$`)
	reProduct  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._()+-]{0,47}$`)
	reIfname   = device.IfnameRE
	reSwitch   = device.SwitchRE
	reSwPorts  = device.SwitchPortsRE
	reRadio    = device.RadioPathRE
	reFP       = regexp.MustCompile(`^[0-9a-f]{16}$`)
	reVersion  = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+~_-]{0,63}$`)
	reFilePath = regexp.MustCompile(`^(/[A-Za-z0-9._+-]+)+$`)
	reContact  = regexp.MustCompile(`^[A-Za-z0-9@._+:/ -]{1,128}$`)
	reColor    = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)
	reLanguage = regexp.MustCompile(`^[a-z]{2}(-[A-Z]{2})?$`)
	reText     = regexp.MustCompile("^[^<>&\"'`\\\\\\x00-\\x1f\\x7f]*$")
	reLogoName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\.(svg|png)$`)
	reSSHKey   = regexp.MustCompile(`^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) ([A-Za-z0-9+/]+={0,3})( [A-Za-z0-9@._+:-]{1,64})?$`)
)

var (
	bands   = device.Bands
	htmodes = device.HTModes
	// privateNets are where LAN subnets may live.
	privateNets = []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("172.16.0.0/12"),
		netip.MustParsePrefix("192.168.0.0/16"),
	}
	// fixedPorts are the router's own listeners; a bridge ORPort may not
	// take one of them.
	fixedPorts = []int{PortSSH, 53, PortDHCP, 68, PortStatus, PortSocks, PortControl, PortTrans, PortDNS}
)

const (
	maxBanner     = 4096
	maxReleaseKey = 16
	maxMirrors    = 16
	maxMirrorLen  = 512
	maxExtraFiles = 64
	maxExtraSize  = 32 << 20
	// MaxLogo is the status page's limit (status.MaxLogo): a bigger
	// logo would silently be replaced by the default on the router.
	MaxLogo = 12 << 10
	// maxEpoch keeps file times inside what a ustar header can hold.
	maxEpoch = 1<<33 - 1
)

// validator collects every problem rather than stopping at the first, so
// one run of the builder tells a vendor everything to fix.
type validator struct{ errs []error }

func (v *validator) addf(field string, value any, format string, args ...any) {
	v.errs = append(v.errs, fmt.Errorf("overlay: input.%s %s: %s", field, show(value), fmt.Sprintf(format, args...)))
}

func show(value any) string {
	switch x := value.(type) {
	case string:
		if len(x) > 80 {
			x = x[:80] + "..."
		}
		return strconv.Quote(x)
	case []byte:
		return fmt.Sprintf("(%d bytes)", len(x))
	default:
		return fmt.Sprint(x)
	}
}

func (v *validator) match(field, value string, re *regexp.Regexp) {
	if !re.MatchString(value) {
		v.addf(field, value, "must match %s", re)
	}
}

func (v *validator) oneOf(field, value string, allowed []string) {
	if !slices.Contains(allowed, value) {
		v.addf(field, value, "must be one of %s", strings.Join(allowed, ", "))
	}
}

func (v *validator) intRange(field string, value, lo, hi int) {
	if value < lo || value > hi {
		v.addf(field, value, "must be between %d and %d", lo, hi)
	}
}

// Validate checks every field. The error joins one error per problem, each
// naming the field as input.<json name>.
func (in Input) Validate() error {
	var v validator
	v.match("profile", in.Profile, reProfile)
	v.match("board", in.Board, reBoard)
	v.match("target", in.Target, reTarget)
	v.match("hostname", in.Hostname, reHostname)
	if strings.HasPrefix(in.Hostname, "-") || strings.HasSuffix(in.Hostname, "-") {
		v.addf("hostname", in.Hostname, "must not start or end with '-'")
	}
	v.match("ssid_prefix", in.SSIDPrefix, reSSID)
	v.match("product_name", in.ProductName, reProduct)
	v.banner(in.Banner)
	v.networks(in)
	v.sw(in.Switch)
	v.radio(in.Radio)
	v.intRange("tor_uid", in.TorUID, 1, 65533)
	v.intRange("tor_max_mem_mb", in.TorMaxMemMB, device.MinMemMB, device.MaxMemMB)
	// The board's RAM (its profile's device_facts) bounds Tor's queues.
	ramKnown := in.RAMMB >= device.MinRAMMB && in.RAMMB <= device.MaxRAMMB
	if !ramKnown {
		v.addf("ram_mb", in.RAMMB, "must be the board's RAM in MB (its profile's device_facts.ram_mb), between %d and %d", device.MinRAMMB, device.MaxRAMMB)
	} else if in.TorMaxMemMB > in.RAMMB/2 {
		v.addf("tor_max_mem_mb", in.TorMaxMemMB, "must be at most %d: the %s has %d MB of RAM, and Tor's queues may take at most half of it", in.RAMMB/2, in.Profile, in.RAMMB)
	}
	if in.BridgeRelay {
		v.bridge(in.Bridge)
		// Tor raises MaxMemInQueues to 64 MB on any relay; say so here
		// instead of letting the router find out.
		switch {
		case !ramKnown || in.RAMMB <= device.MinBridgeRAMMB:
			v.addf("bridge_relay", in.BridgeRelay, "needs a board with more than %d MB of RAM: Tor takes 64 MB for a relay's queues alone (profile %s has %d MB)", device.MinBridgeRAMMB, in.Profile, in.RAMMB)
		case in.TorMaxMemMB < 64:
			v.addf("tor_max_mem_mb", in.TorMaxMemMB, "must be at least 64 with bridge_relay: Tor enforces 64 MB for relays")
		}
	}
	for i, k := range in.SSHAuthorizedKeys {
		v.sshKey(fmt.Sprintf("ssh_authorized_keys[%d]", i), k)
	}
	v.releaseKeys(in.ReleaseKeys)
	if n := len(in.ReleaseKeys); n > 0 {
		v.intRange("update_threshold", in.UpdateThreshold, 1, n)
	} else if in.UpdateThreshold < 1 {
		v.addf("update_threshold", in.UpdateThreshold, "must be at least 1")
	}
	v.mirrors(in.UpdateMirrors)
	if !routerconf.IsChannel(in.Channel) {
		v.addf("channel", in.Channel, "must be the brand's release channel (e.g. stable): 1-128 of A-Z a-z 0-9 . _ + , : ~ @ -; the router accepts only manifests of this channel")
	}
	v.match("firmware_version", in.FirmwareVersion, reVersion)
	if in.FirmwareBuild < 1 {
		v.addf("firmware_build", in.FirmwareBuild, "must be at least 1: the updater compares builds, and 0 means unknown")
	}
	v.brand(in.Brand)
	if in.SourceDateEpoch < 0 || in.SourceDateEpoch > maxEpoch {
		v.addf("source_date_epoch", in.SourceDateEpoch, "must be between 0 and %d", int64(maxEpoch))
	}
	v.extraFiles(in.ExtraFiles)
	return errors.Join(v.errs...)
}

func (v *validator) brand(b StatusBrand) {
	text := func(field, s string, max int) {
		if len(s) > max || !utf8.ValidString(s) || !reText.MatchString(s) {
			v.addf(field, s, "must be at most %d characters of text without markup, quotes or control characters", max)
		}
	}
	text("brand.vendor", b.Vendor, 128)
	text("brand.tagline", b.Tagline, 200)
	text("brand.footer", b.Footer, 200)
	more := b.More
	more.Tagline, more.Footer = "", ""
	for name, s := range more.Fields() {
		text("brand.texts."+name, s, 200)
	}
	for _, c := range []struct{ f, val string }{
		{"brand.colors.primary", b.Colors.Primary},
		{"brand.colors.background", b.Colors.Background},
		{"brand.colors.text", b.Colors.Text},
	} {
		if c.val != "" {
			v.match(c.f, c.val, reColor)
		}
	}
	if b.SupportURL != "" {
		u, err := url.Parse(b.SupportURL)
		if err != nil || len(b.SupportURL) > 300 || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil ||
			strings.ContainsFunc(b.SupportURL, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`"'<>\`+"`", r) }) {
			v.addf("brand.support_url", b.SupportURL, "must be an http(s) URL of at most 300 characters")
		}
	}
	if b.Language != "" {
		v.match("brand.language", b.Language, reLanguage)
	}
	switch {
	case len(b.Logo) == 0 && b.LogoName != "":
		v.addf("brand.logo_name", b.LogoName, "names a logo but brand.logo is empty")
	case len(b.Logo) == 0:
	case !reLogoName.MatchString(b.LogoName):
		v.addf("brand.logo_name", b.LogoName, "must be a file name ending in .svg or .png")
	case len(b.Logo) > MaxLogo:
		v.addf("brand.logo", b.Logo, "is larger than %d bytes, the status page's limit", MaxLogo)
	case strings.HasSuffix(b.LogoName, ".png"):
		if !bytes.HasPrefix(b.Logo, []byte("\x89PNG\r\n\x1a\n")) {
			v.addf("brand.logo", b.Logo, "is not a PNG file")
		}
	default:
		lower := bytes.ToLower(b.Logo)
		switch {
		case !bytes.Contains(b.Logo[:min(len(b.Logo), 512)], []byte("<svg")):
			v.addf("brand.logo", b.Logo, "is not an SVG file (no <svg in its first 512 bytes)")
		case bytes.Contains(lower, []byte("<script")) || bytes.Contains(lower, []byte("href=\"http")) || bytes.Contains(lower, []byte("href='http")):
			v.addf("brand.logo", b.Logo, "SVG must not contain scripts or external references")
		}
	}
}

func (v *validator) banner(b string) {
	if len(b) > maxBanner {
		v.addf("banner", b, "is %d bytes, at most %d allowed", len(b), maxBanner)
	}
	if !utf8.ValidString(b) {
		v.addf("banner", b, "must be UTF-8")
		return
	}
	for _, r := range b {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			v.addf("banner", b, "contains control character %U", r)
			return
		}
	}
}

// netNames are the three networks in the order every file lists them.
var netNames = [3]string{"tor_off", "tor_medium", "tor_max"}

func (in Input) nets() [3]Network { return [3]Network{in.TorOff, in.TorMedium, in.TorMax} }

func (v *validator) networks(in Input) {
	v.ifname("wan.device", in.WAN.Device)
	virtual := netip.MustParsePrefix(VirtualAddrNetwork)
	owner := map[string]string{} // device name -> field that uses it
	claim := func(field, dev string) {
		if prev, dup := owner[dev]; dup {
			v.addf(field, dev, "already used by input.%s", prev)
			return
		}
		owner[dev] = field
	}
	claim("wan.device", in.WAN.Device)
	var prefixes [3]netip.Prefix
	for i, n := range in.nets() {
		f := netNames[i]
		v.ifname(f+".bridge", n.Bridge)
		claim(f+".bridge", n.Bridge)
		for j, p := range n.Ports {
			pf := fmt.Sprintf("%s.ports[%d]", f, j)
			v.ifname(pf, p)
			claim(pf, p)
		}
		p, err := netip.ParsePrefix(n.Address)
		if err != nil {
			v.addf(f+".address", n.Address, "must be an IPv4 address with prefix length, e.g. 10.71.0.1/24")
			continue
		}
		switch {
		case !p.Addr().Is4():
			v.addf(f+".address", n.Address, "must be IPv4 (torwrt has no IPv6 on its networks)")
			continue
		case p.Bits() < 16 || p.Bits() > 30:
			v.addf(f+".address", n.Address, "prefix length must be between /16 and /30")
			continue
		}
		net := p.Masked()
		if p.Addr() == net.Addr() || p.Addr() == lastAddr(net) {
			v.addf(f+".address", n.Address, "is the network or broadcast address; use a host address such as %s", net.Addr().Next())
		}
		if !slices.ContainsFunc(privateNets, func(q netip.Prefix) bool { return q.Contains(p.Addr()) && q.Bits() <= p.Bits() }) {
			v.addf(f+".address", n.Address, "must be inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16")
		}
		if net.Overlaps(virtual) {
			v.addf(f+".address", n.Address, "overlaps Tor's VirtualAddrNetworkIPv4 %s", VirtualAddrNetwork)
		}
		for j := range i {
			if prefixes[j].IsValid() && prefixes[j].Overlaps(net) {
				v.addf(f+".address", n.Address, "overlaps input.%s.address", netNames[j])
			}
		}
		prefixes[i] = net
		size := 1 << (32 - p.Bits())
		if n.DHCPStart < 1 || n.DHCPLimit < 1 || n.DHCPStart+n.DHCPLimit > size-1 {
			v.addf(f+".dhcp_start", n.DHCPStart, "with dhcp_limit %d must give a range inside %s (start >= 1, start+limit <= %d)", n.DHCPLimit, net, size-1)
		}
	}
}

// lastAddr is the broadcast address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	binary.BigEndian.PutUint32(a[:], binary.BigEndian.Uint32(a[:])|host)
	return netip.AddrFrom4(a)
}

func (v *validator) ifname(field, name string) {
	v.match(field, name, reIfname)
	if name == "lo" {
		v.addf(field, name, "must not be the loopback device")
	}
}

func (v *validator) sw(s Switch) {
	if s.Name == "" {
		if len(s.VLANs) > 0 {
			v.addf("switch.vlans", len(s.VLANs), "need input.switch.name")
		}
		return
	}
	v.match("switch.name", s.Name, reSwitch)
	if len(s.VLANs) == 0 {
		v.addf("switch.vlans", 0, "a switch needs at least one VLAN")
	}
	seen := map[int]bool{}
	for i, vl := range s.VLANs {
		f := fmt.Sprintf("switch.vlans[%d]", i)
		v.intRange(f+".vlan", vl.VLAN, 1, 4094)
		if seen[vl.VLAN] {
			v.addf(f+".vlan", vl.VLAN, "is listed twice")
		}
		seen[vl.VLAN] = true
		v.match(f+".ports", vl.Ports, reSwPorts)
	}
}

func (v *validator) radio(r Radio) {
	v.match("radio.path", r.Path, reRadio)
	v.oneOf("radio.band", r.Band, bands)
	if !device.ValidChannel(r.Channel) {
		v.addf("radio.channel", r.Channel, `must be "auto" or a channel number`)
	}
	v.oneOf("radio.htmode", r.HTMode, htmodes)
	switch {
	case r.Country == "":
		v.addf("radio.country", r.Country, "is required: the image enables Wi-Fi at first boot, and radios must not transmit without a regulatory country; set country in the brand or pass imgbuild build --country XX (ISO 3166-1 alpha-2)")
	default:
		if err := brand.CheckCountry(r.Country); err != nil {
			v.addf("radio.country", r.Country, "%v", err)
		}
	}
}

func (v *validator) bridge(b Bridge) {
	v.intRange("bridge.orport", b.ORPort, 1, 65535)
	if slices.Contains(fixedPorts, b.ORPort) {
		v.addf("bridge.orport", b.ORPort, "is used by the router itself")
	}
	// Tor refuses to run a relay below 75 KBytes/s.
	v.intRange("bridge.rate_kbytes", b.RateKBytes, 75, 1000000)
	if b.BurstKBytes < b.RateKBytes || b.BurstKBytes > 1000000 {
		v.addf("bridge.burst_kbytes", b.BurstKBytes, "must be between rate_kbytes (%d) and 1000000", b.RateKBytes)
	}
	v.intRange("bridge.accounting_max_gbytes", b.AccountingMaxGBytes, 0, 1000000)
	if b.ContactInfo != "" {
		v.match("bridge.contact_info", b.ContactInfo, reContact)
	}
}

func (v *validator) sshKey(field, line string) {
	m := reSSHKey.FindStringSubmatch(line)
	if m == nil {
		v.addf(field, line, "must be one OpenSSH public key line: TYPE BASE64 [COMMENT], no options")
		return
	}
	blob, err := base64.StdEncoding.DecodeString(m[2])
	if err != nil || len(blob) < 4 {
		v.addf(field, line, "key data is not valid base64")
		return
	}
	n := binary.BigEndian.Uint32(blob)
	if int(n) > len(blob)-4 || string(blob[4:4+n]) != m[1] {
		v.addf(field, line, "key data does not start with its type %q", m[1])
	}
}

func (v *validator) releaseKeys(keys []ReleaseKey) {
	if len(keys) == 0 {
		v.addf("release_keys", 0, "at least one release key is required: without one the router accepts no update")
	}
	if len(keys) > maxReleaseKey {
		v.addf("release_keys", len(keys), "at most %d keys", maxReleaseKey)
	}
	seenFP := map[string]int{}
	seenKey := map[string]int{}
	for i, k := range keys {
		f := fmt.Sprintf("release_keys[%d]", i)
		if !reFP.MatchString(k.Fingerprint) {
			v.addf(f+".fingerprint", k.Fingerprint, "must be 16 lowercase hex digits")
		}
		if j, dup := seenFP[k.Fingerprint]; dup {
			v.addf(f+".fingerprint", k.Fingerprint, "duplicates release_keys[%d]", j)
		}
		seenFP[k.Fingerprint] = i
		pub, err := usign.ParsePublicKey(k.PublicKey)
		if err != nil {
			v.addf(f+".public_key", k.PublicKey, "is not a usign public key file: %v", err)
			continue
		}
		if !bytes.HasSuffix(k.PublicKey, []byte("\n")) {
			v.addf(f+".public_key", k.PublicKey, "must end with a newline")
		}
		if got := pub.Fingerprint.String(); got != k.Fingerprint {
			v.addf(f+".public_key", k.PublicKey, "has fingerprint %s, not %s", got, k.Fingerprint)
		}
		// One key under two fingerprints would count twice toward the
		// update threshold.
		if j, dup := seenKey[string(pub.Key)]; dup {
			v.addf(f+".public_key", k.PublicKey, "is the same Ed25519 key as release_keys[%d]", j)
		}
		seenKey[string(pub.Key)] = i
	}
}

func (v *validator) mirrors(ms []string) {
	if len(ms) == 0 {
		v.addf("update_mirrors", 0, "at least one update mirror is required")
	}
	if len(ms) > maxMirrors {
		v.addf("update_mirrors", len(ms), "at most %d mirrors", maxMirrors)
	}
	for i, m := range ms {
		f := fmt.Sprintf("update_mirrors[%d]", i)
		if len(m) > maxMirrorLen || strings.ContainsFunc(m, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`"'\<>{}|^`+"`", r) }) {
			v.addf(f, m, "must be a URL of at most %d printable characters without spaces or quotes", maxMirrorLen)
			continue
		}
		u, err := url.Parse(m)
		if err != nil {
			v.addf(f, m, "is not a URL: %v", err)
			continue
		}
		onion := strings.HasSuffix(u.Hostname(), ".onion")
		switch {
		case u.Host == "" || u.Opaque != "":
			v.addf(f, m, "must be an absolute URL with a host")
		case u.User != nil || u.Fragment != "" || u.RawQuery != "":
			v.addf(f, m, "must not carry user info, a query or a fragment")
		case u.Scheme == "https":
		case u.Scheme == "http" && onion:
		case u.Scheme == "http":
			v.addf(f, m, "plain http is only allowed for .onion hosts; use https")
		default:
			v.addf(f, m, "scheme must be https (or http for .onion)")
		}
	}
}

func (v *validator) extraFiles(files []ExtraFile) {
	if len(files) > maxExtraFiles {
		v.addf("extra_files", len(files), "at most %d files", maxExtraFiles)
	}
	seen := map[string]int{}
	for i, f := range files {
		field := fmt.Sprintf("extra_files[%d]", i)
		if !reFilePath.MatchString(f.Path) || path.Clean(f.Path) != f.Path || len(f.Path) > 255 ||
			slices.Contains(strings.Split(f.Path, "/"), "..") || slices.Contains(strings.Split(f.Path, "/"), ".") {
			v.addf(field+".path", f.Path, "must be a clean absolute path of letters, digits and ._+-")
		}
		if j, dup := seen[f.Path]; dup {
			v.addf(field+".path", f.Path, "duplicates extra_files[%d]", j)
		}
		seen[f.Path] = i
		if f.Mode&^0o777 != 0 || f.Mode&0o400 == 0 {
			v.addf(field+".mode", fmt.Sprintf("%#o", f.Mode), "must be permission bits only (no setuid, setgid or sticky) and readable by its owner")
		}
		if len(f.Data) > maxExtraSize {
			v.addf(field+".data", f.Data, "is larger than %d bytes", maxExtraSize)
		}
	}
}
