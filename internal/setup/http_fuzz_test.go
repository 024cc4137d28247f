//go:build unix

package setup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/status"
)

// fuzzAnswerWithin bounds one exchange. The client has sent the whole
// request and closed its side before the server reads, so the server
// never needs its own request deadline: a server that has not answered
// or closed by then is stuck.
const fuzzAnswerWithin = 3 * time.Second

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
	lan := newFuzzListener()
	ctx, cancel := context.WithCancel(f.Context())
	done := make(chan error, 1)
	go func() { done <- page.Serve(ctx, v.Intercept(lan), func() status.Snapshot { return status.Snapshot{} }) }()
	f.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.Errorf("status page: %v", err)
		}
	})
	<-lan.waiting

	f.Fuzz(func(t *testing.T, req []byte, from uint8, confirmed bool, lines, long uint8) {
		if len(req) > fuzzMaxRequest {
			t.Skip("longer than fuzzMaxRequest")
		}
		req = fuzzPad(bytes.ReplaceAll(req, []byte(fuzzToken), []byte(v.token)), lines, long)
		client := fuzzClients[int(from)%len(fuzzClients)]
		os.Remove(v.cfg.DoneFile)
		if confirmed {
			if err := writeDone(v.cfg.DoneFile); err != nil {
				t.Fatal(err)
			}
		}
		raw, err := lan.exchange(client.local, client.remote, req)
		if err != nil {
			t.Fatalf("request %q from %v: %v", fuzzTrim(req), client.remote, err)
		}
		if leaked.Load() {
			t.Fatalf("request %q from %v: a secret reached the log", fuzzTrim(req), client.remote)
		}
		_, err = os.Lstat(v.cfg.DoneFile)
		nowDone := err == nil
		mayConfirm := fuzzMayConfirm(req, client.remote, client.local, v.token)
		if !confirmed && nowDone && !mayConfirm {
			t.Fatalf("request %q from %v confirmed setup", fuzzTrim(req), client.remote)
		}
		if len(raw) == 0 {
			// Closed without an answer: allowed for a request line cut
			// short, and for an answer lost to a reset.
			return
		}
		r, err := parseFuzzReply(raw)
		if err != nil {
			t.Fatalf("request %q from %v: malformed answer: %v\n%q", fuzzTrim(req), client.remote, err, fuzzTrim(raw))
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
	_, _, end := fuzzRequestLine(req)
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
	method, path, end := fuzzRequestLine(req)
	if method != "POST" || path != DonePath || end < 0 || !fuzzSetupClient(remote, local) || !fuzzHostOK(req) {
		return false
	}
	return bytes.Contains(req[end:], []byte(token))
}

func checkSetupReply(t *testing.T, req []byte, remote, local netip.AddrPort, confirmed, mayConfirm bool, r fuzzReply) {
	t.Helper()
	method, path, _ := fuzzRequestLine(req)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("request %q from %v (setup confirmed before: %v): %s", fuzzTrim(req), remote, confirmed, fmt.Sprintf(format, args...))
	}
	getOrHead := method == "GET" || method == "HEAD"
	statusPage := path == "/torbox" || path == "/torbox/" || path == "/" || path == "/torbox.json"
	view := (path == Path || path == Path+"/") && fuzzSetupClient(remote, local) && fuzzHostOK(req)
	switch r.code {
	case 200:
		if !getOrHead || !statusPage && !view {
			fail("200 to %s %q", method, path)
		}
	case 303:
		if !mayConfirm {
			fail("303: setup confirmed")
		}
		if r.header["location"] != Path {
			fail("303 to %q", r.header["location"])
		}
	case 400, 403, 404, 405, 503:
	default:
		fail("status %d", r.code)
	}
	if r.code != 303 && r.header["location"] != "" {
		fail("%d with Location %q", r.code, r.header["location"])
	}
	for _, h := range []string{"content-type", "content-length", "cache-control", "content-security-policy", "x-content-type-options", "x-frame-options", "connection"} {
		if _, ok := r.header[h]; !ok {
			fail("answer lacks %s", h)
		}
	}
	if r.header["connection"] != "close" || r.header["cache-control"] != "no-store" {
		fail("answer headers %v", r.header)
	}
	if r.noBody && method != "HEAD" {
		fail("%d without its body to a %q", r.code, method)
	}
	for _, s := range fuzzSecrets {
		_, val, _ := strings.Cut(s, "=")
		if bytes.Contains(r.body, []byte(val)) && (confirmed || r.code != 200 || !view) {
			fail("answer %d shows a secret", r.code)
		}
	}
	if bytes.Contains(bytes.ToLower(r.body), []byte("<script")) {
		fail("answer has a script element:\n%s", r.body)
	}
}

// fuzzPad makes req longer where the limits of the view and the status page apply, if req
// has a first line: it inserts lines header lines of 64 bytes after the
// first line, and 16 bytes for each unit of long&0x7f at the end of the
// first line (long < 0x80) or as one more header line (long >= 0x80).
func fuzzPad(req []byte, lines, long uint8) []byte {
	end := bytes.IndexByte(req, '\n')
	if end < 0 || lines == 0 && long&0x7f == 0 {
		return req
	}
	first, rest := req[:end], req[end:] // rest starts with the first line's "\n"
	cr := []byte{}
	if bytes.HasSuffix(first, []byte("\r")) {
		first, cr = first[:len(first)-1], []byte("\r")
	}
	fill := bytes.Repeat([]byte("a"), 16*int(long&0x7f))
	var hdr []byte
	if long >= 0x80 {
		first, hdr = slices.Clone(first), slices.Concat([]byte("X-Long: "), fill, []byte("\r\n"))
	} else {
		first = slices.Concat(first, fill)
	}
	pad := strings.Repeat("X-Pad: "+strings.Repeat("p", 55)+"\r\n", int(lines))
	return slices.Concat(first, cr, rest[:1], []byte(pad), hdr, rest[1:])
}

// fuzzListener hands the server connections made by exchange, each one
// end of a Unix socket pair that reports a LAN client's TCP addresses. A
// socket pair, not loopback TCP: the client half-closes, which on TCP
// leaves a TIME_WAIT socket per request, and tens of thousands of them
// use up the ephemeral ports within seconds.
//
// It keeps each exchange in step, so that the code it runs (the fuzzer
// instruments net and internal/poll too) depends on the input only, not
// on timing: otherwise coverage is flaky and the fuzzer spends its time
// minimizing inputs whose "new" coverage does not come back. The client
// sends the whole request and closes its side before the server gets the
// connection; the server's goroutines for it end, and the server waits
// in Accept again, before the client reads the answer.
type fuzzListener struct {
	conns   chan net.Conn
	waiting chan struct{} // the server is in Accept
	done    chan struct{}
	once    sync.Once
}

func newFuzzListener() *fuzzListener {
	return &fuzzListener{conns: make(chan net.Conn), waiting: make(chan struct{}, 1), done: make(chan struct{})}
}

func (l *fuzzListener) Accept() (net.Conn, error) {
	select {
	case l.waiting <- struct{}{}:
	default:
	}
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *fuzzListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *fuzzListener) Addr() net.Addr { return fuzzAddr{} }

type fuzzAddr struct{}

func (fuzzAddr) Network() string { return "fuzz" }
func (fuzzAddr) String() string  { return "fuzz" }

type fuzzConn struct {
	net.Conn
	local, remote net.Addr
}

func (c *fuzzConn) LocalAddr() net.Addr  { return c.local }
func (c *fuzzConn) RemoteAddr() net.Addr { return c.remote }

// fuzzSocketPair returns the two ends of a connected Unix stream socket.
func fuzzSocketPair() (client, server *net.UnixConn, err error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	var ends [2]*net.UnixConn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "fuzz")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			if i == 1 {
				ends[0].Close()
			} else {
				syscall.Close(fds[1])
			}
			return nil, nil, err
		}
		ends[i] = c.(*net.UnixConn)
	}
	return ends[0], ends[1], nil
}

// exchange sends req to the server as a client at from that reached the
// server at local, then reads until
// the server closes, all within fuzzAnswerWithin. It returns what the
// server sent; an error only when the server neither answered nor closed
// in time.
func (l *fuzzListener) exchange(local, from netip.AddrPort, req []byte) ([]byte, error) {
	goroutines := runtime.NumGoroutine()
	deadline := time.Now().Add(fuzzAnswerWithin)
	c, sc, err := fuzzSocketPair()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(deadline)
	if _, err := c.Write(req); err != nil {
		sc.Close()
		return nil, fmt.Errorf("sending: %w", err)
	}
	if err := c.CloseWrite(); err != nil {
		sc.Close()
		return nil, fmt.Errorf("closing the sending side: %w", err)
	}
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case l.conns <- &fuzzConn{Conn: sc, local: net.TCPAddrFromAddrPort(local), remote: net.TCPAddrFromAddrPort(from)}:
	case <-timer.C:
		sc.Close()
		return nil, errors.New("the server did not accept the connection")
	}
	select {
	case <-l.waiting:
	case <-timer.C:
		return nil, errors.New("the server did not get back to Accept")
	}
	settle := func() {
		for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
			runtime.Gosched()
		}
	}
	settle()
	raw, err := io.ReadAll(c)
	settle() // the server closed; let its goroutines end too
	var ne net.Error
	switch {
	case err == nil:
	case errors.As(err, &ne) && ne.Timeout():
		return raw, fmt.Errorf("no answer and no close within %v (got %d bytes)", fuzzAnswerWithin, len(raw))
	case errors.Is(err, syscall.ECONNRESET):
		// The server closed with input unread; what arrived before the
		// reset is its answer.
	default:
		return raw, fmt.Errorf("reading the answer: %w", err)
	}
	return raw, nil
}

// fuzzReply is a parsed answer.
type fuzzReply struct {
	code   int
	header map[string]string // lower-case names
	body   []byte
	noBody bool // Content-Length > 0 but no body: the answer to a HEAD
}

// parseFuzzReply checks that raw is exactly one well-formed HTTP/1.1
// answer with Content-Length framing.
func parseFuzzReply(raw []byte) (fuzzReply, error) {
	var r fuzzReply
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		return r, errors.New("no end of header")
	}
	lines := strings.Split(string(head), "\r\n")
	sl := lines[0]
	if len(sl) < len("HTTP/1.1 200 X") || !strings.HasPrefix(sl, "HTTP/1.1 ") || sl[12] != ' ' {
		return r, fmt.Errorf("bad status line %q", sl)
	}
	code, err := strconv.Atoi(sl[9:12])
	if err != nil || code < 100 {
		return r, fmt.Errorf("bad status code in %q", sl)
	}
	for _, b := range []byte(sl[13:]) {
		if b < 0x20 || b >= 0x7f {
			return r, fmt.Errorf("bad reason phrase in %q", sl)
		}
	}
	r.code = code
	r.header = map[string]string{}
	for _, h := range lines[1:] {
		k, v, ok := strings.Cut(h, ": ")
		if !ok || k == "" {
			return r, fmt.Errorf("bad header line %q", h)
		}
		for _, b := range []byte(k) {
			if !isFuzzTokenChar(b) {
				return r, fmt.Errorf("bad header name %q", k)
			}
		}
		for _, b := range []byte(v) {
			if b < 0x20 && b != '\t' || b == 0x7f {
				return r, fmt.Errorf("control byte in header %q", h)
			}
		}
		k = strings.ToLower(k)
		if _, dup := r.header[k]; dup {
			return r, fmt.Errorf("header %s twice", k)
		}
		r.header[k] = v
	}
	n, err := strconv.Atoi(r.header["content-length"])
	if err != nil || n < 0 {
		return r, fmt.Errorf("bad Content-Length %q", r.header["content-length"])
	}
	switch {
	case len(body) == n:
		r.body = body
	case len(body) == 0:
		r.noBody = true
	default:
		return r, fmt.Errorf("Content-Length %d but %d bytes follow the header", n, len(body))
	}
	return r, nil
}

func isFuzzTokenChar(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}

// fuzzRequestLine reads req as a client means it, independently of the
// server: the method and path (query and fragment cut) of a request line
// "METHOD SP target SP HTTP/1.x", and the offset just past the blank line
// that ends the header (-1 if there is none).
func fuzzRequestLine(req []byte) (method, path string, head int) {
	head = -1
	first, rest, ok := bytes.Cut(req, []byte("\n"))
	if !ok {
		return "", "", -1
	}
	off := len(first) + 1
	for {
		line, more, ok := bytes.Cut(rest, []byte("\n"))
		if !ok {
			break
		}
		off += len(line) + 1
		if len(bytes.TrimRight(line, "\r")) == 0 {
			head = off
			break
		}
		rest = more
	}
	f := strings.Split(strings.TrimRight(string(first), "\r"), " ")
	if len(f) != 3 || !strings.HasPrefix(f[2], "HTTP/1.") {
		return "", "", head
	}
	path = f[1]
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	return f[0], path, head
}

// fuzzTrim shortens b for a failure message.
func fuzzTrim(b []byte) []byte {
	if len(b) > 600 {
		return append(bytes.Clone(b[:600]), "..."...)
	}
	return b
}
