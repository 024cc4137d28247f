package updater

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// This is a deliberately small HTTP/1.1 GET client. net/http would double
// the router binary (it drags in HTTP/2, multipart, cookies, proxies from
// the environment); the updater needs one GET with a Range header, byte
// exact limits and no surprises: no redirects, no cookies, no keep-alive,
// no proxy or DNS lookup of its own. Every connection comes from dial,
// which is Tor's SOCKS port in production.

// UserAgent is sent on every request. It is the same on every router and
// every version, so it identifies nothing but "a torwrt router".
const UserAgent = "torwrt-verify"

const (
	maxHeaderLine  = 4096
	maxHeaderBytes = 32 << 10
	maxHeaderLines = 100
)

// dialFunc opens a connection to host:port. The host is a name, never
// resolved here.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

type getter struct {
	dial dialFunc
	// stall is the longest wait for any byte of a response.
	stall time.Duration
	// wrapTLS upgrades a connection for https URLs; nil refuses them.
	wrapTLS func(ctx context.Context, c net.Conn, serverName string) (net.Conn, error)
	// received counts every byte read from the network, headers included.
	received int64
}

type response struct {
	status int
	// length is the Content-Length, or -1.
	length int64
	// rangeStart and rangeTotal are from Content-Range on a 206; total is
	// -1 for "*".
	rangeStart, rangeTotal int64
	body                   io.Reader
	conn                   net.Conn
	stop                   func() bool
}

func (r *response) Close() error {
	r.stop()
	return r.conn.Close()
}

// requestURL checks a mirror URL: http or https, a host, no user info, no
// query or fragment (nothing that could carry a device identifier).
func requestURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("mirror url %q: %w", raw, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("mirror url %q: scheme must be http or https", raw)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("mirror url %q: no host", raw)
	case u.User != nil:
		return nil, fmt.Errorf("mirror url %q: user info not allowed", raw)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("mirror url %q: query and fragment not allowed", raw)
	}
	return u, nil
}

// fileURL joins a mirror base URL and a file name from the manifest (a
// bare name: manifest.Validate allows no separators).
func fileURL(base, name string) string {
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return base + name
}

// get sends GET for rawURL, with "Range: bytes=from-" when from > 0, and
// returns once the response headers are in. deadline bounds connecting and
// the headers; the body is bounded by the stall timeout and ctx.
func (g *getter) get(ctx context.Context, rawURL string, from int64, deadline time.Time) (*response, error) {
	u, err := requestURL(rawURL)
	if err != nil {
		return nil, err
	}
	host := u.Hostname()
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if u.Scheme == "https" && g.wrapTLS == nil {
		return nil, fmt.Errorf("%s: https is not built into this binary; use an http:// onion mirror or build with -tags torwrt_https", rawURL)
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn, err := g.dial(dctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("connecting to %s through tor: %w", u.Host, timeoutErr(err))
	}
	if u.Scheme == "https" {
		tc, err := g.wrapTLS(dctx, conn, host)
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("tls with %s: %w", u.Host, timeoutErr(err))
		}
		conn = tc
	}
	sc := &stallConn{Conn: conn, stall: g.stall, hard: deadline, count: &g.received, done: ctx.Done()}
	// Cancelling ctx unblocks any read or write at once.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	resp, err := g.roundTrip(sc, u, from)
	if err != nil {
		stop()
		conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: %w", rawURL, ctx.Err())
		}
		return nil, fmt.Errorf("%s: %w", rawURL, timeoutErr(err))
	}
	// Headers are in: from here only the stall timeout applies, so a
	// slow but steady image download over Tor is not cut off.
	sc.hard = time.Time{}
	resp.conn, resp.stop = conn, stop
	return resp, nil
}

func (g *getter) roundTrip(c net.Conn, u *url.URL, from int64) (*response, error) {
	var req strings.Builder
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: */*\r\nAccept-Encoding: identity\r\nConnection: close\r\n", path, u.Host, UserAgent)
	if from > 0 {
		fmt.Fprintf(&req, "Range: bytes=%d-\r\n", from)
	}
	req.WriteString("\r\n")
	if _, err := io.WriteString(c, req.String()); err != nil {
		return nil, fmt.Errorf("sending request: %w", err)
	}
	br := bufio.NewReaderSize(c, maxHeaderLine)
	resp := &response{length: -1, rangeStart: -1, rangeTotal: -1}
	total := 0
	readLine := func() (string, error) {
		b, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return "", fmt.Errorf("response header line longer than %d bytes", maxHeaderLine)
		}
		if err != nil {
			return "", fmt.Errorf("reading response header: %w", err)
		}
		if total += len(b); total > maxHeaderBytes {
			return "", fmt.Errorf("response header larger than %d bytes", maxHeaderBytes)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	// 1xx responses precede the real one; skip a few.
	for i := 0; ; i++ {
		line, err := readLine()
		if err != nil {
			return nil, err
		}
		proto, rest, _ := strings.Cut(line, " ")
		code, _, _ := strings.Cut(rest, " ")
		if proto != "HTTP/1.1" && proto != "HTTP/1.0" || len(code) != 3 {
			return nil, fmt.Errorf("bad status line %q", clip(line))
		}
		resp.status, err = strconv.Atoi(code)
		if err != nil || resp.status < 100 {
			return nil, fmt.Errorf("bad status line %q", clip(line))
		}
		var te, cl, cr []string
		for n := 0; ; n++ {
			h, err := readLine()
			if err != nil {
				return nil, err
			}
			if h == "" {
				break
			}
			if n == maxHeaderLines {
				return nil, fmt.Errorf("more than %d response header lines", maxHeaderLines)
			}
			k, v, ok := strings.Cut(h, ":")
			if !ok {
				return nil, fmt.Errorf("bad response header line %q", clip(h))
			}
			v = strings.TrimSpace(v)
			switch strings.ToLower(k) {
			case "transfer-encoding":
				te = append(te, v)
			case "content-length":
				cl = append(cl, v)
			case "content-range":
				cr = append(cr, v)
			}
		}
		if resp.status >= 200 {
			if err := resp.parseFraming(te, cl, cr); err != nil {
				return nil, err
			}
			break
		}
		if i == 4 {
			return nil, errors.New("too many interim responses")
		}
	}
	switch {
	case resp.status == 204 || resp.status == 304:
		resp.body = strings.NewReader("")
	case resp.length == -2: // chunked
		resp.length = -1
		resp.body = &chunkedReader{r: br}
	case resp.length >= 0:
		resp.body = &exactReader{r: br, left: resp.length}
	default:
		resp.body = br
	}
	return resp, nil
}

func (r *response) parseFraming(te, cl, cr []string) error {
	if len(te) > 0 {
		if len(te) != 1 || !strings.EqualFold(te[0], "chunked") {
			return fmt.Errorf("unsupported transfer-encoding %q", clip(strings.Join(te, ",")))
		}
		// A message with both is a smuggling vector; refuse it.
		if len(cl) > 0 {
			return errors.New("response has both transfer-encoding and content-length")
		}
		r.length = -2
	}
	if len(cl) > 0 {
		for _, v := range cl[1:] {
			if v != cl[0] {
				return errors.New("conflicting content-length headers")
			}
		}
		n, err := parseDecimal(cl[0])
		if err != nil {
			return fmt.Errorf("bad content-length %q", clip(cl[0]))
		}
		r.length = n
	}
	if r.status == 206 {
		if len(cr) != 1 {
			return errors.New("206 response without one content-range")
		}
		v, ok := strings.CutPrefix(cr[0], "bytes ")
		span, total, ok2 := strings.Cut(v, "/")
		a, b, ok3 := strings.Cut(span, "-")
		if !ok || !ok2 || !ok3 {
			return fmt.Errorf("bad content-range %q", clip(cr[0]))
		}
		start, err1 := parseDecimal(a)
		end, err2 := parseDecimal(b)
		if err1 != nil || err2 != nil || end < start {
			return fmt.Errorf("bad content-range %q", clip(cr[0]))
		}
		r.rangeStart = start
		if total != "*" {
			t, err := parseDecimal(total)
			if err != nil || t <= end {
				return fmt.Errorf("bad content-range %q", clip(cr[0]))
			}
			r.rangeTotal = t
		}
		if r.length >= 0 && r.length != end-start+1 {
			return errors.New("content-length disagrees with content-range")
		}
	}
	return nil
}

func parseDecimal(s string) (int64, error) {
	if s == "" || len(s) > 18 {
		return 0, errors.New("bad number")
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("bad number")
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// exactReader reads exactly left bytes; an early EOF is an error.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if errors.Is(err, io.EOF) && e.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// chunkedReader decodes Transfer-Encoding: chunked with bounded lines.
type chunkedReader struct {
	r    *bufio.Reader
	left int64 // bytes left in the current chunk
	done bool
	err  error
}

func (c *chunkedReader) line() (string, error) {
	b, err := c.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", errors.New("chunk header line too long")
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.done {
		return 0, io.EOF
	}
	if c.left == 0 {
		l, err := c.line()
		if err != nil {
			c.err = err
			return 0, err
		}
		size, _, _ := strings.Cut(l, ";")
		size = strings.TrimSpace(size)
		if size == "" || len(size) > 15 {
			c.err = fmt.Errorf("bad chunk size %q", clip(l))
			return 0, c.err
		}
		n, err := strconv.ParseInt(size, 16, 64)
		if err != nil || n < 0 {
			c.err = fmt.Errorf("bad chunk size %q", clip(l))
			return 0, c.err
		}
		if n == 0 {
			// Trailers, bounded, then the final empty line.
			for i := 0; ; i++ {
				t, err := c.line()
				if err != nil {
					c.err = err
					return 0, err
				}
				if t == "" {
					break
				}
				if i == maxHeaderLines {
					c.err = errors.New("too many trailer lines")
					return 0, c.err
				}
			}
			c.done = true
			return 0, io.EOF
		}
		c.left = n
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left == 0 && err == nil {
		l, lerr := c.line()
		if lerr != nil || l != "" {
			c.err = errors.New("chunk not followed by CRLF")
		}
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		c.err = err
	}
	return n, err
}

// stallConn gives every read a deadline of now+stall (capped by hard, if
// set) and counts bytes. A server that stops sending, or trickles too
// slowly to send one buffer within stall, is cut off.
type stallConn struct {
	net.Conn
	stall time.Duration
	hard  time.Time
	count *int64
	// done is the request context's Done channel: once closed, no read
	// may push the deadline (which cancellation set to the past) forward.
	done <-chan struct{}
}

func (s *stallConn) Read(p []byte) (int, error) {
	select {
	case <-s.done:
		return 0, context.Canceled
	default:
	}
	dl := time.Now().Add(s.stall)
	if !s.hard.IsZero() && s.hard.Before(dl) {
		dl = s.hard
	}
	s.Conn.SetReadDeadline(dl)
	select {
	case <-s.done: // cancelled between the check and the new deadline
		s.Conn.SetReadDeadline(time.Unix(1, 0))
	default:
	}
	n, err := s.Conn.Read(p)
	*s.count += int64(n)
	return n, err
}

func (s *stallConn) Write(p []byte) (int, error) {
	select {
	case <-s.done:
		return 0, context.Canceled
	default:
	}
	dl := time.Now().Add(s.stall)
	if !s.hard.IsZero() && s.hard.Before(dl) {
		dl = s.hard
	}
	s.Conn.SetWriteDeadline(dl)
	return s.Conn.Write(p)
}

// ErrTimeout: a mirror or Tor did not answer in time.
var ErrTimeout = errors.New("timed out")

func timeoutErr(err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err
}
