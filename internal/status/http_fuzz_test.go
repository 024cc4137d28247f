//go:build unix

package status

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fuzzAnswerWithin bounds one exchange. The client has sent the whole
// request and closed its side before the server reads, so the server
// never needs its own 5 s request deadline: a server that has not
// answered or closed by then is stuck.
const fuzzAnswerWithin = 3 * time.Second

// fuzzMaxRequest is the largest input sent as it is. Lines past the
// 1 KiB read buffer and headers past the 8 KiB limit come from padding
// instead (fuzzPad), so that inputs stay small: the fuzzer minimizes
// every input that finds new coverage, and minimizing is quadratic in the
// input's length, which for a target as slow as a network exchange means
// a minute lost per input of a kilobyte or more.
const fuzzMaxRequest = 512

// FuzzServe sends raw bytes as a request to the real status page server
// (Page.Serve, as the daemon runs it, over a Unix socket pair that looks
// like a LAN client's TCP connection) and checks that it answers or
// closes in time, sends one well-formed answer however many requests are
// pipelined, answers 200 only to a GET or HEAD of a page it serves with
// the header complete within maxRequestHeader, and never sends markup
// that runs script. lines and long pad the request (fuzzPad).
func FuzzServe(f *testing.F) {
	for _, s := range []string{
		"GET /torbox HTTP/1.1\r\nHost: 192.168.3.1\r\n\r\n",
		"GET /torbox/ HTTP/1.1\r\nHost: 192.168.3.1\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"GET /torbox.json HTTP/1.1\r\nHost: 192.168.3.1\r\nConnection: close\r\n\r\n",
		"HEAD /torbox HTTP/1.1\r\n\r\n",
		"GET /torbox?x=<script>alert(1)</script> HTTP/1.1\r\n\r\n",
		"GET /<script>alert(1)</script> HTTP/1.1\r\n\r\n",
		"GET /torbox/setup HTTP/1.1\r\nHost: 192.168.3.1\r\n\r\n",
		"GET /torbox#frag HTTP/1.1\r\n\r\n",
		"GET /torbox HTTP/1.1\n\n",
		// Bad methods.
		"POST /torbox HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
		"get /torbox HTTP/1.1\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\n\r\n",
		"CONNECT 192.168.3.1:80 HTTP/1.1\r\n\r\n",
		"GET\t/torbox HTTP/1.1\r\n\r\n",
		" GET /torbox HTTP/1.1\r\n\r\n",
		// Absolute-form and other odd targets.
		"GET http://192.168.3.1/torbox HTTP/1.1\r\nHost: 192.168.3.1\r\n\r\n",
		"GET //torbox HTTP/1.1\r\n\r\n",
		"GET /torbox/../etc/passwd HTTP/1.1\r\n\r\n",
		"GET /%74orbox HTTP/1.1\r\n\r\n",
		"GET /torbox HTTP/2.0\r\n\r\n",
		"GET /torbox\r\n\r\n",
		"GET /torbox HTTP/1.1 extra\r\n\r\n",
		// Oversized headers: below, by padding.
		// Pipelined requests: one answer, then close.
		"GET /torbox.json HTTP/1.1\r\n\r\nGET /torbox HTTP/1.1\r\n\r\n",
		"GET /nothing HTTP/1.1\r\n\r\nGET /torbox HTTP/1.1\r\n\r\n",
		"HEAD /torbox HTTP/1.1\r\n\r\nPOST /torbox HTTP/1.1\r\n\r\n",
		// Truncated requests.
		"",
		"G",
		"GET /torbox HTTP/1.1",
		"GET /torbox HTTP/1.1\r\n",
		"GET /torbox HTTP/1.1\r\nHost: 192.168.3.1\r\n",
		"GET /torbox HTTP/1.1\r\nHost: 192.1",
		// Not UTF-8, NUL and other control bytes.
		"GET /torbox\xff\xfe HTTP/1.1\r\n\r\n",
		"GET /torbox HTTP/1.1\r\nX-\xc3\x28: \x80\x81\r\n\r\n",
		"GET /torbox\x00 HTTP/1.1\r\n\r\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
		"GET /torbox HTTP/1.1\r\r\n\r\r\n",
	} {
		f.Add([]byte(s), uint8(0), uint8(0))
	}
	// Headers up to and past 8 KiB, lines up to and past 1 KiB.
	f.Add([]byte("GET /torbox HTTP/1.1\r\n\r\n"), uint8(127), uint8(0))
	f.Add([]byte("GET /torbox HTTP/1.1\r\n\r\n"), uint8(128), uint8(0))
	f.Add([]byte("GET /torbox.json HTTP/1.1\r\nHost: 192.168.3.1\r\n\r\n"), uint8(255), uint8(0))
	f.Add([]byte("GET /torbox HTTP/1.1\r\n\r\n"), uint8(0), uint8(62))
	f.Add([]byte("GET /torbox HTTP/1.1\r\n\r\n"), uint8(0), uint8(64))
	f.Add([]byte("GET /torbox HTTP/1.1\r\n\r\n"), uint8(0), uint8(0x80|63))
	f.Add([]byte("GET /torbox HTTP/1.1\r\n\r\n"), uint8(0), uint8(0x80|127))

	p := NewPage(Brand{}, []Network{{Name: "tor_max", Prefixes: []netip.Prefix{netip.MustParsePrefix("192.168.3.0/24")}}})
	// A LAN client on tor_max, reaching the router at 192.168.3.1.
	lan := newFuzzListener()
	ctx, cancel := context.WithCancel(f.Context())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, lan, func() Snapshot { return snapshot(TorUp) }) }()
	f.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.Errorf("status page: %v", err)
		}
	})
	<-lan.waiting

	f.Fuzz(func(t *testing.T, req []byte, lines, long uint8) {
		if len(req) > fuzzMaxRequest {
			t.Skip("longer than fuzzMaxRequest")
		}
		req = fuzzPad(req, lines, long)
		raw, err := lan.exchange(netip.MustParseAddrPort("192.168.3.1:80"), netip.MustParseAddrPort("192.168.3.20:50000"), req)
		if err != nil {
			t.Fatalf("request %q: %v", fuzzTrim(req), err)
		}
		if len(raw) == 0 {
			// Closed without an answer: allowed, though Serve answers
			// even a broken request with 400.
			return
		}
		r, err := parseFuzzReply(raw)
		if err != nil {
			t.Fatalf("request %q: malformed answer: %v\n%q", fuzzTrim(req), err, fuzzTrim(raw))
		}
		checkStatusReply(t, req, r)
	})
}

// fuzzPad makes req longer where the server's size limits apply, if req
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

func checkStatusReply(t *testing.T, req []byte, r fuzzReply) {
	t.Helper()
	method, path, head := fuzzRequestLine(req)
	switch r.code {
	case 200, 400, 404, 405:
	default:
		t.Fatalf("request %q: status %d", fuzzTrim(req), r.code)
	}
	if r.code == 200 {
		if method != "GET" && method != "HEAD" {
			t.Fatalf("request %q: 200 to method %q", fuzzTrim(req), method)
		}
		switch path {
		case "/torbox", "/torbox/", "/", "/torbox.json":
		default:
			t.Fatalf("request %q: 200 for path %q outside the page's set", fuzzTrim(req), path)
		}
		if head < 0 || head > maxRequestHeader {
			t.Fatalf("request %q: 200 with the request header ending at %d (limit %d)", fuzzTrim(req), head, maxRequestHeader)
		}
	}
	for _, h := range []string{"content-type", "content-length", "cache-control", "content-security-policy", "x-content-type-options", "x-frame-options", "connection"} {
		if _, ok := r.header[h]; !ok {
			t.Fatalf("request %q: answer lacks %s", fuzzTrim(req), h)
		}
	}
	if r.header["connection"] != "close" || r.header["cache-control"] != "no-store" {
		t.Fatalf("request %q: answer headers %v", fuzzTrim(req), r.header)
	}
	if r.noBody && !(r.code == 200 || r.code == 404) || r.noBody && method != "HEAD" {
		t.Fatalf("request %q: %d without its body to a %q", fuzzTrim(req), r.code, method)
	}
	if bytes.Contains(bytes.ToLower(r.body), []byte("<script")) {
		t.Fatalf("request %q: answer has a script element:\n%s", fuzzTrim(req), r.body)
	}
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

func TestFuzzPad(t *testing.T) {
	req := []byte("GET /torbox HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, tc := range []struct {
		lines, long uint8
		want        string
	}{
		{0, 0, string(req)},
		{1, 0, "GET /torbox HTTP/1.1\r\nX-Pad: " + strings.Repeat("p", 55) + "\r\nHost: x\r\n\r\n"},
		{0, 1, "GET /torbox HTTP/1.1aaaaaaaaaaaaaaaa\r\nHost: x\r\n\r\n"},
		{0, 0x81, "GET /torbox HTTP/1.1\r\nX-Long: aaaaaaaaaaaaaaaa\r\nHost: x\r\n\r\n"},
	} {
		if got := string(fuzzPad(req, tc.lines, tc.long)); got != tc.want {
			t.Errorf("fuzzPad(%d, %#x) = %q, want %q", tc.lines, tc.long, got, tc.want)
		}
	}
	if got := fuzzPad([]byte("GET /"), 3, 3); string(got) != "GET /" {
		t.Errorf("padded a request without a line end: %q", got)
	}
}
