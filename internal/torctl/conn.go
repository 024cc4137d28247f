package torctl

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// Conn is an authenticated or not-yet-authenticated control connection.
// Commands are serialised; a Conn may be shared between goroutines.
type Conn struct {
	mu sync.Mutex
	c  net.Conn
	br *bufio.Reader
}

// Dial connects to the control port at addr ("127.0.0.1:9051" or
// "unix:/var/run/tor/control").
func Dial(ctx context.Context, addr string) (*Conn, error) {
	network := "tcp"
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", p
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("torctl: connecting to control port %s: %w", addr, err)
	}
	return NewConn(c), nil
}

// NewConn wraps an established connection.
func NewConn(c net.Conn) *Conn {
	return &Conn{c: c, br: bufio.NewReaderSize(c, MaxLineLen+2)}
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// Command sends one command line and reads its reply. Asynchronous event
// replies (6xx) are skipped: the client never asks for events, but a
// shared Tor may have them configured on another connection's behalf.
func (c *Conn) Command(ctx context.Context, line string) (*Reply, error) {
	if strings.ContainsAny(line, "\r\n") {
		return nil, fmt.Errorf("torctl: command contains a line break")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if dl, ok := ctx.Deadline(); ok {
		c.c.SetDeadline(dl)
	} else {
		c.c.SetDeadline(time.Time{})
	}
	// Cancelling ctx unblocks the read by moving the deadline to now.
	stop := context.AfterFunc(ctx, func() { c.c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := io.WriteString(c.c, line+"\r\n"); err != nil {
		return nil, c.ctxErr(ctx, fmt.Errorf("torctl: sending %s: %w", verb(line), err))
	}
	for i := 0; ; i++ {
		rep, err := ReadReply(c.br)
		if err != nil {
			return nil, c.ctxErr(ctx, fmt.Errorf("torctl: reading reply to %s: %w", verb(line), err))
		}
		if rep.Code >= 600 && rep.Code < 700 && i < MaxLines {
			continue
		}
		return rep, nil
	}
}

func (c *Conn) ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	// The socket deadline is ctx's deadline, so it may fire a moment
	// before ctx itself reports expiry.
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}

// verb names a command in errors without its arguments, which may hold an
// authentication secret.
func verb(line string) string {
	v, _, _ := strings.Cut(line, " ")
	return v
}

// ProtocolInfo is the answer to PROTOCOLINFO.
type ProtocolInfo struct {
	Methods    []string
	CookieFile string
	TorVersion string
}

// Has reports whether Tor offers method.
func (p *ProtocolInfo) Has(method string) bool {
	for _, m := range p.Methods {
		if m == method {
			return true
		}
	}
	return false
}

// ProtocolInfo asks which authentication methods Tor accepts.
func (c *Conn) ProtocolInfo(ctx context.Context) (*ProtocolInfo, error) {
	rep, err := c.Command(ctx, "PROTOCOLINFO 1")
	if err != nil {
		return nil, err
	}
	if err := rep.Err(); err != nil {
		return nil, err
	}
	pi := &ProtocolInfo{}
	for _, l := range rep.Lines {
		kw, rest, _ := strings.Cut(l.Text, " ")
		switch kw {
		case "AUTH":
			kv, err := parseKV(rest)
			if err != nil {
				return nil, fmt.Errorf("torctl: PROTOCOLINFO AUTH line: %w", err)
			}
			if m := kv["METHODS"]; m != "" {
				pi.Methods = strings.Split(m, ",")
			}
			pi.CookieFile = kv["COOKIEFILE"]
		case "VERSION":
			kv, err := parseKV(rest)
			if err != nil {
				return nil, fmt.Errorf("torctl: PROTOCOLINFO VERSION line: %w", err)
			}
			pi.TorVersion = kv["Tor"]
		}
	}
	return pi, nil
}

// CookieLen is the size of Tor's control_auth_cookie.
const CookieLen = 32

// ReadCookie reads a control cookie file.
func ReadCookie(path string) ([]byte, error) {
	// The path may come from the peer's PROTOCOLINFO: never open a FIFO
	// or a device, which could block or have side effects.
	if fi, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("torctl: reading cookie: %w", err)
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: cookie %s is not a regular file", ErrAuth, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("torctl: reading cookie: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, CookieLen+1))
	if err != nil {
		return nil, fmt.Errorf("torctl: reading cookie %s: %w", path, err)
	}
	if len(b) != CookieLen {
		return nil, fmt.Errorf("%w: cookie file %s has %d bytes, want %d", ErrAuth, path, len(b), CookieLen)
	}
	return b, nil
}

const (
	serverHashKey = "Tor safe cookie authentication server-to-controller hash"
	clientHashKey = "Tor safe cookie authentication controller-to-server hash"
)

// Authenticate logs in. It prefers SAFECOOKIE, which never sends the
// cookie and makes Tor prove it knows it first; plain COOKIE sends the
// cookie itself, so it is used only with a cookie path the caller
// configured, never with a path the peer suggested. NULL is used when Tor
// offers it (no authentication configured).
func (c *Conn) Authenticate(ctx context.Context, cookiePath string) error {
	pi, err := c.ProtocolInfo(ctx)
	if err != nil {
		return err
	}
	switch {
	case pi.Has("SAFECOOKIE") && (cookiePath != "" || pi.CookieFile != ""):
		path := cookiePath
		if path == "" {
			path = pi.CookieFile
		}
		cookie, err := ReadCookie(path)
		if err != nil {
			return err
		}
		return c.safeCookie(ctx, cookie)
	case pi.Has("COOKIE") && cookiePath != "":
		cookie, err := ReadCookie(cookiePath)
		if err != nil {
			return err
		}
		return c.auth(ctx, "AUTHENTICATE "+hex.EncodeToString(cookie))
	case pi.Has("NULL"):
		return c.auth(ctx, "AUTHENTICATE")
	}
	return fmt.Errorf("%w: tor offers %v; configure the cookie path (CookieAuthentication 1)", ErrAuth, pi.Methods)
}

func (c *Conn) auth(ctx context.Context, line string) error {
	rep, err := c.Command(ctx, line)
	if err != nil {
		return err
	}
	if err := rep.Err(); err != nil {
		return fmt.Errorf("%w: %v", ErrAuth, err)
	}
	return nil
}

func (c *Conn) safeCookie(ctx context.Context, cookie []byte) error {
	clientNonce := make([]byte, 32)
	if _, err := rand.Read(clientNonce); err != nil {
		return err
	}
	rep, err := c.Command(ctx, "AUTHCHALLENGE SAFECOOKIE "+hex.EncodeToString(clientNonce))
	if err != nil {
		return err
	}
	if err := rep.Err(); err != nil {
		return fmt.Errorf("%w: AUTHCHALLENGE: %v", ErrAuth, err)
	}
	text, ok := strings.CutPrefix(rep.Lines[len(rep.Lines)-1].Text, "AUTHCHALLENGE ")
	if !ok {
		return fmt.Errorf("%w: unexpected AUTHCHALLENGE reply", ErrProtocol)
	}
	kv, err := parseKV(text)
	if err != nil {
		return fmt.Errorf("%w: AUTHCHALLENGE reply: %v", ErrProtocol, err)
	}
	serverHash, err1 := hex.DecodeString(kv["SERVERHASH"])
	serverNonce, err2 := hex.DecodeString(kv["SERVERNONCE"])
	if err1 != nil || err2 != nil || len(serverHash) != sha256.Size || len(serverNonce) != 32 {
		return fmt.Errorf("%w: AUTHCHALLENGE reply lacks a valid SERVERHASH or SERVERNONCE", ErrProtocol)
	}
	msg := append(append(append([]byte{}, cookie...), clientNonce...), serverNonce...)
	if !hmac.Equal(serverHash, mac(serverHashKey, msg)) {
		return fmt.Errorf("%w: tor's SAFECOOKIE proof is wrong: the control port is not the tor that wrote the cookie", ErrAuth)
	}
	return c.auth(ctx, "AUTHENTICATE "+hex.EncodeToString(mac(clientHashKey, msg)))
}

func mac(key string, msg []byte) []byte {
	h := hmac.New(sha256.New, []byte(key))
	h.Write(msg)
	return h.Sum(nil)
}

// GetInfo asks for keys and returns their values. A key Tor does not know
// or cannot answer yet makes the whole reply an error matching
// ErrUnavailable.
func (c *Conn) GetInfo(ctx context.Context, keys ...string) (map[string]string, error) {
	if len(keys) == 0 {
		return nil, errors.New("torctl: GETINFO needs a key")
	}
	for _, k := range keys {
		if !validKey(k) {
			return nil, fmt.Errorf("torctl: GETINFO key %q: only letters, digits and / - _ . allowed", k)
		}
	}
	rep, err := c.Command(ctx, "GETINFO "+strings.Join(keys, " "))
	if err != nil {
		return nil, err
	}
	if err := rep.Err(); err != nil {
		return nil, fmt.Errorf("torctl: GETINFO %s: %w", strings.Join(keys, " "), err)
	}
	return parseGetInfo(rep)
}

func parseGetInfo(rep *Reply) (map[string]string, error) {
	out := map[string]string{}
	for i, l := range rep.Lines {
		if i == len(rep.Lines)-1 && !l.HasData && l.Text == "OK" {
			break
		}
		k, v, ok := strings.Cut(l.Text, "=")
		if !ok || !validKey(k) {
			return nil, fmt.Errorf("%w: GETINFO line %q is not key=value", ErrProtocol, clip(l.Text))
		}
		if l.HasData {
			if v != "" {
				return nil, fmt.Errorf("%w: GETINFO data line %q has text after '='", ErrProtocol, clip(l.Text))
			}
			v = strings.Join(l.Data, "\n")
		}
		out[k] = v
	}
	return out, nil
}

func validKey(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '/' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
