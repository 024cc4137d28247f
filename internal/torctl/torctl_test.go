package torctl

import (
	"bufio"
	"context"
	"crypto/hmac"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestReadReply(t *testing.T) {
	in := "250-version=0.4.8.13\r\n" +
		"250+config-text=\r\nSocksPort 0\r\n..dotted\r\n.\r\n" +
		"250 OK\r\n"
	rep, err := ReadReply(bufio.NewReaderSize(strings.NewReader(in), MaxLineLen+2))
	if err != nil {
		t.Fatal(err)
	}
	want := &Reply{Code: 250, Lines: []Line{
		{Text: "version=0.4.8.13"},
		{Text: "config-text=", HasData: true, Data: []string{"SocksPort 0", ".dotted"}},
		{Text: "OK"},
	}}
	if !reflect.DeepEqual(rep, want) {
		t.Fatalf("got %+v\nwant %+v", rep, want)
	}
	if string(rep.encode()) != in {
		t.Fatalf("encode: %q", rep.encode())
	}
	kv, err := parseGetInfo(rep)
	if err != nil {
		t.Fatal(err)
	}
	if kv["version"] != "0.4.8.13" || kv["config-text"] != "SocksPort 0\n.dotted" {
		t.Fatalf("getinfo %q", kv)
	}
}

func TestReadReplyErrors(t *testing.T) {
	cases := map[string]string{
		"long line":    "250 " + strings.Repeat("a", MaxLineLen+10) + "\r\n",
		"bad code":     "25x OK\r\n",
		"low code":     "099 OK\r\n",
		"short":        "250\r\n",
		"bad sep":      "250*OK\r\n",
		"mixed codes":  "250-a\r\n251 OK\r\n",
		"cut":          "250-a\r\n",
		"cut data":     "250+a=\r\nxx\r\n",
		"too big":      strings.Repeat("250-"+strings.Repeat("a", 1000)+"\r\n", 70) + "250 OK\r\n",
		"too many":     strings.Repeat("250-a\r\n", MaxLines+1) + "250 OK\r\n",
		"no line feed": "250 OK",
	}
	for name, in := range cases {
		if _, err := ReadReply(bufio.NewReaderSize(strings.NewReader(in), MaxLineLen+2)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseBootstrap(t *testing.T) {
	b, err := ParseBootstrap(`NOTICE BOOTSTRAP PROGRESS=14 TAG=handshake SUMMARY="Handshaking with a \"relay\"" WARNING="no route" REASON=NOROUTE HOSTADDR="1.2.3.4:443"`)
	if err != nil {
		t.Fatal(err)
	}
	want := &Bootstrap{Severity: "NOTICE", Progress: 14, Tag: "handshake", Summary: `Handshaking with a "relay"`, Warning: "no route", Reason: "NOROUTE"}
	if !reflect.DeepEqual(b, want) {
		t.Fatalf("%+v", b)
	}
	for _, bad := range []string{"", "NOTICE", "NOTICE BOOTSTRAP", "NOTICE BOOTSTRAP PROGRESS=101", `NOTICE BOOTSTRAP PROGRESS=1 SUMMARY="x`, "NOTICE CIRC PROGRESS=1"} {
		if _, err := ParseBootstrap(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParseVersionStatus(t *testing.T) {
	for _, s := range []string{"new", "old", "unrecommended", "recommended", "new in series", "obsolete", "unknown"} {
		v, err := ParseVersionStatus(s)
		if err != nil || string(v) != s {
			t.Errorf("%q: %v %v", s, v, err)
		}
	}
	if _, err := ParseVersionStatus("fine"); err == nil {
		t.Error("unknown value accepted")
	}
	if !VersionObsolete.NeedsUpdate() || !VersionUnrecommended.NeedsUpdate() || VersionRecommended.NeedsUpdate() || VersionUnknown.NeedsUpdate() {
		t.Error("NeedsUpdate")
	}
}

// fakeTor answers control commands from a script, over a pipe.
type fakeTor struct {
	cookie      []byte
	serverNonce []byte
	lieHash     bool
	methods     string
	noConsensus bool
}

func (f *fakeTor) serve(t *testing.T, c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	var clientNonce []byte
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		w := func(s string) { fmt.Fprint(c, s) }
		switch {
		case line == "PROTOCOLINFO 1":
			w("250-PROTOCOLINFO 1\r\n250-AUTH METHODS=" + f.methods + ` COOKIEFILE="/nonexistent/cookie"` + "\r\n250-VERSION Tor=\"0.4.8.13\"\r\n250 OK\r\n")
		case strings.HasPrefix(line, "AUTHCHALLENGE SAFECOOKIE "):
			clientNonce, _ = hex.DecodeString(strings.TrimPrefix(line, "AUTHCHALLENGE SAFECOOKIE "))
			msg := append(append(append([]byte{}, f.cookie...), clientNonce...), f.serverNonce...)
			h := mac(serverHashKey, msg)
			if f.lieHash {
				h[0] ^= 1
			}
			w(fmt.Sprintf("250 AUTHCHALLENGE SERVERHASH=%X SERVERNONCE=%X\r\n", h, f.serverNonce))
		case strings.HasPrefix(line, "AUTHENTICATE "):
			got, _ := hex.DecodeString(strings.TrimPrefix(line, "AUTHENTICATE "))
			msg := append(append(append([]byte{}, f.cookie...), clientNonce...), f.serverNonce...)
			if hmac.Equal(got, f.cookie) || (clientNonce != nil && hmac.Equal(got, mac(clientHashKey, msg))) {
				w("650 STATUS_GENERAL NOTICE X\r\n250 OK\r\n")
			} else {
				w("515 Authentication failed\r\n")
			}
		case line == "GETINFO version status/version/current status/bootstrap-phase":
			w("250-version=0.4.8.13\r\n250-status/version/current=obsolete\r\n250-status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY=\"Done\"\r\n250 OK\r\n")
		case line == "GETINFO consensus/valid-after":
			if f.noConsensus {
				w("551 Internal error\r\n")
			} else {
				w("250-consensus/valid-after=2025-11-01 12:00:00\r\n250 OK\r\n")
			}
		default:
			w("552 Unrecognized key\r\n")
		}
	}
}

func pipeTor(t *testing.T, f *fakeTor) *Conn {
	a, b := net.Pipe()
	go f.serve(t, b)
	t.Cleanup(func() { a.Close() })
	return NewConn(a)
}

func writeCookie(t *testing.T, c []byte) string {
	p := filepath.Join(t.TempDir(), "cookie")
	if err := os.WriteFile(p, c, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFakeTor(t *testing.T) {
	cookie := []byte(strings.Repeat("k", 32))
	path := writeCookie(t, cookie)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	t.Run("safecookie", func(t *testing.T) {
		c := pipeTor(t, &fakeTor{cookie: cookie, serverNonce: make([]byte, 32), methods: "COOKIE,SAFECOOKIE"})
		if err := c.Authenticate(ctx, path); err != nil {
			t.Fatal(err)
		}
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Version != "0.4.8.13" || st.VersionStatus != VersionObsolete || !st.Bootstrap.Done() ||
			!st.ValidAfter.Equal(time.Date(2025, 11, 1, 12, 0, 0, 0, time.UTC)) {
			t.Fatalf("%+v", st)
		}
	})
	t.Run("no consensus", func(t *testing.T) {
		c := pipeTor(t, &fakeTor{cookie: cookie, serverNonce: make([]byte, 32), methods: "SAFECOOKIE", noConsensus: true})
		if err := c.Authenticate(ctx, path); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ConsensusValidAfter(ctx); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("ConsensusValidAfter: %v", err)
		}
		st, err := c.Status(ctx)
		if err != nil || !st.ValidAfter.IsZero() {
			t.Fatalf("%+v %v", st, err)
		}
	})
	t.Run("server does not know the cookie", func(t *testing.T) {
		c := pipeTor(t, &fakeTor{cookie: cookie, serverNonce: make([]byte, 32), methods: "SAFECOOKIE", lieHash: true})
		if err := c.Authenticate(ctx, path); !errors.Is(err, ErrAuth) {
			t.Fatalf("Authenticate: %v", err)
		}
	})
	t.Run("plain cookie only with a configured path", func(t *testing.T) {
		c := pipeTor(t, &fakeTor{cookie: cookie, methods: "COOKIE"})
		if err := c.Authenticate(ctx, ""); !errors.Is(err, ErrAuth) {
			t.Fatalf("Authenticate with the peer's path: %v", err)
		}
		c = pipeTor(t, &fakeTor{cookie: cookie, methods: "COOKIE"})
		if err := c.Authenticate(ctx, path); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("wrong cookie", func(t *testing.T) {
		c := pipeTor(t, &fakeTor{cookie: []byte(strings.Repeat("x", 32)), methods: "COOKIE"})
		if err := c.Authenticate(ctx, path); !errors.Is(err, ErrAuth) {
			t.Fatalf("Authenticate: %v", err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		c := NewConn(a)
		go func() { bufio.NewReader(b).ReadString('\n') }() // reads, never answers
		cctx, ccancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer ccancel()
		if _, err := c.Version(cctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Version: %v", err)
		}
	})
	t.Run("key injection", func(t *testing.T) {
		c := pipeTor(t, &fakeTor{})
		if _, err := c.GetInfo(ctx, "version\r\nSIGNAL HALT"); err == nil {
			t.Fatal("accepted")
		}
	})
}

func TestReadCookie(t *testing.T) {
	if _, err := ReadCookie(writeCookie(t, []byte("short"))); !errors.Is(err, ErrAuth) {
		t.Errorf("short cookie: %v", err)
	}
	if _, err := ReadCookie(t.TempDir()); err == nil {
		t.Error("directory accepted")
	}
}
