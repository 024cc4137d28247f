package setup

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// askFrom sends one GET for path from src and returns the status line,
// all within d.
func askFrom(t *testing.T, src netip.Addr, addr, path string, d time.Duration) (string, error) {
	t.Helper()
	dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: src.AsSlice()}, Timeout: d}
	c, err := dl.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

// TestInterceptFloodFromOneClient performs the attack on the daemon's
// listener as it is with a setup view: the setup view's Intercept in
// front of the real status page. One LAN client (127.0.0.1) opens 20
// connections and sends nothing. Other clients must still get the status
// page and the setup view at once; the flooding client keeps at most
// status.MaxConnsPerClient connections, and those only for the request
// deadline.
func TestInterceptFloodFromOneClient(t *testing.T) {
	e := start(t, nil)
	other := netip.MustParseAddr("127.0.0.2")
	if _, err := askFrom(t, other, e.addr, "/torbox", 5*time.Second); err != nil {
		t.Fatalf("cannot ask from %s (%v); the test needs a loopback that answers 127.0.0.0/8 (Linux)", other, err)
	}

	attacker := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for i := 0; i < 20; i++ {
		c, err := attacker.DialContext(t.Context(), "tcp", e.addr)
		if err != nil {
			t.Fatalf("attacker connection %d: %v", i, err)
		}
		idle = append(idle, c)
	}
	flooded := time.Now()

	for _, q := range []struct {
		from netip.Addr
		path string
	}{
		{other, "/torbox"},
		{netip.MustParseAddr("127.0.0.3"), "/torbox"},
		{fromMax, "/torbox/setup"},
		{fromOff, "/torbox/setup"},
	} {
		start := time.Now()
		line, err := askFrom(t, q.from, e.addr, q.path, 2*time.Second)
		if !strings.HasPrefix(line, "HTTP/1.1 ") {
			t.Fatalf("client %s asking for %s while 127.0.0.1 holds 20 idle connections: err %v, answer %q after %v",
				q.from, q.path, err, line, time.Since(start).Round(time.Millisecond))
		}
	}

	// The server closed all but a few of the attacker's connections at
	// once, and closes the rest when the request deadline passes.
	open := 0
	for _, c := range idle {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		var b [1]byte
		if _, err := c.Read(b[:]); isTimeout(err) {
			open++
		}
	}
	if open > 4 {
		t.Errorf("one client holds %d idle connections, want at most 4", open)
	}
	limit := flooded.Add(requestTimeout + 2*time.Second)
	for i, c := range idle {
		c.SetReadDeadline(limit)
		var b [1]byte
		if _, err := c.Read(b[:]); isTimeout(err) {
			t.Fatalf("idle attacker connection %d still open %v after it was made (request deadline %v)",
				i, time.Since(flooded).Round(time.Millisecond), requestTimeout)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
