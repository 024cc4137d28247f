package status

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func testNetworks() []Network {
	return []Network{
		{Name: "tor_off", Prefixes: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}},
		{Name: "tor_medium", Prefixes: []netip.Prefix{netip.MustParsePrefix("192.168.2.0/24"), netip.MustParsePrefix("fd00:2::/64")}},
		{Name: "tor_max", Prefixes: []netip.Prefix{netip.MustParsePrefix("192.168.3.0/24")}},
	}
}

var now = time.Date(2025, 11, 1, 12, 0, 0, 0, time.UTC)

func snapshot(state string) Snapshot {
	s := Snapshot{
		Time:     now,
		Firmware: Firmware{Product: "torwrt", Version: "24.10.3-torwrt42", Build: 42, Board: "glinet,gl-ar150"},
		Update:   Update{LastCheck: now.Add(-time.Hour), LastResult: "up-to-date", NextCheck: now.Add(5 * time.Hour)},
	}
	switch state {
	case TorUp:
		s.Tor = Tor{State: TorUp, Progress: 100, Tag: "done", Summary: "Done", Version: "0.4.8.13", Recommendation: "recommended"}
	case TorStarting:
		s.Tor = Tor{State: TorStarting, Progress: 45, Tag: "requesting_descriptors", Summary: "Asking for relay descriptors", Version: "0.4.8.13", Recommendation: "unknown"}
	default:
		s.Tor = Tor{State: TorDown, Error: "control port 127.0.0.1:9051: connection refused"}
	}
	return s
}

func TestVisitor(t *testing.T) {
	p := NewPage(Brand{}, testNetworks())
	cases := map[string]string{
		"192.168.1.20":        "tor_off",
		"192.168.2.20":        "tor_medium",
		"::ffff:192.168.2.20": "tor_medium",
		"fd00:2::1":           "tor_medium",
		"192.168.3.9":         "tor_max",
		"10.0.0.1":            "unknown",
		"2001:db8::1":         "unknown",
	}
	for addr, want := range cases {
		v := p.Visitor(netip.MustParseAddr(addr))
		if v.Network != want || v.Explanation == "" {
			t.Errorf("%s: %+v, want %s", addr, v, want)
		}
	}
	if v := p.Visitor(netip.Addr{}); v.Network != "unknown" {
		t.Errorf("invalid address: %+v", v)
	}
}

func TestHTMLGolden(t *testing.T) {
	p := NewPage(Brand{}, testNetworks())
	for _, state := range []string{TorUp, TorStarting, TorDown} {
		for _, net := range []string{"192.168.2.5", "192.168.1.5"} {
			name := state + "-" + net
			t.Run(name, func(t *testing.T) {
				html := p.HTML(snapshot(state), p.Visitor(netip.MustParseAddr(net)))
				golden := filepath.Join("testdata", name+".html.golden")
				if *update {
					os.MkdirAll("testdata", 0o755)
					if err := os.WriteFile(golden, html, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test -update)", err)
				}
				if !bytes.Equal(html, want) {
					t.Errorf("HTML differs from %s; run go test ./internal/status -update and review the diff", golden)
				}
			})
		}
	}
}

func TestHTMLProperties(t *testing.T) {
	p := NewPage(Brand{}, testNetworks())
	pages := map[string][]byte{}
	for _, state := range []string{TorUp, TorStarting, TorDown} {
		pages[state] = p.HTML(snapshot(state), p.Visitor(netip.MustParseAddr("192.168.2.5")))
	}
	for state, html := range pages {
		if len(html) >= 30<<10 {
			t.Errorf("%s: page is %d bytes, budget 30 KB", state, len(html))
		}
		s := string(html)
		// Nothing external: no scripts, no remote URLs in attributes or CSS.
		if strings.Contains(s, "<script") || regexp.MustCompile(`(src|href)="https?:`).MatchString(s) || strings.Contains(s, "url(") || strings.Contains(s, "@import") {
			t.Errorf("%s: page references external resources or scripts", state)
		}
		if !strings.Contains(s, `name="viewport"`) {
			t.Errorf("%s: no viewport meta for phones", state)
		}
		if !strings.Contains(s, "tor_medium") || !strings.Contains(s, "Transparent Tor") {
			t.Errorf("%s: visitor network missing", state)
		}
	}
	// The three states say different words and use different ids.
	if !strings.Contains(string(pages[TorUp]), `id="tor-up"><strong>Tor is up`) ||
		!strings.Contains(string(pages[TorDown]), `id="tor-down"><strong>Tor is down`) ||
		!strings.Contains(string(pages[TorStarting]), `id="tor-starting"><strong>Tor is starting`) {
		t.Error("Tor states not clearly distinguishable")
	}
	if strings.Contains(string(pages[TorUp]), "Tor is down") || strings.Contains(string(pages[TorDown]), "Tor is up") {
		t.Error("a page names the other state")
	}
}

func TestBrandSanitized(t *testing.T) {
	b := Brand{
		ProductName: `Evil<script>alert(1)</script>`,
		Colors:      Colors{Accent: "red;}</style><script>", Background: "#000"},
		SupportURL:  "javascript:alert(1)",
		Logo:        []byte("<html>not an image</html>"),
		Texts:       Texts{TorUp: "All good"},
	}
	p := NewPage(b, nil)
	html := string(p.HTML(snapshot(TorUp), nil))
	if strings.Contains(html, "<script>") || strings.Contains(html, "javascript:") || strings.Contains(html, "red;") {
		t.Fatalf("brand injected markup:\n%s", html)
	}
	if !strings.Contains(html, "Evil&lt;script&gt;") || !strings.Contains(html, "--bg:#000") || !strings.Contains(html, "All good") {
		t.Fatal("valid brand fields not used")
	}
	if !strings.Contains(html, `src="data:image/svg+xml;base64,`) {
		t.Fatal("invalid logo not replaced by the default")
	}
	png := append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 100)...)
	if u := NewPage(Brand{Logo: png}, nil).Brand().LogoDataURI; !strings.HasPrefix(u, "data:image/png;base64,") {
		t.Fatalf("png logo: %q", u)
	}
	big := NewPage(Brand{Logo: append([]byte("<svg>"), make([]byte, MaxLogo)...)}, nil).Brand().LogoDataURI
	if big != DefaultBrand().normalized().LogoDataURI {
		t.Fatal("oversized logo accepted")
	}
}

func TestServe(t *testing.T) {
	p := NewPage(Brand{}, []Network{{Name: "tor_max", Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln, func() Snapshot { return snapshot(TorUp) }) }()
	addr := ln.Addr().String()

	body, err := Fetch(t.Context(), addr)
	if err != nil {
		t.Fatal(err)
	}
	var doc Document
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Tor.State != TorUp || doc.Visitor == nil || doc.Visitor.Network != "tor_max" || doc.Firmware.Build != 42 {
		t.Fatalf("%+v", doc)
	}

	get := func(req string) string {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, req)
		b, _ := io.ReadAll(bufio.NewReader(c))
		return string(b)
	}
	r := get("GET /torbox HTTP/1.1\r\nHost: x\r\n\r\n")
	if !strings.HasPrefix(r, "HTTP/1.1 200 OK\r\n") || !strings.Contains(r, "Content-Security-Policy: default-src 'none'") || !strings.Contains(r, "Tor is up") {
		t.Fatalf("GET /torbox:\n%s", r)
	}
	if r := get("HEAD /torbox HTTP/1.1\r\n\r\n"); !strings.HasPrefix(r, "HTTP/1.1 200") || strings.Contains(r, "<html") {
		t.Fatalf("HEAD:\n%s", r)
	}
	if r := get("POST /torbox HTTP/1.1\r\n\r\n"); !strings.HasPrefix(r, "HTTP/1.1 405") {
		t.Fatalf("POST:\n%s", r)
	}
	if r := get("GET /etc/passwd HTTP/1.1\r\n\r\n"); !strings.HasPrefix(r, "HTTP/1.1 404") {
		t.Fatalf("404:\n%s", r)
	}
	if r := get("garbage\r\n\r\n"); !strings.HasPrefix(r, "HTTP/1.1 400") {
		t.Fatalf("400:\n%s", r)
	}
	if r := get("GET /torbox HTTP/1.1\r\n" + strings.Repeat("X-A: "+strings.Repeat("a", 500)+"\r\n", 40) + "\r\n"); !strings.HasPrefix(r, "HTTP/1.1 400") {
		t.Fatalf("huge header:\n%.100s", r)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
