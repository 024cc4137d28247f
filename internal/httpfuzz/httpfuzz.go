//go:build unix

// Package httpfuzz drives the router's hand-written HTTP servers (the
// status page, the setup view) from fuzz targets: raw request bytes over a
// Unix socket pair that looks like a LAN client's TCP connection, and a
// strict reader of what comes back. Only tests import it.
package httpfuzz

import (
	"bytes"
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
	"time"
)

// AnswerWithin bounds one exchange. The client has sent the whole
// request and closed its side before the server reads, so the server
// never needs its own 5 s request deadline: a server that has not
// answered or closed by then is stuck.
const AnswerWithin = 3 * time.Second

// Pad makes req longer where the server's size limits apply, if req
// has a first line: it inserts lines header lines of 64 bytes after the
// first line, and 16 bytes for each unit of long&0x7f at the end of the
// first line (long < 0x80) or as one more header line (long >= 0x80).
func Pad(req []byte, lines, long uint8) []byte {
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

// Listener hands the server connections made by exchange, each one
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
type Listener struct {
	conns   chan net.Conn
	waiting chan struct{} // the server is in Accept
	done    chan struct{}
	once    sync.Once
}

func NewListener() *Listener {
	return &Listener{conns: make(chan net.Conn), waiting: make(chan struct{}, 1), done: make(chan struct{})}
}

func (l *Listener) Accept() (net.Conn, error) {
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

func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *Listener) Addr() net.Addr { return addr{} }

type addr struct{}

func (addr) Network() string { return "fuzz" }

func (addr) String() string { return "fuzz" }

type conn struct {
	net.Conn
	local, remote net.Addr
}

func (c *conn) LocalAddr() net.Addr { return c.local }

func (c *conn) RemoteAddr() net.Addr { return c.remote }

// socketPair returns the two ends of a connected Unix stream socket.
func socketPair() (client, server *net.UnixConn, err error) {
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

// Exchange sends req to the server as a client at from that reached the
// server at local, then reads until
// the server closes, all within AnswerWithin. It returns what the
// server sent; an error only when the server neither answered nor closed
// in time.
func (l *Listener) Exchange(local, from netip.AddrPort, req []byte) ([]byte, error) {
	goroutines := runtime.NumGoroutine()
	deadline := time.Now().Add(AnswerWithin)
	c, sc, err := socketPair()
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
	case l.conns <- &conn{Conn: sc, local: net.TCPAddrFromAddrPort(local), remote: net.TCPAddrFromAddrPort(from)}:
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
		return raw, fmt.Errorf("no answer and no close within %v (got %d bytes)", AnswerWithin, len(raw))
	case errors.Is(err, syscall.ECONNRESET):
		// The server closed with input unread; what arrived before the
		// reset is its answer.
	default:
		return raw, fmt.Errorf("reading the answer: %w", err)
	}
	return raw, nil
}

// Reply is a parsed answer.
type Reply struct {
	Code   int
	Header map[string]string // lower-case names
	Body   []byte
	NoBody bool // Content-Length > 0 but no body: the answer to a HEAD
}

// ParseReply checks that raw is exactly one well-formed HTTP/1.1
// answer with Content-Length framing.
func ParseReply(raw []byte) (Reply, error) {
	var r Reply
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
	r.Code = code
	r.Header = map[string]string{}
	for _, h := range lines[1:] {
		k, v, ok := strings.Cut(h, ": ")
		if !ok || k == "" {
			return r, fmt.Errorf("bad header line %q", h)
		}
		for _, b := range []byte(k) {
			if !isTokenChar(b) {
				return r, fmt.Errorf("bad header name %q", k)
			}
		}
		for _, b := range []byte(v) {
			if b < 0x20 && b != '\t' || b == 0x7f {
				return r, fmt.Errorf("control byte in header %q", h)
			}
		}
		k = strings.ToLower(k)
		if _, dup := r.Header[k]; dup {
			return r, fmt.Errorf("header %s twice", k)
		}
		r.Header[k] = v
	}
	n, err := strconv.Atoi(r.Header["content-length"])
	if err != nil || n < 0 {
		return r, fmt.Errorf("bad Content-Length %q", r.Header["content-length"])
	}
	switch {
	case len(body) == n:
		r.Body = body
	case len(body) == 0:
		r.NoBody = true
	default:
		return r, fmt.Errorf("Content-Length %d but %d bytes follow the header", n, len(body))
	}
	return r, nil
}

func isTokenChar(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}

// RequestLine reads req as a client means it, independently of the
// server: the method and path (query and fragment cut) of a request line
// "METHOD SP target SP HTTP/1.x", and the offset just past the blank line
// that ends the header (-1 if there is none).
func RequestLine(req []byte) (method, path string, head int) {
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

// Trim shortens b for a failure message.
func Trim(b []byte) []byte {
	if len(b) > 600 {
		return append(bytes.Clone(b[:600]), "..."...)
	}
	return b
}

// Ready waits until the server is in Accept for the first time.
func (l *Listener) Ready() { <-l.waiting }
