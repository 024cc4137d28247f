package status_test

// Browser tests of the status page: headless Chromium (Debian package
// chromium) loads the page from the real server on 127.0.0.1, for both
// example brands, Tor up and down, at desktop and phone widths. The PNGs
// go to ci-artifacts/screenshots/ at the repository root, which CI keeps.
// A second test runs Chromium through a logging proxy to prove the page
// makes no request but its own.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/brand"
	"github.com/torwrt/torwrt/internal/status"
)

// repoRoot is the directory holding go.mod above the test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", dir)
		}
	}
}

func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: install the Debian package chromium (scripts/install-deps.sh); the status page's screenshot and no-external-request tests need it")
	return ""
}

// runChromium runs headless Chromium with a fresh profile and extra args.
func runChromium(t *testing.T, extra ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	args := append([]string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
		"--disable-extensions", "--disable-default-apps", "--hide-scrollbars", "--force-device-scale-factor=1",
		"--user-data-dir=" + t.TempDir(),
	}, extra...)
	if !strings.Contains(strings.Join(extra, " "), "--proxy-server") {
		// Chromium makes background requests to Google's hosts whatever
		// the flags; a proxy on a closed loopback port keeps them on this
		// machine. Loopback pages bypass proxies, so the page still loads.
		args = append(args, "--proxy-server=http://127.0.0.1:9")
	}
	cmd := exec.CommandContext(ctx, chromium(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(extra, " "), err, tail(stderr.String(), 40))
	}
	return stdout.Bytes()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// The visitor is the test itself on 127.0.0.1: put loopback on tor_medium.
func browserNetworks() []status.Network {
	return []status.Network{
		{Name: "tor_off", Prefixes: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}},
		{Name: "tor_medium", Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		{Name: "tor_max", Prefixes: []netip.Prefix{netip.MustParsePrefix("192.168.3.0/24")}},
	}
}

var pageTime = time.Date(2026, 3, 14, 9, 30, 0, 0, time.UTC)

func browserSnapshot(state string, product string) status.Snapshot {
	s := status.Snapshot{
		Time:     pageTime,
		Firmware: status.Firmware{Product: product, Version: "0.3.0", Build: 30, Board: "glinet,gl-ar150"},
		Update:   status.Update{LastCheck: pageTime.Add(-40 * time.Minute), LastResult: "up-to-date", NextCheck: pageTime.Add(5*time.Hour + 20*time.Minute)},
	}
	if state == status.TorUp {
		s.Tor = status.Tor{State: status.TorUp, Progress: 100, Tag: "done", Summary: "Done", Version: "0.4.8.16", Recommendation: "recommended"}
	} else {
		s.Tor = status.Tor{State: status.TorDown, Error: "control port 127.0.0.1:9051: connection refused"}
		s.Update.LastResult = "failed"
		s.Update.LastError = "no route to the mirrors: Tor is down"
	}
	return s
}

func loadBrand(t *testing.T, id string) *brand.Brand {
	t.Helper()
	b, err := brand.Load(filepath.Join(repoRoot(t), "brands"), id)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serve runs the real status server on 127.0.0.1 and returns its address.
func serve(t *testing.T, p *status.Page, snap status.Snapshot) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln, func() status.Snapshot { return snap }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ln.Addr().String()
}

var brands = []string{"torwrt", "acme"}

func TestScreenshots(t *testing.T) {
	out := filepath.Join(repoRoot(t), "ci-artifacts", "screenshots")
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	sizes := []struct {
		name string
		w, h int
	}{{"desktop", 1280, 900}, {"phone", 390, 844}}
	sem := make(chan struct{}, 4)
	for _, id := range brands {
		b := loadBrand(t, id)
		page := status.NewPage(b.Status(), browserNetworks())
		for _, state := range []string{status.TorUp, status.TorDown} {
			addr := serve(t, page, browserSnapshot(state, b.ProductName))
			for _, size := range sizes {
				name := fmt.Sprintf("%s-tor-%s-%s", id, state, size.name)
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					sem <- struct{}{}
					defer func() { <-sem }()
					file := filepath.Join(out, name+".png")
					os.Remove(file)
					runChromium(t, "--screenshot="+file, fmt.Sprintf("--window-size=%d,%d", size.w, size.h), "http://"+addr+"/torbox")
					img := decodePNG(t, file)
					if got := img.Bounds().Size(); got.X != size.w || got.Y != size.h {
						t.Errorf("%s is %v, want %dx%d", file, got, size.w, size.h)
					}
					colors := countColors(img)
					if colors < 16 {
						t.Errorf("%s has only %d colours: blank or unstyled page", file, colors)
					}
					// The brand's primary colour (the top stripe, links), its
					// background, and the Tor state's colour must all be on
					// the first screen: the state reads at a glance.
					stateColor := map[string]string{status.TorUp: page.Brand().Colors.Good, status.TorDown: page.Brand().Colors.Bad}[state]
					for what, c := range map[string]string{"primary": b.Colors.Primary, "background": b.Colors.Background, "Tor state " + state: stateColor} {
						if n := countNear(img, c, 3); n < 200 {
							t.Errorf("%s: %s colour %s covers %d pixels; want it clearly visible", file, what, c, n)
						}
					}
					t.Logf("%s: %d colours", file, colors)
				})
			}
		}
	}
}

func decodePNG(t *testing.T, file string) image.Image {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return img
}

func countColors(img image.Image) int {
	seen := map[uint32]bool{}
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y += 2 {
		for x := r.Min.X; x < r.Max.X; x += 2 {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			seen[cr>>8<<16|cg>>8<<8|cb>>8] = true
		}
	}
	return len(seen)
}

// countNear counts pixels within tol of the #rrggbb colour hex.
func countNear(img image.Image, hex string, tol int) int {
	want := [3]int{}
	for i := range want {
		v, _ := strconv.ParseUint(hex[1+2*i:3+2*i], 16, 8)
		want[i] = int(v)
	}
	n := 0
	r := img.Bounds()
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			got := [3]int{int(cr >> 8), int(cg >> 8), int(cb >> 8)}
			if abs(got[0]-want[0]) <= tol && abs(got[1]-want[1]) <= tol && abs(got[2]-want[2]) <= tol {
				n++
			}
		}
	}
	return n
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// pages renders every brand and state as the server would.
func pages(t *testing.T) map[string][]byte {
	out := map[string][]byte{}
	for _, id := range brands {
		b := loadBrand(t, id)
		page := status.NewPage(b.Status(), browserNetworks())
		for _, state := range []string{status.TorUp, status.TorStarting, status.TorDown} {
			snap := browserSnapshot(state, b.ProductName)
			if state == status.TorStarting {
				snap.Tor = status.Tor{State: status.TorStarting, Progress: 45, Summary: "Asking for relay descriptors", Version: "0.4.8.16", Recommendation: "unknown"}
			}
			for _, addr := range []string{"127.0.0.1", "192.168.1.9", "10.9.9.9"} {
				out[id+"/"+state+"/"+addr] = page.HTML(snap, page.Visitor(netip.MustParseAddr(addr)))
			}
		}
	}
	return out
}

// MaxPageWeight is the budget for the whole page: the HTML, with its CSS
// and logo inline, is everything a browser loads.
const MaxPageWeight = 30 << 10

func TestPageWeight(t *testing.T) {
	for name, html := range pages(t) {
		if len(html) >= MaxPageWeight {
			t.Errorf("%s: page is %d bytes, budget %d", name, len(html), MaxPageWeight)
		}
		if strings.HasSuffix(name, "/up/127.0.0.1") {
			t.Logf("%s: %d bytes", name, len(html))
		}
	}
	// The worst case: a brand with the largest logo allowed.
	b := loadBrand(t, "torwrt").Status()
	b.Logo = append([]byte(`<svg xmlns="http://www.w3.org/2000/svg">`), bytes.Repeat([]byte(" "), status.MaxLogo-60)...)
	b.Logo = append(b.Logo, "</svg>"...)
	b.LogoDataURI = ""
	p := status.NewPage(b, browserNetworks())
	snap := browserSnapshot(status.TorDown, "torwrt")
	snap.Tor.Warning = strings.Repeat("w", 200)
	html := p.HTML(snap, p.Visitor(netip.MustParseAddr("127.0.0.1")))
	if !strings.Contains(string(html), "data:image/svg+xml;base64,PHN2ZyB4bWxucz0iaHR0cDovL3d3dy53My5vcmcvMjAwMC9zdmciPi") {
		t.Fatal("the maximal logo was not used")
	}
	if len(html) >= MaxPageWeight {
		t.Errorf("with a %d-byte logo the page is %d bytes, budget %d", len(b.Logo), len(html), MaxPageWeight)
	}
	t.Logf("worst case (logo at its %d-byte limit): %d bytes", status.MaxLogo, len(html))
}

var (
	// Everything in the HTML that can make a browser fetch something.
	refRE      = regexp.MustCompile(`(?i)\b(src|href|srcset|action|poster|data|formaction|background|ping|manifest)\s*=\s*("[^"]*"|'[^']*'|[^\s>]+)`)
	cssURLRE   = regexp.MustCompile(`(?i)url\(|@import|image-set\(`)
	activeTags = regexp.MustCompile(`(?i)<(script|iframe|object|embed|frame|base|form|video|audio|source|track|portal)\b`)
	onAttrRE   = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
	linkTagRE  = regexp.MustCompile(`(?i)<link\b[^>]*>`)
)

// TestNoExternalReferences reads the HTML itself: every reference is a
// data: URI or a same-origin path, there is no script, and the only
// <link> is the empty data: favicon that stops browsers asking for
// /favicon.ico.
func TestNoExternalReferences(t *testing.T) {
	for name, html := range pages(t) {
		s := string(html)
		// The support link is an <a> the visitor may follow; it loads
		// nothing by itself. Every other reference must be local.
		for _, m := range refRE.FindAllStringSubmatch(s, -1) {
			attr, v := strings.ToLower(m[1]), strings.Trim(m[2], `"'`)
			switch {
			case strings.HasPrefix(v, "data:"):
			case strings.HasPrefix(v, "/") && !strings.HasPrefix(v, "//"):
			case attr == "href" && strings.HasPrefix(v, "https://") && strings.Contains(s, `<a href="`+v+`" rel="noreferrer noopener">`):
			default:
				t.Errorf("%s: %s=%q is neither a data: URI nor a same-origin path", name, attr, v)
			}
		}
		if m := cssURLRE.FindString(s); m != "" {
			t.Errorf("%s: CSS fetches something: %q", name, m)
		}
		if m := activeTags.FindString(s); m != "" {
			t.Errorf("%s: %s element: the page needs no scripts or embeds", name, m)
		}
		if m := onAttrRE.FindString(s); m != "" {
			t.Errorf("%s: event handler %q", name, m)
		}
		for _, l := range linkTagRE.FindAllString(s, -1) {
			if l != `<link rel="icon" href="data:,">` {
				t.Errorf("%s: unexpected %s", name, l)
			}
		}
		if !strings.Contains(s, `<meta name="viewport" content="width=device-width,initial-scale=1">`) {
			t.Errorf("%s: no viewport meta: unreadable on a phone", name)
		}
	}
}

// TestNoExternalRequests loads the page in Chromium through a proxy that strips the page's Content-Security-Policy, so a
// reference to anything else would really be requested instead of being
// blocked quietly. Chromium's net log says which requests the page caused
// (they carry the page's network isolation key or origin); the browser's
// own background requests (update checks and the like) carry neither and
// are ignored. A control page with one external image proves the check
// sees such a request. (Chromium's --dump-dom and --screenshot need
// JavaScript themselves, so it stays on; TestNoExternalReferences proves
// the page has no script, and the DOM checked here is the server's HTML.)
func TestNoExternalRequests(t *testing.T) {
	const control = `<!doctype html><title>control</title><img src="http://elsewhere.test/pixel.png" alt="">`
	for _, id := range append([]string{"control"}, brands...) {
		t.Run(id, func(t *testing.T) {
			var page *status.Page
			var b *brand.Brand
			addr := "127.0.0.1:9" // the control page never reaches a server
			if id != "control" {
				b = loadBrand(t, id)
				page = status.NewPage(b.Status(), browserNetworks())
				addr = serve(t, page, browserSnapshot(status.TorUp, b.ProductName))
			}
			var mu sync.Mutex
			var proxied []string
			proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				proxied = append(proxied, r.Method+" "+r.URL.String())
				mu.Unlock()
				switch {
				case r.URL.Host == "torbox.test" && id == "control":
					w.Header().Set("Content-Type", "text/html")
					io.WriteString(w, control)
					return
				case r.URL.Host != "torbox.test":
					http.Error(w, "not for this test", http.StatusBadGateway)
					return
				}
				out, _ := http.NewRequestWithContext(r.Context(), r.Method, "http://"+addr+r.URL.RequestURI(), nil)
				resp, err := http.DefaultTransport.RoundTrip(out)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadGateway)
					return
				}
				defer resp.Body.Close()
				for k, v := range resp.Header {
					if !strings.EqualFold(k, "Content-Security-Policy") {
						w.Header()[k] = v
					}
				}
				w.WriteHeader(resp.StatusCode)
				io.Copy(w, resp.Body)
			}))
			defer proxy.Close()
			netlog := filepath.Join(t.TempDir(), "netlog.json")
			dom := runChromium(t, "--proxy-server="+proxy.URL, "--log-net-log="+netlog, "--dump-dom", "http://torbox.test/torbox")
			mu.Lock()
			if !slices.Contains(proxied, "GET http://torbox.test/torbox") {
				t.Fatalf("the page was not loaded through the proxy (saw %q), so the test proves nothing", proxied)
			}
			mu.Unlock()
			byPage, background := pageRequests(t, netlog, "http://torbox.test")
			t.Logf("requests the page caused: %q; the browser's own, ignored: %d", byPage, len(background))
			if id == "control" {
				if !slices.Contains(byPage, "GET http://elsewhere.test/pixel.png") {
					t.Fatalf("the control page's external image was not seen (page requests %q): the check is blind", byPage)
				}
				return
			}
			for _, r := range byPage {
				if r != "GET http://torbox.test/torbox" {
					t.Errorf("the page caused a request other than itself: %s", r)
				}
			}
			if len(byPage) == 0 {
				t.Error("the net log holds no request for the page: cannot tell what it caused")
			}
			for _, text := range []string{b.ProductName, page.Brand().Texts.TorUp, "tor_medium", "you are here", b.Texts.Tagline} {
				if !bytes.Contains(dom, []byte(text)) {
					t.Errorf("the rendered DOM lacks %q", text)
				}
			}
		})
	}
}

// pageRequests reads a Chromium net log and splits the URL requests into
// those made for the page at origin (the main frame and anything with the
// page as initiator or in its network isolation key) and the rest.
func pageRequests(t *testing.T, file, origin string) (byPage, other []string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("net log: %v", err)
	}
	var log struct {
		Constants struct {
			LogEventTypes map[string]int `json:"logEventTypes"`
		} `json:"constants"`
		Events []struct {
			Type   int `json:"type"`
			Params struct {
				URL        string `json:"url"`
				Method     string `json:"method"`
				Initiator  string `json:"initiator"`
				NIK        string `json:"network_isolation_key"`
				RequestTyp string `json:"request_type"`
			} `json:"params"`
		} `json:"events"`
	}
	if err := json.Unmarshal(data, &log); err != nil {
		t.Fatalf("net log %s: %v", file, err)
	}
	start, ok := log.Constants.LogEventTypes["URL_REQUEST_START_JOB"]
	if !ok {
		t.Fatal("net log has no URL_REQUEST_START_JOB event type")
	}
	for _, e := range log.Events {
		p := e.Params
		if e.Type != start || p.URL == "" {
			continue
		}
		r := p.Method + " " + p.URL
		if p.RequestTyp == "main frame" || p.Initiator == origin || strings.Contains(p.NIK, origin) {
			byPage = append(byPage, r)
		} else {
			other = append(other, r)
		}
	}
	return byPage, other
}
