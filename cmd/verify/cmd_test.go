package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/cliout"
	"github.com/torwrt/torwrt/internal/status"
	"github.com/torwrt/torwrt/internal/updater"
	"github.com/torwrt/torwrt/internal/updater/updatertest"
)

// runIn runs the CLI in-process with dir as working directory.
func runIn(t *testing.T, dir string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	var out, errb bytes.Buffer
	code = run(t.Context(), &out, &errb, args)
	return code, out.String(), errb.String()
}

func TestVerdicts(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range writeFixtures(t, dir) {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runIn(t, dir, tc.args...)
			if code != tc.want {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.want, out, errs)
			}
			if code != exitOK && !strings.Contains(errs, "REJECTED") {
				t.Errorf("refusal without a reason: %q", errs)
			}
		})
	}
}

func TestCheckOnce(t *testing.T) {
	m := newMirror(t)
	img := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 64 << 10, Key: m.keys[0]})
	m.publish(t, "image.bin", img, 42, 10)
	cfg, sysLog := m.writeConfig(t, nil)

	code, out, errs := runIn(t, m.dir, "check", "--once", "--config", cfg, "--json")
	if code != exitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	doc, err := cliout.Check[*updater.Result]([]byte(out), cliout.Schema("verify", "check"), code)
	if err != nil || doc.Result == nil || doc.Result.Status != updater.StatusInstalled {
		t.Fatalf("result %q: %v", out, err)
	}
	if f := updatertest.FlashCalls(t, sysLog); len(f) != 1 {
		t.Fatalf("flash calls %q", f)
	}

	// After the reboot the release file says 42; the same manifest is
	// accepted again and there is nothing newer.
	os.WriteFile(filepath.Join(m.dir, "release.json"), []byte(`{"version":"24.10.3-torwrt42","build":42}`), 0o644)
	code, out, _ = runIn(t, m.dir, "check", "--config", cfg)
	if code != exitOK || !strings.HasPrefix(out, "up-to-date") {
		t.Fatalf("second check: %d %q", code, out)
	}

	// A rollback manifest (build 40, newer sequence) is refused with
	// the rollback exit code, and nothing is flashed.
	old := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 64 << 10, Key: m.keys[0], Version: "old"})
	m.publish(t, "old.bin", old, 40, 11)
	code, _, errs = runIn(t, m.dir, "check", "--config", cfg)
	if code != exitRollback {
		t.Fatalf("rollback: exit %d\n%s", code, errs)
	}
	// Replaying the first manifest (sequence 10) after 11 was accepted
	// is refused as a replay.
	m.publish(t, "image.bin", img, 42, 10)
	code, _, errs = runIn(t, m.dir, "check", "--config", cfg)
	if code != exitReplay {
		t.Fatalf("replay: exit %d\n%s", code, errs)
	}
	if f := updatertest.FlashCalls(t, sysLog); len(f) != 1 {
		t.Fatalf("flash calls after refusal %q", f)
	}
}

func TestCheckExitCodes(t *testing.T) {
	m := newMirror(t)
	img := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 16 << 10, Sig: updatertest.Unsigned})
	m.publish(t, "image.bin", img, 42, 10)
	cfg, sysLog := m.writeConfig(t, nil)
	code, out, errs := runIn(t, m.dir, "check", "--config", cfg)
	if code != exitUnsigned || !strings.HasPrefix(out, "refused") || !strings.Contains(errs, "update refused") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if len(updatertest.Calls(t, sysLog)) != 0 {
		t.Fatal("sysupgrade called")
	}
	// No mirror reachable: the network exit code.
	cfg2, _ := m.writeConfig(t, map[string]any{"mirrors": []string{"http://127.0.0.1:1/"}, "socks": "127.0.0.1:1"})
	if code, _, errs := runIn(t, m.dir, "check", "--config", cfg2); code != exitNetwork {
		t.Fatalf("no mirror: exit %d\n%s", code, errs)
	}
	// Unknown config keys are refused.
	bad := filepath.Join(m.dir, "bad.json")
	os.WriteFile(bad, []byte(`{"mirrors":["http://x/"],"socks":"127.0.0.1:9050","treshold":2}`), 0o644)
	if code, _, errs := runIn(t, m.dir, "check", "--config", bad); code != exitUsage || !strings.Contains(errs, "treshold") {
		t.Fatalf("typo in config: exit %d %s", code, errs)
	}
}

func TestDaemonServesStatus(t *testing.T) {
	m := newMirror(t)
	img := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 16 << 10, Key: m.keys[0]})
	m.publish(t, "image.bin", img, 41, 10) // the installed build: up to date
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	cfg, _ := m.writeConfig(t, map[string]any{
		"listen":      []string{addr},
		"first_check": "10ms",
		"interval":    "1h",
		"networks":    []map[string]any{{"name": "tor_medium", "prefixes": []string{"127.0.0.0/8"}}},
		"brand":       map[string]any{"product_name": "AcmeBox", "colors": map[string]string{"primary": "#ff0000"}},
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() { done <- runDaemon(ctx, &bytes.Buffer{}, &errb, []string{"--config", cfg}) }()
	defer func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("daemon exit %d\n%s", code, errb.String())
		}
	}()
	var doc status.Document
	deadline := time.Now().Add(20 * time.Second)
	for {
		body, err := status.Fetch(t.Context(), addr)
		if err == nil {
			doc = status.Document{}
			json.Unmarshal(body, &doc)
			if doc.Update.LastResult != "" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no check result on the status page: %v %+v\n%s", err, doc, errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if doc.Update.LastResult != updater.StatusUpToDate || doc.Tor.State != status.TorDown || doc.Visitor.Network != "tor_medium" ||
		doc.Firmware.Build != 41 || doc.Update.NextCheck.IsZero() {
		t.Fatalf("status %+v", doc)
	}
	page, err := fetchPath(addr, "/torbox")
	if err != nil || !strings.Contains(page, "AcmeBox") || !strings.Contains(page, "Tor is down") || !strings.Contains(page, "#ff0000") {
		t.Fatalf("page: %v\n%.400s", err, page)
	}
	// verify status asks the daemon and prints the same document.
	code, out, errs := runIn(t, m.dir, "status", "--config", cfg)
	if code != exitOK || !strings.Contains(out, `"last_result": "up-to-date"`) {
		t.Fatalf("verify status: %d %s %s", code, out, errs)
	}
	// Without the daemon it reads the state file.
	code, out, _ = runIn(t, m.dir, "status", "--config", cfg, "--local")
	if code != exitOK || !strings.Contains(out, `"last_result": "up-to-date"`) || !strings.Contains(out, `"state": "down"`) {
		t.Fatalf("verify status --local: %d %s", code, out)
	}
}

func fetchPath(addr, path string) (string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
	var b bytes.Buffer
	_, err = b.ReadFrom(c)
	return b.String(), err
}

// fakeControlPort answers like a bootstrapped Tor whose version the
// directory authorities have declared obsolete.
func fakeControlPort(t *testing.T, validAfter string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					switch line := strings.TrimSpace(string(buf[:n])); {
					case line == "PROTOCOLINFO 1":
						fmt.Fprint(c, "250-PROTOCOLINFO 1\r\n250-AUTH METHODS=NULL\r\n250-VERSION Tor=\"0.4.7.1\"\r\n250 OK\r\n")
					case line == "AUTHENTICATE":
						fmt.Fprint(c, "250 OK\r\n")
					case strings.HasPrefix(line, "GETINFO version"):
						fmt.Fprint(c, "250-version=0.4.7.1\r\n250-status/version/current=obsolete\r\n"+
							"250-status/bootstrap-phase=NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY=\"Done\"\r\n250 OK\r\n")
					case line == "GETINFO consensus/valid-after":
						fmt.Fprintf(c, "250-consensus/valid-after=%s\r\n250 OK\r\n", validAfter)
					default:
						fmt.Fprint(c, "510 Unrecognized command\r\n")
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestDaemonChecksWhenTorIsObsolete(t *testing.T) {
	m := newMirror(t)
	img := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 16 << 10, Key: m.keys[0]})
	m.publish(t, "image.bin", img, 42, 10)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	// Tor's consensus is newer than the system clock: the effective time
	// must follow it.
	va := time.Now().UTC().Add(2 * time.Hour).Truncate(time.Second)
	cfg, sysLog := m.writeConfig(t, map[string]any{
		"listen":      []string{addr},
		"first_check": "1h", // only Tor's verdict can trigger a check
		"tor_poll":    "50ms",
		"control":     fakeControlPort(t, va.Format("2006-01-02 15:04:05")),
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() { done <- runDaemon(ctx, &bytes.Buffer{}, &errb, []string{"--config", cfg}) }()
	defer func() {
		cancel()
		<-done
	}()
	deadline := time.Now().Add(20 * time.Second)
	var doc status.Document
	for {
		if body, err := status.Fetch(t.Context(), addr); err == nil {
			doc = status.Document{}
			json.Unmarshal(body, &doc)
			if doc.Update.LastResult != "" {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no check triggered: %+v\n%s", doc, errb.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if doc.Update.LastResult != updater.StatusInstalled || doc.Tor.State != status.TorUp || doc.Tor.Recommendation != "obsolete" {
		t.Fatalf("status %+v\n%s", doc, errb.String())
	}
	if !strings.Contains(errb.String(), "tor reports its version obsolete") {
		t.Errorf("trigger not logged:\n%s", errb.String())
	}
	if f := updatertest.FlashCalls(t, sysLog); len(f) != 1 {
		t.Fatalf("flash calls %q", f)
	}
	st, err := updater.ReadState(filepath.Join(m.dir, "state", "state.json"))
	if err != nil || !st.LastCheck.Equal(va) {
		t.Fatalf("effective time %v, want tor's valid-after %v (%v)", st.LastCheck, va, err)
	}
}
