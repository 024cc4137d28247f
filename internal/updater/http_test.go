package updater

import (
	"bytes"
	"io"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

// respond runs roundTrip against a peer that sends raw and returns the
// parsed response and its whole body.
func respond(t testing.TB, raw string, from int64) (*response, []byte, error) {
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		defer b.Close()
		b.SetDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 4096)
		b.Read(buf) // the request
		io.WriteString(b, raw)
	}()
	a.SetDeadline(time.Now().Add(2 * time.Second))
	g := &getter{}
	u, _ := url.Parse("http://x.onion/f")
	resp, err := g.roundTrip(a, u, from)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.body, 1<<20))
	return resp, body, err
}

func TestResponseFraming(t *testing.T) {
	cases := []struct {
		name, raw, body string
		bad             bool
	}{
		{"length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", "hello", false},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nT: v\r\n\r\n", "hello world", false},
		{"close delimited", "HTTP/1.0 200 OK\r\n\r\nuntil close", "until close", false},
		{"interim", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "ok", false},
		{"short body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", "", true},
		{"both framings", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "", true},
		{"two lengths", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "", true},
		{"gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "", true},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "", true},
		{"bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "", true},
		{"chunk without crlf", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX0\r\n\r\n", "", true},
		{"bad status", "HTTP/2 200\r\n\r\n", "", true},
		{"huge header", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n", "", true},
		{"many headers", "HTTP/1.1 200 OK\r\n" + strings.Repeat("X: a\r\n", 200) + "\r\n", "", true},
	}
	for _, tc := range cases {
		_, body, err := respond(t, tc.raw, 0)
		if tc.bad {
			if err == nil {
				t.Errorf("%s: accepted (body %q)", tc.name, body)
			}
			continue
		}
		if err != nil || string(body) != tc.body {
			t.Errorf("%s: %q %v", tc.name, body, err)
		}
	}
}

func TestContentRange(t *testing.T) {
	resp, body, err := respond(t, "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-9/10\r\nContent-Length: 5\r\n\r\n56789", 5)
	if err != nil || resp.rangeStart != 5 || resp.rangeTotal != 10 || string(body) != "56789" {
		t.Fatalf("%+v %q %v", resp, body, err)
	}
	for _, cr := range []string{"bytes 5-4/10", "bytes x-9/10", "5-9/10", "bytes 5-9/9"} {
		if _, _, err := respond(t, "HTTP/1.1 206 Partial Content\r\nContent-Range: "+cr+"\r\n\r\n", 5); err == nil {
			t.Errorf("Content-Range %q accepted", cr)
		}
	}
}

// FuzzResponse: the router's HTTP response parser never panics and never
// returns more body than the framing allows.
func FuzzResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 5-9/10\r\n\r\n56789"))
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, body, err := respond(t, string(b), 5)
		if err != nil {
			return
		}
		if resp.length >= 0 && int64(len(body)) > resp.length {
			t.Fatalf("body %d bytes, content-length %d", len(body), resp.length)
		}
		if !bytes.Contains(b, body) && resp.length != -1 {
			t.Fatalf("body not from the input")
		}
	})
}
