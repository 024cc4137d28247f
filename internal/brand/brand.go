// Package brand loads a vendor's brand: brands/<id>/brand.yaml plus its
// assets. A brand changes names, looks, update mirrors and release keys,
// never behaviour: everything it may set is a field here, validated.
package brand

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/torwrt/torwrt/internal/usign"
)

// Brand is a loaded, validated brand.
type Brand struct {
	ID          string             `yaml:"id" json:"id"`
	ProductName string             `yaml:"product_name" json:"product_name"`
	Vendor      string             `yaml:"vendor" json:"vendor"`
	Hostname    string             `yaml:"hostname" json:"hostname"`
	SSIDPrefix  string             `yaml:"ssid_prefix" json:"ssid_prefix"`
	SupportURL  string             `yaml:"support_url" json:"support_url"`
	Language    string             `yaml:"language" json:"language"`
	Banner      string             `yaml:"banner" json:"banner"`          // file name in the brand dir
	Logo        string             `yaml:"logo" json:"logo"`              // file name (svg or png)
	Colors      Colors             `yaml:"colors" json:"colors"`          //
	Texts       Texts              `yaml:"texts" json:"texts"`            //
	Mirrors     []string           `yaml:"update_mirrors" json:"mirrors"` // https:// or http://*.onion
	KeyFiles    []string           `yaml:"release_keys" json:"key_files"` // usign .pub files in the brand dir
	Threshold   int                `yaml:"threshold" json:"threshold"`    //
	Channel     string             `yaml:"channel" json:"channel"`        //
	Extra       []string           `yaml:"-" json:"-"`                    //
	Dir         string             `yaml:"-" json:"-"`                    //
	Keys        []*usign.PublicKey `yaml:"-" json:"-"`
	BannerText  string             `yaml:"-" json:"-"`
	LogoData    []byte             `yaml:"-" json:"-"`
}

// Colors of the status page.
type Colors struct {
	Primary    string `yaml:"primary" json:"primary"`
	Background string `yaml:"background" json:"background"`
	Text       string `yaml:"text" json:"text"`
}

// Texts of the status page.
type Texts struct {
	Tagline string `yaml:"tagline" json:"tagline"`
	Footer  string `yaml:"footer" json:"footer"`
}

// Limits on assets: the status page must stay small.
const (
	MaxLogo   = 16 * 1024
	MaxBanner = 4 * 1024
)

var (
	idRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	hostRE    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	ssidRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 _.-]{0,19}$`)
	colorRE   = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)
	langRE    = regexp.MustCompile(`^[a-z]{2}(-[A-Z]{2})?$`)
	channelRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	textRE    = regexp.MustCompile("^[^<>&\"'`\\\\\\x00-\\x1f]{0,200}$")
	assetRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// Error names the file and field a problem is in.
type Error struct{ File, Field, Msg string }

func (e *Error) Error() string { return fmt.Sprintf("%s: %s: %s", e.File, e.Field, e.Msg) }

// ErrNotFound is returned for an unknown brand.
var ErrNotFound = errors.New("unknown brand")

// Load reads brands/<id>/brand.yaml under root with its assets.
func Load(root, id string) (*Brand, error) {
	if !idRE.MatchString(id) {
		return nil, fmt.Errorf("%w %q: ids are lowercase letters, digits and dashes", ErrNotFound, id)
	}
	dir := filepath.Join(root, id)
	path := filepath.Join(dir, "brand.yaml")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w %q: no %s (scaffold one with: imgbuild brand init %s)", ErrNotFound, id, path, id)
	}
	if err != nil {
		return nil, err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var b Brand
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	b.Dir = dir
	if b.ID != id {
		return nil, &Error{path, "id", fmt.Sprintf("%q does not match its directory %q", b.ID, id)}
	}
	if err := b.validate(path); err != nil {
		return nil, err
	}
	return &b, nil
}

func (b *Brand) validate(path string) error {
	fail := func(field, format string, a ...any) error {
		return &Error{path, field, fmt.Sprintf(format, a...)}
	}
	for _, c := range []struct {
		field, val string
		re         *regexp.Regexp
	}{
		{"product_name", b.ProductName, textRE}, {"vendor", b.Vendor, textRE},
		{"hostname", b.Hostname, hostRE}, {"ssid_prefix", b.SSIDPrefix, ssidRE},
		{"language", b.Language, langRE}, {"channel", b.Channel, channelRE},
	} {
		if c.val == "" {
			return fail(c.field, "missing")
		}
		if !c.re.MatchString(c.val) {
			return fail(c.field, "%q must match %s", c.val, c.re)
		}
	}
	for _, c := range []struct{ field, val string }{{"texts.tagline", b.Texts.Tagline}, {"texts.footer", b.Texts.Footer}} {
		if !textRE.MatchString(c.val) {
			return fail(c.field, "%q: at most 200 characters, no markup or quotes", c.val)
		}
	}
	for _, c := range []struct{ field, val string }{{"colors.primary", b.Colors.Primary}, {"colors.background", b.Colors.Background}, {"colors.text", b.Colors.Text}} {
		if !colorRE.MatchString(c.val) {
			return fail(c.field, "%q is not a colour like #1a2b3c", c.val)
		}
	}
	if err := checkURL(b.SupportURL, false); err != nil {
		return fail("support_url", "%v", err)
	}
	if len(b.Mirrors) == 0 {
		return fail("update_mirrors", "at least one mirror is needed")
	}
	for _, m := range b.Mirrors {
		if err := checkURL(m, true); err != nil {
			return fail("update_mirrors", "%v", err)
		}
	}
	readAsset := func(field, name string, max int) ([]byte, error) {
		if !assetRE.MatchString(name) {
			return nil, fail(field, "%q must be a file name in %s", name, b.Dir)
		}
		p := filepath.Join(b.Dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fail(field, "%v", err)
		}
		if fi.Size() > int64(max) {
			return nil, fail(field, "%s is %d bytes, limit %d", name, fi.Size(), max)
		}
		return os.ReadFile(p)
	}
	banner, err := readAsset("banner", b.Banner, MaxBanner)
	if err != nil {
		return err
	}
	b.BannerText = string(banner)
	logo, err := readAsset("logo", b.Logo, MaxLogo)
	if err != nil {
		return err
	}
	switch {
	case strings.HasSuffix(b.Logo, ".svg") && bytes.Contains(logo, []byte("<svg")):
		if bytes.Contains(bytes.ToLower(logo), []byte("<script")) || bytes.Contains(logo, []byte("href=\"http")) {
			return fail("logo", "%s: SVG must not contain scripts or external references", b.Logo)
		}
	case strings.HasSuffix(b.Logo, ".png") && bytes.HasPrefix(logo, []byte("\x89PNG\r\n\x1a\n")):
	default:
		return fail("logo", "%s is not an SVG or PNG file", b.Logo)
	}
	b.LogoData = logo
	if len(b.KeyFiles) == 0 {
		return fail("release_keys", "at least one usign public key file is needed")
	}
	seen := map[usign.Fingerprint]bool{}
	for _, kf := range b.KeyFiles {
		data, err := readAsset("release_keys", kf, 1024)
		if err != nil {
			return err
		}
		k, err := usign.ParsePublicKey(data)
		if err != nil {
			return fail("release_keys", "%s is not a usign public key: %v", kf, err)
		}
		if seen[k.Fingerprint] {
			return fail("release_keys", "%s: key %s listed twice", kf, k.Fingerprint)
		}
		seen[k.Fingerprint] = true
		b.Keys = append(b.Keys, k)
	}
	if b.Threshold < 1 || b.Threshold > len(b.Keys) {
		return fail("threshold", "%d: must be between 1 and the number of release keys (%d)", b.Threshold, len(b.Keys))
	}
	return nil
}

func checkURL(s string, mirror bool) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q: no credentials, query or fragment", s)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && strings.HasSuffix(u.Hostname(), ".onion"):
	default:
		return fmt.Errorf("%q: must be https:// or http://<address>.onion", s)
	}
	return nil
}
