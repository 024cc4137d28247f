package brand

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/torwrt/torwrt/internal/usign"
)

// Scaffold is what `imgbuild brand init` asks for; empty fields get
// defaults derived from ID.
type Scaffold struct {
	ID          string
	ProductName string
	Vendor      string
	Primary     string // #rrggbb
	// Country is the Wi-Fi country (ISO 3166-1 alpha-2); empty writes a
	// commented-out line the vendor must fill in before a build.
	Country string
	// KeyName is the public key's file name in the brand dir and
	// PublicKey its contents (a usign .pub file).
	KeyName   string
	PublicKey []byte
}

// Create writes brands/<ID>/ under root: a commented brand.yaml, a banner,
// a simple SVG logo and the public key, then loads it to prove it valid.
// It refuses to touch an existing directory, and writes into a temporary
// sibling first so a failure leaves nothing behind.
func Create(root string, s Scaffold) (*Brand, error) {
	if !idRE.MatchString(s.ID) {
		return nil, fmt.Errorf("brand id %q: want 1 to 32 lowercase letters, digits and dashes", s.ID)
	}
	if s.ProductName == "" {
		s.ProductName = titleCase(s.ID)
	}
	if s.Vendor == "" {
		s.Vendor = s.ProductName
	}
	if s.Primary == "" {
		s.Primary = "#2b5a9e"
	}
	if !colorRE.MatchString(s.Primary) {
		return nil, fmt.Errorf("primary colour %q: want #rrggbb", s.Primary)
	}
	if r := Contrast(s.Primary, "#ffffff"); r < MinContrast {
		return nil, fmt.Errorf("primary colour %s has contrast %.1f:1 on the white background, need at least %.1f:1; pick a darker one", s.Primary, r, MinContrast)
	}
	if s.Country != "" {
		if err := CheckCountry(s.Country); err != nil {
			return nil, fmt.Errorf("country: %w", err)
		}
	}
	if !assetRE.MatchString(s.KeyName) || !strings.HasSuffix(s.KeyName, ".pub") {
		return nil, fmt.Errorf("public key file name %q: want a plain file name ending in .pub", s.KeyName)
	}
	if isSecretKey(s.PublicKey) {
		return nil, errors.New("that is a usign SECRET key; a brand holds only public keys (.pub)")
	}
	pub, err := usign.ParsePublicKey(s.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("public key: %w", err)
	}
	dir := filepath.Join(root, s.ID)
	if _, err := os.Lstat(dir); err == nil {
		return nil, fmt.Errorf("%s already exists; edit it, or remove it first", dir)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(root, "."+s.ID+"-new-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	host := strings.Trim(s.ID, "-")
	ssid := ssidPrefix(s.ProductName, s.ID)
	files := map[string][]byte{
		"brand.yaml": []byte(scaffoldYAML(s, host, ssid, pub)),
		"banner.txt": []byte(scaffoldBanner(s.ProductName)),
		"logo.svg":   []byte(scaffoldLogo(s.ProductName, s.Primary)),
		s.KeyName:    pub.Marshal(),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(tmp, name), data, 0o644); err != nil {
			return nil, err
		}
		if err := os.Chmod(filepath.Join(tmp, name), 0o644); err != nil {
			return nil, err
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	// Validate before the directory appears under its name.
	b, err := parse(filepath.Join(dir, "brand.yaml"), tmp, s.ID, files["brand.yaml"])
	if err != nil {
		return nil, fmt.Errorf("the scaffold does not validate (a bug in imgbuild brand init): %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	b.Dir = dir
	return b, nil
}

func titleCase(id string) string {
	parts := strings.FieldsFunc(id, func(r rune) bool { return r == '-' })
	for i, p := range parts {
		parts[i] = strings.ToUpper(p[:1]) + p[1:]
	}
	return strings.Join(parts, " ")
}

// ssidPrefix makes a valid SSID prefix from the product name, or the id.
func ssidPrefix(product, id string) string {
	var b strings.Builder
	for _, r := range product {
		if r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			b.WriteRune(r)
		}
	}
	p := b.String()
	if len(p) > 21 {
		p = p[:21]
	}
	if !ssidRE.MatchString(p) {
		p = id[:min(len(id), 21)]
		p = strings.TrimRight(p, "-")
	}
	return p
}

// q quotes a string for YAML (a JSON string is a YAML double-quoted one).
func q(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func scaffoldYAML(s Scaffold, host, ssid string, pub *usign.PublicKey) string {
	return `# Brand ` + s.ID + `: names, looks, texts, update mirrors and release keys.
# A brand changes nothing else: the Tor policy, firewall and updater are the
# project's. Every file named below sits in this directory, which is
# committed: never put a secret key (.sec) here.
#
#   check it:       imgbuild brand check ` + s.ID + `
#   build with it:  imgbuild build --profile gl-ar150 --brand ` + s.ID + ` --key RELEASE.sec
#   guide:          docs/rebranding.md

# The directory name.
id: ` + s.ID + `
# Letters, digits, spaces and ._()+-, at most 48.
product_name: ` + q(s.ProductName) + `
vendor: ` + q(s.Vendor) + `
# The router's hostname: a DNS label.
hostname: ` + host + `
# The SSIDs are <prefix>-tor_off, <prefix>-tor_medium and <prefix>-tor_max.
ssid_prefix: ` + q(ssid) + `
# The language of the texts below, e.g. en, de or pt-BR.
language: en
# The release channel: routers accept only update manifests of this channel.
channel: stable
` + scaffoldCountry(s.Country) + `
# Linked from the status page: https:// or http://<v3 address>.onion.
support_url: "https://support.example.com/` + s.ID + `" # CHANGE ME

# /etc/banner (at most 4 KiB of text) and the status page logo (SVG or PNG,
# at most 12 KiB, shown at 48x48 px).
banner: banner.txt
logo: logo.svg

# Status page colours, "#rrggbb" (quoted: # starts a YAML comment). text and
# primary need a contrast of at least 4.5:1 on background.
colors:
  primary: "` + s.Primary + `"
  background: "#ffffff"
  text: "#1c1c1c"

# Status page texts, plain text. tagline and footer are required; the others
# replace torwrt's English wording (e.g. to translate it). A net_* text must
# name its network (tor_off, tor_medium or tor_max).
texts:
  tagline: "Tor for everything behind this router"
  footer: "This page makes no requests to other sites and needs no JavaScript."
  # tor_up: "Tor is up"
  # tor_starting: "Tor is starting"
  # tor_down: "Tor is down"
  # net_off: "Normal network (tor_off): ..."
  # net_medium: "Transparent Tor (tor_medium): ..."
  # net_max: "SOCKS only (tor_max): ..."
  # net_unknown: "You are not on one of this router's own networks."

# Where routers look for updates: http://<v3 address>.onion only (routers
# fetch over Tor, and their updater has no TLS). This one is a placeholder.
update_mirrors:
  - "http://` + PlaceholderOnion(s.ID, 1) + `/releases" # CHANGE ME

# usign public keys (.pub files here). They are the only keys in
# /etc/opkg/keys and the updater's trust list; an update needs threshold of
# their signatures. This one is ` + pub.Fingerprint.String() + `.
release_keys:
  - ` + s.KeyName + `
threshold: 1
`
}

// scaffoldCountry is the country field: set when the vendor gave one, else
// a commented line (builds then fail until it is set or --country given).
func scaffoldCountry(c string) string {
	const doc = `# The Wi-Fi country: ISO 3166-1 alpha-2 code of the country the routers are
# used in (channels and transmit power follow its rules). Without it a build
# fails (or needs imgbuild build --country XX): the router never enables
# Wi-Fi without a country.
`
	if c == "" {
		return doc + "# country: DE # CHANGE ME, then remove the leading #"
	}
	return doc + "country: " + c + " # " + CountryName(c)
}

func scaffoldBanner(product string) string {
	line := strings.Repeat("=", min(60, max(40, len(product)+8)))
	return " " + line + "\n    " + product + "\n    all traffic through Tor - signed updates only\n " + line + "\n"
}

func scaffoldLogo(product, primary string) string {
	initial := "T"
	for _, r := range product {
		if r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			initial = strings.ToUpper(string(r))
			break
		}
	}
	return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="64" height="64">` +
		`<rect width="64" height="64" rx="14" fill="` + primary + `"/>` +
		`<circle cx="32" cy="32" r="21" fill="none" stroke="#fff" stroke-width="3" opacity=".35"/>` +
		`<text x="32" y="44" font-family="sans-serif" font-size="34" font-weight="700" text-anchor="middle" fill="#fff">` + initial + `</text></svg>` + "\n"
}
