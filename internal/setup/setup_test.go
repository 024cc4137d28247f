package setup

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/status"
)

// The client subnets of the test: loopback addresses stand in for the
// router's three networks and the WAN, so a test can connect "from" any of
// them (Linux routes all of 127.0.0.0/8 to lo).
var (
	fromOff    = netip.MustParseAddr("127.0.1.7")
	fromMedium = netip.MustParseAddr("127.0.2.7")
	fromMax    = netip.MustParseAddr("127.0.3.7")
	fromWAN    = netip.MustParseAddr("127.0.9.9")
)

var testSecrets = map[string]string{
	"ROOT_PASSWORD":       "abcde-fghjk-mnpqr-stuvw-xyz23",
	"WIFI_KEY_TOR_OFF":    "23456-789ab-cdefg-hjkmn-pqrst",
	"WIFI_KEY_TOR_MEDIUM": "uvwxy-z2345-6789a-bcdef-ghjkm",
	"WIFI_KEY_TOR_MAX":    "npqrs-tuvwx-yz234-56789-abcde",
}

// syncBuffer collects the log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type env struct {
	dir, addr string
	cfg       Config
	log       *syncBuffer
}

// start serves the real status page behind the setup view on a loopback
// listener, the way the daemon does.
func start(t *testing.T, edit func(*Config)) *env {
	t.Helper()
	dir := t.TempDir()
	// The secrets file as the first-boot script writes it.
	body := "# Made on this device at first boot. Never part of an image.\n" +
		"ROOT_PASSWORD=" + testSecrets["ROOT_PASSWORD"] + "\n" +
		"WIFI_KEY_TOR_OFF=" + testSecrets["WIFI_KEY_TOR_OFF"] + "\n" +
		"WIFI_KEY_TOR_MEDIUM=" + testSecrets["WIFI_KEY_TOR_MEDIUM"] + "\n" +
		"WIFI_KEY_TOR_MAX=" + testSecrets["WIFI_KEY_TOR_MAX"] + "\n"
	if err := os.WriteFile(filepath.Join(dir, "device-secrets"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &env{dir: dir, log: &syncBuffer{}}
	e.cfg = Config{
		Network:     "tor_max",
		Prefixes:    []netip.Prefix{netip.MustParsePrefix("127.0.3.0/24")},
		Address:     netip.MustParseAddr("127.0.0.1"),
		SecretsFile: filepath.Join(dir, "device-secrets"),
		DoneFile:    filepath.Join(dir, "setup-done"),
		Networks:    []Network{{"tor_off", "acme-tor_off"}, {"tor_medium", "acme-tor_medium"}, {"tor_max", "acme-tor_max"}},
		Brand:       Brand{ProductName: "AcmeBox", Primary: "#ff0000", Language: "de"},
		Logger:      slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&e.cfg)
	}
	v, err := New(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	page := status.NewPage(status.Brand{ProductName: "AcmeBox"}, []status.Network{
		{Name: "tor_off", Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.1.0/24")}},
		{Name: "tor_medium", Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.2.0/24")}},
		{Name: "tor_max", Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.3.0/24")}},
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- page.Serve(ctx, v.Intercept(ln), func() status.Snapshot { return status.Snapshot{} }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("status page: %v", err)
		}
		// Whatever happened, no secret reached the log.
		for k, s := range testSecrets {
			if strings.Contains(e.log.String(), s) {
				t.Errorf("the log contains %s:\n%s", k, e.log.String())
			}
		}
	})
	return e
}

type reply struct {
	code    int
	headers map[string]string
	body    string
}

// do sends raw (a whole request) from the address from.
func (e *env) do(t *testing.T, from netip.Addr, raw string) reply {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: from.AsSlice()}, Timeout: 5 * time.Second}
	c, err := d.DialContext(t.Context(), "tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("no answer to %q: %v", strings.SplitN(raw, "\r\n", 2)[0], err)
	}
	f := strings.Fields(line)
	code, _ := strconv.Atoi(f[1])
	r := reply{code: code, headers: map[string]string{}}
	for {
		h, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		h = strings.TrimRight(h, "\r\n")
		if h == "" {
			break
		}
		k, v, _ := strings.Cut(h, ":")
		r.headers[strings.ToLower(k)] = strings.TrimSpace(v)
	}
	b, _ := io.ReadAll(br)
	r.body = string(b)
	return r
}

func (e *env) get(t *testing.T, from netip.Addr, path string) reply {
	return e.do(t, from, "GET "+path+" HTTP/1.1\r\nHost: "+e.addr+"\r\n\r\n")
}

func (e *env) post(t *testing.T, from netip.Addr, path, body string) reply {
	return e.do(t, from, fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", path, e.addr, len(body), body))
}

func noSecrets(t *testing.T, what string, r reply) {
	t.Helper()
	for k, s := range testSecrets {
		if strings.Contains(r.body, s) {
			t.Errorf("%s shows %s", what, k)
		}
	}
}

var tokenRe = regexp.MustCompile(`name="token" value="([0-9a-f]+)"`)

func TestSetupView(t *testing.T) {
	e := start(t, nil)

	// A tor_max client sees every secret, labelled, uncached.
	r := e.get(t, fromMax, "/torbox/setup")
	if r.code != 200 {
		t.Fatalf("tor_max client: %d\n%s", r.code, r.body)
	}
	for k, s := range testSecrets {
		if !strings.Contains(r.body, s) {
			t.Errorf("setup view lacks %s", k)
		}
	}
	for _, want := range []string{"acme-tor_max", "Root password", `lang="de"`, "AcmeBox", "#ff0000", `action="/torbox/setup/done"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("setup view lacks %q", want)
		}
	}
	if r.headers["cache-control"] != "no-store" || !strings.Contains(r.headers["content-security-policy"], "form-action 'self'") {
		t.Errorf("headers %v", r.headers)
	}
	m := tokenRe.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no form token in\n%s", r.body)
	}
	token := m[1]

	// The status page is still served, and by the status package.
	if r := e.get(t, fromMax, "/torbox.json"); r.code != 200 || !strings.Contains(r.body, `"network": "tor_max"`) {
		t.Errorf("status JSON through the setup listener: %d %s", r.code, r.body)
	}
	if r := e.get(t, fromOff, "/torbox"); r.code != 200 || !strings.Contains(r.body, "AcmeBox") {
		t.Errorf("status page through the setup listener: %d", r.code)
	}

	// Other networks and the WAN get nothing.
	for name, from := range map[string]netip.Addr{"tor_off": fromOff, "tor_medium": fromMedium, "wan": fromWAN} {
		for _, p := range []string{"/torbox/setup", "/torbox/setup/", "/torbox/setup?x=1"} {
			r := e.get(t, from, p)
			if r.code != 403 && r.code != 404 {
				t.Errorf("%s client GET %s: %d", name, p, r.code)
			}
			noSecrets(t, name+" client", r)
		}
		r := e.post(t, from, "/torbox/setup/done", "token="+token)
		if r.code != 403 {
			t.Errorf("%s client POST done: %d", name, r.code)
		}
		if _, err := os.Stat(e.cfg.DoneFile); err == nil {
			t.Fatalf("%s client ended setup", name)
		}
	}

	// A name instead of the address (DNS rebinding) is refused.
	r = e.do(t, fromMax, "GET /torbox/setup HTTP/1.1\r\nHost: evil.example\r\n\r\n")
	if r.code != 403 {
		t.Errorf("Host: evil.example: %d", r.code)
	}
	noSecrets(t, "rebinding request", r)

	// A confirmation without the page's token (cross-site form) is
	// refused; so are other methods.
	for _, body := range []string{"", "token=00", "token=" + strings.Repeat("0", len(token))} {
		if r := e.post(t, fromMax, "/torbox/setup/done", body); r.code != 403 {
			t.Errorf("POST %q: %d", body, r.code)
		}
	}
	if r := e.get(t, fromMax, "/torbox/setup/done"); r.code != 405 {
		t.Errorf("GET done: %d", r.code)
	}
	if r := e.post(t, fromMax, "/torbox/setup", "token="+token); r.code != 405 {
		t.Errorf("POST view: %d", r.code)
	}
	if r := e.get(t, fromMax, "/torbox/setup/other"); r.code != 404 {
		t.Errorf("GET other: %d", r.code)
	}
	if _, err := os.Stat(e.cfg.DoneFile); err == nil {
		t.Fatal("setup ended without a valid confirmation")
	}

	// The owner confirms.
	r = e.post(t, fromMax, "/torbox/setup/done", url.Values{"token": {token}}.Encode())
	if r.code != 303 || r.headers["location"] != "/torbox/setup" {
		t.Fatalf("confirm: %d %v", r.code, r.headers)
	}
	if _, err := os.Stat(e.cfg.DoneFile); err != nil {
		t.Fatalf("no done file: %v", err)
	}
	// Afterwards: nothing secret, for anyone.
	r = e.get(t, fromMax, "/torbox/setup")
	if r.code != 200 || !strings.Contains(r.body, "Setup is done") || r.headers["cache-control"] != "no-store" {
		t.Errorf("after confirming: %d\n%s", r.code, r.body)
	}
	noSecrets(t, "setup view after confirming", r)
	if strings.Contains(r.body, "<form") {
		t.Error("done page still has the form")
	}
	// Confirming twice is harmless.
	if r := e.post(t, fromMax, "/torbox/setup/done", "token="+token); r.code != 303 {
		t.Errorf("second confirm: %d", r.code)
	}
	if !strings.Contains(e.log.String(), "setup confirmed") {
		t.Errorf("confirmation not logged:\n%s", e.log.String())
	}
}

// TestSetupLocalAddress: a tor_max client that reached the router on
// another of its addresses is refused.
func TestSetupLocalAddress(t *testing.T) {
	e := start(t, func(c *Config) { c.Address = netip.MustParseAddr("127.0.0.2") })
	r := e.get(t, fromMax, "/torbox/setup")
	if r.code != 403 {
		t.Errorf("tor_max client on another local address: %d", r.code)
	}
	noSecrets(t, "wrong local address", r)
}

func TestSetupSecretsMissingOrBroken(t *testing.T) {
	e := start(t, nil)
	for name, content := range map[string]string{
		"missing":   "",
		"malformed": "ROOT_PASSWORD=" + testSecrets["ROOT_PASSWORD"] + "\nthis is not a secret line\n",
		"too large": strings.Repeat("# padding\n", 500),
	} {
		t.Run(name, func(t *testing.T) {
			os.Remove(e.cfg.SecretsFile)
			if content != "" {
				os.WriteFile(e.cfg.SecretsFile, []byte(content), 0o600)
			}
			r := e.get(t, fromMax, "/torbox/setup")
			if r.code != 503 {
				t.Errorf("%s secrets: %d", name, r.code)
			}
			noSecrets(t, name+" secrets", r)
			if strings.Contains(r.body, "not a secret line") {
				t.Error("page quotes the secrets file")
			}
		})
	}
	if strings.Contains(e.log.String(), "not a secret line") {
		t.Errorf("log quotes the secrets file:\n%s", e.log.String())
	}
}

// A done file that cannot be checked counts as done: fail closed.
func TestSetupFailsClosed(t *testing.T) {
	e := start(t, func(c *Config) { c.DoneFile = filepath.Join(c.DoneFile, "x") })
	// DoneFile's parent is now a missing directory: Lstat says ENOENT,
	// which is a clear "not done". Make the parent a file instead.
	if err := os.WriteFile(filepath.Dir(e.cfg.DoneFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r := e.get(t, fromMax, "/torbox/setup")
	noSecrets(t, "unreadable done file", r)
}

func TestIsPath(t *testing.T) {
	for p, want := range map[string]bool{"/torbox/setup": true, "/torbox/setup/done": true, "/torbox/setupx": false, "/torbox": false, "/": false} {
		if IsPath(p) != want {
			t.Errorf("IsPath(%q) = %v", p, !want)
		}
	}
}

// TestDuplicateHostRefused: with two Host headers the view used to judge
// the last one, so "Host: evil.example" then "Host: <router IP>" passed
// its DNS-rebinding check; such a request is now malformed (RFC 9112 3.2).
func TestDuplicateHostRefused(t *testing.T) {
	var req request
	br := bufio.NewReader(strings.NewReader("Host: evil.example\r\nHost: 192.168.3.1\r\n\r\n"))
	if _, err := readHeaders(br, &req); err == nil {
		t.Fatalf("two Host headers accepted, host %q", req.host)
	}
	br = bufio.NewReader(strings.NewReader("Host: 192.168.3.1\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\n"))
	if _, err := readHeaders(br, &req); err == nil {
		t.Fatal("two Content-Length headers accepted")
	}
	br = bufio.NewReader(strings.NewReader("Host: 192.168.3.1\r\nContent-Length: +5\r\n\r\n"))
	if _, err := readHeaders(br, &req); err == nil {
		t.Fatal("a signed Content-Length accepted")
	}
	br = bufio.NewReader(strings.NewReader("Host: 192.168.3.1\r\nContent-Length: 5\r\n\r\n"))
	if n, err := readHeaders(br, &req); err != nil || n != 5 || req.host != "192.168.3.1" {
		t.Fatalf("a plain request: %d %q %v", n, req.host, err)
	}
}

// The done file lives in the daemon's state directory, which the updater
// makes only at its first check: a confirmation before that makes the
// directory (0700) instead of failing.
func TestSetupConfirmMakesStateDir(t *testing.T) {
	e := start(t, func(c *Config) { c.DoneFile = filepath.Join(filepath.Dir(c.DoneFile), "state", "setup-done") })
	r := e.get(t, fromMax, "/torbox/setup")
	m := tokenRe.FindStringSubmatch(r.body)
	if r.code != 200 || m == nil {
		t.Fatalf("setup view: %d, no token\n%s", r.code, r.body)
	}
	if r := e.post(t, fromMax, "/torbox/setup/done", "token="+m[1]); r.code != 303 {
		t.Fatalf("confirm before the state directory exists: %d\n%s", r.code, r.body)
	}
	fi, err := os.Stat(filepath.Dir(e.cfg.DoneFile))
	if err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state directory: %v %v", fi, err)
	}
	if _, err := os.Stat(e.cfg.DoneFile); err != nil {
		t.Fatalf("no done file: %v", err)
	}
}
