package netleak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// setnsSyscall is setns(2)'s number; package syscall does not export it
// for every architecture.
var setnsSyscall = map[string]uintptr{
	"amd64": 308, "arm64": 268, "386": 346, "riscv64": 268,
	"loong64": 268, "ppc64le": 350, "s390x": 339,
}

func requireTool(t *testing.T, name, debianPackage string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s not found in PATH: install the Debian package %s (apt-get install -y %s)", name, debianPackage, debianPackage)
	}
}

// netns is a named network namespace made by `ip netns add`.
type netns struct {
	name string
}

func newNetns(t *testing.T, name string) *netns {
	t.Helper()
	n := &netns{name: name}
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	n.ip(t, "link", "set", "lo", "up")
	return n
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ip runs `ip -n <ns> args...`.
func (n *netns) ip(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, "ip", append([]string{"-n", n.name}, args...)...)
}

// exec runs a command inside the namespace.
func (n *netns) exec(t *testing.T, args ...string) string {
	t.Helper()
	return run(t, "ip", append([]string{"netns", "exec", n.name}, args...)...)
}

func (n *netns) sysctl(t *testing.T, key, value string) {
	t.Helper()
	n.exec(t, "sh", "-c", fmt.Sprintf("echo %s > /proc/sys/%s", value, strings.ReplaceAll(key, ".", "/")))
}

func (n *netns) mac(t *testing.T, dev string) string {
	t.Helper()
	var link []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(n.ip(t, "-j", "link", "show", dev)), &link); err != nil || len(link) != 1 {
		t.Fatalf("reading MAC of %s in %s: %v", dev, n.name, err)
	}
	return link[0].Address
}

// do runs fn on an OS thread that has entered the namespace. Sockets fn
// creates belong to the namespace for their whole life, whichever thread
// later uses them. The thread is never unlocked, so Go discards it when
// fn returns and no other goroutine ever runs inside the namespace.
func (n *netns) do(fn func() error) error {
	nr, ok := setnsSyscall[runtime.GOARCH]
	if !ok {
		return fmt.Errorf("netleak: setns(2) number for GOARCH=%s unknown; add it to setnsSyscall", runtime.GOARCH)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + n.name)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if _, _, e := syscall.RawSyscall(nr, f.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
			errc <- fmt.Errorf("setns %s: %w", n.name, e)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// veth links dev in a to peer in b.
func veth(t *testing.T, a *netns, dev string, b *netns, peer string) {
	t.Helper()
	a.ip(t, "link", "add", dev, "type", "veth", "peer", "name", peer, "netns", b.name)
	a.ip(t, "link", "set", dev, "up")
	b.ip(t, "link", "set", peer, "up")
}

// listenTCP serves one line per connection: reply(conn) is written and
// the connection closed.
func (n *netns) listenTCP(t *testing.T, network, addr string, reply func(net.Conn) string) net.Listener {
	t.Helper()
	var l net.Listener
	if err := n.do(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	}); err != nil {
		t.Fatalf("listen %s in %s: %v", addr, n.name, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				io.WriteString(c, reply(c)+"\n")
			}()
		}
	}()
	return l
}

// listenUDP answers every datagram with reply(from).
func (n *netns) listenUDP(t *testing.T, network, addr string, reply func(from net.Addr) string) net.PacketConn {
	t.Helper()
	var pc net.PacketConn
	if err := n.do(func() (err error) {
		pc, err = net.ListenPacket(network, addr)
		return err
	}); err != nil {
		t.Fatalf("listen udp %s in %s: %v", addr, n.name, err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo([]byte(reply(from)), from)
		}
	}()
	return pc
}

// tcpLine connects from the namespace and returns the line the server
// sends.
func (n *netns) tcpLine(addr string, timeout time.Duration) (string, error) {
	var line string
	err := n.do(func() error {
		d := net.Dialer{Timeout: timeout}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		line, err = bufio.NewReader(c).ReadString('\n')
		line = strings.TrimSpace(line)
		return err
	})
	return line, err
}

// udpExchange sends one datagram and waits for one answer; it returns the
// answer and the address it came from.
func (n *netns) udpExchange(network, addr string, timeout time.Duration) (string, string, error) {
	var reply, from string
	err := n.do(func() error {
		raddr, err := net.ResolveUDPAddr(network, addr)
		if err != nil {
			return err
		}
		c, err := net.ListenUDP(network, nil)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.WriteToUDP([]byte("torwrt-netleak probe"), raddr); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(timeout))
		buf := make([]byte, 1500)
		k, src, err := c.ReadFromUDP(buf)
		if err != nil {
			return err
		}
		reply, from = string(buf[:k]), src.String()
		return nil
	})
	return reply, from, err
}

// broadcastUDP sends a datagram to 255.255.255.255:port from port src, as
// a DHCP client does before it has an address.
func (n *netns) broadcastUDP(srcPort, port int) error {
	return n.do(func() error {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1); err != nil {
			return err
		}
		if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: srcPort}); err != nil {
			return err
		}
		return syscall.Sendto(fd, []byte("torwrt-netleak dhcp probe"), 0, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{255, 255, 255, 255}})
	})
}

// ping sends one ICMP (or ICMPv6) echo request and waits for the reply.
func (n *netns) ping(network, addr string, timeout time.Duration) error {
	return n.do(func() error {
		c, err := net.ListenPacket(network, "")
		if err != nil {
			return err
		}
		defer c.Close()
		dst, err := net.ResolveIPAddr("ip", addr)
		if err != nil {
			return err
		}
		typ, replyType := byte(8), byte(0)
		if strings.HasSuffix(network, "ipv6-icmp") {
			typ, replyType = 128, 129
		}
		msg := []byte{typ, 0, 0, 0, 0x74, 0x77, 0, 1, 't', 'o', 'r', 'w', 'r', 't'}
		if typ == 8 {
			binary.BigEndian.PutUint16(msg[2:], icmpChecksum(msg))
		}
		if _, err := c.WriteTo(msg, dst); err != nil {
			return err
		}
		c.SetReadDeadline(time.Now().Add(timeout))
		buf := make([]byte, 1500)
		for {
			k, from, err := c.ReadFrom(buf)
			if err != nil {
				return err
			}
			if k >= 8 && buf[0] == replyType && from.String() == dst.String() {
				return nil
			}
		}
	})
}

func icmpChecksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// originalDst reads SO_ORIGINAL_DST: where a connection that the firewall
// redirected was going. Tor's TransPort reads it the same way.
func originalDst(c net.Conn) (string, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return "", errors.New("not a TCP connection")
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return "", err
	}
	const soOriginalDst = 80
	var sa [16]byte
	size := uint32(len(sa))
	var serr syscall.Errno
	err = rc.Control(func(fd uintptr) {
		_, _, serr = syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.SOL_IP, soOriginalDst,
			uintptr(unsafe.Pointer(&sa[0])), uintptr(unsafe.Pointer(&size)), 0)
	})
	if err != nil {
		return "", err
	}
	if serr != 0 {
		return "", fmt.Errorf("getsockopt SO_ORIGINAL_DST: %w", serr)
	}
	port := binary.BigEndian.Uint16(sa[2:4])
	return net.JoinHostPort(net.IP(sa[4:8]).String(), fmt.Sprint(port)), nil
}

// counts are the WAN namespace's packet counters.
type counts struct {
	Total, IPv6, FromLAN uint64
}

func (c counts) sub(o counts) counts {
	return counts{Total: c.Total - o.Total, IPv6: c.IPv6 - o.IPv6, FromLAN: c.FromLAN - o.FromLAN}
}

// captureRuleset counts every IP packet that arrives at the WAN host,
// before conntrack or anything else can look at it.
const captureRuleset = `table inet capture {
	counter wan_in {}
	counter wan_in6 {}
	counter wan_from_lan {}
	chain pre {
		type filter hook prerouting priority -400; policy accept;
		iifname "eth0" counter name "wan_in"
		iifname "eth0" meta nfproto ipv6 counter name "wan_in6"
		iifname "eth0" ip saddr 10.0.0.0/8 counter name "wan_from_lan"
	}
}
`

func (n *netns) counts(t *testing.T) counts {
	t.Helper()
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Name    string `json:"name"`
				Packets uint64 `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	out := n.exec(t, "nft", "-j", "list", "counters", "table", "inet", "capture")
	if err := json.NewDecoder(bytes.NewReader([]byte(out))).Decode(&doc); err != nil {
		t.Fatalf("parsing nft counters: %v\n%s", err, out)
	}
	var c counts
	for _, o := range doc.Nftables {
		if o.Counter == nil {
			continue
		}
		switch o.Counter.Name {
		case "wan_in":
			c.Total = o.Counter.Packets
		case "wan_in6":
			c.IPv6 = o.Counter.Packets
		case "wan_from_lan":
			c.FromLAN = o.Counter.Packets
		}
	}
	return c
}
