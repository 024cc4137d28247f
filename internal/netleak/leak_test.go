package netleak

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/torwrt/torwrt/internal/overlay"
	"github.com/torwrt/torwrt/internal/overlay/overlaytest"
	"github.com/torwrt/torwrt/internal/usign"
)

// The lab, all inside namespaces this test creates:
//
//	c-off  eth0 10.71.0.2 ──── lan-off 10.71.0.1 ┐
//	c-med  eth0 10.72.0.2 ──── lan-med 10.72.0.1 ├ router ── wan0 198.18.0.2 ──── eth0 198.18.0.1  wan
//	       fd00:72::2          fd00:72::1        │           fd00:99::2            fd00:99::1     lo 198.19.0.1
//	c-max  eth0 10.73.0.2 ──── lan-max 10.73.0.1 ┘
//
// Every client has a default route through the router, tor_max's too: the
// firewall, not a missing route, must be what stops it. The router
// forwards IPv4 and IPv6 and has static neighbours toward the WAN, so
// without the ruleset everything would get out (the control subtest
// shows it does). 198.18.0.0/15 is the benchmarking range; it exists only
// in these namespaces.
const (
	wanHost   = "198.19.0.1"
	wanHost6  = "fd00:99::1"
	routerWAN = "198.18.0.2"

	// torUID is the uid the ruleset lets out, rendered through
	// overlay.Input.TorUID; otherUID is any other unprivileged user.
	torUID   = 4052
	otherUID = 4053

	// dropWait is how long a dropped probe is given to get an answer.
	// Replies on a veth take microseconds.
	dropWait = 400 * time.Millisecond
	okWait   = 3 * time.Second
)

// Router-side listeners stand in for Tor and the router's services. Each
// answers with its name, so a client knows who it reached.
const (
	nameTrans   = "transport"
	nameDNSUDP  = "dnsport-udp"
	nameDNSTCP  = "dnsport-tcp"
	nameSocks   = "socksport"
	nameStatus  = "status-page"
	nameSSH     = "ssh"
	nameDnsmasq = "dnsmasq"
	nameControl = "controlport"
	nameWAN     = "wan-host"
)

const helperEnv = "TORWRT_NETLEAK_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	os.Exit(m.Run())
}

// helperMain runs in a child process inside the router namespace: it
// becomes the uid it is given, then tries to reach the target. It stands
// for any process on the router, Tor or not.
func helperMain() int {
	uid, err := strconv.Atoi(os.Getenv("TORWRT_NETLEAK_UID"))
	if err != nil {
		fmt.Println("setup: bad uid:", err)
		return 2
	}
	if uid != 0 {
		if err := syscall.Setgroups(nil); err != nil {
			fmt.Println("setup: setgroups:", err)
			return 2
		}
		if err := syscall.Setgid(uid); err != nil {
			fmt.Println("setup: setgid:", err)
			return 2
		}
		if err := syscall.Setuid(uid); err != nil {
			fmt.Println("setup: setuid:", err)
			return 2
		}
	}
	target := os.Getenv("TORWRT_NETLEAK_TARGET")
	switch os.Getenv(helperEnv) {
	case "tcp":
		c, err := net.DialTimeout("tcp", target, dropWait)
		if err != nil {
			fmt.Printf("uid %d: %v\n", os.Getuid(), err)
			return 3
		}
		c.Close()
	case "udp":
		c, err := net.Dial("udp", target)
		if err != nil {
			fmt.Printf("uid %d: %v\n", os.Getuid(), err)
			return 3
		}
		defer c.Close()
		if _, err := c.Write([]byte("router dns probe")); err != nil {
			fmt.Printf("uid %d: %v\n", os.Getuid(), err)
			return 3
		}
		c.SetReadDeadline(time.Now().Add(dropWait))
		if _, err := c.Read(make([]byte, 1500)); err != nil {
			fmt.Printf("uid %d: %v\n", os.Getuid(), err)
			return 3
		}
	default:
		fmt.Println("setup: unknown mode")
		return 2
	}
	fmt.Printf("uid %d: reached %s\n", os.Getuid(), target)
	return 0
}

type lab struct {
	router, off, med, max, wan *netns
	ruleset, initScript        string
	dhcpHook                   string

	mu       sync.Mutex
	origDsts []string // what the TransPort saw through SO_ORIGINAL_DST
	trans    net.Listener
}

func TestLeaks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the leak tests create network namespaces and need root (CI runs them as root)")
	}
	requireTool(t, "ip", "iproute2")
	requireTool(t, "nft", "nftables")
	start := time.Now()
	l := newLab(t)

	// Control: without the ruleset the lab leaks. This is what makes the
	// zeros below mean something.
	t.Run("control_without_ruleset_the_lab_leaks", func(t *testing.T) {
		l.expectWAN(t, "control", true, func(t *testing.T) {
			if line, err := l.med.tcpLine(net.JoinHostPort(wanHost, "443"), okWait); err != nil || !strings.HasPrefix(line, nameWAN) {
				t.Errorf("without a ruleset tor_medium TCP should reach the WAN host: %q, %v", line, err)
			}
			if line, err := l.med.tcpLine(net.JoinHostPort(wanHost6, "443"), okWait); err != nil || !strings.HasPrefix(line, nameWAN) {
				t.Errorf("without a ruleset tor_medium IPv6 should reach the WAN host: %q, %v", line, err)
			}
		})
	})

	l.router.exec(t, "nft", "-f", l.ruleset)
	t.Logf("loaded %s into namespace %s", l.ruleset, l.router.name)

	t.Run("tor_medium_tcp_goes_to_transport", l.torMediumTCP)
	t.Run("tor_medium_dns_goes_to_dnsport", l.torMediumDNS)
	t.Run("tor_medium_udp_icmp_ipv6_reach_nothing", l.torMediumOther)
	t.Run("tor_max_reaches_only_socks_and_status", l.torMax)
	t.Run("tor_off_reaches_wan_through_nat", l.torOff)
	t.Run("router_ui_from_lan_not_wan", l.routerUI)
	t.Run("router_own_traffic_only_tor_user", l.routerOwn)
	t.Run("router_dhcp_port_only_to_dhcp_servers", l.routerDHCP)
	t.Run("tor_down_fails_closed", l.torDown)
	t.Run("init_script_loads_or_fails_closed", l.initScriptPanic)

	if d := time.Since(start); d > 60*time.Second {
		t.Errorf("leak suite took %v, budget is 60s", d)
	}
}

func newLab(t *testing.T) *lab {
	prefix := fmt.Sprintf("twl%d-%04x-", os.Getpid(), rand.IntN(0x10000))
	l := &lab{}
	l.router = newNetns(t, prefix+"router")
	l.off = newNetns(t, prefix+"off")
	l.med = newNetns(t, prefix+"med")
	l.max = newNetns(t, prefix+"max")
	l.wan = newNetns(t, prefix+"wan")

	veth(t, l.router, "lan-off", l.off, "eth0")
	veth(t, l.router, "lan-med", l.med, "eth0")
	veth(t, l.router, "lan-max", l.max, "eth0")
	veth(t, l.router, "wan0", l.wan, "eth0")

	l.router.ip(t, "addr", "add", "10.71.0.1/24", "dev", "lan-off")
	l.router.ip(t, "addr", "add", "10.72.0.1/24", "dev", "lan-med")
	l.router.ip(t, "addr", "add", "10.73.0.1/24", "dev", "lan-max")
	l.router.ip(t, "addr", "add", routerWAN+"/24", "dev", "wan0")
	l.router.ip(t, "-6", "addr", "add", "fd00:72::1/64", "dev", "lan-med", "nodad")
	l.router.ip(t, "-6", "addr", "add", "fd00:99::2/64", "dev", "wan0", "nodad")
	l.router.ip(t, "route", "add", "default", "via", "198.18.0.1")
	l.router.ip(t, "-6", "route", "add", "default", "via", wanHost6)
	l.router.sysctl(t, "net.ipv4.ip_forward", "1")
	l.router.sysctl(t, "net.ipv6.conf.all.forwarding", "1")

	for i, c := range []*netns{l.off, l.med, l.max} {
		net := 71 + i
		c.ip(t, "addr", "add", fmt.Sprintf("10.%d.0.2/24", net), "dev", "eth0")
		c.ip(t, "route", "add", "default", "via", fmt.Sprintf("10.%d.0.1", net))
	}
	l.med.ip(t, "-6", "addr", "add", "fd00:72::2/64", "dev", "eth0", "nodad")
	l.med.ip(t, "-6", "route", "add", "default", "via", "fd00:72::1")

	l.wan.ip(t, "addr", "add", "198.18.0.1/24", "dev", "eth0")
	l.wan.ip(t, "addr", "add", wanHost+"/32", "dev", "lo")
	l.wan.ip(t, "-6", "addr", "add", wanHost6+"/64", "dev", "eth0", "nodad")
	// A WAN attacker that knows the LAN prefixes routes them at the router.
	l.wan.ip(t, "route", "add", "10.0.0.0/8", "via", routerWAN)
	l.wan.ip(t, "-6", "route", "add", "fd00:72::/64", "via", "fd00:99::2")

	// The router's own IPv6 neighbour discovery is dropped by the ruleset
	// (IPv6 exists only on loopback); static entries make sure that a
	// forwarded IPv6 packet could leave if the ruleset let it.
	l.med.ip(t, "-6", "neigh", "add", "fd00:72::1", "lladdr", l.router.mac(t, "lan-med"), "dev", "eth0", "nud", "permanent")
	l.router.ip(t, "-6", "neigh", "add", "fd00:72::2", "lladdr", l.med.mac(t, "eth0"), "dev", "lan-med", "nud", "permanent")
	l.router.ip(t, "-6", "neigh", "add", wanHost6, "lladdr", l.wan.mac(t, "eth0"), "dev", "wan0", "nud", "permanent")
	l.wan.ip(t, "-6", "neigh", "add", "fd00:99::2", "lladdr", l.router.mac(t, "wan0"), "dev", "eth0", "nud", "permanent")

	l.wan.exec(t, "nft", "-f", writeFile(t, "capture.nft", captureRuleset))

	tree := renderTree(t)
	l.ruleset = filepath.Join(tree, "etc", "torwrt", "firewall.nft")
	l.initScript = filepath.Join(tree, "etc", "init.d", "torwrt-firewall")
	l.dhcpHook = filepath.Join(tree, "etc", "udhcpc.user.d", "torwrt-dhcp-server")
	l.startServices(t)
	return l
}

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// renderTree renders the overlay for the GL-AR150 with the lab's interface
// names and tor uid and returns the tree. Nothing edits its files.
func renderTree(t *testing.T) string {
	t.Helper()
	in := overlaytest.Defaults(t, "gl-ar150")
	in.WAN.Device = "wan0"
	in.TorOff.Bridge = "lan-off"
	in.TorMedium.Bridge = "lan-med"
	in.TorMax.Bridge = "lan-max"
	in.TorUID = torUID

	key, err := usign.GenerateKey(bytes.NewReader(bytes.Repeat([]byte("netleak-test-key"), 4)), "netleak test key")
	if err != nil {
		t.Fatal(err)
	}
	pub := key.Public()
	in.ReleaseKeys = []overlay.ReleaseKey{{Fingerprint: pub.Fingerprint.String(), PublicKey: pub.Marshal()}}
	in.UpdateMirrors = []string{"https://updates.torwrt.example/releases"}
	in.FirmwareVersion = "netleak"
	in.Channel, in.Radio.Country = "stable", "DE" // the brand's
	in.SourceDateEpoch = 1758316778

	dir := filepath.Join(t.TempDir(), "files")
	if _, err := overlay.Render(t.Context(), in, dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (l *lab) startServices(t *testing.T) {
	r := l.router
	l.startTransPort(t)
	name := func(s string) func(net.Conn) string { return func(net.Conn) string { return s } }
	r.listenUDP(t, "udp4", "10.72.0.1:9053", func(net.Addr) string { return nameDNSUDP })
	r.listenTCP(t, "tcp4", "10.72.0.1:9053", name(nameDNSTCP))
	r.listenTCP(t, "tcp4", "10.73.0.1:9050", name(nameSocks))
	// Like the daemon, dropbear and dnsmasq, these listen on every
	// address: the firewall alone decides who reaches them.
	r.listenTCP(t, "tcp", ":80", name(nameStatus))
	r.listenTCP(t, "tcp", ":22", name(nameSSH))
	r.listenTCP(t, "tcp", ":53", name(nameDnsmasq))
	r.listenUDP(t, "udp", ":53", func(net.Addr) string { return nameDnsmasq })
	// Tor's ControlPort is on loopback on the router; bound to every
	// address here to show the firewall keeps LAN clients away anyway.
	r.listenTCP(t, "tcp4", ":9051", name(nameControl))

	l.wan.listenTCP(t, "tcp", ":443", func(c net.Conn) string { return nameWAN + " from " + c.RemoteAddr().String() })
	// UDP answers must come from the address that was asked, or NAT on
	// the way back cannot match them: bind each address on its own.
	for _, addr := range []string{wanHost, "[" + wanHost6 + "]"} {
		for _, port := range []string{"53", "123", "443"} {
			l.wan.listenUDP(t, "udp", addr+":"+port, func(from net.Addr) string { return nameWAN + " from " + from.String() })
		}
	}
}

// startTransPort stands in for Tor's TransPort: it records where each
// redirected connection was going.
func (l *lab) startTransPort(t *testing.T) {
	l.trans = l.router.listenTCP(t, "tcp4", "10.72.0.1:9040", func(c net.Conn) string {
		dst, err := originalDst(c)
		if err != nil {
			return nameTrans + " error " + err.Error()
		}
		l.mu.Lock()
		l.origDsts = append(l.origDsts, dst)
		l.mu.Unlock()
		return nameTrans + " orig=" + dst
	})
}

// expectWAN runs fn and checks how many packets reached the WAN
// namespace meanwhile: none, or (for positive controls) some.
func (l *lab) expectWAN(t *testing.T, label string, wantSome bool, fn func(t *testing.T)) {
	t.Helper()
	before := l.wan.counts(t)
	fn(t)
	time.Sleep(50 * time.Millisecond)
	d := l.wan.counts(t).sub(before)
	t.Logf("leak counts: %s wan_received=%d ipv6=%d lan_source_addresses=%d", label, d.Total, d.IPv6, d.FromLAN)
	switch {
	case wantSome && d.Total == 0:
		t.Errorf("%s: the WAN saw no packet, but this case must reach it (is the capture working?)", label)
	case !wantSome && d.Total != 0:
		t.Errorf("%s: LEAK: %d packets reached the WAN (%d IPv6, %d with LAN source addresses)", label, d.Total, d.IPv6, d.FromLAN)
	}
	if d.FromLAN != 0 && label != "control" {
		t.Errorf("%s: %d packets reached the WAN with a LAN source address (not NATed)", label, d.FromLAN)
	}
}

// all runs checks concurrently: dropped probes each wait dropWait.
func all(checks ...func()) {
	var wg sync.WaitGroup
	for _, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c()
		}()
	}
	wg.Wait()
}

func reaches(t *testing.T, n *netns, addr, want string) func() {
	return func() {
		line, err := n.tcpLine(addr, okWait)
		if err != nil || !strings.HasPrefix(line, want) {
			t.Errorf("%s -> tcp %s: got %q, %v; want %s", n.name, addr, line, err, want)
		}
	}
}

func blocked(t *testing.T, n *netns, addr string) func() {
	return func() {
		line, err := n.tcpLine(addr, dropWait)
		if err == nil {
			t.Errorf("%s -> tcp %s: reached %q, want blocked", n.name, addr, line)
		}
	}
}

func udpBlocked(t *testing.T, n *netns, network, addr string) func() {
	return func() {
		if reply, from, err := n.udpExchange(network, addr, dropWait); err == nil {
			t.Errorf("%s -> udp %s: answer %q from %s, want nothing", n.name, addr, reply, from)
		}
	}
}

func pingBlocked(t *testing.T, n *netns, network, addr string) func() {
	return func() {
		if err := n.ping(network, addr, dropWait); err == nil {
			t.Errorf("%s -> ping %s: answered, want nothing", n.name, addr)
		}
	}
}

func (l *lab) torMediumTCP(t *testing.T) {
	l.expectWAN(t, "tor_medium_tcp", false, func(t *testing.T) {
		for _, dst := range []string{net.JoinHostPort(wanHost, "443"), "203.0.113.7:80", "198.18.0.1:22", "10.71.0.2:8080", "10.192.0.5:443"} {
			line, err := l.med.tcpLine(dst, okWait)
			if err != nil || line != nameTrans+" orig="+dst {
				t.Errorf("tor_medium -> %s: got %q, %v; want the TransPort to see orig=%s", dst, line, err, dst)
			}
		}
	})
	l.mu.Lock()
	t.Logf("TransPort saw original destinations %v", l.origDsts)
	l.mu.Unlock()
}

func (l *lab) torMediumDNS(t *testing.T) {
	l.expectWAN(t, "tor_medium_dns", false, func(t *testing.T) {
		for _, dst := range []string{net.JoinHostPort(wanHost, "53"), "10.72.0.1:53", "9.9.9.9:53"} {
			reply, from, err := l.med.udpExchange("udp4", dst, okWait)
			if err != nil || reply != nameDNSUDP || from != dst {
				t.Errorf("tor_medium -> udp %s: got %q from %s, %v; want %s from %s", dst, reply, from, err, nameDNSUDP, dst)
			}
			if line, err := l.med.tcpLine(dst, okWait); err != nil || line != nameDNSTCP {
				t.Errorf("tor_medium -> tcp %s: got %q, %v; want %s", dst, line, err, nameDNSTCP)
			}
		}
	})
}

func (l *lab) torMediumOther(t *testing.T) {
	l.expectWAN(t, "tor_medium_udp_icmp_ipv6", false, func(t *testing.T) {
		all(
			udpBlocked(t, l.med, "udp4", net.JoinHostPort(wanHost, "443")),
			udpBlocked(t, l.med, "udp4", net.JoinHostPort(wanHost, "123")),
			pingBlocked(t, l.med, "ip4:icmp", wanHost),
			pingBlocked(t, l.med, "ip4:icmp", "198.18.0.1"),
			blocked(t, l.med, net.JoinHostPort(wanHost6, "443")),
			udpBlocked(t, l.med, "udp6", net.JoinHostPort(wanHost6, "53")),
			pingBlocked(t, l.med, "ip6:ipv6-icmp", wanHost6),
			// Nor the router over IPv6, nor Tor's ports directly.
			blocked(t, l.med, "[fd00:72::1]:80"),
			blocked(t, l.med, "10.72.0.1:9040"),
			blocked(t, l.med, "10.72.0.1:9051"),
		)
	})
}

func (l *lab) torMax(t *testing.T) {
	l.expectWAN(t, "tor_max", false, func(t *testing.T) {
		all(
			reaches(t, l.max, "10.73.0.1:9050", nameSocks),
			reaches(t, l.max, "10.73.0.1:80", nameStatus),
			blocked(t, l.max, net.JoinHostPort(wanHost, "443")),
			blocked(t, l.max, "198.18.0.1:443"),
			udpBlocked(t, l.max, "udp4", net.JoinHostPort(wanHost, "53")),
			udpBlocked(t, l.max, "udp4", net.JoinHostPort(wanHost, "443")),
			pingBlocked(t, l.max, "ip4:icmp", wanHost),
			// No DNS, no SSH, no other router address, no other LAN.
			udpBlocked(t, l.max, "udp4", "10.73.0.1:53"),
			blocked(t, l.max, "10.73.0.1:53"),
			blocked(t, l.max, "10.73.0.1:22"),
			blocked(t, l.max, "10.73.0.1:9051"),
			blocked(t, l.max, "10.71.0.1:80"),
			blocked(t, l.max, "10.71.0.2:22"),
			blocked(t, l.max, "10.72.0.1:9040"),
			pingBlocked(t, l.max, "ip4:icmp", "10.73.0.1"),
		)
		// DHCP: a broadcast DISCOVER-like datagram from port 68 gets in.
		got := make(chan string, 1)
		pc := l.router.listenUDP(t, "udp4", ":67", func(from net.Addr) string {
			select {
			case got <- from.String():
			default:
			}
			return "offer"
		})
		defer pc.Close()
		if err := l.max.broadcastUDP(68, 67); err != nil {
			t.Fatalf("sending DHCP broadcast: %v", err)
		}
		select {
		case from := <-got:
			t.Logf("router's DHCP port got the tor_max broadcast from %s", from)
		case <-time.After(okWait):
			t.Error("tor_max DHCP broadcast did not reach the router's port 67")
		}
	})
}

func (l *lab) torOff(t *testing.T) {
	l.expectWAN(t, "tor_off_positive_control", true, func(t *testing.T) {
		line, err := l.off.tcpLine(net.JoinHostPort(wanHost, "443"), okWait)
		if err != nil || !strings.HasPrefix(line, nameWAN+" from "+routerWAN+":") {
			t.Errorf("tor_off -> WAN: got %q, %v; want the WAN host to see the router's address %s (NAT)", line, err, routerWAN)
		}
		reply, _, err := l.off.udpExchange("udp4", net.JoinHostPort(wanHost, "443"), okWait)
		if err != nil || !strings.HasPrefix(reply, nameWAN+" from "+routerWAN+":") {
			t.Errorf("tor_off udp -> WAN: got %q, %v", reply, err)
		}
		if err := l.off.ping("ip4:icmp", wanHost, okWait); err != nil {
			t.Errorf("tor_off ping WAN: %v", err)
		}
	})
	l.expectWAN(t, "tor_off_to_router", false, func(t *testing.T) {
		all(
			reaches(t, l.off, "10.71.0.1:53", nameDnsmasq),
			func() {
				if reply, _, err := l.off.udpExchange("udp4", "10.71.0.1:53", okWait); err != nil || reply != nameDnsmasq {
					t.Errorf("tor_off -> router udp 53: %q, %v", reply, err)
				}
			},
			// tor_off is routed to the internet, not to the other LANs.
			blocked(t, l.off, "10.73.0.1:9050"),
			blocked(t, l.off, "10.73.0.2:22"),
			blocked(t, l.off, "10.71.0.1:9051"),
		)
	})
}

func (l *lab) routerUI(t *testing.T) {
	l.expectWAN(t, "router_ui_from_lan", false, func(t *testing.T) {
		all(
			reaches(t, l.off, "10.71.0.1:22", nameSSH),
			reaches(t, l.off, "10.71.0.1:80", nameStatus),
			reaches(t, l.med, "10.72.0.1:22", nameSSH),
			reaches(t, l.med, "10.72.0.1:80", nameStatus),
			reaches(t, l.max, "10.73.0.1:80", nameStatus),
		)
	})
	// The WAN host is the one sending here; what it receives back are
	// replies, so only the absence of answers counts.
	all(
		blocked(t, l.wan, routerWAN+":22"),
		blocked(t, l.wan, routerWAN+":80"),
		blocked(t, l.wan, routerWAN+":53"),
		blocked(t, l.wan, routerWAN+":9050"),
		blocked(t, l.wan, routerWAN+":9040"),
		blocked(t, l.wan, routerWAN+":9051"),
		udpBlocked(t, l.wan, "udp4", routerWAN+":53"),
		blocked(t, l.wan, "10.71.0.1:22"),
		blocked(t, l.wan, "10.72.0.1:80"),
		blocked(t, l.wan, "10.73.0.1:9050"),
		blocked(t, l.wan, "10.71.0.2:22"),
		pingBlocked(t, l.wan, "ip4:icmp", routerWAN),
	)
}

// helper runs the test binary in the router namespace as uid and tries
// to reach target; it reports whether it got through.
func (l *lab) helper(t *testing.T, mode string, uid int, target string) (bool, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", l.router.name, self, "-test.run=^$")
	cmd.Env = []string{
		helperEnv + "=" + mode,
		"TORWRT_NETLEAK_UID=" + strconv.Itoa(uid),
		"TORWRT_NETLEAK_TARGET=" + target,
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
	}
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return true, strings.TrimSpace(string(out))
	case errors.As(err, &ee) && ee.ExitCode() == 3:
		return false, strings.TrimSpace(string(out))
	default:
		t.Fatalf("helper: %v\n%s", err, out)
		return false, ""
	}
}

func (l *lab) routerOwn(t *testing.T) {
	l.expectWAN(t, "router_own_non_tor", false, func(t *testing.T) {
		for _, c := range []struct {
			mode   string
			uid    int
			target string
		}{
			{"tcp", 0, net.JoinHostPort(wanHost, "443")},
			{"udp", 0, net.JoinHostPort(wanHost, "53")},
			{"udp", 0, net.JoinHostPort(wanHost, "123")},
			{"tcp", otherUID, net.JoinHostPort(wanHost, "443")},
			{"udp", otherUID, net.JoinHostPort(wanHost, "53")},
			{"tcp", 0, "[" + wanHost6 + "]:443"},
		} {
			ok, out := l.helper(t, c.mode, c.uid, c.target)
			if ok {
				t.Errorf("router process as uid %d reached %s %s: %s", c.uid, c.mode, c.target, out)
			} else {
				t.Logf("router process as uid %d -> %s %s: blocked (%s)", c.uid, c.mode, c.target, out)
			}
		}
	})
	l.expectWAN(t, "router_own_tor_user_positive_control", true, func(t *testing.T) {
		ok, out := l.helper(t, "tcp", torUID, net.JoinHostPort(wanHost, "443"))
		if !ok {
			t.Errorf("the tor user (uid %d) could not reach the WAN: %s", torUID, out)
		}
		t.Logf("tor user: %s", out)
	})
}

func (l *lab) torDown(t *testing.T) {
	l.trans.Close()
	l.expectWAN(t, "tor_down", false, func(t *testing.T) {
		for _, dst := range []string{net.JoinHostPort(wanHost, "443"), "203.0.113.7:80"} {
			_, err := l.med.tcpLine(dst, okWait)
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("tor_medium -> %s with Tor down: %v; want connection refused", dst, err)
			}
		}
		all(
			udpBlocked(t, l.med, "udp4", net.JoinHostPort(wanHost, "443")),
			blocked(t, l.med, net.JoinHostPort(wanHost6, "443")),
		)
	})
}

// initScript runs start() of the rendered /etc/init.d/torwrt-firewall in
// the router namespace with RULESET pointing at ruleset.
func (l *lab) runInitScript(t *testing.T, ruleset string) error {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "ip", "netns", "exec", l.router.name,
		"sh", "-c", `. "$1" && RULESET="$2" && start`, "sh", l.initScript, ruleset)
	out, err := cmd.CombinedOutput()
	t.Logf("torwrt-firewall start with RULESET=%s: err=%v %s", ruleset, err, strings.TrimSpace(string(out)))
	return err
}

func (l *lab) forwarding(t *testing.T) string {
	return strings.TrimSpace(l.router.exec(t, "cat", "/proc/sys/net/ipv4/ip_forward"))
}

// initScriptPanic checks the boot path: forwarding is off until the
// ruleset is loaded, and a ruleset that cannot load leaves a router that
// drops everything and forwards nothing.
func (l *lab) initScriptPanic(t *testing.T) {
	l.router.sysctl(t, "net.ipv4.ip_forward", "0")
	if err := l.runInitScript(t, l.ruleset); err != nil {
		t.Fatalf("init script with the rendered ruleset: %v", err)
	}
	if got := l.forwarding(t); got != "1" {
		t.Errorf("ip_forward = %s after a successful start, want 1", got)
	}
	l.expectWAN(t, "init_script_loaded_positive_control", true, func(t *testing.T) {
		reaches(t, l.off, net.JoinHostPort(wanHost, "443"), nameWAN)()
	})

	if err := l.runInitScript(t, filepath.Join(t.TempDir(), "missing.nft")); err == nil {
		t.Error("init script start succeeded without a ruleset")
	}
	if got := l.forwarding(t); got != "0" {
		t.Errorf("ip_forward = %s after a failed start, want 0", got)
	}
	tables := l.router.exec(t, "nft", "list", "tables")
	if strings.TrimSpace(tables) != "table inet torwrt_panic" {
		t.Errorf("after a failed start the router has tables %q, want only the panic table", tables)
	}
	l.expectWAN(t, "init_script_panic", false, func(t *testing.T) {
		all(
			blocked(t, l.off, net.JoinHostPort(wanHost, "443")),
			blocked(t, l.med, net.JoinHostPort(wanHost, "443")),
			udpBlocked(t, l.med, "udp4", net.JoinHostPort(wanHost, "53")),
			blocked(t, l.max, net.JoinHostPort(wanHost, "443")),
			blocked(t, l.off, "10.71.0.1:80"),
		)
		ok, out := l.helper(t, "tcp", torUID, net.JoinHostPort(wanHost, "443"))
		if ok {
			t.Errorf("in panic mode even Tor must not get out: %s", out)
		}
	})
}

// dhcpServer is the lab's DHCP server on the WAN: the router's gateway.
const dhcpServer = "198.18.0.1"

// runDHCPHook sources the rendered /etc/udhcpc.user.d hook in the router
// namespace the way /lib/netifd/dhcp.script does: udhcpc's event is the
// script's $1, its variables are in the environment.
func (l *lab) runDHCPHook(t *testing.T, event, iface, serverid string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "ip", "netns", "exec", l.router.name, "sh", "-c", `hook=$1; shift; . "$hook"`, "sh", l.dhcpHook, event)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "interface=" + iface, "serverid=" + serverid}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("dhcp hook %s serverid=%q: %v\n%s", event, serverid, err, out)
	}
}

func (l *lab) dhcpServerSet(t *testing.T) string {
	out := l.router.exec(t, "nft", "list", "set", "inet", "torwrt", "dhcp_server")
	if i := strings.Index(out, "elements = {"); i >= 0 {
		return strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(strings.SplitN(out[i+len("elements = {"):], "}", 2)[0]), ","))
	}
	return ""
}

// routerDHCP: root on the router can bind UDP port 68 as well as udhcpc
// can. What it sends from there must reach only a DHCP server: the link
// broadcast address or the server of the current lease, never an
// arbitrary WAN host.
func (l *lab) routerDHCP(t *testing.T) {
	// The WAN side only listens: an answer would make the flow
	// established in conntrack, and later datagrams would pass as replies
	// rather than by the rules under test.
	got := make(chan string, 16)
	var pc net.PacketConn
	if err := l.wan.do(func() (err error) {
		pc, err = net.ListenPacket("udp4", ":67")
		return err
	}); err != nil {
		t.Fatalf("listen udp :67 on the WAN: %v", err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			select {
			case got <- from.String():
			default:
			}
		}
	}()
	drain := func() {
		for {
			select {
			case <-got:
			default:
				return
			}
		}
	}
	// send is root's datagram from 0.0.0.0:68 on the WAN device.
	send := func(dst string) error {
		return l.router.do(func() error {
			fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer syscall.Close(fd)
			for _, o := range []int{syscall.SO_BROADCAST, syscall.SO_REUSEADDR} {
				if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, o, 1); err != nil {
					return err
				}
			}
			if err := syscall.BindToDevice(fd, "wan0"); err != nil {
				return err
			}
			if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: 68}); err != nil {
				return err
			}
			a := net.ParseIP(dst).To4()
			return syscall.Sendto(fd, []byte("torwrt-netleak: anything root wants out"), 0, &syscall.SockaddrInet4{Port: 67, Addr: [4]byte(a)})
		})
	}
	arrives := func(dst string) bool {
		drain()
		err := send(dst)
		select {
		case from := <-got:
			t.Logf("root 0.0.0.0:68 -> %s:67 arrived at the WAN (from %s, send error %v)", dst, from, err)
			return true
		case <-time.After(dropWait):
			t.Logf("root 0.0.0.0:68 -> %s:67 never arrived (send error %v)", dst, err)
			return false
		}
	}

	l.expectWAN(t, "router_dhcp_port_no_lease", false, func(t *testing.T) {
		for _, dst := range []string{wanHost, dhcpServer} {
			if arrives(dst) {
				t.Errorf("LEAK: root reached %s:67 from port 68 with no DHCP lease recorded", dst)
			}
		}
	})

	// A lease from 198.18.0.1; a hostile server id never reaches nft
	// as anything but an address.
	l.runDHCPHook(t, "bound", "wan0", dhcpServer)
	l.runDHCPHook(t, "renew", "wan0", wanHost+" }; flush ruleset; add element inet torwrt dhcp_server { "+wanHost)
	l.runDHCPHook(t, "bound", "lan-off", wanHost)
	if got := l.dhcpServerSet(t); got != dhcpServer {
		t.Fatalf("@dhcp_server = %q after the hook, want %s", got, dhcpServer)
	}

	l.expectWAN(t, "router_dhcp_port_to_non_dhcp_host", false, func(t *testing.T) {
		if arrives(wanHost) {
			t.Errorf("LEAK: root reached %s:67 from port 68; only the DHCP server %s may be", wanHost, dhcpServer)
		}
		// Port 68 is no pass to any other port either.
		if ok, out := l.helper(t, "udp", 0, net.JoinHostPort(wanHost, "53")); ok {
			t.Errorf("root reached %s:53: %s", wanHost, out)
		}
	})
	l.expectWAN(t, "router_dhcp_broadcast_positive_control", true, func(t *testing.T) {
		if !arrives("255.255.255.255") {
			t.Error("a DHCP broadcast from port 68 did not leave on the WAN")
		}
	})
	l.expectWAN(t, "router_dhcp_renewal_positive_control", true, func(t *testing.T) {
		if !arrives(dhcpServer) {
			t.Errorf("a renewal to the leased DHCP server %s did not leave", dhcpServer)
		}
	})

	l.runDHCPHook(t, "deconfig", "wan0", "")
	if got := l.dhcpServerSet(t); got != "" {
		t.Errorf("@dhcp_server = %q after deconfig, want empty", got)
	}
	l.expectWAN(t, "router_dhcp_port_after_deconfig", false, func(t *testing.T) {
		if arrives(dhcpServer) {
			t.Errorf("root reached %s:67 after the lease ended", dhcpServer)
		}
	})
}
