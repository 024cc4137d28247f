package overlay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/torwrt/torwrt/internal/profile"
)

// newBoard is a profile for a board torwrt does not ship, written the way
// a vendor would: a copy of gl-ar150's with its own id, board and
// device_facts. Its ports are named unlike any shipped board's, so the
// rendered files can only have them from this file.
const newBoard = `# A third board, added with this file and no Go code.
id: test-board
title: A board torwrt does not ship
openwrt:
  version: 25.12.5
  revision: r33051-f5dae5ece4
  target: ath79
  subtarget: nand
  arch: mips_24kc
  source_date_epoch: 1780000000
imagebuilder:
  ref: ghcr.io/openwrt/imagebuilder:ath79-nand-v25.12.5
ib_profile: vendor_test-board
board: vendor,test-board
supported_devices: ["vendor,test-board"]
image_size_limit: 16000k
daemon:
  goarch: mips
  gomips: softfloat
device_facts:
  ram_mb: 256
  ports:
    wan: wan9
    tor_max: [lan7, lan8]
  switch:
    name: switch1
    vlans:
      - {vlan: 3, ports: "2 3 5t"}
  radio:
    path: platform/ahb/testradio.wmac
    band: 5g
    channel: "36"
    htmode: VHT80
  max_mem_in_queues_mb: 96
packages:
  add: [tor, ucert, kmod-nft-core, kmod-nft-nat, kmod-nft-fib, procd-ujail]
  remove: [apk-mbedtls, luci, ppp, ppp-mod-pppoe, firewall4]
disabled_services: [firewall, odhcpd, sysntpd, uhttpd]
bridge_relay: true
`

// TestNewBoardIsOneFile: a board is added by writing its profile. The
// rendered network, wireless and Tor configuration carry the facts of
// that file, and nothing in Go knows the board.
func TestNewBoardIsOneFile(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "test-board"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "test-board", "profile.yaml"), []byte(newBoard), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := profile.Load(root, "test-board")
	if err != nil {
		t.Fatal(err)
	}
	in, err := ForProfile(p)
	if err != nil {
		t.Fatal(err)
	}
	in = withRelease(t, in)
	in.BridgeRelay = p.BridgeRelay // 256 MB: enough for a bridge
	if err := in.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	dir, _ := renderTo(t, in)
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	network := read("etc/config/network")
	for _, want := range []string{
		"for vendor,test-board: network interfaces",
		"config interface 'wan'\n\toption device 'wan9'\n",
		"config device\n\toption name 'wan9'\n",
		"config device\n\toption name 'br-tor_max'\n\toption type 'bridge'\n\toption bridge_empty '1'\n\toption ipv6 '0'\n\tlist ports 'lan7'\n\tlist ports 'lan8'\n",
		"config switch\n\toption name 'switch1'\n",
		"config switch_vlan\n\toption device 'switch1'\n\toption vlan '3'\n\toption ports '2 3 5t'\n",
	} {
		if !strings.Contains(network, want) {
			t.Errorf("etc/config/network lacks %q:\n%s", want, network)
		}
	}
	for _, shipped := range []string{"eth0", "eth1", "switch0"} {
		if strings.Contains(network, "'"+shipped) {
			t.Errorf("etc/config/network names %s, a shipped board's port:\n%s", shipped, network)
		}
	}
	wireless := read("etc/config/wireless")
	for _, want := range []string{"'platform/ahb/testradio.wmac'", "option band '5g'", "option channel '36'", "option htmode 'VHT80'"} {
		if !strings.Contains(wireless, want) {
			t.Errorf("etc/config/wireless lacks %q:\n%s", want, wireless)
		}
	}
	torrc := read("etc/tor/torrc")
	for _, want := range []string{"MaxMemInQueues 96 MB", "BridgeRelay 1"} {
		if !strings.Contains(torrc, want) {
			t.Errorf("etc/tor/torrc lacks %q:\n%s", want, torrc)
		}
	}
}
