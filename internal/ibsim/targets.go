// Package ibsim is a SIMULATED OpenWrt ImageBuilder, in two generations:
// 25.12 with apk-tools v3 (.apk packages, signed packages.adb, the apk
// database in the root filesystem) and 24.10 with opkg (.ipk, Packages +
// Packages.sig, the opkg status). It is a test fixture, not a firmware
// build system.
//
// It builds an OCI image that presents the interface of a real ImageBuilder
// container (/builder with a Makefile answering `make info`, `make manifest`
// and `make image ...`), a deterministic package feed of placeholder .ipk
// files, and an in-process registry that serves the images by digest. The
// images it makes do not boot: the kernel is a labelled placeholder and every
// package holds placeholder programs.
//
// What it does reproduce faithfully is what a builder has to get right:
// stock output names, stock fwtool metadata (byte-exact JSON), profiles.json,
// sha256sums, the size limit, package pinning by SHA-256 (opkg) or by the
// index's identity hash (apk), the apk database byte-for-byte as apk-tools
// 3.0 writes it, and the real IB's non-reproducible behaviours
// (clock-dependent squashfs, opkg status and apk directory times, a fresh
// local apk key signing packages/packages.adb,
// FILES mtimes, a fresh local signing key on every fresh container), so that
// a test can prove the builder neutralizes each of them.
//
// Honesty: every output that is not part of a stock format says SIMULATED
// (the banner and release files in the root filesystem, a SIMULATED file in
// BIN_DIR, make's console output on stderr, the image labels and tags); the
// metadata JSON stays exactly stock because the builder must treat it as it
// would a real one.
package ibsim

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/torwrt/torwrt/internal/ibsim/internal/siminfo"
)

// Facts shared by every simulated ImageBuilder.
const (
	Dist = siminfo.Dist
	// Notice is the SIMULATED statement the sim prints and writes.
	Notice = siminfo.Notice
)

// Package managers of the simulated generations (Target.PackageManager).
const (
	Opkg = siminfo.Opkg // OpenWrt 24.10: .ipk, Packages, usign Packages.sig
	APK  = siminfo.APK  // OpenWrt 25.12: apk-tools v3, .apk, signed packages.adb
)

// Releases the sim imitates (see siminfo for which facts are real).
var (
	Release2410 = siminfo.OpenWrt2410
	Release2512 = siminfo.OpenWrt2512
)

// Target is one device of one OpenWrt generation the simulated IB builds for.
type Target struct {
	Profile          string // torwrt profile name, e.g. gl-ar150 or gl-ar150-24.10
	IBProfile        string // ImageBuilder PROFILE=, e.g. glinet_gl-ar150
	Target           string // ath79
	Subtarget        string // generic
	Arch             string // package architecture, mips_24kc
	Board            string // board name, glinet,gl-ar150
	SupportedDevices []string
	DevicePackages   []string
	ImageSizeKiB     int
	PadKernel64k     bool

	// The release: version, revision, kernel, the IB's baked-in
	// SOURCE_DATE_EPOCH and the package manager (APK or Opkg).
	Version         string
	Revision        string
	KernelVersion   string
	SourceDateEpoch int64
	PackageManager  string
}

// APK reports whether the target's IB uses apk-tools (OpenWrt 25.12).
func (t Target) APK() bool { return t.PackageManager == APK }

func withRelease(t Target, r siminfo.Release, suffix string) Target {
	t.Profile += suffix
	t.Version, t.Revision, t.KernelVersion = r.Version, r.Revision, r.KernelVersion
	t.SourceDateEpoch, t.PackageManager = r.SourceDateEpoch, r.PackageManager
	return t
}

// Targets returns the simulated devices, the GL.iNet GL-AR150 and GL-MT300A
// (imagebuilder.md §1), each as OpenWrt 25.12.5 with apk (profiles gl-ar150,
// gl-mt300a: the defaults) and as OpenWrt 24.10.3 with opkg (profiles
// gl-ar150-24.10, gl-mt300a-24.10).
func Targets() []Target {
	devices := []Target{
		{
			Profile: "gl-ar150", IBProfile: "glinet_gl-ar150", Target: "ath79", Subtarget: "generic",
			Arch: "mips_24kc", Board: "glinet,gl-ar150",
			SupportedDevices: []string{"glinet,gl-ar150", "gl-ar150"},
			DevicePackages:   []string{"kmod-usb-chipidea2"},
			ImageSizeKiB:     16000, PadKernel64k: true,
		},
		{
			Profile: "gl-mt300a", IBProfile: "glinet_gl-mt300a", Target: "ramips", Subtarget: "mt7620",
			Arch: "mipsel_24kc", Board: "glinet,gl-mt300a",
			SupportedDevices: []string{"glinet,gl-mt300a", "gl-mt300a"},
			DevicePackages:   []string{"kmod-usb2", "kmod-usb-ohci"},
			ImageSizeKiB:     15872, PadKernel64k: false,
		},
	}
	var out []Target
	for _, d := range devices {
		out = append(out, withRelease(d, Release2512, ""))
	}
	for _, d := range devices {
		out = append(out, withRelease(d, Release2410, "-24.10"))
	}
	return out
}

// TargetByProfile finds a target by its torwrt profile, or by IB profile id
// (which gives the 25.12 target: both generations share the IB profile ids).
func TargetByProfile(p string) (Target, bool) {
	for _, t := range Targets() {
		if t.Profile == p || t.IBProfile == p {
			return t, true
		}
	}
	return Target{}, false
}

// TargetName is "<target>/<subtarget>".
func (t Target) TargetName() string { return t.Target + "/" + t.Subtarget }

// ImageTag is the registry tag Serve pushes the target's image under.
func (t Target) ImageTag() string {
	return t.Target + "-" + t.Subtarget + "-v" + t.Version + "-simulated"
}

// ImageName is the stock sysupgrade file name (EXTRA_IMAGE_NAME empty).
func (t Target) ImageName(extra string) string {
	return t.ImagePrefix(extra) + "-squashfs-sysupgrade.bin"
}

// ImagePrefix is profiles.json's image_prefix: openwrt-<version>-[extra-]
// <target>-<subtarget>-<ibprofile>, extra sanitized as OpenWrt does.
func (t Target) ImagePrefix(extra string) string {
	p := "openwrt-" + t.Version + "-"
	if extra != "" {
		p += sanitize(extra) + "-"
	}
	return p + t.Target + "-" + t.Subtarget + "-" + t.IBProfile
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= 'A' && c <= 'Z':
			b[i] = c + 32
		case c == '_' || c == ' ':
			b[i] = '-'
		}
	}
	return string(b)
}

// cpuArch is what make info prints as "Current Architecture".
func (t Target) cpuArch() string {
	if t.Arch == "mipsel_24kc" {
		return "mipsel"
	}
	return "mips"
}

// vermagic is the (made-up, deterministic) kernel vermagic of the target.
func (t Target) vermagic() string {
	seed := "SIMULATED kernel vermagic " + t.TargetName()
	if t.APK() {
		seed += " " + t.KernelVersion
	}
	s := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(s[:16])
}

// DefaultPackages is the IB's "Default Packages" for the target.
func (t Target) DefaultPackages() []string {
	d := []string{"base-files", "busybox", "ca-bundle", "dnsmasq", "dropbear", "firewall4", "fstools",
		"kmod-gpio-button-hotplug", "kmod-nft-offload", "libc", "libgcc", "logd", "mtd", "netifd",
		"nftables-json", "odhcp6c", "odhcpd-ipv6only", t.pmPackage(), "ppp", "ppp-mod-pppoe", "procd",
		"procd-seccomp", "procd-ujail", "swconfig", "uboot-envtools", "uci", "uclient-fetch",
		"urandom-seed", "urngd", "wpad-basic-mbedtls"}
	switch t.Target {
	case "ath79":
		d = append(d, "kmod-ath9k")
	case "ramips":
		d = append(d, "kmod-rt2800-soc")
	}
	return d
}

// pmPackage is the package manager's package: apk-mbedtls on 25.12, opkg
// on 24.10.
func (t Target) pmPackage() string {
	if t.APK() {
		return "apk-mbedtls"
	}
	return "opkg"
}

func (t Target) info() *siminfo.TargetInfo {
	vendor, model := "GL.iNet", "GL-AR150"
	if t.IBProfile == "glinet_gl-mt300a" {
		model = "GL-MT300A"
	}
	return &siminfo.TargetInfo{
		Simulated:       Notice,
		Board:           t.Target,
		Subtarget:       t.Subtarget,
		Arch:            t.Arch,
		CPUArch:         t.cpuArch(),
		DefaultPackages: t.DefaultPackages(),
		Profiles: []siminfo.Profile{{
			ID: t.IBProfile, Vendor: vendor, Model: model,
			DevicePackages:   t.DevicePackages,
			SupportedDevices: t.SupportedDevices,
			ImageSizeKiB:     t.ImageSizeKiB,
			PadKernel64k:     t.PadKernel64k,
			KernelImage:      t.kernelPath(),
		}},
		KernelVermagic:  t.vermagic(),
		SourceDateEpoch: t.SourceDateEpoch,
		Dist:            Dist,
		Version:         t.Version,
		Revision:        t.Revision,
		KernelVersion:   t.KernelVersion,
		PackageManager:  t.PackageManager,
		Feeds:           t.defaultFeeds(),
	}
}

func (t Target) kernelPath() string {
	return "build_dir/target-" + t.Arch + "_musl/linux-" + t.Target + "_" + t.Subtarget + "/" + t.IBProfile + "-kernel.bin"
}
