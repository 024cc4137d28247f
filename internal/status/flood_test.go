package status

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// getFrom fetches /torbox from addr with the connection's source address
// bound to src, within d.
func getFrom(t *testing.T, src, addr string, d time.Duration) (string, error) {
	t.Helper()
	dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: d}
	c, err := dl.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(d))
	if _, err := io.WriteString(c, "GET /torbox HTTP/1.1\r\nHost: 10.73.0.1\r\n\r\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// TestServeFloodFromOneClient performs the attack: one LAN client opens
// 20 connections to the real listener and sends nothing on them. Another
// client (a different source address) must still get the page at once,
// and the flooding client must be held to its own share.
func TestServeFloodFromOneClient(t *testing.T) {
	p := NewPage(Brand{}, []Network{{Name: "tor_max", Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, ln, func() Snapshot { return snapshot(TorUp) }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	addr := ln.Addr().String()

	// Loopback answers all of 127/8 on Linux; elsewhere the test cannot
	// pick a second source address.
	if _, err := getFrom(t, "127.0.0.2", addr, 5*time.Second); err != nil {
		t.Fatalf("cannot connect from 127.0.0.2 (%v); the test needs a loopback that answers 127.0.0.0/8 (Linux)", err)
	}

	attacker := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for i := 0; i < 20; i++ {
		c, err := attacker.DialContext(t.Context(), "tcp", addr)
		if err != nil {
			t.Fatalf("attacker connection %d: %v", i, err)
		}
		idle = append(idle, c)
	}

	for _, src := range []string{"127.0.0.2", "127.0.0.3"} {
		r, err := getFrom(t, src, addr, 2*time.Second)
		if !strings.HasPrefix(r, "HTTP/1.1 200 OK\r\n") {
			t.Fatalf("client %s while 127.0.0.1 holds 20 idle connections: err %v, answer %q", src, err, r)
		}
	}

	// The server closed all but a few of the attacker's connections.
	open := 0
	for _, c := range idle {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				open++
			}
		}
	}
	if open > 4 {
		t.Errorf("one client holds %d idle connections, want at most 4", open)
	}
}
