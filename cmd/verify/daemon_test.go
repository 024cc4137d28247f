package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/status"
	"github.com/torwrt/torwrt/internal/updater/updatertest"
)

// TestDaemonStuckCheck: the mirror serves the manifest and then trickles
// the image one byte every 50 ms, so the check hangs (for the default
// per-mirror limit of a minute and more). Meanwhile the status page must
// answer at once and the timer's ticks must be skipped and logged, not
// queued behind the check.
func TestDaemonStuckCheck(t *testing.T) {
	m := newMirror(t)
	img := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 16 << 10, Key: m.keys[0]})
	m.publish(t, "image.bin", img, 42, 10)
	imageRequested := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/release.json") {
			m.mu.Lock()
			b := m.files["release.json"]
			m.mu.Unlock()
			w.Write(b)
			return
		}
		select {
		case imageRequested <- struct{}{}:
		default:
		}
		updatertest.Trickle(t, len(img))(w, r)
	}))
	defer slow.Close()
	m.socks.Route = func(string, uint16) string { return slow.Listener.Addr().String() }

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cfg, sysLog := m.writeConfig(t, map[string]any{
		"listen":      []string{addr},
		"first_check": "10ms",
		"interval":    "200ms",
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	var errb syncBuffer
	go func() { done <- runDaemon(ctx, &bytes.Buffer{}, &errb, []string{"--config", cfg}) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case code := <-done:
			if code != exitOK {
				t.Errorf("daemon exit %d\n%s", code, errb.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("daemon did not stop within 10 s of SIGTERM while a check hung\n%s", errb.String())
		}
	}
	defer stop()

	select {
	case <-imageRequested:
	case <-time.After(20 * time.Second):
		t.Fatalf("no check started\n%s", errb.String())
	}
	// The check is now stuck in the image download.
	for i := 0; i < 5; i++ {
		fctx, fcancel := context.WithTimeout(t.Context(), 2*time.Second)
		start := time.Now()
		body, err := status.Fetch(fctx, addr)
		fcancel()
		if err != nil {
			t.Fatalf("status request during a stuck check: %v (after %v)\n%s", err, time.Since(start), errb.String())
		}
		var doc status.Document
		json.Unmarshal(body, &doc)
		if doc.Update.NextCheck.IsZero() {
			t.Errorf("status %+v", doc)
		}
		time.Sleep(100 * time.Millisecond)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(errb.String(), "update check skipped") {
		if time.Now().After(deadline) {
			t.Fatalf("timer ticks during a stuck check were not skipped and logged:\n%s", errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := strings.Count(errb.String(), "msg=\"update check\""); n != 1 {
		t.Errorf("%d checks started while one was stuck:\n%s", n, errb.String())
	}
	stop()
	if f := updatertest.FlashCalls(t, sysLog); len(f) != 0 {
		t.Fatalf("flashed %q", f)
	}
}
