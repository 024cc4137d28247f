//go:build unix

package status

import (
	"bytes"
	"context"
	"net/netip"
	"testing"

	"github.com/torwrt/torwrt/internal/httpfuzz"
)

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
	lan := httpfuzz.NewListener()
	ctx, cancel := context.WithCancel(f.Context())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, lan, func() Snapshot { return snapshot(TorUp) }) }()
	f.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.Errorf("status page: %v", err)
		}
	})
	lan.Ready()

	f.Fuzz(func(t *testing.T, req []byte, lines, long uint8) {
		if len(req) > fuzzMaxRequest {
			return // long requests come from padding (httpfuzz.Pad), not raw input
		}
		req = httpfuzz.Pad(req, lines, long)
		raw, err := lan.Exchange(netip.MustParseAddrPort("192.168.3.1:80"), netip.MustParseAddrPort("192.168.3.20:50000"), req)
		if err != nil {
			t.Fatalf("request %q: %v", httpfuzz.Trim(req), err)
		}
		if len(raw) == 0 {
			// Closed without an answer: allowed, though Serve answers
			// even a broken request with 400.
			return
		}
		r, err := httpfuzz.ParseReply(raw)
		if err != nil {
			t.Fatalf("request %q: malformed answer: %v\n%q", httpfuzz.Trim(req), err, httpfuzz.Trim(raw))
		}
		checkStatusReply(t, req, r)
	})
}

func checkStatusReply(t *testing.T, req []byte, r httpfuzz.Reply) {
	t.Helper()
	method, path, head := httpfuzz.RequestLine(req)
	switch r.Code {
	case 200, 400, 404, 405:
	default:
		t.Fatalf("request %q: status %d", httpfuzz.Trim(req), r.Code)
	}
	if r.Code == 200 {
		if method != "GET" && method != "HEAD" {
			t.Fatalf("request %q: 200 to method %q", httpfuzz.Trim(req), method)
		}
		switch path {
		case "/torbox", "/torbox/", "/", "/torbox.json":
		default:
			t.Fatalf("request %q: 200 for path %q outside the page's set", httpfuzz.Trim(req), path)
		}
		if head < 0 || head > maxRequestHeader {
			t.Fatalf("request %q: 200 with the request header ending at %d (limit %d)", httpfuzz.Trim(req), head, maxRequestHeader)
		}
	}
	for _, h := range []string{"content-type", "content-length", "cache-control", "content-security-policy", "x-content-type-options", "x-frame-options", "connection"} {
		if _, ok := r.Header[h]; !ok {
			t.Fatalf("request %q: answer lacks %s", httpfuzz.Trim(req), h)
		}
	}
	if r.Header["connection"] != "close" || r.Header["cache-control"] != "no-store" {
		t.Fatalf("request %q: answer headers %v", httpfuzz.Trim(req), r.Header)
	}
	if r.NoBody && !(r.Code == 200 || r.Code == 404) || r.NoBody && method != "HEAD" {
		t.Fatalf("request %q: %d without its body to a %q", httpfuzz.Trim(req), r.Code, method)
	}
	if bytes.Contains(bytes.ToLower(r.Body), []byte("<script")) {
		t.Fatalf("request %q: answer has a script element:\n%s", httpfuzz.Trim(req), r.Body)
	}
}
