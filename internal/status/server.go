package status

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The server answers GET and HEAD for /torbox and /torbox.json, one
// request per connection. It is small on purpose: net/http would add more
// to the router binary than the rest of the daemon, and this page needs
// none of it. Limits keep a busy or hostile LAN client from tying it up:
// one source address holds at most maxConnsPerClient connections, so
// maxConns/maxConnsPerClient clients can be served at once whatever one of
// them does, and a client that is slow to send its request is dropped
// after headerTimeout.
const (
	maxRequestHeader  = 8 << 10
	maxConns          = 64
	maxConnsPerClient = MaxConnsPerClient
	headerTimeout     = RequestTimeout
	connTimeout       = 10 * time.Second
)

// MaxConnsPerClient and RequestTimeout are the limits every listener of
// the router's web pages applies (the status page here, the setup view in
// front of it): one source address holds at most MaxConnsPerClient open
// connections, and a client has RequestTimeout to send its request.
const (
	MaxConnsPerClient = 4
	RequestTimeout    = 5 * time.Second
)

// clientLimit counts open connections, in total and per source address.
type clientLimit struct {
	mu    sync.Mutex
	total int
	per   map[netip.Addr]int
}

// acquire takes a slot for a connection from addr, or reports that addr
// or the server is at its limit.
func (l *clientLimit) acquire(addr netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= maxConns || l.per[addr] >= maxConnsPerClient {
		return false
	}
	if l.per == nil {
		l.per = map[netip.Addr]int{}
	}
	l.total++
	l.per[addr]++
	return true
}

func (l *clientLimit) release(addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.per[addr]--; l.per[addr] <= 0 {
		delete(l.per, addr)
	}
}

// LimitListener returns a listener whose Accept holds each source address
// to MaxConnsPerClient open connections, and all of them together to the
// status page's total: a connection over the limit is closed at once, not
// queued, and Accept waits for the next one. A connection's slot is freed
// when it is closed. Closing the returned listener closes ln.
func LimitListener(ln net.Listener) net.Listener {
	return &limitListener{Listener: ln}
}

type limitListener struct {
	net.Listener
	limit clientLimit
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		addr := remoteAddr(c)
		if !l.limit.acquire(addr) {
			c.Close()
			continue
		}
		return &limitedConn{Conn: c, release: sync.OnceFunc(func() { l.limit.release(addr) })}, nil
	}
}

// limitedConn gives its slot back when closed (once, however often it is
// closed).
type limitedConn struct {
	net.Conn
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// remoteAddr is c's source address without the port (and without an
// IPv4-in-IPv6 wrapping); the zero Addr when unknown, which then shares
// one limit.
func remoteAddr(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// securityHeaders forbid the page from loading or running anything.
const securityHeaders = "Cache-Control: no-store\r\n" +
	"X-Content-Type-Options: nosniff\r\n" +
	"Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n" +
	"Referrer-Policy: no-referrer\r\n" +
	"X-Frame-Options: DENY\r\n"

// Serve answers on ln until ctx is done. snap is called per request and
// must not block (the daemon returns a cached snapshot).
func (p *Page) Serve(ctx context.Context, ln net.Listener, snap func() Snapshot) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	// This client, or everyone together, having too many open
	// connections gets the new one dropped rather than queued.
	lim := LimitListener(ln)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := lim.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("status page: accepting on %s: %w", ln.Addr(), err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.serveConn(c, snap) // closes c, which frees its slot
		}()
	}
}

func (p *Page) serveConn(c net.Conn, snap func() Snapshot) {
	defer c.Close()
	start := time.Now()
	c.SetDeadline(start.Add(connTimeout))
	c.SetReadDeadline(start.Add(headerTimeout))
	method, path, err := readRequest(bufio.NewReaderSize(c, 1024))
	if err != nil {
		respond(c, 400, "text/plain; charset=utf-8", []byte("bad request\n"), false)
		return
	}
	head := method == "HEAD"
	if method != "GET" && !head {
		respond(c, 405, "text/plain; charset=utf-8", []byte("only GET\n"), false)
		return
	}
	var visitor *Visitor
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		visitor = p.Visitor(ap.Addr())
	}
	switch path {
	case "/torbox", "/torbox/", "/":
		respond(c, 200, "text/html; charset=utf-8", p.HTML(snap(), visitor), head)
	case "/torbox.json":
		respond(c, 200, "application/json", p.JSON(snap(), visitor), head)
	default:
		respond(c, 404, "text/plain; charset=utf-8", []byte("not found; the status page is /torbox\n"), head)
	}
}

// readRequest reads the request line and skips the headers, within
// maxRequestHeader bytes.
func readRequest(br *bufio.Reader) (method, path string, err error) {
	total := 0
	line := func() (string, error) {
		b, err := br.ReadSlice('\n')
		if err != nil {
			return "", err
		}
		if total += len(b); total > maxRequestHeader {
			return "", errors.New("request header too large")
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	first, err := line()
	if err != nil {
		return "", "", err
	}
	parts := strings.Split(first, " ")
	if len(parts) != 3 || !strings.HasPrefix(parts[2], "HTTP/1.") {
		return "", "", errors.New("bad request line")
	}
	method, path = parts[0], parts[1]
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	for {
		h, err := line()
		if err != nil {
			return "", "", err
		}
		if h == "" {
			return method, path, nil
		}
	}
}

func respond(w io.Writer, code int, ctype string, body []byte, head bool) {
	text := map[int]string{200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}[code]
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%sConnection: close\r\n\r\n",
		code, text, ctype, len(body), securityHeaders)
	if !head {
		b.Write(body)
	}
	w.Write(b.Bytes())
}

// Fetch asks a running daemon at addr (host:port) for /torbox.json.
func Fetch(ctx context.Context, addr string) ([]byte, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("asking the daemon at %s: %w", addr, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	} else {
		c.SetDeadline(time.Now().Add(connTimeout))
	}
	if _, err := io.WriteString(c, "GET /torbox.json HTTP/1.1\r\nHost: "+addr+"\r\nConnection: close\r\n\r\n"); err != nil {
		return nil, fmt.Errorf("asking the daemon at %s: %w", addr, err)
	}
	raw, err := io.ReadAll(io.LimitReader(c, 256<<10))
	if err != nil {
		return nil, fmt.Errorf("reading the daemon's answer: %w", err)
	}
	head, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		return nil, fmt.Errorf("daemon at %s sent no complete answer", addr)
	}
	status, _, _ := bytes.Cut(head, []byte("\r\n"))
	f := strings.Fields(string(status))
	if len(f) < 2 || f[1] != "200" {
		return nil, fmt.Errorf("daemon at %s answered %q", addr, status)
	}
	for _, h := range strings.Split(string(head), "\r\n")[1:] {
		k, v, _ := strings.Cut(h, ":")
		if strings.EqualFold(k, "Content-Length") {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n != len(body) {
				return nil, fmt.Errorf("daemon at %s sent %d of %d bytes", addr, len(body), n)
			}
		}
	}
	return body, nil
}
