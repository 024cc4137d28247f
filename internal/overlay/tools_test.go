package overlay

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/overlay/device"
)

// These tests hand the rendered files to the real programs that read them
// on a router or a workstation: tor, nft and a POSIX shell. A missing tool
// is a failure, never a skip: CI installs them.

func requireTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found in PATH: install the Debian package %s (apt-get install -y %s)", name, debianPackage, debianPackage)
	}
	return p
}

func run(t *testing.T, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

// expectedTorWarnings are warnings of Debian's tor about this
// configuration that are known and accepted; any other warning fails.
var expectedTorWarnings = regexp.MustCompile(strings.Join([]string{
	// Deliberately small for 64 MB routers (OpenWrt's tor accepts it).
	`MaxMemInQueues is set to a low value`,
	`MaxMemInQueues must be at least 64 MB on servers`,
	// The test runs as root; on the router tor drops to User tor.
	`You are running Tor as root`,
	// ContactInfo is optional for a bridge (Input.Bridge.ContactInfo).
	`Your ContactInfo config option is not set`,
}, "|"))

// TestTorVerifyConfig runs `tor --verify-config` on the rendered torrc,
// as a client and as a bridge relay, for every profile.
//
// Lines adapted for the test host, and only these:
//   - DataDirectory /var/lib/tor and KeyDirectory /etc/tor/keys point into
//     a temporary directory: tor checks that it can use them, and the
//     router's paths do not exist here.
//   - "User tor" is removed: tor checks that the account exists and owns
//     the data directory; Debian's account is debian-tor and the router's
//     tor account does not exist on a build machine.
func TestTorVerifyConfig(t *testing.T) {
	tor := requireTool(t, "tor", "tor")
	for _, profile := range deviceProfiles(t) {
		for _, bridge := range []bool{false, true} {
			if bridge && testInput(t, profile).RAMMB <= device.MinBridgeRAMMB {
				continue // Validate refuses a bridge there (TestValidate)
			}
			name := profile + "/client"
			if bridge {
				name = profile + "/bridge"
			}
			t.Run(name, func(t *testing.T) {
				in := testInput(t, profile)
				if bridge {
					in.BridgeRelay = true
					in.TorMaxMemMB = 64
					in.Bridge.ContactInfo = "bridges at torwrt dot example"
				}
				dir, _ := renderTo(t, in)
				torrc, err := os.ReadFile(filepath.Join(dir, "etc", "tor", "torrc"))
				if err != nil {
					t.Fatal(err)
				}
				tmp := t.TempDir()
				// The data directory as OpenWrt's tor init script makes
				// it before tor starts: 0700, tor's. Tor must make it
				// group-readable itself (the cookie's directory, for
				// torwrt-verify in tor's group) and say nothing about it.
				data := filepath.Join(tmp, "data")
				if err := os.Mkdir(data, 0o700); err != nil {
					t.Fatal(err)
				}
				adapted := adaptTorrc(t, string(torrc), tmp)
				path := filepath.Join(tmp, "torrc")
				if err := os.WriteFile(path, []byte(adapted), 0o644); err != nil {
					t.Fatal(err)
				}
				out, err := run(t, 60*time.Second, tor, "--verify-config", "--defaults-torrc", os.DevNull, "-f", path)
				if err != nil {
					t.Fatalf("tor --verify-config: %v\n%s\ntorrc:\n%s", err, out, adapted)
				}
				if !strings.Contains(out, "Configuration was valid") {
					t.Fatalf("tor --verify-config did not say the configuration is valid:\n%s", out)
				}
				for _, line := range strings.Split(out, "\n") {
					if (strings.Contains(line, "[warn]") || strings.Contains(line, "[err]")) && !expectedTorWarnings.MatchString(line) {
						t.Errorf("unexpected tor warning: %s", line)
					}
				}
				if fi, err := os.Stat(data); err != nil || fi.Mode().Perm() != 0o750 {
					t.Errorf("data directory after tor --verify-config: %v %v, want mode 0750 (group-readable for the cookie)", fi, err)
				}
				for _, want := range []string{"TransPort 10.72.0.1:9040", "DNSPort 10.72.0.1:9053", "SocksPort 10.73.0.1:9050", "ControlPort 127.0.0.1:9051", "CookieAuthentication 1",
					"CookieAuthFileGroupReadable 1", "DataDirectoryGroupReadable 1", "KeyDirectoryGroupReadable 0"} {
					if !strings.Contains(adapted, want+"\n") {
						t.Errorf("torrc lacks %q", want)
					}
				}
				if bridge != strings.Contains(adapted, "BridgeRelay 1\n") {
					t.Errorf("BridgeRelay line does not match input.bridge_relay=%v", bridge)
				}
			})
		}
	}
}

func adaptTorrc(t *testing.T, torrc, tmp string) string {
	t.Helper()
	replace := func(s, old, new string) string {
		if !strings.Contains(s, old) {
			t.Fatalf("torrc has no line %q to adapt", strings.TrimSpace(old))
		}
		return strings.Replace(s, old, new, 1)
	}
	torrc = replace(torrc, "\nUser tor\n", "\n")
	torrc = replace(torrc, "\nDataDirectory /var/lib/tor\n", "\nDataDirectory "+filepath.Join(tmp, "data")+"\n")
	if strings.Contains(torrc, "\nKeyDirectory ") {
		torrc = replace(torrc, "\nKeyDirectory /etc/tor/keys\n", "\nKeyDirectory "+filepath.Join(tmp, "keys")+"\n")
	}
	return torrc
}

// TestFirewallLoads loads each profile's rendered ruleset with nft in a
// throwaway network namespace (the real one is never touched) and checks
// that what the kernel holds afterwards is our table and nothing else.
// internal/netleak tests what the rules do.
func TestFirewallLoads(t *testing.T) {
	requireTool(t, "nft", "nftables")
	unshare := requireTool(t, "unshare", "util-linux")
	for _, profile := range deviceProfiles(t) {
		t.Run(profile, func(t *testing.T) {
			in := testInput(t, profile)
			if testInput(t, profile).RAMMB > device.MinBridgeRAMMB {
				in.BridgeRelay = true // the ORPort rule too
				in.TorMaxMemMB = 64
			}
			dir, _ := renderTo(t, in)
			ruleset := filepath.Join(dir, "etc", "torwrt", "firewall.nft")
			out, err := run(t, 30*time.Second, unshare, "--net", "sh", "-c", `nft -f "$1" && nft list ruleset`, "sh", ruleset)
			if err != nil {
				t.Fatalf("loading %s: %v\n%s", ruleset, err, out)
			}
			if got := regexp.MustCompile(`(?m)^table `).FindAllString(out, -1); len(got) != 1 || !strings.Contains(out, "table inet torwrt {") {
				t.Errorf("want exactly table inet torwrt after loading, got:\n%s", out)
			}
			wants := []string{
				"policy drop;",
				`oifname "` + in.WAN.Device + `" meta skuid 52 accept`,
				`dnat ip to 10.72.0.1:9040`,
			}
			if in.BridgeRelay {
				wants = append(wants, `tcp dport 9001 accept`)
			}
			for _, want := range wants {
				if !strings.Contains(out, want) {
					t.Errorf("loaded ruleset lacks %q:\n%s", want, out)
				}
			}
			if n := strings.Count(out, "policy drop;"); n != 3 {
				t.Errorf("%d base chains with policy drop, want 3 (input, forward, output)", n)
			}
		})
	}
}

// TestShellSyntax parses every shell script in the tree with the system's
// POSIX shell (dash on Debian), which is stricter than OpenWrt's ash.
func TestShellSyntax(t *testing.T) {
	sh := requireTool(t, "sh", "dash")
	in := testInput(t, "gl-mt300a")
	in.BridgeRelay = true
	in.TorMaxMemMB = 64
	dir, _ := renderTo(t, in)
	for _, p := range []string{
		"etc/init.d/torwrt-firewall",
		"etc/init.d/torwrt-verify",
		"etc/uci-defaults/90-torwrt-firstboot",
		"lib/upgrade/zz-torwrt-signature.sh",
	} {
		if out, err := run(t, 10*time.Second, sh, "-n", filepath.Join(dir, p)); err != nil {
			t.Errorf("%s: %v\n%s", p, err, out)
		}
	}
}
