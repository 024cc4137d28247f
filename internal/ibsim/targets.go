// Package ibsim is a SIMULATED OpenWrt 24.10 ImageBuilder: a test fixture,
// not a firmware build system.
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
// sha256sums, the size limit, package pinning by SHA-256, and the real IB's
// non-reproducible behaviours (clock-dependent squashfs and opkg status,
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

// Release facts of the simulated ImageBuilder.
const (
	Dist            = siminfo.Dist
	Version         = siminfo.Version         // "24.10.3"
	Revision        = siminfo.Revision        // "r28872-daca7c049b"
	SourceDateEpoch = siminfo.SourceDateEpoch // baked into the IB
	KernelVersion   = siminfo.KernelVersion
	// Notice is the SIMULATED statement the sim prints and writes.
	Notice = siminfo.Notice
)

// Target is one device the simulated IB builds for.
type Target struct {
	Profile          string // torwrt profile name, e.g. gl-ar150
	IBProfile        string // ImageBuilder PROFILE=, e.g. glinet_gl-ar150
	Target           string // ath79
	Subtarget        string // generic
	Arch             string // package architecture, mips_24kc
	Board            string // board name, glinet,gl-ar150
	SupportedDevices []string
	DevicePackages   []string
	ImageSizeKiB     int
	PadKernel64k     bool
}

// Targets returns the simulated devices: the GL.iNet GL-AR150 and GL-MT300A
// (imagebuilder.md §1).
func Targets() []Target {
	return []Target{
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
}

// TargetByProfile finds a target by its torwrt profile or IB profile id.
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
	return t.Target + "-" + t.Subtarget + "-v" + Version + "-simulated"
}

// ImageName is the stock sysupgrade file name (EXTRA_IMAGE_NAME empty).
func (t Target) ImageName(extra string) string {
	return t.ImagePrefix(extra) + "-squashfs-sysupgrade.bin"
}

// ImagePrefix is profiles.json's image_prefix: openwrt-24.10.3-[extra-]
// <target>-<subtarget>-<ibprofile>, extra sanitized as OpenWrt does.
func (t Target) ImagePrefix(extra string) string {
	p := "openwrt-" + Version + "-"
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
	s := sha256.Sum256([]byte("SIMULATED kernel vermagic " + t.TargetName()))
	return hex.EncodeToString(s[:16])
}

// DefaultPackages is the IB's "Default Packages" for the target.
func (t Target) DefaultPackages() []string {
	d := []string{"base-files", "busybox", "ca-bundle", "dnsmasq", "dropbear", "firewall4", "fstools",
		"kmod-gpio-button-hotplug", "kmod-nft-offload", "libc", "libgcc", "logd", "mtd", "netifd",
		"nftables-json", "odhcp6c", "odhcpd-ipv6only", "opkg", "ppp", "ppp-mod-pppoe", "procd",
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
		SourceDateEpoch: SourceDateEpoch,
		Dist:            Dist,
		Version:         Version,
		Revision:        Revision,
	}
}

func (t Target) kernelPath() string {
	return "build_dir/target-" + t.Arch + "_musl/linux-" + t.Target + "_" + t.Subtarget + "/" + t.IBProfile + "-kernel.bin"
}
