package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	// Test-only: the router binary never imports the overlay (see
	// TestRouterDeps); the test renders a real tree to read.
	"github.com/torwrt/torwrt/internal/overlay"
	"github.com/torwrt/torwrt/internal/overlay/overlaytest"
	"github.com/torwrt/torwrt/internal/routerconf"
	"github.com/torwrt/torwrt/internal/status"
	"github.com/torwrt/torwrt/internal/updater/updatertest"
)

// renderTree renders the overlay for profile as a build would and returns
// the tree's root.
func renderTree(t *testing.T, profile string) (string, overlay.Input) {
	t.Helper()
	in := overlaytest.Defaults(t, profile)
	keys, _ := updatertest.Keys(t, 2, "release keys")
	for _, k := range keys {
		pub := k.Public()
		in.ReleaseKeys = append(in.ReleaseKeys, overlay.ReleaseKey{Fingerprint: pub.Fingerprint.String(), PublicKey: pub.Marshal()})
	}
	in.UpdateThreshold = 2
	in.UpdateMirrors = []string{"http://torwrtupdatesxyzabcdefghijklmnopqrstuvwxyz234567abcdefghijkl.onion/releases"}
	in.FirmwareVersion = "24.10.3-torwrt42"
	in.Channel, in.Radio.Country = "stable", "DE" // the brand's
	in.FirmwareBuild = 42
	in.SourceDateEpoch = 1758316778
	in.Brand = overlay.StatusBrand{
		Vendor: "Acme", Colors: routerconf.Colors{Primary: "#123456"}, Language: "en",
		LogoName: "logo.svg", Logo: []byte(`<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"/>`),
	}
	root := filepath.Join(t.TempDir(), "root")
	if _, err := overlay.Render(t.Context(), in, root); err != nil {
		t.Fatal(err)
	}
	return root, in
}

// initCommand returns the argv procd runs, after the program.
func initCommand(t *testing.T, root string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "etc/init.d/torwrt-verify"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*procd_set_param command "\$PROG" (.*)$`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no procd command line in the init script:\n%s", b)
	}
	return strings.Fields(string(m[1]))
}

// rebase moves every path of the rendered config under root, writes it
// back and returns its host path.
func rebase(t *testing.T, root, cfgPath string, edit func(*routerconf.Config)) string {
	t.Helper()
	host := filepath.Join(root, cfgPath)
	b, err := os.ReadFile(host)
	if err != nil {
		t.Fatal(err)
	}
	c, err := routerconf.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range c.Paths() {
		if *p.Value != "" {
			*p.Value = filepath.Join(root, *p.Value)
		}
	}
	if edit != nil {
		edit(c)
	}
	out, err := routerconf.Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(host, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return host
}

// TestCheckConfigOnRenderedTree runs the daemon's own config loading, with
// the command line of the rendered init script, on the rendered
// /etc/torwrt/verify.json of both profiles: the two sides of the contract
// must fit without a translation step.
func TestCheckConfigOnRenderedTree(t *testing.T) {
	for _, profile := range overlaytest.Devices(t) {
		t.Run(profile, func(t *testing.T) {
			root, in := renderTree(t, profile)
			argv := initCommand(t, root)
			if len(argv) != 3 || argv[0] != "daemon" || argv[1] != "--config" || argv[2] != routerconf.Path {
				t.Fatalf("init script runs %q, want daemon --config %s", argv, routerconf.Path)
			}
			argv[2] = rebase(t, root, argv[2], nil)
			code, out, errs := runIn(t, root, append(argv, "--check-config")...)
			if code != exitOK {
				t.Fatalf("check-config: exit %d\nstdout: %s\nstderr: %s", code, out, errs)
			}
			for _, want := range []string{
				"OK\n",
				fmt.Sprintf("firmware: %s %s build %d, board %s\n", in.ProductName, in.FirmwareVersion, in.FirmwareBuild, in.Board),
				"updates: 1 mirrors, 2 of 2 trusted keys",
				"status page: 10.71.0.1:80 10.72.0.1:80 10.73.0.1:80\n",
				"setup view: http://10.73.0.1/torbox/setup for clients on tor_max",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("check-config output lacks %q:\n%s", want, out)
				}
			}

			// The same file with one unknown key, or a key file gone,
			// is refused with the documented exit codes.
			cfgPath := argv[2]
			good, _ := os.ReadFile(cfgPath)
			os.WriteFile(cfgPath, bytes.Replace(good, []byte(`"threshold"`), []byte(`"treshold"`), 1), 0o644)
			if code, _, errs := runIn(t, root, append(argv, "--check-config")...); code != exitUsage || !strings.Contains(errs, "treshold") {
				t.Errorf("typo: exit %d %s", code, errs)
			}
			os.WriteFile(cfgPath, good, 0o644)
			os.RemoveAll(filepath.Join(root, routerconf.KeysDir))
			if code, _, _ := runIn(t, root, append(argv, "--check-config")...); code != exitFailure {
				t.Errorf("no keys: exit %d, want %d", code, exitFailure)
			}
		})
	}
}

// from dials addr from a given loopback source address, standing in for a
// client on one of the router's networks.
func from(t *testing.T, src, addr, raw string) (code int, headers, body string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, raw)
	b, _ := io.ReadAll(bufio.NewReader(c))
	head, body, _ := strings.Cut(string(b), "\r\n\r\n")
	if f := strings.Fields(head); len(f) > 1 {
		code, _ = strconv.Atoi(f[1])
	}
	return code, head, body
}

// TestDaemonSetupView runs the daemon with a setup view and checks who
// sees the secrets, that confirming hides them, and that the log never
// holds one.
func TestDaemonSetupView(t *testing.T) {
	m := newMirror(t)
	img := updatertest.Image(t, updatertest.ImageSpec{PayloadSize: 16 << 10, Key: m.keys[0]})
	m.publish(t, "image.bin", img, 41, 10)
	// The router's tor_max address is 127.0.3.1; clients come from the
	// loopback subnets that stand in for its networks.
	ln, err := net.Listen("tcp", "127.0.3.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	secrets := map[string]string{
		"ROOT_PASSWORD":       "abcde-fghjk-mnpqr-stuvw-xyz23",
		"WIFI_KEY_TOR_OFF":    "23456-789ab-cdefg-hjkmn-pqrst",
		"WIFI_KEY_TOR_MEDIUM": "uvwxy-z2345-6789a-bcdef-ghjkm",
		"WIFI_KEY_TOR_MAX":    "npqrs-tuvwx-yz234-56789-abcde",
	}
	var sb strings.Builder
	sb.WriteString("# Made on this device at first boot. Never part of an image.\n")
	for _, k := range []string{"ROOT_PASSWORD", "WIFI_KEY_TOR_OFF", "WIFI_KEY_TOR_MEDIUM", "WIFI_KEY_TOR_MAX"} {
		sb.WriteString(k + "=" + secrets[k] + "\n")
	}
	secretsFile := filepath.Join(m.dir, "device-secrets")
	doneFile := filepath.Join(m.dir, "setup-done")
	os.WriteFile(secretsFile, []byte(sb.String()), 0o600)
	cfg, _ := m.writeConfig(t, map[string]any{
		"listen":      []string{addr},
		"first_check": "1h",
		"networks": []map[string]any{
			{"name": "tor_off", "prefixes": []string{"127.0.1.0/24"}, "ssid": "acme-tor_off"},
			{"name": "tor_medium", "prefixes": []string{"127.0.2.0/24"}, "ssid": "acme-tor_medium"},
			{"name": "tor_max", "prefixes": []string{"127.0.3.0/24"}, "ssid": "acme-tor_max"},
		},
		"setup": map[string]any{"network": "tor_max", "address": "127.0.3.1", "secrets_file": secretsFile, "done_file": doneFile},
		"brand": map[string]any{"product_name": "AcmeBox", "colors": map[string]string{"primary": "#ff0000"}, "language": "de"},
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	var errb syncBuffer
	go func() { done <- runDaemon(ctx, &bytes.Buffer{}, &errb, []string{"--config", cfg, "--debug"}) }()
	defer func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("daemon exit %d\n%s", code, errb.String())
		}
		for k, s := range secrets {
			if strings.Contains(errb.String(), s) {
				t.Errorf("daemon log holds %s:\n%s", k, errb.String())
			}
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := status.Fetch(t.Context(), addr); err == nil {
			break
		}
		if len(done) > 0 || time.Now().After(deadline) {
			t.Fatalf("daemon not serving:\n%s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	get := func(src, path string) (int, string, string) {
		return from(t, src, addr, "GET "+path+" HTTP/1.1\r\nHost: "+addr+"\r\n\r\n")
	}
	post := func(src, body string) (int, string, string) {
		return from(t, src, addr, fmt.Sprintf("POST /torbox/setup/done HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s", addr, len(body), body))
	}
	noSecrets := func(what, body string) {
		t.Helper()
		for k, s := range secrets {
			if strings.Contains(body, s) {
				t.Errorf("%s shows %s", what, k)
			}
		}
	}

	// tor_max: every secret, labelled with the SSIDs, not cacheable.
	code, head, body := get("127.0.3.9", "/torbox/setup")
	if code != 200 || !strings.Contains(head, "\r\nCache-Control: no-store\r\n") {
		t.Fatalf("tor_max client: %d\n%s\n%s", code, head, body)
	}
	for k, s := range secrets {
		if !strings.Contains(body, s) {
			t.Errorf("setup view lacks %s", k)
		}
	}
	for _, want := range []string{"acme-tor_max", "AcmeBox", "#ff0000", `lang="de"`} {
		if !strings.Contains(body, want) {
			t.Errorf("setup view lacks %q", want)
		}
	}
	tok := regexp.MustCompile(`name="token" value="([0-9a-f]+)"`).FindStringSubmatch(body)
	if tok == nil {
		t.Fatalf("no confirmation form:\n%s", body)
	}
	// The status page is unchanged behind the setup view.
	if code, _, body := get("127.0.3.9", "/torbox.json"); code != 200 || !strings.Contains(body, `"network": "tor_max"`) {
		t.Errorf("status JSON: %d %s", code, body)
	}

	// tor_off, tor_medium, the WAN: refused, and they cannot end setup.
	for name, src := range map[string]string{"tor_off": "127.0.1.9", "tor_medium": "127.0.2.9", "wan": "127.0.9.9"} {
		code, _, body := get(src, "/torbox/setup")
		if code != 403 && code != 404 {
			t.Errorf("%s client: %d", name, code)
		}
		noSecrets(name+" client", body)
		if code, _, _ := post(src, "token="+tok[1]); code != 403 {
			t.Errorf("%s client confirming: %d", name, code)
		}
	}
	if _, err := os.Stat(doneFile); err == nil {
		t.Fatal("setup ended by a client outside tor_max")
	}

	// Confirm; from then on nothing secret, to anyone.
	if code, head, _ := post("127.0.3.9", url.Values{"token": {tok[1]}}.Encode()); code != 303 || !strings.Contains(head, "\r\nLocation: /torbox/setup") {
		t.Fatalf("confirm: %d\n%s", code, head)
	}
	if _, err := os.Stat(doneFile); err != nil {
		t.Fatalf("done file: %v", err)
	}
	code, head, body = get("127.0.3.9", "/torbox/setup")
	if code != 200 || !strings.Contains(body, "Setup is done") || !strings.Contains(head, "\r\nCache-Control: no-store\r\n") {
		t.Errorf("after confirming: %d\n%s", code, body)
	}
	noSecrets("setup view after confirming", body)
	if !strings.Contains(errb.String(), "setup confirmed") {
		t.Errorf("confirmation not logged:\n%s", errb.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the daemon's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
