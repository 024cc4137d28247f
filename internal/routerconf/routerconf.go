// Package routerconf is the contract between the build and the router:
// /etc/torwrt/verify.json, which internal/overlay renders into every image
// and `torwrt-verify daemon` reads, and /etc/torwrt/release.json, which
// says what firmware is running.
//
// It is pure (bytes in, values or errors out: no files, network or clock)
// and small, because it is compiled into the MIPS router binary as well as
// into the host tools. It uses encoding/json, net/netip and net/url only.
//
// The schema is documented in docs/updates.md §7. Decode refuses unknown
// keys, so a typo cannot silently switch a check off; Validate says what
// is wrong with every field at once; ApplyDefaults fills in what may be
// left out.
package routerconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Fixed paths on the router. The overlay writes these files and the
// daemon reads them; keep them here so both sides use the same names.
const (
	// Path is the daemon's configuration file.
	Path = "/etc/torwrt/verify.json"
	// ReleasePath describes the running firmware (Release).
	ReleasePath = "/etc/torwrt/release.json"
	// KeysDir holds the release keys the updater trusts. Only the image
	// writes there; /etc/opkg/keys may also hold OpenWrt's own keys.
	KeysDir = "/etc/torwrt/keys"
	// StateDir is on the overlay filesystem (flash) and listed in
	// /lib/upgrade/keep.d, so what the daemon keeps there survives reboots
	// and sysupgrade: replay protection, the rollout seed, the floor.
	StateDir = "/etc/torwrt/state"
	// StateFile is the updater's state file.
	StateFile = StateDir + "/verify-state.json"
	// BoardFile is where OpenWrt names the board at boot.
	BoardFile = "/tmp/sysinfo/board_name"
	// SecretsFile holds the per-device secrets made at first boot (0600).
	SecretsFile = "/etc/torwrt/device-secrets"
	// SetupDoneFile exists once the owner has confirmed the secrets. The
	// daemon creates it, so it lives in the daemon's state directory, the
	// one place in /etc/torwrt its own user (torwrt) may write.
	SetupDoneFile = StateDir + "/setup-done"
	// SetupConfirmedFile is root's record that the init script has seen
	// SetupDoneFile. From then on the secrets file stays root's 0600 even
	// if the daemon's user removes SetupDoneFile; only the first-boot
	// script, making new secrets, removes both.
	SetupConfirmedFile = "/etc/torwrt/setup-confirmed"
	// LogoBase is the logo's path without its extension (.svg or .png).
	LogoBase = "/etc/torwrt/logo"

	// SetupPath is the setup view on the status page's listeners, and
	// SetupDonePath the form that ends it.
	SetupPath     = "/torbox/setup"
	SetupDonePath = "/torbox/setup/done"
)

// Defaults for durations that may be left out.
const (
	DefaultInterval   = 6 * time.Hour
	DefaultFirstCheck = 3 * time.Minute
	DefaultTorPoll    = 30 * time.Second
)

// Limits. MaxSize bounds the file the daemon reads.
const (
	MaxSize     = 256 << 10
	maxMirrors  = 16
	maxListen   = 16
	maxNetworks = 16
	maxPrefixes = 16
	maxURL      = 512
	maxPath     = 255
	maxText     = 200
)

// Config is /etc/torwrt/verify.json. Field order is the order the overlay
// writes them in, so the rendered file is deterministic.
type Config struct {
	// Mirrors are update base URLs, tried in order.
	Mirrors      []string `json:"mirrors"`
	ManifestName string   `json:"manifest_name,omitempty"`
	// Channel is the release channel (the brand's, e.g. "stable"): the
	// updater refuses a manifest of any other channel. Required: a router
	// that does not know its channel accepts no manifest.
	Channel string `json:"channel"`
	// KeysDir holds the trusted usign public keys, named by fingerprint.
	KeysDir string `json:"keys_dir,omitempty"`
	// Threshold is how many distinct trusted keys must sign a manifest.
	Threshold int `json:"threshold,omitempty"`
	// Board overrides BoardFile (/tmp/sysinfo/board_name).
	Board     string `json:"board,omitempty"`
	BoardFile string `json:"board_file,omitempty"`
	// SOCKS is Tor's SocksPort (ip:port); Control its ControlPort
	// (ip:port or unix:/path) and Cookie its cookie file.
	SOCKS   string `json:"socks"`
	Control string `json:"control,omitempty"`
	Cookie  string `json:"cookie,omitempty"`
	// State survives reboots and upgrades (StateDir); DownloadDir is
	// tmpfs.
	State       string `json:"state,omitempty"`
	ReleaseFile string `json:"release_file,omitempty"`
	DownloadDir string `json:"download_dir,omitempty"`
	Sysupgrade  string `json:"sysupgrade,omitempty"`
	MemInfo     string `json:"meminfo,omitempty"`
	RAMMargin   int64  `json:"ram_margin,omitempty"`

	Interval       Duration `json:"interval,omitempty"`
	FirstCheck     Duration `json:"first_check,omitempty"`
	TorPoll        Duration `json:"tor_poll,omitempty"`
	RequestTimeout Duration `json:"request_timeout,omitempty"`
	StallTimeout   Duration `json:"stall_timeout,omitempty"`

	// BuildEpoch (Unix seconds) is a floor for the clock: the router has
	// no RTC. The image's SOURCE_DATE_EPOCH.
	BuildEpoch int64 `json:"build_epoch,omitempty"`

	// Listen are the status page's addresses (ip:port, or :port for all).
	Listen []string `json:"listen,omitempty"`
	// Networks name the client subnets, for the status page's "your
	// network" line and the setup view's access check.
	Networks []Network `json:"networks,omitempty"`
	// Setup enables the first-boot setup view; nil leaves it off.
	Setup *Setup `json:"setup,omitempty"`
	// Brand is the status page's look; LogoFile its logo (SVG or PNG).
	Brand    *Brand `json:"brand,omitempty"`
	LogoFile string `json:"logo_file,omitempty"`
}

// Network is one of the router's networks.
type Network struct {
	// Name is tor_off, tor_medium or tor_max (any [a-z0-9_] name is
	// accepted; the status page explains those three).
	Name string `json:"name"`
	// Prefixes are the client subnets, e.g. "10.73.0.0/24".
	Prefixes []string `json:"prefixes"`
	// SSID is the network's Wi-Fi name, shown on the setup view.
	SSID string `json:"ssid,omitempty"`
}

// Setup says where the first-boot secrets are and to whom the daemon may
// show them: clients in Network's prefixes that reach it on Address,
// until DoneFile exists.
type Setup struct {
	Network     string `json:"network"`
	Address     string `json:"address"`
	SecretsFile string `json:"secrets_file"`
	DoneFile    string `json:"done_file"`
}

// Brand is what a vendor changes on the status page. Empty fields take
// torwrt's defaults.
type Brand struct {
	ProductName string `json:"product_name,omitempty"`
	Vendor      string `json:"vendor,omitempty"`
	Colors      Colors `json:"colors,omitzero"`
	Texts       Texts  `json:"texts,omitzero"`
	SupportURL  string `json:"support_url,omitempty"`
	// Language is the pages' language tag, e.g. "en" or "de-CH".
	Language string `json:"language,omitempty"`
}

// Colors are #rrggbb.
type Colors struct {
	Primary    string `json:"primary,omitempty"`
	Background string `json:"background,omitempty"`
	Text       string `json:"text,omitempty"`
}

// Texts are sentences on the status page.
type Texts struct {
	Tagline string `json:"tagline,omitempty"`
	Footer  string `json:"footer,omitempty"`
	// Optional replacements of the status page's sentences; empty keeps
	// the default wording.
	TorUp       string `json:"tor_up,omitempty"`
	TorStarting string `json:"tor_starting,omitempty"`
	TorDown     string `json:"tor_down,omitempty"`
	NetOff      string `json:"net_off,omitempty"`
	NetMedium   string `json:"net_medium,omitempty"`
	NetMax      string `json:"net_max,omitempty"`
	NetUnknown  string `json:"net_unknown,omitempty"`
}

// Fields lists the texts by their JSON names, for validation.
func (t Texts) Fields() map[string]string {
	return map[string]string{
		"tagline": t.Tagline, "footer": t.Footer, "tor_up": t.TorUp, "tor_starting": t.TorStarting,
		"tor_down": t.TorDown, "net_off": t.NetOff, "net_medium": t.NetMedium, "net_max": t.NetMax,
		"net_unknown": t.NetUnknown,
	}
}

// Release is /etc/torwrt/release.json: the running firmware, written into
// the image by the build. Its Build is what anti-rollback compares.
type Release struct {
	Product string `json:"product"`
	Version string `json:"version"`
	Build   uint64 `json:"build"`
}

// Duration is a Go duration written as a string: "6h", "90s".
type Duration time.Duration

// UnmarshalJSON reads "6h" and the like; negative durations are refused.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`want a string like "6h"`)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf(`duration %q: want a positive Go duration like "6h" or "90s"`, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalJSON writes the duration as time.Duration.String does.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// Or returns d, or def when d is zero.
func (d Duration) Or(def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return time.Duration(d)
}

// Decode parses a config strictly: one JSON object, no unknown keys, no
// trailing data, at most MaxSize bytes. It neither fills in defaults nor
// validates; see ApplyDefaults and Validate.
func Decode(b []byte) (*Config, error) {
	if len(b) > MaxSize {
		return nil, fmt.Errorf("%d bytes, at most %d allowed", len(b), MaxSize)
	}
	c := &Config{}
	if err := decodeStrict(b, c); err != nil {
		return nil, err
	}
	return c, nil
}

// DecodeRelease parses a release file strictly.
func DecodeRelease(b []byte) (Release, error) {
	var r Release
	if len(b) > 4<<10 {
		return r, errors.New("release file larger than 4 KiB")
	}
	err := decodeStrict(b, &r)
	return r, err
}

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// Encode writes c as the overlay renders it: indented, ending in a
// newline.
func Encode(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ApplyDefaults fills in what may be left out. Durations stay zero; use
// Duration.Or with the Default constants.
func (c *Config) ApplyDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.KeysDir, KeysDir)
	def(&c.BoardFile, BoardFile)
	def(&c.State, StateFile)
	def(&c.ReleaseFile, ReleasePath)
	if c.Threshold == 0 {
		c.Threshold = 1
	}
}

// PathField is one file or directory path of the config.
type PathField struct {
	Field string
	Value *string
}

// Paths returns every path field (set or not) in a fixed order, for
// checks and for tests that move a config under another root.
func (c *Config) Paths() []PathField {
	p := []PathField{
		{"keys_dir", &c.KeysDir}, {"board_file", &c.BoardFile}, {"cookie", &c.Cookie},
		{"state", &c.State}, {"release_file", &c.ReleaseFile}, {"download_dir", &c.DownloadDir},
		{"sysupgrade", &c.Sysupgrade}, {"meminfo", &c.MemInfo}, {"logo_file", &c.LogoFile},
	}
	if c.Setup != nil {
		p = append(p, PathField{"setup.secrets_file", &c.Setup.SecretsFile}, PathField{"setup.done_file", &c.Setup.DoneFile})
	}
	return p
}

// FieldError is one problem with one field.
type FieldError struct {
	Field string // JSON path, e.g. "networks[2].prefixes[0]"
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

type checker struct{ errs []error }

func (k *checker) addf(field, format string, args ...any) {
	k.errs = append(k.errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks every field and returns one FieldError per problem,
// joined. Fields that ApplyDefaults fills may be empty.
func (c *Config) Validate() error {
	var k checker
	k.mirrors(c.Mirrors)
	if c.ManifestName != "" && !isFileName(c.ManifestName) {
		k.addf("manifest_name", "%q must be a bare file name", c.ManifestName)
	}
	switch {
	case c.Channel == "":
		k.addf("channel", `the release channel whose manifests this router accepts (e.g. "stable") is required`)
	case !IsChannel(c.Channel):
		k.addf("channel", "%q must be 1-128 of A-Z a-z 0-9 . _ + , : ~ @ - (a manifest channel name)", c.Channel)
	}
	if c.Threshold < 0 || c.Threshold > 64 {
		k.addf("threshold", "%d must be between 1 and 64", c.Threshold)
	}
	if c.Board != "" && !isName(c.Board, 128) {
		k.addf("board", "%q must be a board name like glinet,gl-ar150", c.Board)
	}
	if c.SOCKS == "" {
		k.addf("socks", `Tor's SocksPort (e.g. "127.0.0.1:9050") is required; updates are only fetched through Tor`)
	} else if _, err := netip.ParseAddrPort(c.SOCKS); err != nil {
		k.addf("socks", "%q must be ip:port, so that not even the proxy's name is looked up", c.SOCKS)
	}
	if c.Control != "" {
		if p, ok := strings.CutPrefix(c.Control, "unix:"); ok {
			if !isAbsPath(p) {
				k.addf("control", "%q: unix: needs an absolute path", c.Control)
			}
		} else if _, err := netip.ParseAddrPort(c.Control); err != nil {
			k.addf("control", "%q must be ip:port or unix:/path", c.Control)
		}
	}
	for _, p := range c.Paths() {
		if *p.Value != "" && !isAbsPath(*p.Value) {
			k.addf(p.Field, "%q must be a clean absolute path", *p.Value)
		}
	}
	if c.RAMMargin < 0 {
		k.addf("ram_margin", "%d must not be negative", c.RAMMargin)
	}
	if c.BuildEpoch < 0 {
		k.addf("build_epoch", "%d must not be negative", c.BuildEpoch)
	}
	if c.LogoFile != "" && !strings.HasSuffix(c.LogoFile, ".svg") && !strings.HasSuffix(c.LogoFile, ".png") {
		k.addf("logo_file", "%q must end in .svg or .png", c.LogoFile)
	}
	listen := k.listen(c.Listen)
	k.networks(c.Networks)
	if c.Setup != nil {
		k.setup(c.Setup, c.Networks, listen)
	}
	if c.Brand != nil {
		k.brand(*c.Brand)
	}
	return errors.Join(k.errs...)
}

func (k *checker) mirrors(ms []string) {
	if len(ms) == 0 {
		k.addf("mirrors", "at least one mirror URL is required")
	}
	if len(ms) > maxMirrors {
		k.addf("mirrors", "%d mirrors, at most %d", len(ms), maxMirrors)
	}
	for i, m := range ms {
		f := "mirrors[" + strconv.Itoa(i) + "]"
		if len(m) > maxURL || !printable(m) || strings.ContainsRune(m, ' ') {
			k.addf(f, "%q must be a URL of at most %d printable characters", m, maxURL)
			continue
		}
		u, err := url.Parse(m)
		switch {
		case err != nil:
			k.addf(f, "%q is not a URL", m)
		case u.Scheme != "http" && u.Scheme != "https":
			k.addf(f, "%q: scheme must be http (onion services) or https", m)
		case u.Hostname() == "" || u.Opaque != "":
			k.addf(f, "%q must be an absolute URL with a host", m)
		case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
			k.addf(f, "%q must not carry user info, a query or a fragment", m)
		}
	}
}

// listen checks the listen addresses and returns the parsed ones.
func (k *checker) listen(ls []string) []netip.AddrPort {
	if len(ls) > maxListen {
		k.addf("listen", "%d addresses, at most %d", len(ls), maxListen)
	}
	var out []netip.AddrPort
	seen := map[string]bool{}
	for i, l := range ls {
		f := "listen[" + strconv.Itoa(i) + "]"
		ap, err := ParseListen(l)
		if err != nil {
			k.addf(f, "%q: %v", l, err)
			continue
		}
		if seen[ap.String()] {
			k.addf(f, "%q is listed twice", l)
		}
		seen[ap.String()] = true
		out = append(out, ap)
	}
	return out
}

// ParseListen reads "ip:port" or ":port" (every address: the returned
// address is unspecified, 0.0.0.0).
func ParseListen(s string) (netip.AddrPort, error) {
	if p, ok := strings.CutPrefix(s, ":"); ok {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return netip.AddrPort{}, errors.New("port must be 1-65535")
		}
		return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(n)), nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, errors.New("must be ip:port or :port")
	}
	if ap.Port() == 0 {
		return netip.AddrPort{}, errors.New("port must be 1-65535")
	}
	return ap, nil
}

func (k *checker) networks(ns []Network) {
	if len(ns) > maxNetworks {
		k.addf("networks", "%d networks, at most %d", len(ns), maxNetworks)
	}
	seen := map[string]bool{}
	var all []netip.Prefix
	for i, n := range ns {
		f := "networks[" + strconv.Itoa(i) + "]"
		if !isIdent(n.Name) {
			k.addf(f+".name", "%q must be 1-32 of a-z, 0-9 and _", n.Name)
		}
		if seen[n.Name] {
			k.addf(f+".name", "%q is listed twice", n.Name)
		}
		seen[n.Name] = true
		if len(n.Prefixes) == 0 || len(n.Prefixes) > maxPrefixes {
			k.addf(f+".prefixes", "need 1 to %d prefixes", maxPrefixes)
		}
		for j, p := range n.Prefixes {
			pf := f + ".prefixes[" + strconv.Itoa(j) + "]"
			pfx, err := netip.ParsePrefix(p)
			if err != nil {
				k.addf(pf, "%q must be a prefix like 10.73.0.0/24", p)
				continue
			}
			for _, q := range all {
				if q.Overlaps(pfx) {
					k.addf(pf, "%q overlaps %s: a client would be on two networks", p, q)
				}
			}
			all = append(all, pfx.Masked())
		}
		if n.SSID != "" && (len(n.SSID) > 32 || !printable(n.SSID)) {
			k.addf(f+".ssid", "%q must be 1-32 printable characters", n.SSID)
		}
	}
}

func (k *checker) setup(s *Setup, ns []Network, listen []netip.AddrPort) {
	var net *Network
	for i := range ns {
		if ns[i].Name == s.Network {
			net = &ns[i]
		}
	}
	if net == nil {
		k.addf("setup.network", "%q is not one of networks[].name", s.Network)
	}
	addr, err := netip.ParseAddr(s.Address)
	if err != nil {
		k.addf("setup.address", "%q must be the router's IP address on the setup network", s.Address)
	} else {
		if net != nil && !containsAddr(net.Subnets(), addr) {
			k.addf("setup.address", "%s is not inside network %s", addr, s.Network)
		}
		served := false
		for _, ap := range listen {
			if ap.Addr() == addr || ap.Addr().IsUnspecified() {
				served = true
			}
		}
		if !served {
			k.addf("setup.address", "%s is not among the listen addresses: the setup view would be unreachable", addr)
		}
	}
	if s.SecretsFile == "" {
		k.addf("setup.secrets_file", "required")
	}
	if s.DoneFile == "" {
		k.addf("setup.done_file", "required")
	}
	if s.DoneFile != "" && s.DoneFile == s.SecretsFile {
		k.addf("setup.done_file", "must not be the secrets file")
	}
}

func (k *checker) brand(b Brand) {
	k.text("brand.product_name", b.ProductName, 64)
	k.text("brand.vendor", b.Vendor, 128)
	for name, v := range b.Texts.Fields() {
		k.text("brand.texts."+name, v, maxText)
	}
	for _, c := range []struct{ f, v string }{
		{"brand.colors.primary", b.Colors.Primary},
		{"brand.colors.background", b.Colors.Background},
		{"brand.colors.text", b.Colors.Text},
	} {
		if c.v != "" && !IsColor(c.v) {
			k.addf(c.f, "%q must be a colour like #1a2b3c", c.v)
		}
	}
	if b.SupportURL != "" {
		u, err := url.Parse(b.SupportURL)
		if err != nil || len(b.SupportURL) > 300 || !printable(b.SupportURL) || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil {
			k.addf("brand.support_url", "%q must be an http(s) URL of at most 300 characters", b.SupportURL)
		}
	}
	if b.Language != "" && !IsLanguage(b.Language) {
		k.addf("brand.language", "%q must be a language tag like en or de-CH", b.Language)
	}
}

func (k *checker) text(field, v string, max int) {
	if len(v) > max {
		k.addf(field, "%d bytes, at most %d", len(v), max)
	}
	if !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		k.addf(field, "must be UTF-8 text without control characters")
	}
}

// Subnets returns the network's prefixes, masked; invalid ones (which
// Validate reports) are left out.
func (n Network) Subnets() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range n.Prefixes {
		if pfx, err := netip.ParsePrefix(p); err == nil {
			out = append(out, pfx.Masked())
		}
	}
	return out
}

// Network returns the network called name, or nil.
func (c *Config) Network(name string) *Network {
	for i := range c.Networks {
		if c.Networks[i].Name == name {
			return &c.Networks[i]
		}
	}
	return nil
}

func containsAddr(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// IsChannel reports whether s can be a manifest's channel: 1-128 bytes
// of [A-Za-z0-9._+,:~@-], the names internal/manifest accepts.
func IsChannel(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && strings.IndexByte("._+,:~@-", c) < 0 {
			return false
		}
	}
	return true
}

// IsColor reports whether s is #rrggbb.
func IsColor(s string) bool {
	if len(s) != 7 || s[0] != '#' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

// IsLanguage reports whether s is "xx" or "xx-YY".
func IsLanguage(s string) bool {
	lower := func(c byte) bool { return 'a' <= c && c <= 'z' }
	upper := func(c byte) bool { return 'A' <= c && c <= 'Z' }
	switch len(s) {
	case 2:
		return lower(s[0]) && lower(s[1])
	case 5:
		return lower(s[0]) && lower(s[1]) && s[2] == '-' && upper(s[3]) && upper(s[4])
	}
	return false
}

func isHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// isAbsPath: absolute, clean, no "." or ".." parts, no odd characters.
func isAbsPath(p string) bool {
	if len(p) < 2 || len(p) > maxPath || p[0] != '/' || strings.HasSuffix(p, "/") {
		return false
	}
	for _, part := range strings.Split(p[1:], "/") {
		if part == "" || part == "." || part == ".." || !isFileName(part) {
			return false
		}
	}
	return true
}

// isFileName: letters, digits and ._+- only, not starting with '-'.
func isFileName(s string) bool {
	if s == "" || len(s) > 128 || s[0] == '-' || s == "." || s == ".." {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isAlnum(c) || c == '.' || c == '_' || c == '+' || c == '-') {
			return false
		}
	}
	return true
}

// isName is a board name: letters, digits and ,._+- .
func isName(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isAlnum(c) || strings.IndexByte(",._+-", c) >= 0) {
			return false
		}
	}
	return true
}

func isIdent(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
