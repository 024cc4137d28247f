// Package setup serves the first-boot setup view, /torbox/setup: the
// secrets /etc/uci-defaults/90-torwrt-firstboot made on this router (root
// password, one Wi-Fi passphrase per network), shown
//
//   - only to a client whose source address is in the setup network
//     (tor_max: the wired LAN port or the tor_max Wi-Fi) and that reached
//     the router on its address there, and
//   - only until the owner confirms with the page's button, which creates
//     the done file. From then on the page says setup is done and shows
//     nothing secret.
//
// The view sits in front of the status page's server (internal/status):
// Intercept wraps the status page's listener, answers requests for
// /torbox/setup itself and hands every other connection on untouched.
// Nothing here logs a secret; logs name the client and what happened.
package setup

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/torwrt/torwrt/internal/routerconf"
	"github.com/torwrt/torwrt/internal/status"
)

// Paths of the view.
const (
	Path     = routerconf.SetupPath
	DonePath = routerconf.SetupDonePath
)

// Limits: the view is for one person at a time on a small router.
const (
	maxRequestHeader = 8 << 10
	maxBody          = 1 << 10
	maxSecretsFile   = 4 << 10
	connTimeout      = 10 * time.Second
	// requestTimeout bounds reading the request line, headers and body:
	// the status page's limit, so that the view in front of it is no
	// easier to tie up than the page itself.
	requestTimeout = status.RequestTimeout
)

// Config describes the view. Paths are absolute on the router.
type Config struct {
	// Network names the setup network (tor_max), Prefixes its client
	// subnets: only clients from there see the view.
	Network  string
	Prefixes []netip.Prefix
	// Address is the router's address on the setup network. A
	// connection that arrived on another local address is refused even
	// from a setup client. The zero Addr accepts any local address.
	Address     netip.Addr
	SecretsFile string
	DoneFile    string
	// Networks name the Wi-Fi networks whose passphrases the secrets
	// file holds (WIFI_KEY_<NAME>), in the order to show them.
	Networks []Network
	Brand    Brand
	Logger   *slog.Logger
}

// Network is one Wi-Fi network, for labelling its passphrase.
type Network struct {
	Name string // tor_off
	SSID string // torwrt-tor_off; empty: not shown
}

// Brand is the little the view takes from the status page's look. Empty
// fields take torwrt's defaults; colours must be #rrggbb.
type Brand struct {
	ProductName string
	Primary     string
	Background  string
	Text        string
	Language    string
}

// View serves the setup view.
type View struct {
	cfg   Config
	log   *slog.Logger
	token string // proves a confirmation came from the page
	mu    sync.Mutex
}

// New checks cfg and prepares the view. Whether the secrets exist is only
// looked at per request: the first-boot script may still be running.
func New(cfg Config) (*View, error) {
	if len(cfg.Prefixes) == 0 {
		return nil, errors.New("setup: no client prefixes for the setup network")
	}
	if !filepath.IsAbs(cfg.SecretsFile) || !filepath.IsAbs(cfg.DoneFile) {
		return nil, errors.New("setup: the secrets and done files need absolute paths")
	}
	b := &cfg.Brand
	def := func(s *string, v string, ok func(string) bool) {
		if *s == "" || !ok(*s) {
			*s = v
		}
	}
	def(&b.ProductName, "torwrt", func(s string) bool { return len(s) <= 64 })
	def(&b.Primary, "#7d4698", routerconf.IsColor)
	def(&b.Background, "#ffffff", routerconf.IsColor)
	def(&b.Text, "#1c1c1c", routerconf.IsColor)
	def(&b.Language, "en", routerconf.IsLanguage)
	var tok [16]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &View{cfg: cfg, log: log, token: hex.EncodeToString(tok[:])}, nil
}

// IsPath reports whether a request path belongs to the view.
func IsPath(p string) bool { return p == Path || strings.HasPrefix(p, Path+"/") }

// Allowed reports whether a connection from remote that arrived on local
// may see the view: remote in the setup network, local the router's
// address there.
func (v *View) Allowed(remote, local netip.Addr) bool {
	remote, local = remote.Unmap(), local.Unmap()
	if v.cfg.Address.IsValid() && local != v.cfg.Address {
		return false
	}
	for _, p := range v.cfg.Prefixes {
		if p.Contains(remote) {
			return true
		}
	}
	return false
}

// Intercept returns a listener that answers the view's requests itself
// and passes every other connection, with the bytes already read put
// back, to whoever calls Accept (the status page's server). Closing it
// closes ln.
//
// It applies the status page's per-client limit (status.LimitListener)
// from accept to close, whoever ends up serving the connection: one LAN
// client with idle connections can use up its own share only. A client
// has requestTimeout to send its request line.
func (v *View) Intercept(ln net.Listener) net.Listener {
	l := &interceptor{Listener: status.LimitListener(ln), v: v, conns: make(chan net.Conn), errc: make(chan error, 1),
		done: make(chan struct{})}
	go l.run()
	return l
}

type interceptor struct {
	net.Listener
	v     *View
	conns chan net.Conn
	errc  chan error
	done  chan struct{}
	once  sync.Once
}

func (l *interceptor) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	case err := <-l.errc:
		return nil, err
	}
}

func (l *interceptor) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

func (l *interceptor) run() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.errc <- err
			return
		}
		go l.route(c) // l.Listener has dropped what is over the limits
	}
}

// route reads the request line. Requests for the view are answered here;
// everything else goes to Accept with the line put back.
func (l *interceptor) route(c net.Conn) {
	start := time.Now()
	c.SetDeadline(start.Add(connTimeout))
	c.SetReadDeadline(start.Add(requestTimeout))
	br := bufio.NewReaderSize(c, 1024)
	line, err := br.ReadSlice('\n')
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
		c.Close()
		return
	}
	if err == nil {
		if method, target, ok := parseRequestLine(line); ok && IsPath(target) {
			l.v.serveConn(c, br, method, target)
			return
		}
	}
	c.SetDeadline(time.Time{}) // the status page sets its own
	pc := &peekedConn{Conn: c, r: io.MultiReader(bytes.NewReader(bytes.Clone(line)), br)}
	select {
	case l.conns <- pc:
	case <-l.done:
		c.Close()
	}
}

// peekedConn replays what route read before handing the connection on.
type peekedConn struct {
	net.Conn
	r io.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func parseRequestLine(line []byte) (method, path string, ok bool) {
	parts := strings.Split(strings.TrimRight(string(line), "\r\n"), " ")
	if len(parts) != 3 || !strings.HasPrefix(parts[2], "HTTP/1.") {
		return "", "", false
	}
	path = parts[1]
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	return parts[0], path, true
}

// request is what the view needs of an HTTP request.
type request struct {
	method, path string
	host         string
	body         []byte
	remote       netip.Addr
	local        netip.Addr
}

func addrOf(a net.Addr) netip.Addr {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// serveConn answers one request whose request line has been read, within
// the deadlines route set.
func (v *View) serveConn(c net.Conn, br *bufio.Reader, method, path string) {
	defer c.Close()
	req := request{method: method, path: path, remote: addrOf(c.RemoteAddr()), local: addrOf(c.LocalAddr())}
	length, err := readHeaders(br, &req)
	if err == nil && length > 0 {
		if length > maxBody {
			err = errors.New("body too large")
		} else {
			req.body = make([]byte, length)
			_, err = io.ReadFull(br, req.body)
		}
	}
	if err != nil {
		writeResponse(c, response{code: 400, ctype: "text/plain; charset=utf-8", body: []byte("bad request\n")}, false)
		return
	}
	writeResponse(c, v.handle(req), method == "HEAD")
}

// readHeaders reads the headers within maxRequestHeader bytes and returns
// Content-Length.
func readHeaders(br *bufio.Reader, req *request) (int, error) {
	total, length := 0, 0
	seenHost, seenLength := false, false
	for {
		b, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if total += len(b); total > maxRequestHeader {
			return 0, errors.New("request header too large")
		}
		h := strings.TrimRight(string(b), "\r\n")
		if h == "" {
			return length, nil
		}
		k, val, ok := strings.Cut(h, ":")
		if !ok {
			return 0, errors.New("bad header line")
		}
		val = strings.TrimSpace(val)
		switch strings.ToLower(k) {
		case "host":
			// RFC 9112 §3.2: a request with more than one Host is refused,
			// so the name the checks see is the only one there is.
			if seenHost {
				return 0, errors.New("more than one Host header")
			}
			req.host, seenHost = val, true
		case "content-length":
			n, err := strconv.Atoi(val)
			if err != nil || n < 0 || seenLength || strings.TrimLeft(val, "0123456789") != "" {
				return 0, errors.New("bad Content-Length")
			}
			length, seenLength = n, true
		case "transfer-encoding":
			return 0, errors.New("chunked bodies are not accepted")
		}
	}
}

type response struct {
	code     int
	ctype    string
	location string
	body     []byte
}

// handle decides a request. It is separate from the connection so that
// tests can call it too.
func (v *View) handle(req request) response {
	if !v.Allowed(req.remote, req.local) {
		v.log.Debug("setup view refused", "client", req.remote.String(), "reason", "not on the setup network "+v.cfg.Network)
		return v.page(403, "Not here", "<p>The setup page is shown only on the "+esc(v.cfg.Network)+
			" network: connect a computer to the router's LAN port and open <code>http://"+esc(v.addrText())+Path+"</code>.</p>")
	}
	// No DNS name can reach the view: that rules out DNS rebinding.
	if req.host != "" && !hostIsIP(req.host) {
		v.log.Debug("setup view refused", "client", req.remote.String(), "reason", "host header is not an IP address")
		return v.page(403, "Not here", "<p>Open the setup page by the router's address: <code>http://"+esc(v.addrText())+Path+"</code>.</p>")
	}
	switch {
	case req.path == Path || req.path == Path+"/":
		if req.method != "GET" && req.method != "HEAD" {
			return response{code: 405, ctype: "text/plain; charset=utf-8", body: []byte("only GET\n")}
		}
		return v.view(req)
	case req.path == DonePath:
		if req.method != "POST" {
			return response{code: 405, ctype: "text/plain; charset=utf-8", body: []byte("only POST\n")}
		}
		return v.confirm(req)
	}
	return response{code: 404, ctype: "text/plain; charset=utf-8", body: []byte("not found; the setup page is " + Path + "\n")}
}

func (v *View) addrText() string {
	if v.cfg.Address.IsValid() {
		return v.cfg.Address.String()
	}
	return "<router>"
}

func hostIsIP(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	_, err := netip.ParseAddr(host)
	return err == nil
}

// done reports whether setup is over. Anything but a clear "does not
// exist" counts as done: the view fails closed.
func (v *View) done() bool {
	_, err := os.Lstat(v.cfg.DoneFile)
	return !errors.Is(err, fs.ErrNotExist)
}

func (v *View) view(req request) response {
	if v.done() {
		return v.page(200, "Setup is done", "<p>You have confirmed that you copied this router's passwords, so this page no longer shows them.</p>"+
			"<p>They remain on the router only, readable by root. If you lost them, reset the router to factory defaults: it then makes new ones.</p>")
	}
	secrets, err := readSecrets(v.cfg.SecretsFile)
	if err != nil {
		// The error names the file and the problem, never its contents.
		v.log.Warn("setup view: secrets unavailable", "err", err)
		return v.page(503, "Not ready", "<p>This router's passwords are not ready. The first-boot script makes them; if this lasts more than a few minutes after start-up, it has failed (see the system log).</p>")
	}
	var b strings.Builder
	b.WriteString("<p>These passwords were made on this router when it first started. No other device and no firmware image has them. " +
		"Copy them now (on paper or into a password manager). After you confirm below, this page no longer shows them.</p>\n<dl>")
	shown := map[string]bool{}
	for _, n := range v.cfg.Networks {
		key := "WIFI_KEY_" + strings.ToUpper(n.Name)
		val, ok := secrets.get(key)
		if !ok {
			continue
		}
		shown[key] = true
		label := "Wi-Fi " + n.Name
		if n.SSID != "" {
			label = "Wi-Fi \u201c" + n.SSID + "\u201d (" + n.Name + ")"
		}
		fmt.Fprintf(&b, "<dt>%s</dt><dd><code>%s</code></dd>", esc(label), esc(val))
	}
	if val, ok := secrets.get("ROOT_PASSWORD"); ok {
		shown["ROOT_PASSWORD"] = true
		fmt.Fprintf(&b, "<dt>%s</dt><dd><code>%s</code></dd>", "Root password (serial console only; SSH takes keys, never passwords)", esc(val))
	}
	for _, kv := range secrets {
		if !shown[kv.key] {
			fmt.Fprintf(&b, "<dt>%s</dt><dd><code>%s</code></dd>", esc(kv.key), esc(kv.val))
		}
	}
	b.WriteString("</dl>\n")
	fmt.Fprintf(&b, "<form method=\"post\" action=\"%s\"><input type=\"hidden\" name=\"token\" value=\"%s\">"+
		"<button type=\"submit\">I have copied them: stop showing this page</button></form>\n", DonePath, v.token)
	v.log.Info("setup view shown", "client", req.remote.String())
	return v.page(200, "First setup", b.String())
}

func (v *View) confirm(req request) response {
	form, err := url.ParseQuery(string(req.body))
	if err != nil || subtle.ConstantTimeCompare([]byte(form.Get("token")), []byte(v.token)) != 1 {
		v.log.Info("setup confirmation refused", "client", req.remote.String(), "reason", "missing or stale form token")
		return v.page(403, "Please try again", "<p>This confirmation did not come from the current setup page. <a href=\""+Path+"\">Open the setup page again</a> and confirm there.</p>")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.done() {
		if err := writeDone(v.cfg.DoneFile); err != nil {
			v.log.Error("setup confirmation not saved", "err", err)
			return v.page(500, "Not saved", "<p>The router could not record your confirmation. Try again in a moment.</p>")
		}
		v.log.Info("setup confirmed; the setup view no longer shows the secrets", "client", req.remote.String(), "done_file", v.cfg.DoneFile)
	}
	r := v.page(303, "Setup is done", "<p><a href=\""+Path+"\">Continue</a></p>")
	r.location = Path
	return r
}

// writeDone creates the done file durably: a power cut right after the
// confirmation must not bring the secrets back.
func writeDone(path string) error {
	// The done file is in the daemon's state directory, which the updater
	// makes only at its first check: make it (one level, 0700) if a
	// confirmation comes first.
	if err := os.Mkdir(filepath.Dir(path), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString("setup confirmed on the setup view\n")
	if serr := f.Sync(); err == nil {
		err = serr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

type secret struct{ key, val string }

type secretList []secret

func (s secretList) get(key string) (string, bool) {
	for _, kv := range s {
		if kv.key == key {
			return kv.val, true
		}
	}
	return "", false
}

// readSecrets reads KEY=VALUE lines; '#' lines and blank lines are
// skipped. Errors never quote the file.
func readSecrets(path string) (secretList, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretsFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > maxSecretsFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxSecretsFile)
	}
	var out secretList
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || line[0] == '#' {
			continue
		}
		k, val, ok := strings.Cut(line, "=")
		if !ok || !isKey(k) || val == "" || !printable(val) {
			return nil, fmt.Errorf("%s:%d: not a KEY=VALUE line", path, i+1)
		}
		out = append(out, secret{k, val})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no secrets", path)
	}
	return out, nil
}

func isKey(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

var htmlEscaper = strings.NewReplacer(`&`, "&amp;", `<`, "&lt;", `>`, "&gt;", `"`, "&#34;", `'`, "&#39;")

func esc(s string) string { return htmlEscaper.Replace(s) }

// page wraps body (HTML) in the view's page.
func (v *View) page(code int, title, body string) response {
	b := v.cfg.Brand
	var w strings.Builder
	fmt.Fprintf(&w, `<!doctype html>
<html lang="%s"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex">
<title>%s: %s</title>
<style>
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:%s;color:%s}
main{max-width:36em;margin:0 auto;padding:1em}
h1{font-size:1.3em;border-bottom:3px solid %s;padding-bottom:.3em}
dl{display:grid;grid-template-columns:auto;gap:.2em}
dt{opacity:.8;margin-top:.6em}dd{margin:0}
code{font-size:1.25em;letter-spacing:.05em;user-select:all}
button{font:inherit;padding:.6em 1em;margin-top:1em;background:%s;color:#fff;border:0;border-radius:.4em}
a{color:%s}
</style></head><body><main>
<h1>%s: %s</h1>
%s
<p><a href="/torbox">Status page</a></p>
</main></body></html>
`, esc(b.Language), esc(b.ProductName), esc(title), b.Background, b.Text, b.Primary, b.Primary, b.Primary,
		esc(b.ProductName), esc(title), body)
	return response{code: code, ctype: "text/html; charset=utf-8", body: []byte(w.String())}
}

// headers keep the secrets out of caches and forbid the page from loading
// or running anything; its one form may only post back to the router.
const headers = "Cache-Control: no-store\r\n" +
	"Pragma: no-cache\r\n" +
	"X-Content-Type-Options: nosniff\r\n" +
	"Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'\r\n" +
	"Referrer-Policy: no-referrer\r\n" +
	"X-Frame-Options: DENY\r\n"

var statusText = map[int]string{200: "OK", 303: "See Other", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
	405: "Method Not Allowed", 500: "Internal Server Error", 503: "Service Unavailable"}

func writeResponse(w io.Writer, r response, head bool) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s", r.code, statusText[r.code], r.ctype, len(r.body), headers)
	if r.location != "" {
		fmt.Fprintf(&b, "Location: %s\r\n", r.location)
	}
	b.WriteString("Connection: close\r\n\r\n")
	if !head {
		b.Write(r.body)
	}
	w.Write(b.Bytes())
}
