package nftmods

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/overlay"
	"github.com/torwrt/torwrt/internal/overlay/overlaytest"
	"github.com/torwrt/torwrt/internal/usign"
)

// rendered renders the overlay for profile and returns its firewall.nft.
func rendered(t *testing.T, profile string) []byte {
	t.Helper()
	in := overlaytest.Defaults(t, profile)
	key, err := usign.GenerateKey(bytes.NewReader(bytes.Repeat([]byte("nftmods-test-key"), 4)), "nftmods test key")
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public()
	in.ReleaseKeys = []overlay.ReleaseKey{{Fingerprint: pub.Fingerprint.String(), PublicKey: pub.Marshal()}}
	in.UpdateMirrors = []string{"https://updates.torwrt.example/releases"}
	in.FirmwareVersion = "nftmods"
	in.Channel, in.Radio.Country = "stable", "DE" // the brand's
	in.SourceDateEpoch = 1758316778
	dir := filepath.Join(t.TempDir(), "files")
	if _, err := overlay.Render(t.Context(), in, dir); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "etc", "torwrt", "firewall.nft"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func needsOf(t *testing.T, ruleset []byte) map[string]Need {
	t.Helper()
	ns, err := Needs(ruleset)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]Need{}
	for _, n := range ns {
		m[n.Feature] = n
	}
	return m
}

func lineOf(ruleset []byte, substr string) int {
	for i, l := range strings.Split(string(ruleset), "\n") {
		if strings.Contains(l, substr) && !strings.HasPrefix(strings.TrimSpace(l), "#") {
			return i + 1
		}
	}
	return 0
}

// The rendered ruleset of every shipped profile maps to the packages its
// expressions live in.
func TestNeedsOfRenderedRuleset(t *testing.T) {
	for _, profile := range []string{"gl-ar150", "gl-mt300a"} {
		t.Run(profile, func(t *testing.T) {
			rs := rendered(t, profile)
			got := needsOf(t, rs)
			want := map[string]string{
				"nf_tables": Core, "table family inet": Core, "ct": Core, "meta": Core,
				"iif": Core, "oif": Core, "iifname": Core, "oifname": Core,
				"fib": FIB, "dnat": NAT, "masquerade": NAT, "nat chain": NAT,
			}
			for f, p := range want {
				if got[f].Package != p {
					t.Errorf("%s: package %q, want %q", f, got[f].Package, p)
				}
			}
			for f, n := range got {
				if _, ok := want[f]; !ok {
					t.Errorf("unexpected feature %s (%s) at line %d: add it to this test once its package is checked", f, n.Package, n.Line)
				}
			}
			if l := lineOf(rs, " fib "); got["fib"].Line != l || l == 0 {
				t.Errorf("fib reported at line %d, the ruleset uses it at %d", got["fib"].Line, l)
			}

			// The package set of OpenWrt 24.10 without firewall4 and
			// without the profile's additions: only nft core, nat and
			// offload (kmod-nft-offload is a default package).
			err := Check("/etc/torwrt/firewall.nft", rs, []string{"kernel", Core, NAT, Offload, "nftables-json"})
			var me *MissingError
			if !errors.As(err, &me) || !errors.Is(err, ErrMissing) {
				t.Fatalf("Check without kmod-nft-fib: %v, want a *MissingError", err)
			}
			if len(me.Missing) != 1 || me.Missing[0].Package != FIB {
				t.Errorf("missing %+v, want only fib", me.Missing)
			}
			for _, s := range []string{fmt.Sprintf("/etc/torwrt/firewall.nft:%d: fib needs kmod-nft-fib", got["fib"].Line), "panic table", "add kmod-nft-fib to the profile's packages.add"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q:\n%v", s, err)
				}
			}
			if err := Check("firewall.nft", rs, []string{Core, NAT, FIB}); err != nil {
				t.Errorf("Check with core, nat and fib: %v", err)
			}
		})
	}
}

func TestNeedsKeywords(t *testing.T) {
	rs := []byte(`# fib queue in a comment
table bridge b {
	chain queue { type filter hook forward priority 0; iifname "fib" jump socket; }
	chain socket { meta l4proto tcp socket transparent 1 accept; }
}
table netdev n { flowtable ft { hook ingress priority 0; devices = { "eth0" }; } }
table ip t {
	chain pre { type nat hook prerouting priority dstnat; tcp dport 1 redirect to :2; ct count over 3 drop; }
	chain post { type nat hook postrouting priority srcnat; snat to 1.2.3.4; }
	chain q { type filter hook input priority 0; queue num 1; meta l4proto tcp tproxy to :1; ip saddr 1.1.1.1 reject; flow add @ft; }
}
`)
	got := needsOf(t, rs)
	for f, p := range map[string]string{
		"table family bridge": Bridge, "table family netdev": Netdev, "socket": Socket, "flowtable": Offload,
		"redirect": NAT, "snat": NAT, "nat chain": NAT, "ct count": ConnLim, "queue": Queue, "tproxy": TProxy,
		"reject": Core, "flow add": Offload,
	} {
		if got[f].Package != p {
			t.Errorf("%s: %q, want %q", f, got[f].Package, p)
		}
	}
	// Names and strings are not expressions: the chain named queue is
	// defined on line 3, the queue statement is on line 10.
	if got["queue"].Line != 10 {
		t.Errorf("queue at line %d, want 10 (a chain name or string is not the statement)", got["queue"].Line)
	}
	if _, ok := got["fib"]; ok {
		t.Error("fib in a comment or string counted as an expression")
	}
	if got["socket"].Line != 4 {
		t.Errorf("socket at line %d, want 4", got["socket"].Line)
	}
	if _, err := Needs([]byte("include \"/etc/x.nft\"\n")); err == nil {
		t.Error("include accepted: the check cannot see the included file")
	}
	if _, err := Needs([]byte("table inet t { chain c { iifname \"eth0 }\n}\n")); err == nil {
		t.Error("unterminated string accepted")
	}
}

// kernelExprPackage maps the kernel's nf_tables expression names (what
// `nft --debug=netlink` prints) to the OpenWrt 24.10 package holding the
// module (include/netfilter.mk). Expressions built into nf_tables.ko
// (payload, cmp, immediate, bitwise, byteorder, lookup, range, dynset,
// exthdr, meta, rt, last, inner) are in kmod-nft-core with it.
var kernelExprPackage = map[string]string{
	"payload": Core, "cmp": Core, "immediate": Core, "bitwise": Core, "byteorder": Core, "lookup": Core,
	"range": Core, "dynset": Core, "exthdr": Core, "meta": Core, "rt": Core, "last": Core,
	"ct": Core, "counter": Core, "limit": Core, "log": Core, "quota": Core, "reject": Core,
	"hash": Core, "numgen": Core, "objref": Core, "redir": NAT,
	"nat": NAT, "masq": NAT, "fib": FIB, "queue": Queue, "socket": Socket, "tproxy": TProxy,
	"flow_offload": Offload, "dup": DupInet, "fwd": Netdev, "xfrm": XFRM, "connlimit": ConnLim,
	"match": Compat, "target": Compat,
}

var exprLine = regexp.MustCompile(`(?m)^\s*\[ ([a-z_0-9]+) `)

// kernelPackages loads ruleset with the real nft in check mode inside a
// fresh network namespace and returns the packages of the kernel
// expressions it compiles to.
func kernelPackages(t *testing.T, ruleset []byte) map[string]string {
	t.Helper()
	for _, tool := range []string{"nft", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install nftables and iproute2 (apt-get install -y nftables iproute2)", tool)
		}
	}
	if os.Geteuid() != 0 {
		t.Fatal("the cross-check runs nft in a network namespace and needs root (CI runs it as root)")
	}
	ns := fmt.Sprintf("nftmods%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	f := filepath.Join(t.TempDir(), "r.nft")
	if err := os.WriteFile(f, ruleset, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "nft", "--debug=netlink", "-c", "-f", f).CombinedOutput()
	if err != nil {
		t.Fatalf("nft -c: %v\n%s", err, out)
	}
	got := map[string]string{}
	for _, m := range exprLine.FindAllStringSubmatch(string(out), -1) {
		p, ok := kernelExprPackage[m[1]]
		if !ok {
			t.Errorf("kernel expression %q has no package in kernelExprPackage: look it up in OpenWrt's include/netfilter.mk", m[1])
			continue
		}
		got[m[1]] = p
	}
	if len(got) == 0 {
		t.Fatalf("nft --debug=netlink printed no expressions:\n%s", out)
	}
	return got
}

// What the real nft compiles the rendered ruleset to needs no package that
// Needs did not name: the pure-Go scan misses nothing the kernel loads.
func TestNeedsAgreesWithKernel(t *testing.T) {
	for _, name := range []string{"gl-ar150", "keywords"} {
		t.Run(name, func(t *testing.T) {
			var rs []byte
			if name == "keywords" {
				rs = []byte(`table ip t {
	chain pre { type nat hook prerouting priority dstnat; tcp dport 1 redirect to :2; udp dport 3 dnat to 10.0.0.1; }
	chain post { type nat hook postrouting priority srcnat; oifname "x" masquerade; ip saddr 10.0.0.0/8 snat to 1.2.3.4; }
	chain in { type filter hook input priority 0; limit rate 1/second counter log reject; fib saddr . iif oif missing drop; }
}
`)
			} else {
				rs = rendered(t, name)
			}
			scanned := map[string]bool{}
			ns, err := Needs(rs)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range ns {
				scanned[n.Package] = true
			}
			kernel := kernelPackages(t, rs)
			for _, e := range slices.Sorted(func(yield func(string) bool) {
				for k := range kernel {
					if !yield(k) {
						return
					}
				}
			}) {
				if !scanned[kernel[e]] {
					t.Errorf("the kernel uses expression %s (package %s), which Needs did not report", e, kernel[e])
				}
			}
			t.Logf("kernel expressions: %v; scanned: %+v", kernel, ns)
		})
	}
}
