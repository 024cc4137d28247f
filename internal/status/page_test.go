package status

import (
	"net/netip"
	"strings"
	"testing"
)

func TestGlance(t *testing.T) {
	p := NewPage(Brand{}, testNetworks())
	cases := []struct {
		name  string
		tor   Tor
		addr  string
		wants []string
	}{
		{"up, current, transparent", Tor{State: TorUp, Progress: 100, Version: "0.4.8.16", Recommendation: "recommended"}, "192.168.2.5",
			[]string{`<span class="v">0.4.8.16</span><span class="pill good">up to date</span>`, `<span class="v">tor_medium</span><span class="pill good">all through Tor</span>`, "Connected to the Tor network.<", `<li class="here"><em>you are here</em>Transparent Tor (tor_medium)`}},
		{"up, obsolete, off", Tor{State: TorUp, Progress: 100, Version: "0.4.7.1", Recommendation: "obsolete"}, "192.168.1.5",
			[]string{`<span class="pill bad">outdated: updating</span>`, `<span class="pill bad">NOT through Tor</span>`, "but this network (tor_off) does not use it", `<dd class="bad">NO: obsolete`}},
		{"starting, socks", Tor{State: TorStarting, Progress: 130, Version: "0.4.8.16", Recommendation: "unknown"}, "192.168.3.5",
			[]string{`<span class="pill">not known yet</span>`, `<span class="v">tor_max</span><span class="pill warn">waiting for Tor</span>`, `style="width:100%"`, "Connecting to the Tor network: 100%."}},
		{"down, transparent", Tor{State: TorDown}, "192.168.2.5",
			[]string{`<span class="v">tor_medium</span><span class="pill bad">waiting for Tor</span>`}},
		{"up, socks", Tor{State: TorUp, Progress: 100}, "192.168.3.5",
			[]string{`<span class="v">tor_max</span><span class="pill good">Tor SOCKS only</span>`}},
		{"down, stranger", Tor{State: TorDown}, "10.1.2.3",
			[]string{`<span class="v">-</span><span class="pill">not known yet</span>`, `<span class="v">unknown</span><span class="pill">not this router&#39;s</span>`, "<p>You are not on one of this router&#39;s own networks.</p><ul class=\"nets\"><li>Normal"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := snapshot(TorUp)
			s.Tor = c.tor
			html := string(p.HTML(s, p.Visitor(netip.MustParseAddr(c.addr))))
			for _, want := range c.wants {
				if !strings.Contains(html, want) {
					t.Errorf("page lacks %q", want)
				}
			}
			if strings.Count(html, `class="here"`) > 1 {
				t.Error("more than one network marked as the visitor's")
			}
		})
	}
	// Without a visitor (the daemon could not tell), no tile guesses.
	html := string(p.HTML(snapshot(TorUp), nil))
	if strings.Contains(html, "Your network</span>") || strings.Contains(html, "you are here") {
		t.Error("a visitor-less page names a network")
	}
}

func TestPalette(t *testing.T) {
	light := NewPage(Brand{Colors: Colors{Accent: "#7d4698", Background: "#ffffff", Text: "#1c1c1c"}}, nil)
	dark := NewPage(Brand{Colors: Colors{Accent: "#f5a524", Background: "#0f1b2d", Text: "#e6edf3"}}, nil)
	lh, dh := string(light.HTML(snapshot(TorUp), nil)), string(dark.HTML(snapshot(TorUp), nil))
	for _, want := range []string{`content="light"`, "--bg:#ffffff;--fg:#1c1c1c;--ac:#7d4698;--acfg:#ffffff", "--goodt:#1a7f37"} {
		if !strings.Contains(lh, want) {
			t.Errorf("light page lacks %q", want)
		}
	}
	// On a dark background: dark color-scheme, dark text on the light
	// accent, and lighter good/bad text colours.
	for _, want := range []string{`content="dark"`, "--ac:#f5a524;--acfg:#111111", "--goodt:#"} {
		if !strings.Contains(dh, want) {
			t.Errorf("dark page lacks %q", want)
		}
	}
	if strings.Contains(dh, "--goodt:#1a7f37") {
		t.Error("dark page uses the dark green for text")
	}
	// The derived shades sit between text and background.
	if c := rgbOf(mix(rgbOf("#000000"), rgbOf("#ffffff"), .5).hex()); c[0] < .49 || c[0] > .51 {
		t.Errorf("mix: %v", c)
	}
	if r := contrast(rgbOf("#000000"), rgbOf("#ffffff")); r < 20.9 || r > 21.1 {
		t.Errorf("contrast black/white %.2f", r)
	}
	if rgbOf("#abc") != rgbOf("#aabbcc") {
		t.Error("#rgb not expanded")
	}
}

func TestLanguageAndTexts(t *testing.T) {
	p := NewPage(Brand{Language: "de", Texts: Texts{TorUp: "Tor läuft", NetMedium: "Transparentes Tor (tor_medium): alles über Tor."}}, testNetworks())
	html := string(p.HTML(snapshot(TorUp), p.Visitor(netip.MustParseAddr("192.168.2.9"))))
	for _, want := range []string{`<html lang="de">`, "<strong>Tor läuft</strong>", "<title>torwrt: Tor läuft</title>", "you are here</em>Transparentes Tor (tor_medium)"} {
		if !strings.Contains(html, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, bad := range []string{"english", "de_DE", `en"><script>`, "x"} {
		if got := NewPage(Brand{Language: bad}, nil).Brand().Language; got != "en" {
			t.Errorf("language %q kept as %q", bad, got)
		}
	}
	if got := NewPage(Brand{Language: "pt-BR"}, nil).Brand().Language; got != "pt-BR" {
		t.Errorf("pt-BR became %q", got)
	}
}

func TestLogoDataURI(t *testing.T) {
	svg := []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)
	if u := LogoDataURI(svg); !strings.HasPrefix(u, "data:image/svg+xml;base64,") {
		t.Errorf("svg: %q", u)
	}
	if u := LogoDataURI([]byte("GIF89a")); u != "" {
		t.Errorf("gif accepted: %q", u)
	}
	if u := LogoDataURI(append(svg, make([]byte, MaxLogo)...)); u != "" {
		t.Error("oversized logo accepted")
	}
}
