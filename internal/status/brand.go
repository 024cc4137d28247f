package status

import (
	"bytes"
	"encoding/base64"
	"net/url"
	"strings"
)

// Brand is what a vendor changes without forking: names, logo, colours,
// support link and texts. Zero fields take the torwrt defaults, and values
// that could break out of their place in the page (a colour that is not a
// colour, a logo that is not an image) are replaced by the defaults too.
type Brand struct {
	ProductName string `json:"product_name"`
	Vendor      string `json:"vendor"`
	// Language is the language tag of the texts (the page's lang
	// attribute), e.g. "en" or "pt-BR".
	Language string `json:"language,omitempty"`
	// Logo is an SVG or PNG file's bytes; LogoDataURI is a ready
	// "data:image/png;base64,..." or "data:image/svg+xml;base64,..." URI.
	// The logo is inlined as an <img>, so an SVG cannot run scripts, and
	// nothing is fetched from anywhere.
	Logo        []byte `json:"-"`
	LogoDataURI string `json:"logo_data_uri,omitempty"`
	Colors      Colors `json:"colors"`
	// SupportURL is shown as a plain link; the page itself loads nothing.
	SupportURL string `json:"support_url,omitempty"`
	Texts      Texts  `json:"texts"`
}

// Colors are CSS hex colours (#rgb or #rrggbb).
type Colors struct {
	Accent     string `json:"accent"`
	Background string `json:"background"`
	Text       string `json:"text"`
	Good       string `json:"good"`
	Warn       string `json:"warn"`
	Bad        string `json:"bad"`
}

// Texts are the sentences on the page.
type Texts struct {
	Tagline     string `json:"tagline"`
	TorUp       string `json:"tor_up"`
	TorStarting string `json:"tor_starting"`
	TorDown     string `json:"tor_down"`
	// One line per network the visitor may be on.
	NetOff     string `json:"net_off"`
	NetMedium  string `json:"net_medium"`
	NetMax     string `json:"net_max"`
	NetUnknown string `json:"net_unknown"`
	Footer     string `json:"footer"`
}

// MaxLogo bounds the logo so the whole page stays under 30 KB.
const MaxLogo = 12 << 10

// DefaultBrand is torwrt's own look.
func DefaultBrand() Brand {
	return Brand{
		ProductName: "torwrt",
		Vendor:      "the torwrt project",
		Logo:        []byte(defaultLogo),
		Colors: Colors{
			Accent: "#7d4698", Background: "#ffffff", Text: "#1c1c1c",
			Good: "#1a7f37", Warn: "#9a6700", Bad: "#cf222e",
		},
		Texts: Texts{
			Tagline:     "A router that sends your traffic through Tor.",
			TorUp:       "Tor is up",
			TorStarting: "Tor is starting",
			TorDown:     "Tor is down",
			NetOff:      "Normal network (tor_off): your traffic goes straight to the internet, NOT through Tor.",
			NetMedium:   "Transparent Tor (tor_medium): all your TCP connections and DNS go through Tor; everything else is blocked.",
			NetMax:      "SOCKS only (tor_max): no direct internet; apps reach the internet only through the router's Tor SOCKS port.",
			NetUnknown:  "You are not on one of this router's own networks.",
			Footer:      "This page makes no requests to other sites and needs no JavaScript.",
		},
	}
}

// A small onion in the default accent colour.
const defaultLogo = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 48 48" width="48" height="48">` +
	`<circle cx="24" cy="26" r="20" fill="#7d4698"/><circle cx="24" cy="26" r="14" fill="#fff"/>` +
	`<circle cx="24" cy="26" r="9" fill="#7d4698"/><circle cx="24" cy="26" r="4" fill="#fff"/>` +
	`<path d="M24 6c2-3 5-4 8-4-2 2-4 4-5 7z" fill="#1a7f37"/></svg>`

// normalized returns b with defaults filled in and unsafe values dropped.
func (b Brand) normalized() Brand {
	d := DefaultBrand()
	str := func(v *string, def string, max int) {
		if *v == "" || len(*v) > max || strings.ContainsAny(*v, "\x00\r\n") {
			*v = def
		}
	}
	str(&b.ProductName, d.ProductName, 64)
	str(&b.Vendor, d.Vendor, 128)
	if !isLangTag(b.Language) {
		b.Language = "en"
	}
	col := func(v *string, def string) {
		if !isHexColor(*v) {
			*v = def
		}
	}
	col(&b.Colors.Accent, d.Colors.Accent)
	col(&b.Colors.Background, d.Colors.Background)
	col(&b.Colors.Text, d.Colors.Text)
	col(&b.Colors.Good, d.Colors.Good)
	col(&b.Colors.Warn, d.Colors.Warn)
	col(&b.Colors.Bad, d.Colors.Bad)
	t, dt := &b.Texts, d.Texts
	for _, f := range []struct {
		v   *string
		def string
	}{
		{&t.Tagline, dt.Tagline}, {&t.TorUp, dt.TorUp}, {&t.TorStarting, dt.TorStarting}, {&t.TorDown, dt.TorDown},
		{&t.NetOff, dt.NetOff}, {&t.NetMedium, dt.NetMedium}, {&t.NetMax, dt.NetMax}, {&t.NetUnknown, dt.NetUnknown},
		{&t.Footer, dt.Footer},
	} {
		str(f.v, f.def, 400)
	}
	if u, err := url.Parse(b.SupportURL); b.SupportURL != "" && (err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(b.SupportURL) > 300) {
		b.SupportURL = ""
	}
	b.LogoDataURI = logoURI(b.Logo, b.LogoDataURI)
	if b.LogoDataURI == "" {
		b.LogoDataURI = logoURI([]byte(defaultLogo), "")
	}
	b.Logo = nil
	return b
}

// LogoDataURI returns the data URI the page shows logo as, or "" if logo
// is not a PNG or SVG of at most MaxLogo bytes.
func LogoDataURI(logo []byte) string { return logoURI(logo, "") }

// isLangTag accepts tags like en, de, pt-BR.
func isLangTag(s string) bool {
	main, region, hasRegion := strings.Cut(s, "-")
	if len(main) < 2 || len(main) > 3 || hasRegion && len(region) != 2 {
		return false
	}
	for _, c := range main {
		if c < 'a' || c > 'z' {
			return false
		}
	}
	for _, c := range region {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

func isHexColor(s string) bool {
	if len(s) != 4 && len(s) != 7 || s[0] != '#' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// logoURI turns logo bytes or a given data URI into a checked data URI,
// or "" if neither is a small PNG or SVG.
func logoURI(logo []byte, uri string) string {
	if len(logo) > 0 && len(logo) <= MaxLogo {
		switch {
		case bytes.HasPrefix(logo, []byte("\x89PNG\r\n\x1a\n")):
			return "data:image/png;base64," + base64.StdEncoding.EncodeToString(logo)
		case bytes.Contains(logo[:min(len(logo), 512)], []byte("<svg")):
			return "data:image/svg+xml;base64," + base64.StdEncoding.EncodeToString(logo)
		}
	}
	for _, prefix := range []string{"data:image/png;base64,", "data:image/svg+xml;base64,"} {
		if rest, ok := strings.CutPrefix(uri, prefix); ok {
			raw, err := base64.StdEncoding.Strict().DecodeString(rest)
			if err == nil && len(raw) <= MaxLogo {
				return uri
			}
		}
	}
	return ""
}
