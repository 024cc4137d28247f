// Package brand loads a vendor's brand: brands/<id>/brand.yaml plus its
// assets. A brand changes names, looks, texts, update mirrors and release
// keys, never behaviour: everything it may set is a field here, validated,
// and a brand that loads is one the overlay and the status page accept.
//
// Every problem is an *Error naming the file, line and field, e.g.
//
//	brands/acme/brand.yaml:14: colors.primary: "#12345" is not a colour like #1a2b3c
//
// and Load reports all of them at once (errors.Join), so one run of
// `imgbuild brand check` tells a vendor everything to fix.
package brand

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/torwrt/torwrt/internal/status"
	"github.com/torwrt/torwrt/internal/usign"
)

// Brand is a loaded, validated brand.
type Brand struct {
	// ID is the brand's directory name under brands/.
	ID          string `yaml:"id" json:"id"`
	ProductName string `yaml:"product_name" json:"product_name"`
	Vendor      string `yaml:"vendor" json:"vendor"`
	// Hostname is the router's hostname (/etc/config/system).
	Hostname string `yaml:"hostname" json:"hostname"`
	// SSIDPrefix starts the three SSIDs: <prefix>-tor_off, -tor_medium,
	// -tor_max.
	SSIDPrefix string `yaml:"ssid_prefix" json:"ssid_prefix"`
	// SupportURL is linked from the status page.
	SupportURL string `yaml:"support_url" json:"support_url"`
	// Language is the language of the brand's texts (the status page's
	// lang attribute), e.g. en or pt-BR.
	Language string `yaml:"language" json:"language"`
	Banner   string `yaml:"banner" json:"banner"` // file name in the brand dir: /etc/banner
	Logo     string `yaml:"logo" json:"logo"`     // file name in the brand dir: SVG or PNG
	Colors   Colors `yaml:"colors" json:"colors"`
	Texts    Texts  `yaml:"texts" json:"texts"`
	// Mirrors are the update URLs, http://<v3 address>.onion: the
	// router's updater fetches only over Tor and has no TLS.
	Mirrors []string `yaml:"update_mirrors" json:"mirrors"`
	// KeyFiles are usign public key files in the brand dir. They are the
	// only keys in /etc/opkg/keys and the updater's trust list.
	KeyFiles  []string `yaml:"release_keys" json:"key_files"`
	Threshold int      `yaml:"threshold" json:"threshold"` // signatures an update needs
	Channel   string   `yaml:"channel" json:"channel"`     // release channel, e.g. stable
	// Country is the ISO 3166-1 alpha-2 code of the country the routers
	// are used in: the Wi-Fi regulatory domain (channels, power). Optional
	// here; a build without it (and without imgbuild build --country)
	// fails, since the router's Wi-Fi is never enabled without one.
	Country string `yaml:"country,omitempty" json:"country,omitempty"`

	Extra      []string           `yaml:"-" json:"-"`
	Dir        string             `yaml:"-" json:"-"` // the brand directory
	Keys       []*usign.PublicKey `yaml:"-" json:"-"` // parsed KeyFiles, in order
	BannerText string             `yaml:"-" json:"-"`
	LogoData   []byte             `yaml:"-" json:"-"`
	// LogoType is "svg" or "png"; LogoWidth and LogoHeight are the PNG's
	// pixels or the SVG's viewBox (0 when it has none).
	LogoType   string `yaml:"-" json:"-"`
	LogoWidth  int    `yaml:"-" json:"-"`
	LogoHeight int    `yaml:"-" json:"-"`
}

// Colors of the status page, #rrggbb. Text and primary (links, headings,
// the top stripe) must be readable on background: a contrast ratio of at
// least MinContrast (WCAG AA).
type Colors struct {
	Primary    string `yaml:"primary" json:"primary"`
	Background string `yaml:"background" json:"background"`
	Text       string `yaml:"text" json:"text"`
}

// Texts of the status page, plain text (no HTML). Tagline and footer are
// required; the others replace torwrt's English wording when set, e.g. to
// translate it. A network text must name its network (tor_off, ...) so
// people can match it to the Wi-Fi name.
type Texts struct {
	Tagline     string `yaml:"tagline" json:"tagline"`
	Footer      string `yaml:"footer" json:"footer"`
	TorUp       string `yaml:"tor_up,omitempty" json:"tor_up,omitempty"`
	TorStarting string `yaml:"tor_starting,omitempty" json:"tor_starting,omitempty"`
	TorDown     string `yaml:"tor_down,omitempty" json:"tor_down,omitempty"`
	NetOff      string `yaml:"net_off,omitempty" json:"net_off,omitempty"`
	NetMedium   string `yaml:"net_medium,omitempty" json:"net_medium,omitempty"`
	NetMax      string `yaml:"net_max,omitempty" json:"net_max,omitempty"`
	NetUnknown  string `yaml:"net_unknown,omitempty" json:"net_unknown,omitempty"`
}

// Limits on assets and values. The logo is inlined into the status page
// as base64, so its limit is the page's: the whole page stays under 30 KB.
const (
	MaxLogo       = status.MaxLogo
	MaxBanner     = 4 << 10
	MaxKeyFile    = 1 << 10
	MaxKeys       = 16
	MaxMirrors    = 16
	MaxMirrorLen  = 512
	MinContrast   = 4.5
	MaxLogoPixels = 1024 // PNG width and height
	MinLogoPixels = 16
)

var (
	idRE      = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	hostRE    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	ssidRE    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9 ._-]{0,19}[A-Za-z0-9._-])?$`)
	productRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._()+-]{0,47}$`)
	colorRE   = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)
	langRE    = regexp.MustCompile(`^[a-z]{2,3}(-[A-Z]{2})?$`)
	channelRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	assetRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
)

// Error is one problem, in File at Line (0: unknown) in Field.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Field, e.Msg)
}

// ErrNotFound is returned for an unknown brand.
var ErrNotFound = errors.New("unknown brand")

// List returns the ids of the brands under root, sorted.
func List(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(root, e.Name(), "brand.yaml")); e.IsDir() && err == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// Load reads brands/<id>/brand.yaml under root with its assets and
// validates all of it.
func Load(root, id string) (*Brand, error) {
	if !idRE.MatchString(id) {
		return nil, fmt.Errorf("%w %q: ids are 1 to 32 lowercase letters, digits and dashes", ErrNotFound, id)
	}
	dir := filepath.Join(root, id)
	path := filepath.Join(dir, "brand.yaml")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		known := ""
		if ids, err := List(root); err == nil && len(ids) > 0 {
			known = "; known brands: " + strings.Join(ids, ", ")
		}
		return nil, fmt.Errorf("%w %q: no %s (scaffold one with: imgbuild brand init %s)%s", ErrNotFound, id, path, id, known)
	}
	if err != nil {
		return nil, fmt.Errorf("reading brand: %w", err)
	}
	return parse(path, dir, id, data)
}

func parse(path, dir, id string, data []byte) (*Brand, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &Error{File: path, Line: yamlLine(err.Error()), Field: "(yaml)", Msg: yamlMsg(err.Error())}
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, &Error{File: path, Line: 1, Field: "(yaml)", Msg: "want a mapping of fields (id: ..., product_name: ...)"}
	}
	v := &validator{path: path, root: doc.Content[0]}
	v.unknownKeys(v.root, "", reflectFields)
	if len(v.errs) > 0 {
		return nil, errors.Join(v.errs...)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var b Brand
	if err := dec.Decode(&b); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			for _, e := range te.Errors {
				line := yamlLine(e)
				v.errs = append(v.errs, &Error{File: path, Line: line, Field: v.fieldAt(line), Msg: yamlMsg(e)})
			}
			return nil, errors.Join(v.errs...)
		}
		return nil, &Error{File: path, Line: yamlLine(err.Error()), Field: "(yaml)", Msg: yamlMsg(err.Error())}
	}
	b.Dir = dir
	if b.ID != id {
		v.addf("id", "%q does not match its directory %q", b.ID, id)
	}
	v.brand(&b)
	if len(v.errs) > 0 {
		// In file and line order, as an editor shows them.
		slices.SortStableFunc(v.errs, func(x, y error) int {
			a, b := x.(*Error), y.(*Error)
			if a.File != b.File {
				return strings.Compare(a.File, b.File)
			}
			return a.Line - b.Line
		})
		return nil, errors.Join(v.errs...)
	}
	return &b, nil
}

var lineRE = regexp.MustCompile(`line (\d+): `)

func yamlLine(msg string) int {
	m := lineRE.FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	n := 0
	fmt.Sscan(m[1], &n)
	return n
}

func yamlMsg(msg string) string {
	msg = strings.TrimPrefix(msg, "yaml: ")
	return lineRE.ReplaceAllString(msg, "")
}

// reflectFields lists the keys brand.yaml may hold, by mapping.
var reflectFields = map[string][]string{
	"": {"id", "product_name", "vendor", "hostname", "ssid_prefix", "support_url", "language", "banner", "logo",
		"colors", "texts", "update_mirrors", "release_keys", "threshold", "channel", "country"},
	"colors": {"primary", "background", "text"},
	"texts":  {"tagline", "footer", "tor_up", "tor_starting", "tor_down", "net_off", "net_medium", "net_max", "net_unknown"},
}

// validator collects every problem with its line.
type validator struct {
	path string
	root *yaml.Node
	errs []error
}

func (v *validator) unknownKeys(m *yaml.Node, prefix string, known map[string][]string) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, val := m.Content[i], m.Content[i+1]
		name := k.Value
		if prefix != "" {
			name = prefix + "." + k.Value
		}
		if !slices.Contains(known[prefix], k.Value) {
			v.errs = append(v.errs, &Error{File: v.path, Line: k.Line, Field: name, Msg: "unknown field; known: " + strings.Join(known[prefix], ", ")})
			continue
		}
		if seen[k.Value] {
			v.errs = append(v.errs, &Error{File: v.path, Line: k.Line, Field: name, Msg: "given twice"})
		}
		seen[k.Value] = true
		if _, nested := known[k.Value]; nested && prefix == "" {
			if val.Kind != yaml.MappingNode {
				v.errs = append(v.errs, &Error{File: v.path, Line: val.Line, Field: name, Msg: "want a mapping of " + strings.Join(known[k.Value], ", ")})
				continue
			}
			v.unknownKeys(val, k.Value, known)
		}
	}
}

// line finds the line of a dotted field ("colors.primary"), or of its
// closest present parent, or 0.
func (v *validator) line(field string) int {
	n, line := v.root, 0
	for _, part := range strings.Split(field, ".") {
		part, _, _ = strings.Cut(part, "[")
		found := false
		for i := 0; n != nil && n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == part {
				line, n, found = n.Content[i].Line, n.Content[i+1], true
				break
			}
		}
		if !found {
			return line
		}
	}
	// A list element: point at the element itself.
	if i := strings.LastIndex(field, "["); i >= 0 && n != nil && n.Kind == yaml.SequenceNode {
		var idx int
		if _, err := fmt.Sscanf(field[i:], "[%d]", &idx); err == nil && idx < len(n.Content) {
			return n.Content[idx].Line
		}
	}
	return line
}

// fieldAt names the field whose key or value is on line.
func (v *validator) fieldAt(line int) string {
	var walk func(n *yaml.Node, prefix string) string
	walk = func(n *yaml.Node, prefix string) string {
		for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			name := k.Value
			if prefix != "" {
				name = prefix + "." + name
			}
			if val.Kind == yaml.MappingNode {
				if f := walk(val, name); f != "" {
					return f
				}
			}
			if k.Line == line || val.Line == line {
				return name
			}
			for j, e := range val.Content {
				if val.Kind == yaml.SequenceNode && e.Line == line {
					return fmt.Sprintf("%s[%d]", name, j)
				}
			}
		}
		return ""
	}
	if f := walk(v.root, ""); f != "" {
		return f
	}
	return "(yaml)"
}

func (v *validator) addf(field, format string, a ...any) {
	v.errs = append(v.errs, &Error{File: v.path, Line: v.line(field), Field: field, Msg: fmt.Sprintf(format, a...)})
}

// addFile reports a problem in another file than brand.yaml (an asset).
func (v *validator) addFile(file, field, format string, a ...any) {
	v.errs = append(v.errs, &Error{File: file, Field: field, Msg: fmt.Sprintf(format, a...)})
}

func (v *validator) brand(b *Brand) {
	for _, c := range []struct {
		field, val string
		re         *regexp.Regexp
		hint       string
	}{
		{"id", b.ID, idRE, "1 to 32 lowercase letters, digits and dashes"},
		{"product_name", b.ProductName, productRE, "1 to 48 letters, digits, spaces and ._()+- starting with a letter or digit"},
		{"hostname", b.Hostname, hostRE, "a DNS label: lowercase letters, digits and inner dashes, at most 63"},
		{"ssid_prefix", b.SSIDPrefix, ssidRE, "1 to 21 letters, digits, spaces and ._- (the SSID adds \"-tor_medium\" and must fit 32 bytes)"},
		{"language", b.Language, langRE, "a language tag like en, de or pt-BR"},
		{"channel", b.Channel, channelRE, "lowercase letters, digits and dashes, e.g. stable"},
	} {
		switch {
		case c.val == "":
			v.addf(c.field, "missing: want %s", c.hint)
		case !c.re.MatchString(c.val):
			v.addf(c.field, "%q: want %s", c.val, c.hint)
		}
	}
	if b.Country != "" {
		if err := CheckCountry(b.Country); err != nil {
			v.addf("country", "%v", err)
		}
	}
	v.text("vendor", b.Vendor, 100, true)
	v.texts(b.Texts)
	v.colors(b.Colors)
	if b.SupportURL == "" {
		v.addf("support_url", "missing: want an https:// (or http://<address>.onion) URL people can get help at")
	} else if err := checkURL(b.SupportURL); err != nil {
		v.addf("support_url", "%v", err)
	}
	v.mirrors(b.Mirrors)
	if data, ok := v.asset(b, "banner", b.Banner, MaxBanner); ok {
		v.banner(filepath.Join(b.Dir, b.Banner), data)
		b.BannerText = string(data)
	}
	if data, ok := v.asset(b, "logo", b.Logo, MaxLogo); ok {
		file := filepath.Join(b.Dir, b.Logo)
		info, err := checkLogo(b.Logo, data)
		if err != nil {
			v.addFile(file, "logo", "%v", err)
		} else {
			b.LogoData, b.LogoType, b.LogoWidth, b.LogoHeight = data, info.typ, info.w, info.h
		}
	}
	v.keys(b)
	v.secrets(b.Dir)
}

// text checks one plain-text field.
func (v *validator) text(field, s string, max int, required bool) {
	switch {
	case s == "" && required:
		v.addf(field, "missing")
	case len(s) > max:
		v.addf(field, "is %d bytes, at most %d", len(s), max)
	case strings.ContainsAny(s, "<>"):
		v.addf(field, "%q: plain text only, no HTML markup (< and >)", s)
	case strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r == 0xfffd }) >= 0:
		v.addf(field, "%q: one line of text without control characters", s)
	case s != strings.TrimSpace(s):
		v.addf(field, "%q: no leading or trailing spaces", s)
	}
}

func (v *validator) texts(t Texts) {
	v.text("texts.tagline", t.Tagline, 120, true)
	v.text("texts.footer", t.Footer, 200, true)
	v.text("texts.tor_up", t.TorUp, 40, false)
	v.text("texts.tor_starting", t.TorStarting, 40, false)
	v.text("texts.tor_down", t.TorDown, 40, false)
	for _, n := range []struct{ field, val, net string }{
		{"texts.net_off", t.NetOff, "tor_off"}, {"texts.net_medium", t.NetMedium, "tor_medium"}, {"texts.net_max", t.NetMax, "tor_max"},
	} {
		v.text(n.field, n.val, 300, false)
		if n.val != "" && !strings.Contains(n.val, n.net) {
			v.addf(n.field, "must name the network (%q) so people can match it to the Wi-Fi name", n.net)
		}
	}
	v.text("texts.net_unknown", t.NetUnknown, 300, false)
}

func (v *validator) colors(c Colors) {
	ok := true
	for _, f := range []struct{ field, val string }{{"colors.primary", c.Primary}, {"colors.background", c.Background}, {"colors.text", c.Text}} {
		if !colorRE.MatchString(f.val) {
			v.addf(f.field, "%q is not a colour like \"#1a2b3c\" (quote it in YAML: # starts a comment)", f.val)
			ok = false
		}
	}
	if !ok {
		return
	}
	for _, f := range []struct{ field, val string }{{"colors.text", c.Text}, {"colors.primary", c.Primary}} {
		if r := Contrast(f.val, c.Background); r < MinContrast {
			v.addf(f.field, "%s on background %s has contrast %.1f:1, need at least %.1f:1 to be readable", f.val, c.Background, r, MinContrast)
		}
	}
}

func (v *validator) mirrors(ms []string) {
	switch {
	case len(ms) == 0:
		v.addf("update_mirrors", "missing: want at least one http://<v3 address>.onion URL")
	case len(ms) > MaxMirrors:
		v.addf("update_mirrors", "%d mirrors, at most %d", len(ms), MaxMirrors)
	}
	seen := map[string]bool{}
	for i, m := range ms {
		f := fmt.Sprintf("update_mirrors[%d]", i)
		if u, err := url.Parse(m); err == nil && u.Host != "" && (u.Scheme != "http" || !strings.HasSuffix(u.Hostname(), ".onion")) {
			v.addf(f, "%q: routers fetch updates only over Tor from http://<v3 address>.onion mirrors (the router's updater has no TLS; Tor authenticates and encrypts onion services end to end); serve this mirror as an onion service too", m)
		} else if err := checkURL(m); err != nil {
			v.addf(f, "%v", err)
		} else if seen[m] {
			v.addf(f, "%q listed twice", m)
		}
		seen[m] = true
	}
}

// checkURL accepts https:// URLs and http:// URLs of onion services (a
// valid v3 address): a plain http link to a clearnet host could be fed
// anything (the signatures still protect it, but not its privacy).
func checkURL(s string) error {
	if len(s) > MaxMirrorLen || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f || strings.ContainsRune(`"'\<>{}|^`+"`", r) }) {
		return fmt.Errorf("%q: want a URL of at most %d printable characters without spaces or quotes", s, MaxMirrorLen)
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an absolute URL with a host", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(s, "?") {
		return fmt.Errorf("%q: no user name, query or fragment", s)
	}
	if strings.HasSuffix(u.Hostname(), ".onion") {
		if err := checkOnion(u.Hostname()); err != nil {
			return fmt.Errorf("%q: %v", s, err)
		}
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && strings.HasSuffix(u.Hostname(), ".onion"):
	case u.Scheme == "http":
		return fmt.Errorf("%q: plain http is only allowed for .onion addresses; use https://", s)
	default:
		return fmt.Errorf("%q: scheme must be https (or http for a .onion address)", s)
	}
	return nil
}

// asset reads a file the brand names, which must sit in the brand dir.
func (v *validator) asset(b *Brand, field, name string, max int) ([]byte, bool) {
	if name == "" {
		v.addf(field, "missing: want a file name in %s", b.Dir)
		return nil, false
	}
	if !assetRE.MatchString(name) {
		v.addf(field, "%q: want a plain file name in %s (letters, digits, ._-; no directories)", name, b.Dir)
		return nil, false
	}
	p := filepath.Join(b.Dir, name)
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, os.ErrNotExist):
		v.addf(field, "%s: missing asset: no such file in %s", name, b.Dir)
		return nil, false
	case err != nil:
		v.addf(field, "%v", err)
		return nil, false
	case !fi.Mode().IsRegular():
		v.addf(field, "%s: must be a regular file, not %s", name, fi.Mode().Type())
		return nil, false
	case fi.Size() > int64(max):
		v.addf(field, "%s is %d bytes, limit %d", name, fi.Size(), max)
		return nil, false
	case fi.Size() == 0:
		v.addf(field, "%s is empty", name)
		return nil, false
	}
	data, err := os.ReadFile(p)
	if err != nil {
		v.addf(field, "%v", err)
		return nil, false
	}
	return data, true
}

func (v *validator) banner(file string, data []byte) {
	s := string(data)
	if !utf8.ValidString(s) {
		v.addFile(file, "banner", "must be UTF-8 text")
		return
	}
	for i, line := range strings.Split(s, "\n") {
		if j := strings.IndexFunc(line, func(r rune) bool { return r < 0x20 && r != '\t' || r == 0x7f }); j >= 0 {
			v.addFile(file, "banner", "line %d: control character %U (terminal escapes are not allowed)", i+1, line[j])
			return
		}
	}
}

func (v *validator) keys(b *Brand) {
	if len(b.KeyFiles) == 0 {
		v.addf("release_keys", "missing: want at least one usign public key file (make one with: imgbuild keygen -o ~/keys/%s-release; copy only the .pub here)", b.ID)
	}
	if len(b.KeyFiles) > MaxKeys {
		v.addf("release_keys", "%d keys, at most %d", len(b.KeyFiles), MaxKeys)
	}
	seen := map[usign.Fingerprint]string{}
	for i, kf := range b.KeyFiles {
		field := fmt.Sprintf("release_keys[%d]", i)
		data, ok := v.asset(b, field, kf, MaxKeyFile)
		if !ok {
			continue
		}
		file := filepath.Join(b.Dir, kf)
		if isSecretKey(data) {
			v.addFile(file, field, "is a usign SECRET key, not a public key: list the .pub file and move the secret key out of the repository")
			continue
		}
		k, err := usign.ParsePublicKey(data)
		if err != nil {
			v.addFile(file, field, "not a usign public key (want the .pub that imgbuild keygen or usign -G writes): %v", err)
			continue
		}
		if prev, dup := seen[k.Fingerprint]; dup {
			v.addf(field, "%s: key %s is also in %s; each key counts once toward the threshold", kf, k.Fingerprint, prev)
			continue
		}
		seen[k.Fingerprint] = kf
		b.Keys = append(b.Keys, k)
	}
	if n := len(b.KeyFiles); b.Threshold < 1 || (n > 0 && b.Threshold > n) {
		v.addf("threshold", "%d: want between 1 and the number of release keys (%d)", b.Threshold, n)
	}
}

// secrets refuses a brand directory that holds a secret key: brands are
// committed, secret keys never are.
func (v *validator) secrets(dir string) {
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil || fi.Size() > MaxKeyFile {
			return nil
		}
		data, err := os.ReadFile(p)
		if err == nil && isSecretKey(data) || strings.HasSuffix(p, ".sec") {
			v.addFile(p, "release_keys", "a secret key file in the brand directory: move it out of the repository (it signs releases; only .pub files belong here)")
		}
		return nil
	})
}

// isSecretKey says whether data is a usign/signify secret key file,
// encrypted or not.
func isSecretKey(data []byte) bool {
	if _, err := usign.ParseSecretKey(data); err == nil || errors.Is(err, usign.ErrEncryptedKey) {
		return true
	}
	_, rest, ok := bytes.Cut(data, []byte("\n"))
	if !ok || !bytes.HasPrefix(data, []byte("untrusted comment: ")) {
		return false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(rest)))
	return err == nil && len(raw) == 104 && string(raw[:2]) == "Ed"
}

// Status is the brand as the status page takes it.
func (b *Brand) Status() status.Brand {
	return status.Brand{
		ProductName: b.ProductName,
		Vendor:      b.Vendor,
		Language:    b.Language,
		Logo:        bytes.Clone(b.LogoData),
		LogoDataURI: status.LogoDataURI(b.LogoData),
		Colors:      status.Colors{Accent: b.Colors.Primary, Background: b.Colors.Background, Text: b.Colors.Text},
		SupportURL:  b.SupportURL,
		Texts: status.Texts{
			Tagline: b.Texts.Tagline, Footer: b.Texts.Footer,
			TorUp: b.Texts.TorUp, TorStarting: b.Texts.TorStarting, TorDown: b.Texts.TorDown,
			NetOff: b.Texts.NetOff, NetMedium: b.Texts.NetMedium, NetMax: b.Texts.NetMax, NetUnknown: b.Texts.NetUnknown,
		},
	}
}

// Warnings are things a brand may ship with but probably should not:
// example addresses and placeholder keys. brand check prints them.
func (b *Brand) Warnings() []string {
	var w []string
	example := func(field, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			return
		}
		h := u.Hostname()
		for _, d := range []string{"example.com", "example.net", "example.org", "example"} {
			if h == d || strings.HasSuffix(h, "."+d) {
				w = append(w, fmt.Sprintf("%s: %s is an example address; replace it before a release", field, raw))
				return
			}
		}
	}
	example("support_url", b.SupportURL)
	for i, m := range b.Mirrors {
		example(fmt.Sprintf("update_mirrors[%d]", i), m)
	}
	for i, k := range b.Keys {
		if strings.Contains(strings.ToLower(k.Comment), "placeholder") || strings.Contains(strings.ToLower(k.Comment), "throwaway") {
			w = append(w, fmt.Sprintf("release_keys[%d]: %s (%s) is marked %q: use your own release key for a release", i, b.KeyFiles[i], k.Fingerprint, k.Comment))
		}
	}
	for i, m := range b.Mirrors {
		for n := 1; n <= MaxMirrors; n++ {
			if strings.Contains(m, "//"+PlaceholderOnion(b.ID, n)+"/") {
				w = append(w, fmt.Sprintf("update_mirrors[%d]: %s is a placeholder onion address (nobody holds its key); put your own onion service here before a release", i, m))
			}
		}
	}
	if len(b.Mirrors) == 1 {
		w = append(w, "update_mirrors: only one mirror; routers cannot update while it is down")
	}
	if b.Country == "" {
		w = append(w, "country: not set; every build needs --country XX (the Wi-Fi regulatory domain): set the country your routers are used in")
	}
	return w
}

// SSIDs are the three Wi-Fi names the brand gives the router.
func (b *Brand) SSIDs() []string {
	return []string{b.SSIDPrefix + "-tor_off", b.SSIDPrefix + "-tor_medium", b.SSIDPrefix + "-tor_max"}
}
