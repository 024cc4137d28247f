package torctl

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startTor runs a real, offline tor (DisableNetwork 1) with a cookie-
// authenticated control port on a free loopback port and returns the
// control address and cookie path.
func startTor(t *testing.T) (addr, cookie string) {
	t.Helper()
	bin, err := exec.LookPath("tor")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/tor"); err2 == nil {
			bin = "/usr/sbin/tor"
		} else {
			t.Fatalf("tor is not installed (%v); install the Debian package: apt-get install -y tor", err)
		}
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	cookie = filepath.Join(data, "control_auth_cookie")
	portFile := filepath.Join(dir, "control-port")
	torrc := filepath.Join(dir, "torrc")
	conf := strings.Join([]string{
		"DataDirectory " + data,
		"DisableNetwork 1",
		"SocksPort 0",
		"ControlPort auto",
		"ControlPortWriteToFile " + portFile,
		"CookieAuthentication 1",
		"CookieAuthFile " + cookie,
		"AvoidDiskWrites 1",
		"Log notice stderr",
	}, "\n") + "\n"
	if err := os.WriteFile(torrc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	// --defaults-torrc keeps a system-wide torrc out of the test.
	cmd := exec.CommandContext(ctx, bin, "--defaults-torrc", os.DevNull, "-f", torrc)
	var logs bytes.Buffer
	cmd.Stderr = &logs
	cmd.Stdout = &logs
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting tor: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("tor log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("tor exited early: %v\n%s", err, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
		b, err := os.ReadFile(portFile)
		if err != nil || !bytes.HasSuffix(b, []byte("\n")) {
			continue
		}
		if _, err := os.Stat(cookie); err != nil {
			continue
		}
		// "PORT=127.0.0.1:12345"
		return strings.TrimPrefix(strings.TrimSpace(string(b)), "PORT="), cookie
	}
	t.Fatalf("tor's control port did not come up in 30 s\n%s", logs.String())
	return "", ""
}

func TestRealTor(t *testing.T) {
	addr, cookie := startTor(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	c, err := Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pi, err := c.ProtocolInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !pi.Has("COOKIE") || !pi.Has("SAFECOOKIE") || pi.TorVersion == "" {
		t.Fatalf("PROTOCOLINFO %+v", pi)
	}
	// Before authenticating, tor refuses GETINFO.
	if _, err := c.Version(ctx); err == nil {
		t.Fatal("GETINFO before AUTHENTICATE worked")
	}
	c.Close()

	c, err = Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Authenticate(ctx, cookie); err != nil {
		t.Fatalf("Authenticate (SAFECOOKIE): %v", err)
	}
	v, err := c.Version(ctx)
	if err != nil || !strings.HasPrefix(v, "0.") {
		t.Fatalf("version %q %v", v, err)
	}
	vs, err := c.VersionStatus(ctx)
	if err != nil {
		t.Fatalf("status/version/current: %v", err)
	}
	if _, err := ParseVersionStatus(string(vs)); err != nil {
		t.Fatal(err)
	}
	b, err := c.Bootstrap(ctx)
	if err != nil {
		t.Fatalf("status/bootstrap-phase: %v", err)
	}
	if b.Progress < 0 || b.Progress > 100 || b.Tag == "" {
		t.Fatalf("bootstrap %+v", b)
	}
	// Offline there is no consensus; the error must say so, not break
	// the connection.
	if va, err := c.ConsensusValidAfter(ctx); err != nil && !errors.Is(err, ErrUnavailable) {
		t.Fatalf("consensus/valid-after: %v", err)
	} else {
		t.Logf("consensus/valid-after: %v %v", va, err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	t.Logf("tor %s, version status %q, bootstrap %d%% %s %q", st.Version, st.VersionStatus, st.Bootstrap.Progress, st.Bootstrap.Tag, st.Bootstrap.Summary)

	// Plain COOKIE authentication on a fresh connection.
	c2, err := Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	raw, err := ReadCookie(cookie)
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.auth(ctx, "AUTHENTICATE "+strings.ToUpper(hexString(raw))); err != nil {
		t.Fatalf("COOKIE auth: %v", err)
	}
	if _, err := c2.Version(ctx); err != nil {
		t.Fatal(err)
	}

	// A wrong cookie is refused.
	bad := filepath.Join(t.TempDir(), "cookie")
	os.WriteFile(bad, bytes.Repeat([]byte{1}, CookieLen), 0o600)
	c3, err := Dial(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if err := c3.Authenticate(ctx, bad); !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong cookie: %v", err)
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
