package overlay

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestFirstBoot runs the rendered /etc/uci-defaults/90-torwrt-firstboot
// the way OpenWrt's /etc/init.d/boot does (sourced in a subshell), in a
// chroot of the rendered tree (see chrootRun). The OpenWrt-only programs it
// calls (uci, passwd, logger, dropbearkey, /etc/rc.common) are stand-ins
// that record their arguments. The script itself runs unchanged.
func TestFirstBoot(t *testing.T) {
	// A bridge relay needs a board with more than 64 MB of RAM.
	in := testInput(t, "gl-mt300a")
	in.BridgeRelay = true
	in.TorMaxMemMB = 64
	tree, _ := renderTo(t, in)
	root := filepath.Join(t.TempDir(), "root")
	copyTree(t, tree, root)
	copyTree(t, filepath.Join(tree, "etc"), filepath.Join(root, "rom", "etc"))
	// The tor package's own /etc/config/tor, as the image has it.
	writeAt(t, root, "rom/etc/config/tor", "config tor 'conf'\n\toption default '/etc/tor/torrc'\n\toption generated '/tmp/torrc'\n")
	// What sysupgrade would have kept from an older firmware.
	writeAt(t, root, "etc/config/network", "config interface 'lan'\n\toption proto 'static'\n")
	writeAt(t, root, "etc/tor/torrc", "SocksPort 0.0.0.0:9050\n")
	// /etc/config/tor can add files to Tor's configuration: an old one
	// must not survive into the new image's policy.
	writeAt(t, root, "etc/config/tor", "config tor 'conf'\n\toption default '/etc/tor/torrc'\n\tlist tail_include '/etc/tor/old-vendor-extra'\n")
	writeAt(t, root, "etc/dropbear/authorized_keys", "ssh-ed25519 AAAA old-vendor-key\n")

	fakes := map[string]string{
		// uci records its arguments; "get" of the radio's country reads
		// the file as the real uci would.
		"fakebin/uci": "#!/bin/sh\necho \"$*\" >>/log/uci\n" +
			"[ \"$*\" = \"-q get wireless.radio0.country\" ] && sed -n \"s/^\toption country '\\(.*\\)'$/\\1/p\" /etc/config/wireless\nexit 0\n",
		"fakebin/passwd":      "#!/bin/sh\n{ echo \"passwd $*\"; cat; } >>/log/passwd\n",
		"fakebin/logger":      "#!/bin/sh\necho \"$*\" >>/log/logger\n",
		"fakebin/dropbearkey": "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = -f ] && f=$2; shift; done\necho made-on-device >\"$f\"\n",
		"etc/rc.common":       "#!/bin/sh\necho \"${1##*/} $2\" >>/log/rc\n",
		"etc/init.d/firewall": "#!/bin/sh /etc/rc.common\n",
		"etc/init.d/odhcpd":   "#!/bin/sh /etc/rc.common\n",
	}
	for p, body := range fakes {
		writeAt(t, root, p, body)
		if err := os.Chmod(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "etc/dropbear"), 0o755); err != nil {
		t.Fatal(err)
	}

	boot := func(t *testing.T) (string, error) {
		t.Helper()
		for _, f := range []string{"uci", "passwd", "rc", "logger"} {
			os.Remove(filepath.Join(root, "log", f))
		}
		return chrootRun(t, root, "cd /etc/uci-defaults && ( . ./90-torwrt-firstboot )")
	}
	read := func(p string) string {
		b, _ := os.ReadFile(filepath.Join(root, p))
		return string(b)
	}

	secretRe := regexp.MustCompile(`^[abcdefghjkmnpqrstuvwxyz23456789]{5}(-[abcdefghjkmnpqrstuvwxyz23456789]{5}){4}$`)
	var secrets map[string]string

	t.Run("first_boot", func(t *testing.T) {
		out, err := boot(t)
		if err != nil {
			t.Fatalf("first boot: %v\n%s\nlogger: %s", err, out, read("log/logger"))
		}
		info, err := os.Stat(filepath.Join(root, "etc/torwrt/device-secrets"))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("device-secrets mode %v, want 0600", info.Mode().Perm())
		}
		secrets = parseSecrets(t, read("etc/torwrt/device-secrets"))
		seen := map[string]bool{}
		for _, k := range []string{"ROOT_PASSWORD", "WIFI_KEY_TOR_OFF", "WIFI_KEY_TOR_MEDIUM", "WIFI_KEY_TOR_MAX"} {
			v := secrets[k]
			if !secretRe.MatchString(v) {
				t.Errorf("%s = %q, want 25 random characters in groups of 5", k, v)
			}
			if seen[v] {
				t.Errorf("%s repeats another secret", k)
			}
			seen[v] = true
		}
		if want := "passwd root\n" + secrets["ROOT_PASSWORD"] + "\n" + secrets["ROOT_PASSWORD"] + "\n"; read("log/passwd") != want {
			t.Errorf("passwd got %q, want the root password twice", read("log/passwd"))
		}
		uciLog := read("log/uci")
		for _, n := range []string{"tor_off", "tor_medium", "tor_max"} {
			key := secrets["WIFI_KEY_"+strings.ToUpper(n)]
			for _, want := range []string{"-q set wireless.wifi_" + n + ".key=" + key, "-q set wireless.wifi_" + n + ".disabled=0"} {
				if !strings.Contains(uciLog, want+"\n") {
					t.Errorf("uci was not called with %q; log:\n%s", want, uciLog)
				}
			}
		}
		if strings.Contains(uciLog, "disabled=1") || !strings.Contains(uciLog, "-q get wireless.radio0.country\n") {
			t.Errorf("the radio's country was not checked, or Wi-Fi kept off:\n%s", uciLog)
		}
		if !strings.HasSuffix(uciLog, "-q commit wireless\n") {
			t.Errorf("uci log does not end with the commit:\n%s", uciLog)
		}
		for _, p := range restoreFiles {
			p = strings.TrimPrefix(p, "/")
			if got, want := read(p), read("rom/"+p); got != want {
				t.Errorf("%s was not restored from /rom:\n%s", p, got)
			}
		}
		if _, err := os.Stat(filepath.Join(root, "etc/dropbear/authorized_keys")); !os.IsNotExist(err) {
			t.Errorf("authorized_keys kept from the old firmware although the image has none: %v", err)
		}
		if read("etc/dropbear/dropbear_ed25519_host_key") != "made-on-device\n" {
			t.Error("no SSH host key made at first boot")
		}
		if info, err := os.Stat(filepath.Join(root, "etc/tor/keys")); err != nil || info.Mode().Perm() != 0o700 {
			t.Errorf("bridge key directory: %v, %v", info, err)
		}
		rc := read("log/rc")
		for _, want := range []string{"firewall disable", "odhcpd disable", "torwrt-firewall enable", "torwrt-verify enable"} {
			if !strings.Contains(rc, want+"\n") {
				t.Errorf("init script call %q missing; got:\n%s", want, rc)
			}
		}
	})

	t.Run("after_upgrade_keeps_secrets", func(t *testing.T) {
		out, err := boot(t)
		if err != nil {
			t.Fatalf("second boot: %v\n%s", err, out)
		}
		if got := parseSecrets(t, read("etc/torwrt/device-secrets")); !equalMaps(got, secrets) {
			t.Errorf("secrets changed on the second run:\n%v\n%v", got, secrets)
		}
		if read("log/passwd") != "" {
			t.Error("the root password was reset although the device already has one")
		}
		if !strings.Contains(read("log/uci"), "wireless.wifi_tor_max.key="+secrets["WIFI_KEY_TOR_MAX"]+"\n") {
			t.Error("Wi-Fi keys not re-applied after the config was restored from /rom")
		}
	})

	// The last network's passphrase is checked before the first network
	// is enabled: a malformed one leaves every access point off.
	t.Run("last_key_bad_keeps_all_wifi_off", func(t *testing.T) {
		good := read("etc/torwrt/device-secrets")
		defer writeAt(t, root, "etc/torwrt/device-secrets", good)
		bad := strings.Replace(good, "WIFI_KEY_TOR_MAX="+secrets["WIFI_KEY_TOR_MAX"], "WIFI_KEY_TOR_MAX=short", 1)
		writeAt(t, root, "etc/torwrt/device-secrets", bad)
		out, err := boot(t)
		if err == nil {
			t.Fatalf("boot with a malformed tor_max secret succeeded:\n%s", out)
		}
		if uciLog := read("log/uci"); strings.Contains(uciLog, "disabled=0") || strings.Contains(uciLog, ".key=") {
			t.Errorf("Wi-Fi touched although the tor_max passphrase is malformed:\n%s", uciLog)
		}
		if !strings.Contains(read("log/logger"), "WIFI_KEY_TOR_MAX missing or malformed") {
			t.Errorf("no log line about the malformed secret: %q", read("log/logger"))
		}
	})

	// An image whose wireless config lost its country (or never had one)
	// boots with Wi-Fi off; everything else still starts.
	t.Run("no_country_keeps_wifi_off", func(t *testing.T) {
		wireless := read("rom/etc/config/wireless")
		defer writeAt(t, root, "rom/etc/config/wireless", wireless)
		if !strings.Contains(wireless, "\toption country 'DE'\n") {
			t.Fatalf("rendered wireless config has no country:\n%s", wireless)
		}
		for _, bad := range []string{"", "\toption country ''\n", "\toption country '00'\n", "\toption country 'de'\n"} {
			writeAt(t, root, "rom/etc/config/wireless", strings.Replace(wireless, "\toption country 'DE'\n", bad, 1))
			out, err := boot(t)
			if err != nil {
				t.Fatalf("country %q: boot failed: %v\n%s\nlogger: %s", bad, err, out, read("log/logger"))
			}
			uciLog := read("log/uci")
			if strings.Contains(uciLog, "disabled=0") || strings.Contains(uciLog, ".key=") {
				t.Errorf("country %q: Wi-Fi enabled:\n%s", bad, uciLog)
			}
			for _, want := range []string{"-q set wireless.radio0.disabled=1\n", "-q set wireless.wifi_tor_off.disabled=1\n", "-q set wireless.wifi_tor_max.disabled=1\n", "-q commit wireless\n"} {
				if !strings.Contains(uciLog, want) {
					t.Errorf("country %q: uci lacks %q:\n%s", bad, want, uciLog)
				}
			}
			if !strings.Contains(read("log/logger"), "no Wi-Fi country") {
				t.Errorf("country %q: no log line: %q", bad, read("log/logger"))
			}
			if !strings.Contains(read("log/rc"), "torwrt-firewall enable\n") {
				t.Errorf("country %q: the firewall was not enabled: %q", bad, read("log/rc"))
			}
		}
	})

	t.Run("tampered_secrets_keep_wifi_off", func(t *testing.T) {
		bad := strings.Replace(read("etc/torwrt/device-secrets"), "WIFI_KEY_TOR_OFF="+secrets["WIFI_KEY_TOR_OFF"], "WIFI_KEY_TOR_OFF=x';reboot;'", 1)
		writeAt(t, root, "etc/torwrt/device-secrets", bad)
		out, err := boot(t)
		if err == nil {
			t.Fatalf("boot with a malformed secret succeeded:\n%s", out)
		}
		if strings.Contains(read("log/uci"), "disabled=0") {
			t.Errorf("a Wi-Fi network was enabled despite a malformed secret:\n%s", read("log/uci"))
		}
		if !strings.Contains(read("log/logger"), "WIFI_KEY_TOR_OFF missing or malformed") {
			t.Errorf("no log line about the malformed secret: %q", read("log/logger"))
		}
	})
}

func writeAt(t *testing.T, root, p, body string) {
	t.Helper()
	full := filepath.Join(root, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func parseSecrets(t *testing.T, text string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("bad line in device-secrets: %q", line)
		}
		m[k] = v
	}
	return m
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// chrootRun runs script with /bin/sh chrooted into root, inside a private
// mount namespace, so the rendered files run with the host's real tools
// and nothing outside root is touched. The host's /bin, /sbin, /usr, /lib,
// /lib64 and /dev appear inside root; where root has files of its own in
// one of those (the tree's /lib/upgrade, a stand-in /usr/bin/ucert), a
// read-only overlay puts them above the host's. PATH starts with /fakebin
// for stand-ins of OpenWrt programs; /log collects what they record.
func chrootRun(t *testing.T, root, script string) (string, error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test builds a chroot in a private mount namespace and needs root (CI runs as root)")
	}
	unshare := requireTool(t, "unshare", "util-linux")
	requireTool(t, "chroot", "coreutils")
	for _, d := range []string{"log", "tmp", "fakebin", "dev"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	layers := filepath.Join(t.TempDir(), "layers")
	for _, d := range []string{"bin", "sbin", "usr", "lib", "lib64"} {
		p := filepath.Join(root, d)
		if _, err := os.Stat(p); err == nil {
			if err := os.MkdirAll(layers, 0o755); err != nil {
				t.Fatal(err)
			}
			// Each run stacks the tree's files again from the same place.
			if err := os.Rename(p, filepath.Join(layers, d)); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	setup := `set -e
for d in bin sbin usr lib lib64; do
	[ -e "/$d" ] || continue
	if [ -d "$LAYERS/$d" ]; then
		mount -t overlay overlay -o "lowerdir=$LAYERS/$d:/$d" "$ROOT/$d"
	else
		mount --rbind "/$d" "$ROOT/$d"
	fi
done
mount --rbind /dev "$ROOT/dev"
cd "$ROOT"
exec chroot "$ROOT" /bin/sh -c "$SCRIPT"`
	cmd := exec.CommandContext(t.Context(), unshare, "--mount", "--propagation", "private", "sh", "-c", setup)
	cmd.Env = []string{"ROOT=" + root, "LAYERS=" + layers, "SCRIPT=" + script, "PATH=/fakebin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	// Put the tree's files back where the test expects them.
	for _, d := range []string{"bin", "sbin", "usr", "lib", "lib64"} {
		if _, serr := os.Stat(filepath.Join(layers, d)); serr == nil {
			os.Remove(filepath.Join(root, d))
			if rerr := os.Rename(filepath.Join(layers, d), filepath.Join(root, d)); rerr != nil {
				t.Fatal(rerr)
			}
		}
	}
	return string(out), err
}
