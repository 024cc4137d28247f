package ibsim

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
)

// pkgDef is one simulated package.
type pkgDef struct {
	name, version, depends, section string
	files                           []fileDef
}

type fileDef struct {
	path    string // absolute path in the root filesystem
	mode    int64
	content string
	link    string // symlink target when set
}

const placeholderNote = "SIMULATED placeholder (torwrt ImageBuilder test fixture): this is not the real program"

func prog(path, name string) fileDef {
	return fileDef{path: path, mode: 0o755, content: fmt.Sprintf("#!/bin/sh\n# %s: %s\necho '%s: %s' >&2\nexit 1\n", name, placeholderNote, name, placeholderNote)}
}

func conf(path, content string) fileDef { return fileDef{path: path, mode: 0o644, content: content} }

func link(path, target string) fileDef { return fileDef{path: path, link: target} }

// initScript is an rc.common init script the IB enables at START.
func initScript(name string, start, stop int) fileDef {
	s := fmt.Sprintf("#!/bin/sh /etc/rc.common\n# SIMULATED init script for %s (torwrt ImageBuilder test fixture)\n\nSTART=%02d\n", name, start)
	if stop > 0 {
		s += fmt.Sprintf("STOP=%02d\n", stop)
	}
	s += "USE_PROCD=1\n\nstart_service() {\n\t:\n}\n"
	return fileDef{path: "/etc/init.d/" + name, mode: 0o755, content: s}
}

func kmod(kver, name, deps string) pkgDef {
	d := "kernel"
	if deps != "" {
		d += ", " + deps
	}
	return pkgDef{name: "kmod-" + name, version: kver + "-r1", depends: d, section: "kernel",
		files: []fileDef{{path: "/lib/modules/" + kver + "/" + strings.ReplaceAll(name, "-", "_") + ".ko", mode: 0o644,
			content: "SIMULATED kernel module " + name + " (placeholder, not loadable)\n"}}}
}

// noise is deterministic incompressible filler.
func noise(seed string, n int) string {
	out := make([]byte, 0, n+32)
	var ctr [8]byte
	for i := uint64(0); len(out) < n; i++ {
		binary.BigEndian.PutUint64(ctr[:], i)
		s := sha256.Sum256(append([]byte(seed), ctr[:]...))
		out = append(out, s[:]...)
	}
	return string(out[:n])
}

func geoip(v6 bool) string {
	var b strings.Builder
	b.WriteString("# SIMULATED GeoIP database (torwrt ImageBuilder test fixture), placeholder data\n")
	for i := 0; i < 400; i++ {
		if v6 {
			fmt.Fprintf(&b, "2001:%x::,2001:%x:ffff:ffff:ffff:ffff:ffff:ffff,ZZ\n", i, i)
		} else {
			fmt.Fprintf(&b, "%d,%d,ZZ\n", i<<20, (i+1)<<20-1)
		}
	}
	return b.String()
}

// catalog is every package of the simulated feed for t. The 25.12 (apk)
// catalog is the 24.10 one with 25.12's names and versions: apk-mbedtls
// instead of opkg, the release's kernel version in kmod-*, base-files with
// an apk-valid version, /etc/apk instead of /etc/opkg.
func catalog(t Target) []pkgDef {
	Version, Revision, KernelVersion := t.Version, t.Revision, t.KernelVersion
	kmod := func(name, deps string) pkgDef { return kmod(KernelVersion, name, deps) }
	baseFilesVersion := "1638-r28872-daca7c049b"
	if t.APK() {
		// apk versions allow one -rN and a ~hash suffix.
		_, hash, _ := strings.Cut(Revision, "-")
		baseFilesVersion = "1680~" + hash + "-r1"
	}
	release := fmt.Sprintf(`DISTRIB_ID='OpenWrt'
DISTRIB_RELEASE='%s'
DISTRIB_REVISION='%s'
DISTRIB_TARGET='%s'
DISTRIB_ARCH='%s'
DISTRIB_DESCRIPTION='OpenWrt %s %s (SIMULATED ImageBuilder test fixture, not a real firmware)'
DISTRIB_TAINTS='simulated'
`, Version, Revision, t.TargetName(), t.Arch, Version, Revision)
	osRelease := fmt.Sprintf(`NAME="OpenWrt"
VERSION="%s"
ID="openwrt"
ID_LIKE="lede openwrt"
PRETTY_NAME="OpenWrt %s (SIMULATED)"
VERSION_ID="%s"
BUILD_ID="%s"
OPENWRT_BOARD="%s"
OPENWRT_ARCH="%s"
OPENWRT_TAINTS="simulated"
`, Version, Version, Version, Revision, t.TargetName(), t.Arch)
	banner := fmt.Sprintf(`  _______                     ________        __
 |       |.-----.-----.-----.|  |  |  |.----.|  |_
 |   -   ||  _  |  -__|     ||  |  |  ||   _||   _|
 |_______||   __|_____|__|__||________||__|  |____|
          |__| W I R E L E S S   F R E E D O M
 -----------------------------------------------------
 SIMULATED OpenWrt ImageBuilder - not a real firmware
 OpenWrt %s, %s (simulated, torwrt test fixture)
 -----------------------------------------------------
`, Version, Revision)

	pk := []pkgDef{
		{name: "base-files", version: baseFilesVersion, section: "base",
			depends: "libc, netifd, jsonfilter, usign, openwrt-keyring, fstools, fwtool",
			files: []fileDef{
				conf("/etc/banner", banner),
				conf("/etc/openwrt_release", release),
				conf("/etc/openwrt_version", Revision+"\n"),
				conf("/usr/lib/os-release", osRelease),
				link("/etc/os-release", "../usr/lib/os-release"),
				conf("/etc/passwd", "root:x:0:0:root:/root:/bin/ash\ndaemon:*:1:1:daemon:/var:/bin/false\nnetwork:*:101:101:network:/var:/bin/false\nnobody:*:65534:65534:nobody:/var:/bin/false\n"),
				conf("/etc/group", "root:x:0:\ndaemon:x:1:\nnetwork:x:101:\nnogroup:x:65534:\n"),
				{path: "/etc/shadow", mode: 0o600, content: "root:::0:99999:7:::\ndaemon:*:0:0:99999:7:::\nnetwork:*:0:0:99999:7:::\nnobody:*:0:0:99999:7:::\n"},
				conf("/etc/config/system", "# SIMULATED\nconfig system\n\toption hostname 'OpenWrt'\n\toption timezone 'UTC'\n"),
				conf("/etc/sysupgrade.conf", "## This file contains files and directories that should\n## be preserved during an upgrade.\n"),
				initScript("boot", 10, 0),
				initScript("done", 95, 0),
				initScript("sysfixtime", 0, 90),
				initScript("system", 10, 0),
				initScript("umount", 0, 90),
				prog("/sbin/sysupgrade", "sysupgrade"),
				prog("/sbin/firstboot", "firstboot"),
				conf("/lib/functions.sh", "# SIMULATED placeholder of /lib/functions.sh\n"),
				conf("/lib/upgrade/common.sh", "# SIMULATED placeholder of /lib/upgrade/common.sh\n"),
				link("/var", "tmp"),
				{path: "/tmp/", mode: 0o1777},
				{path: "/root/", mode: 0o700},
			}},
		{name: "busybox", version: "1.36.1-r2", depends: "libc", section: "base", files: []fileDef{
			prog("/bin/busybox", "busybox"),
			link("/bin/sh", "busybox"), link("/bin/ash", "busybox"), link("/bin/ls", "busybox"),
			link("/bin/cat", "busybox"), link("/bin/mount", "busybox"), link("/sbin/reboot", "../bin/busybox"),
			link("/usr/sbin/ntpd", "../../bin/busybox"), link("/usr/sbin/crond", "../../bin/busybox"),
			initScript("cron", 50, 0), initScript("sysntpd", 98, 0),
		}},
		{name: "ca-bundle", version: "20240203-r1", section: "base", files: []fileDef{
			conf("/etc/ssl/certs/ca-certificates.crt", "# SIMULATED CA bundle placeholder: holds no certificate\n")}},
		{name: "dnsmasq", version: "2.90-r4", depends: "libc", section: "net", files: []fileDef{
			prog("/usr/sbin/dnsmasq", "dnsmasq"), initScript("dnsmasq", 19, 10),
			conf("/etc/config/dhcp", "# SIMULATED\nconfig dnsmasq\n\toption domainneeded '1'\n")}},
		{name: "dropbear", version: "2024.86-r1", depends: "libc", section: "net", files: []fileDef{
			prog("/usr/sbin/dropbear", "dropbear"), initScript("dropbear", 19, 50),
			conf("/etc/config/dropbear", "# SIMULATED\nconfig dropbear\n\toption PasswordAuth 'on'\n\toption Port '22'\n")}},
		{name: "firewall4", version: "2024.12.18~18fc0ead-r1", depends: "kmod-nft-core, kmod-nft-nat, nftables-json", section: "net", files: []fileDef{
			prog("/sbin/fw4", "fw4"), initScript("firewall", 19, 0),
			conf("/etc/config/firewall", "# SIMULATED\nconfig defaults\n\toption input 'REJECT'\n")}},
		{name: "fstools", version: "2024.07.14~408c2cc4-r1", depends: "libc", section: "base", files: []fileDef{
			prog("/sbin/mount_root", "mount_root"), prog("/sbin/jffs2reset", "jffs2reset")}},
		{name: "fwtool", version: "2019.11.12~8f7fe925-r1", depends: "libc", section: "base", files: []fileDef{
			prog("/usr/bin/fwtool", "fwtool")}},
		{name: "jsonfilter", version: "2024.01.23~594cfa86-r1", depends: "libc", section: "base", files: []fileDef{
			prog("/usr/bin/jsonfilter", "jsonfilter")}},
		{name: "kernel", version: KernelVersion + "~" + t.vermagic() + "-r1", section: "kernel", files: []fileDef{
			conf("/lib/modules/"+KernelVersion+"/modules.builtin", "# SIMULATED kernel: no modules are built in\n")}},
		kmod("ath9k", ""), kmod("rt2800-soc", ""), kmod("gpio-button-hotplug", ""),
		// nf_tables as OpenWrt 24.10 packages it: the module groups of
		// include/netfilter.mk and the DEPENDS of
		// package/kernel/linux/modules/netfilter.mk. fib is its own
		// package that only firewall4 pulls in; a profile that removes
		// firewall4 must add it (internal/nftmods checks).
		kmod("nfnetlink", ""), kmod("lib-crc32c", ""),
		kmod("nf-conntrack", ""), kmod("nf-conntrack6", "kmod-nf-conntrack"),
		kmod("nf-nat", "kmod-nf-conntrack"), kmod("nf-flow", "kmod-nf-conntrack"),
		kmod("nf-reject", ""), kmod("nf-reject6", ""), kmod("nf-log", ""), kmod("nf-log6", ""),
		kmod("nft-core", "kmod-nfnetlink, kmod-nf-reject, kmod-nf-reject6, kmod-nf-conntrack6, kmod-nf-nat, kmod-nf-log, kmod-nf-log6, kmod-lib-crc32c"),
		kmod("nft-nat", "kmod-nft-core, kmod-nf-nat"),
		kmod("nft-offload", "kmod-nft-core, kmod-nf-flow, kmod-nft-nat"),
		kmod("nft-fib", "kmod-nft-core"),
		kmod("usb-core", ""), kmod("usb2", "kmod-usb-core"), kmod("usb-ohci", "kmod-usb-core"),
		kmod("usb-chipidea2", "kmod-usb-core"),
		{name: "libc", version: "1.2.5-r4", section: "libs", files: []fileDef{
			conf("/lib/libc.so", "SIMULATED musl libc placeholder\n"), link("/lib/ld-musl-"+strings.TrimSuffix(t.Arch, "_24kc")+"-sf.so.1", "libc.so")}},
		{name: "libgcc", version: "13.3.0-r4", depends: "libc", section: "libs", files: []fileDef{
			conf("/lib/libgcc_s.so.1", "SIMULATED libgcc placeholder\n")}},
		{name: "libevent2-7", version: "2.1.12-r1", depends: "libc", section: "libs", files: []fileDef{
			conf("/usr/lib/libevent-2.1.so.7", "SIMULATED libevent placeholder\n")}},
		{name: "libopenssl3", version: "3.0.17-r1", depends: "libc", section: "libs", files: []fileDef{
			conf("/usr/lib/libssl.so.3", "SIMULATED libssl placeholder\n"), conf("/usr/lib/libcrypto.so.3", "SIMULATED libcrypto placeholder\n")}},
		{name: "zlib", version: "1.3.1-r1", depends: "libc", section: "libs", files: []fileDef{
			conf("/usr/lib/libz.so.1", "SIMULATED zlib placeholder\n")}},
		{name: "logd", version: "2024.04.26~85f10530-r1", depends: "libc", section: "base", files: []fileDef{
			prog("/sbin/logd", "logd"), initScript("log", 12, 0)}},
		{name: "mtd", version: "26", depends: "libc", section: "base", files: []fileDef{prog("/sbin/mtd", "mtd")}},
		{name: "netifd", version: "2024.12.17~ad7a3da4-r1", depends: "libc", section: "base", files: []fileDef{
			prog("/sbin/netifd", "netifd"), initScript("network", 20, 90),
			conf("/etc/config/network", "# SIMULATED\nconfig interface 'loopback'\n\toption device 'lo'\n")}},
		{name: "nftables-json", version: "1.1.1-r1", depends: "libc", section: "net", files: []fileDef{
			prog("/usr/sbin/nft", "nft")}},
		{name: "odhcp6c", version: "2024.09.25~b6ae9ffa-r1", depends: "libc", section: "net", files: []fileDef{
			prog("/usr/sbin/odhcp6c", "odhcp6c")}},
		{name: "odhcpd-ipv6only", version: "2024.05.08~a2988231-r1", depends: "libc", section: "net", files: []fileDef{
			prog("/usr/sbin/odhcpd", "odhcpd"), initScript("odhcpd", 35, 85)}},
		{name: "ppp", version: "2.5.1-r1", depends: "libc", section: "net", files: []fileDef{prog("/usr/sbin/pppd", "pppd")}},
		{name: "ppp-mod-pppoe", version: "2.5.1-r1", depends: "ppp", section: "net", files: []fileDef{
			conf("/usr/lib/pppd/2.5.1/pppoe.so", "SIMULATED pppoe plugin placeholder\n")}},
		{name: "procd", version: "2024.12.22~42d39376-r1", depends: "libc", section: "base", files: []fileDef{
			prog("/sbin/procd", "procd"), prog("/sbin/init", "init"), conf("/etc/rc.common", "# SIMULATED placeholder of /etc/rc.common\n")}},
		{name: "procd-seccomp", version: "2024.12.22~42d39376-r1", depends: "procd", section: "base", files: []fileDef{
			conf("/lib/libpreload-seccomp.so", "SIMULATED placeholder\n")}},
		{name: "procd-ujail", version: "2024.12.22~42d39376-r1", depends: "procd", section: "base", files: []fileDef{
			prog("/sbin/ujail", "ujail")}},
		{name: "swconfig", version: "12", depends: "libc", section: "base", files: []fileDef{prog("/sbin/swconfig", "swconfig")}},
		{name: "tor", version: "0.4.8.17-r1", depends: "libc, libevent2-7, libopenssl3, zlib", section: "net", files: []fileDef{
			{path: "/usr/sbin/tor", mode: 0o755, content: "#!/bin/sh\n# tor: " + placeholderNote + "\ncase \"$1\" in --version) echo 'Tor version 0.4.8.17 (SIMULATED placeholder).'; exit 0;; esac\necho 'tor: " + placeholderNote + "' >&2\nexit 1\n"},
			conf("/etc/tor/torrc", "# SIMULATED default torrc\nUser tor\nDataDirectory /var/lib/tor\n"),
			conf("/etc/config/tor", "# SIMULATED\nconfig tor 'conf'\n\tlist tail_include '/etc/tor/torrc_generated'\n"),
			initScript("tor", 50, 0)}},
		{name: "tor-geoip", version: "0.4.8.17-r1", depends: "tor", section: "net", files: []fileDef{
			conf("/usr/share/tor/geoip", geoip(false)), conf("/usr/share/tor/geoip6", geoip(true))}},
		{name: "ucert", version: "2020.05.24~00b921d8-r3", depends: "libc", section: "base", files: []fileDef{
			prog("/usr/bin/ucert", "ucert")}},
		{name: "uboot-envtools", version: "2024.07-r1", depends: "libc", section: "utils", files: []fileDef{
			prog("/usr/sbin/fw_printenv", "fw_printenv"), link("/usr/sbin/fw_setenv", "fw_printenv")}},
		{name: "uci", version: "2023.08.10~5781664d-r1", depends: "libc", section: "base", files: []fileDef{prog("/sbin/uci", "uci")}},
		{name: "uclient-fetch", version: "2024.10.22~88ae8f20-r1", depends: "libc", section: "net", files: []fileDef{
			prog("/bin/uclient-fetch", "uclient-fetch"), link("/bin/wget", "uclient-fetch")}},
		{name: "urandom-seed", version: "3", section: "base", files: []fileDef{initScript("urandom_seed", 99, 0)}},
		{name: "urngd", version: "2023.11.01~44365eb1-r1", depends: "libc", section: "utils", files: []fileDef{
			prog("/sbin/urngd", "urngd"), initScript("urngd", 0, 0)}},
		{name: "usign", version: "2020.05.23~f1f65026-r1", depends: "libc", section: "base", files: []fileDef{prog("/usr/bin/usign", "usign")}},
		{name: "wpad-basic-mbedtls", version: "2024.09.15~5ace39b0-r2", depends: "libc", section: "net", files: []fileDef{
			prog("/usr/sbin/wpad", "wpad"), initScript("wpad", 19, 0)}},
		{name: "luci", version: "25.236.53453~c3f8b3e-r1", depends: "luci-base, uhttpd, rpcd", section: "luci"},
		{name: "luci-base", version: "25.236.53453~c3f8b3e-r1", depends: "libc, rpcd", section: "luci", files: []fileDef{
			conf("/www/index.html", "<!-- SIMULATED LuCI placeholder -->\n"), conf("/www/luci-static/resources/SIMULATED.txt", "SIMULATED LuCI resources placeholder\n")}},
		{name: "uhttpd", version: "2023.06.25~34a8a74d-r4", depends: "libc", section: "net", files: []fileDef{
			prog("/usr/sbin/uhttpd", "uhttpd"), initScript("uhttpd", 50, 0)}},
		{name: "rpcd", version: "2024.09.17~b8c8f2f4-r1", depends: "libc", section: "utils", files: []fileDef{
			prog("/sbin/rpcd", "rpcd"), initScript("rpcd", 12, 0)}},
	}
	pk = append(pk, pmPackages(t)...)
	if t.APK() {
		// OpenWrt's base-files writes the feed list of its package manager.
		var feeds strings.Builder
		feeds.WriteString("# SIMULATED: these feeds are not reachable from a simulated firmware\n")
		for _, u := range t.defaultFeeds() {
			feeds.WriteString(u + "\n")
		}
		for i := range pk {
			if pk[i].name == "base-files" {
				pk[i].files = append(pk[i].files, conf("/etc/apk/repositories.d/distfeeds.list", feeds.String()))
			}
		}
	}
	sort.Slice(pk, func(i, j int) bool { return pk[i].name < pk[j].name })
	return pk
}

// pmPackages are the package manager and the keyring package.
func pmPackages(t Target) []pkgDef {
	if !t.APK() {
		return []pkgDef{
			{name: "openwrt-keyring", version: "2024.11.01~fbae29d7-r1", section: "base", files: []fileDef{
				// The real 24.10 release key (public; formats.md §5), as the
				// real package ships it.
				conf("/etc/opkg/keys/d310c6f2833e97f7", "untrusted comment: OpenWrt 24.10 release key\nRWTTEMbygz6X95lKDAulctZy3aj15823THXfyrfXgwGbxZlXBd2brNcw\n")}},
			{name: "opkg", version: "2024.10.16~38eccbb1-r1", depends: "libc", section: "base", files: []fileDef{
				prog("/bin/opkg", "opkg"),
				conf("/etc/opkg.conf", "dest root /\ndest ram /tmp\nlists_dir ext /var/opkg-lists\noption overlay_root /overlay\noption check_signature\n"),
				conf("/etc/opkg/distfeeds.conf", fmt.Sprintf("# SIMULATED: these feeds are not reachable from a simulated firmware\nsrc/gz openwrt_core https://downloads.openwrt.org/releases/%s/targets/%s/packages\n", t.Version, t.TargetName())),
				conf("/etc/opkg/customfeeds.conf", "# add your custom package feeds here\n")}},
		}
	}
	pem, err := FeedAPKKey().MarshalPEM()
	if err != nil {
		panic(err) // a fixed key always marshals
	}
	return []pkgDef{
		// The real 25.12 release key is not known here: the simulated
		// keyring ships the SIMULATED feed key, which signs the simulated
		// feeds (its name says so).
		{name: "openwrt-keyring", version: "2025.06.04~a0b1c2d3-r1", section: "base", files: []fileDef{
			conf("/etc/apk/keys/"+FeedAPKKeyName, string(pem))}},
		{name: "apk-mbedtls", version: "3.0.5-r1", depends: "libc, zlib", section: "base", files: []fileDef{
			prog("/usr/bin/apk", "apk"),
			conf("/etc/apk/repositories.d/customfeeds.list", "# add your custom package feeds here\n#\n# http://www.example.com/path/to/files/packages.adb\n"),
			{path: "/lib/apk/db/", mode: 0o755}, {path: "/etc/apk/keys/", mode: 0o755}}},
	}
}
