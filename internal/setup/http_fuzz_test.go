//go:build unix

package setup

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/torwrt/torwrt/internal/status"

	"github.com/torwrt/torwrt/internal/httpfuzz"
)

// fuzzMaxRequest is the largest input sent as it is; longer lines and
// headers come from padding (fuzzPad). See FuzzServe in internal/status:
// the fuzzer's minimizing is quadratic in the input's length.
const fuzzMaxRequest = 512

// fuzzToken in an input stands for the view's current form token.
const fuzzToken = "{token}"

var fuzzSecrets = []string{
	"ROOT_PASSWORD=abcde-fghjk-mnpqr-stuvw-xyz23",
	"WIFI_KEY_TOR_OFF=23456-789ab-cdefg-hjkmn-pqrst",
	"WIFI_KEY_TOR_MAX=npqrs-tuvwx-yz234-56789-abcde",
}

// The router and its clients in FuzzIntercept.
var (
	fuzzRouter = netip.MustParseAddrPort("192.168.3.1:80")    // on tor_max, the setup network
	fuzzOther  = netip.MustParseAddrPort("192.168.1.1:80")    // on tor_off
	fuzzMax    = netip.MustParseAddrPort("192.168.3.20:5000") // a tor_max client
	fuzzOff    = netip.MustParseAddrPort("192.168.1.20:5000") // a tor_off client
	fuzzWAN    = netip.MustParseAddrPort("203.0.113.9:5000")
)

// fuzzClients are the ways to reach the router, picked by the input's
// from % len(fuzzClients); only the first may see the view.
var fuzzClients = []struct{ local, remote netip.AddrPort }{
	{fuzzRouter, fuzzMax},
	{fuzzRouter, fuzzOff},
	{fuzzRouter, fuzzWAN},
	{fuzzOther, fuzzMax}, // a setup client that came in on another address
}

// FuzzIntercept sends raw bytes as a request to the setup view in front
// of the real status page (View.Intercept under status.Page.Serve, as the
// daemon runs them, over a Unix socket pair that looks like a LAN
// client's TCP connection), from one of fuzzClients, with setup already
// confirmed or not. It checks that the server answers or closes in
// time and sends one well-formed answer, that it answers 200 only to a
// GET or HEAD of the status page or, for a setup client that named the
// router by address, of the view, that it confirms setup (303, done
// file) only for such a client's POST whose body holds the page's form
// token, that no secret reaches anyone else or the log, and that no
// answer carries markup that runs script. "{token}" in the input stands
// for the form token; lines and long pad the request (fuzzPad).
func FuzzIntercept(f *testing.F) {
	body := "token=" + fuzzToken
	post := func(target, host, body string) string {
		return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
			target, host, len(strings.ReplaceAll(body, fuzzToken, strings.Repeat("0", 32))), body)
	}
	for _, s := range []string{
		"GET /torbox/setup HTTP/1.1\r\nHost: 192.168.3.1\r\n\r\n",
		"GET /torbox/setup/ HTTP/1.1\r\nHost: 192.168.3.1:80\r\n\r\n",
		"HEAD /torbox/setup HTTP/1.1\r\n\r\n",
		"GET /torbox/setup?x=<script>alert(1)</script> HTTP/1.1\r\n\r\n",
		"GET /torbox/setup/<script> HTTP/1.1\r\n\r\n",
		"GET /torbox HTTP/1.1\r\nHost: 192.168.3.1\r\n\r\n",
		"GET /torbox.json HTTP/1.1\r\n\r\n",
		// The confirmation as the page's form sends it, and others.
		post("/torbox/setup/done", "192.168.3.1", body),
		post("/torbox/setup/done", "192.168.3.1", body+"&token=x"),
		post("/torbox/setup/done", "192.168.3.1", "token=x&"+body),
		post("/torbox/setup/done", "192.168.3.1", ""),
		post("/torbox/setup/done", "192.168.3.1", "token="+strings.Repeat("0", 32)),
		post("/torbox/setup/done", "192.168.3.1", "token=%zz"),
		post("/torbox/setup/done?token="+fuzzToken, "192.168.3.1", ""),
		post("/torbox/setup/done", "evil.example", body),
		post("/torbox/setup/done", "[::1]:80", body),
		post("/torbox/setup", "192.168.3.1", body),
		post("/torbox", "192.168.3.1", body),
		"POST /torbox/setup/done HTTP/1.1\r\nHost: 192.168.3.1\r\nTransfer-Encoding: chunked\r\n\r\n26\r\n" + body + "\r\n0\r\n\r\n",
		"POST /torbox/setup/done HTTP/1.1\r\nHost: 192.168.3.1\r\nContent-Length: 2000\r\n\r\n" + body,
		"POST /torbox/setup/done HTTP/1.1\r\nHost: 192.168.3.1\r\nContent-Length: -1\r\n\r\n" + body,
		"POST /torbox/setup/done HTTP/1.1\r\nContent-Length: 38\r\nContent-Length: 3\r\n\r\n" + body,
		// DNS rebinding: a name for the router.
		"GET /torbox/setup HTTP/1.1\r\nHost: evil.example\r\n\r\n",
		"GET /torbox/setup HTTP/1.1\r\nHost: evil.example\r\nHost: 192.168.3.1\r\n\r\n",
		"GET /torbox/setup HTTP/1.1\r\nhost:192.168.3.1.nip.io\r\n\r\n",
		// Bad methods.
		"PUT /torbox/setup/done HTTP/1.1\r\n\r\n",
		"DELETE /torbox/setup HTTP/1.1\r\n\r\n",
		"post /torbox/setup/done HTTP/1.1\r\nContent-Length: 38\r\n\r\n" + body,
		"GET /torbox/setup/done HTTP/1.1\r\n\r\n",
		// Absolute-form and other odd targets.
		"GET http://192.168.3.1/torbox/setup HTTP/1.1\r\nHost: 192.168.3.1\r\n\r\n",
		"POST http://192.168.3.1/torbox/setup/done HTTP/1.1\r\nContent-Length: 38\r\n\r\n" + body,
		"GET //torbox/setup HTTP/1.1\r\n\r\n",
		"GET /torbox/setup/../setup HTTP/1.1\r\n\r\n",
		"GET /torbox/%73etup HTTP/1.1\r\n\r\n",
		"GET /torbox/setup HTTP/2.0\r\n\r\n",
		"GET /torbox/setup\r\n\r\n",
		// Pipelined requests: one answer, then close.
		"GET /torbox/setup HTTP/1.1\r\n\r\n" + post("/torbox/setup/done", "192.168.3.1", body),
		"GET /torbox HTTP/1.1\r\n\r\nGET /torbox/setup HTTP/1.1\r\n\r\n",
		post("/torbox/setup/done", "192.168.3.1", "token=x") + "GET /torbox/setup HTTP/1.1\r\n\r\n",
		// Truncated requests.
		"",
		"GET /torbox/setup",
		"GET /torbox/setup HTTP/1.1\r\n",
		"GET /torbox/setup HTTP/1.1\r\nHost: 192.168.3.1\r\n",
		"POST /torbox/setup/done HTTP/1.1\r\nContent-Length: 38\r\n\r\ntoken=",
		// Not UTF-8, NUL and other control bytes.
		"GET /torbox/setup\xff HTTP/1.1\r\n\r\n",
		"GET /torbox/setup HTTP/1.1\r\nHost: 192.168.3.1\xc3\x28\r\n\r\n",
		"GET /torbox/setup HTTP/1.1\r\nX-\x00: \x80\r\n\r\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
	} {
		for from := range fuzzClients {
			f.Add([]byte(s), uint8(from), false, uint8(0), uint8(0))
		}
		f.Add([]byte(s), uint8(0), true, uint8(0), uint8(0))
	}
	// Headers up to and past 8 KiB, lines up to and past 1 KiB.
	for _, pad := range [][2]uint8{{127, 0}, {128, 0}, {255, 0}, {0, 62}, {0, 64}, {0, 0x80 | 63}, {0, 0x80 | 127}} {
		f.Add([]byte("GET /torbox/setup HTTP/1.1\r\n\r\n"), uint8(0), false, pad[0], pad[1])
		f.Add([]byte(post("/torbox/setup/done", "192.168.3.1", body)), uint8(0), false, pad[0], pad[1])
	}

	dir := f.TempDir()
	secrets := filepath.Join(dir, "device-secrets")
	if err := os.WriteFile(secrets, []byte("# Made on this device at first boot.\n"+strings.Join(fuzzSecrets, "\n")+"\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	var leaked atomic.Bool
	v, err := New(Config{
		Network:     "tor_max",
		Prefixes:    []netip.Prefix{netip.MustParsePrefix("192.168.3.0/24")},
		Address:     fuzzRouter.Addr(),
		SecretsFile: secrets,
		DoneFile:    filepath.Join(dir, "setup-done"),
		Networks:    []Network{{"tor_off", "acme-tor_off"}, {"tor_max", "acme-tor_max"}},
		Brand:       Brand{ProductName: "AcmeBox"},
		Logger:      slog.New(slog.NewTextHandler(fuzzLogCheck{&leaked}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		f.Fatal(err)
	}
	page := status.NewPage(status.Brand{ProductName: "AcmeBox"}, []status.Network{
		{Name: "tor_off", Prefixes: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}},
		{Name: "tor_max", Prefixes: []netip.Prefix{netip.MustParsePrefix("192.168.3.0/24")}},
	})
	lan := httpfuzz.NewListener()
	ctx, cancel := context.WithCancel(f.Context())
	done := make(chan error, 1)
	go func() { done <- page.Serve(ctx, v.Intercept(lan), func() status.Snapshot { return status.Snapshot{} }) }()
	f.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.Errorf("status page: %v", err)
		}
	})
	lan.Ready()

	f.Fuzz(func(t *testing.T, req []byte, from uint8, confirmed bool, lines, long uint8) {
		if len(req) > fuzzMaxRequest {
			return // long requests come from padding (httpfuzz.Pad), not raw input
		}
		req = httpfuzz.Pad(bytes.ReplaceAll(req, []byte(fuzzToken), []byte(v.token)), lines, long)
		client := fuzzClients[int(from)%len(fuzzClients)]
		os.Remove(v.cfg.DoneFile)
		if confirmed {
			if err := writeDone(v.cfg.DoneFile); err != nil {
				t.Fatal(err)
			}
		}
		raw, err := lan.Exchange(client.local, client.remote, req)
		if err != nil {
			t.Fatalf("request %q from %v: %v", httpfuzz.Trim(req), client.remote, err)
		}
		if leaked.Load() {
			t.Fatalf("request %q from %v: a secret reached the log", httpfuzz.Trim(req), client.remote)
		}
		_, err = os.Lstat(v.cfg.DoneFile)
		nowDone := err == nil
		mayConfirm := fuzzMayConfirm(req, client.remote, client.local, v.token)
		if !confirmed && nowDone && !mayConfirm {
			t.Fatalf("request %q from %v confirmed setup", httpfuzz.Trim(req), client.remote)
		}
		if len(raw) == 0 {
			// Closed without an answer: allowed for a request line cut
			// short, and for an answer lost to a reset.
			return
		}
		r, err := httpfuzz.ParseReply(raw)
		if err != nil {
			t.Fatalf("request %q from %v: malformed answer: %v\n%q", httpfuzz.Trim(req), client.remote, err, httpfuzz.Trim(raw))
		}
		checkSetupReply(t, req, client.remote, client.local, confirmed, mayConfirm, r)
	})
}

// fuzzLogCheck notes a secret in the log.
type fuzzLogCheck struct{ leaked *atomic.Bool }

func (w fuzzLogCheck) Write(p []byte) (int, error) {
	for _, s := range fuzzSecrets {
		_, val, _ := strings.Cut(s, "=")
		if bytes.Contains(p, []byte(val)) {
			w.leaked.Store(true)
		}
	}
	return len(p), nil
}

// fuzzSetupClient reports whether a client at remote that reached the
// router at local may see the view: from the setup network, on the
// router's address there.
func fuzzSetupClient(remote, local netip.AddrPort) bool {
	return remote == fuzzMax && local == fuzzRouter
}

// fuzzHeaders returns the values of the header named name (any case) in
// req's header.
func fuzzHeaders(req []byte, name string) []string {
	_, _, end := httpfuzz.RequestLine(req)
	if end < 0 {
		end = len(req)
	}
	var vals []string
	for i, line := range strings.Split(string(req[:end]), "\n") {
		if i == 0 {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimRight(line, "\r"), ":")
		if ok && strings.EqualFold(k, name) {
			vals = append(vals, strings.TrimSpace(v))
		}
	}
	return vals
}

// fuzzHostOK reports whether req's Host header names the router by an
// IP address (with or without a port), as a browser that was not sent
// there by a DNS name does, or is missing or empty (no name either).
// A request with more than one Host is refused by the view (RFC 9112
// 3.2), so it is never OK.
func fuzzHostOK(req []byte) bool {
	hosts := fuzzHeaders(req, "host")
	if len(hosts) == 0 {
		return true
	}
	if len(hosts) > 1 {
		return false
	}
	h := hosts[len(hosts)-1]
	if h == "" {
		return true
	}
	if _, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
		return true
	}
	_, err := netip.ParseAddrPort(h)
	return err == nil
}

// fuzzMayConfirm reports whether req may confirm setup: a setup client's
// POST to the done path naming the router by address, with the form
// token in the body.
func fuzzMayConfirm(req []byte, remote, local netip.AddrPort, token string) bool {
	method, path, end := httpfuzz.RequestLine(req)
	if method != "POST" || path != DonePath || end < 0 || !fuzzSetupClient(remote, local) || !fuzzHostOK(req) {
		return false
	}
	return bytes.Contains(req[end:], []byte(token))
}

func checkSetupReply(t *testing.T, req []byte, remote, local netip.AddrPort, confirmed, mayConfirm bool, r httpfuzz.Reply) {
	t.Helper()
	method, path, _ := httpfuzz.RequestLine(req)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("request %q from %v (setup confirmed before: %v): %s", httpfuzz.Trim(req), remote, confirmed, fmt.Sprintf(format, args...))
	}
	getOrHead := method == "GET" || method == "HEAD"
	statusPage := path == "/torbox" || path == "/torbox/" || path == "/" || path == "/torbox.json"
	view := (path == Path || path == Path+"/") && fuzzSetupClient(remote, local) && fuzzHostOK(req)
	switch r.Code {
	case 200:
		if !getOrHead || !statusPage && !view {
			fail("200 to %s %q", method, path)
		}
	case 303:
		if !mayConfirm {
			fail("303: setup confirmed")
		}
		if r.Header["location"] != Path {
			fail("303 to %q", r.Header["location"])
		}
	case 400, 403, 404, 405, 503:
	default:
		fail("status %d", r.Code)
	}
	if r.Code != 303 && r.Header["location"] != "" {
		fail("%d with Location %q", r.Code, r.Header["location"])
	}
	for _, h := range []string{"content-type", "content-length", "cache-control", "content-security-policy", "x-content-type-options", "x-frame-options", "connection"} {
		if _, ok := r.Header[h]; !ok {
			fail("answer lacks %s", h)
		}
	}
	if r.Header["connection"] != "close" || r.Header["cache-control"] != "no-store" {
		fail("answer headers %v", r.Header)
	}
	if r.NoBody && method != "HEAD" {
		fail("%d without its body to a %q", r.Code, method)
	}
	for _, s := range fuzzSecrets {
		_, val, _ := strings.Cut(s, "=")
		if bytes.Contains(r.Body, []byte(val)) && (confirmed || r.Code != 200 || !view) {
			fail("answer %d shows a secret", r.Code)
		}
	}
	if bytes.Contains(bytes.ToLower(r.Body), []byte("<script")) {
		fail("answer has a script element:\n%s", r.Body)
	}
}
