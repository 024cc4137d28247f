// Command ibsim-tool is the back end of the SIMULATED OpenWrt ImageBuilder
// (the torwrt test fixture in internal/ibsim). The simulated IB's Makefile
// calls it for every step that the real ImageBuilder does with opkg or apk,
// its image scripts, usign, ucert and fwtool; the root filesystem itself is
// made by the real mksquashfs, called from the Makefile. Each command is
// (part of) one of the real IB's sub-make targets, which the simulated
// Makefile has too: _check_profile (check-profile), package_reload
// (apk-initdb), package_index, package_install (install), prepare_rootfs
// (prepare-rootfs), build_image (sysupgrade after mksquashfs4) and
// checksum.
//
// It is built statically (CGO_ENABLED=0) into
// /builder/staging_dir/host/bin/ibsim-tool. It is not a real OpenWrt tool and
// says so on stderr every time make runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/torwrt/torwrt/internal/ibsim/internal/siminfo"
)

func usage() {
	fmt.Fprintf(os.Stderr, `ibsim-tool: back end of the %s
usage: ibsim-tool COMMAND [flags], COMMAND one of
  notice info check-profile manifest keygen apk-keygen
  apk-initdb package-index install prepare-rootfs sysupgrade checksum
`, siminfo.Notice)
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	cmd, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	topdir := fs.String("topdir", ".", "ImageBuilder root")
	profile := fs.String("profile", "", "profile id (PROFILE=)")
	packages := fs.String("packages", "", "PACKAGES= value")
	files := fs.String("files", "", "FILES= directory")
	disabled := fs.String("disabled-services", "", "DISABLED_SERVICES= value")
	root := fs.String("root", "", "root filesystem staging directory")
	rootfsImg := fs.String("rootfs", "", "squashfs root filesystem image")
	binDir := fs.String("bin-dir", "", "BIN_DIR=")
	extra := fs.String("extra-name", "", "EXTRA_IMAGE_NAME=")
	addLocalKey := fs.String("add-local-key", "", "ADD_LOCAL_KEY= (apk)")
	if err := fs.Parse(args); err != nil {
		usage()
	}
	var err error
	switch cmd {
	case "notice":
		fmt.Fprintf(os.Stderr, "*** %s ***\n", siminfo.Notice)
		return
	case "info":
		err = cmdInfo(*topdir)
	case "manifest":
		err = cmdManifest(*topdir, *profile, *packages)
	case "check-profile":
		err = cmdCheckProfile(*topdir, *profile)
	case "apk-initdb":
		err = cmdAPKInitDB(*topdir, *root)
	case "package-index":
		err = cmdPackageIndex(*topdir)
	case "install":
		err = cmdInstall(*topdir, *profile, *packages, *root)
	case "prepare-rootfs":
		err = cmdPrepareRootfs(*topdir, *files, *disabled, *addLocalKey, *root)
	case "checksum":
		err = cmdChecksum(*binDir)
	case "keygen":
		err = cmdKeygen(*topdir)
	case "apk-keygen":
		err = cmdAPKKeygen(*topdir)
	case "sysupgrade":
		err = cmdSysupgrade(*topdir, *profile, *root, *rootfsImg, *binDir, *extra)
	default:
		usage()
	}
	if err != nil {
		msg := err.Error()
		if !strings.HasPrefix(msg, "ERROR") {
			msg = "ERROR: " + msg
		}
		fmt.Fprintf(os.Stderr, "%s [SIMULATED ImageBuilder]\n", msg)
		os.Exit(1)
	}
}

func cmdInfo(topdir string) error {
	ti, err := siminfo.Load(topdir)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Current Target: %q\n", ti.Target())
	fmt.Fprintf(&b, "Current Architecture: %q\n", ti.CPUArch)
	fmt.Fprintf(&b, "Current Revision: %q\n", ti.Revision)
	fmt.Fprintf(&b, "Default Packages: %s\n", strings.Join(ti.DefaultPackages, " "))
	fmt.Fprintf(&b, "Available Profiles:\n\n")
	for _, p := range ti.Profiles {
		fmt.Fprintf(&b, "%s:\n", p.ID)
		fmt.Fprintf(&b, "    %s\n", p.Title())
		fmt.Fprintf(&b, "    Packages: %s\n", strings.Join(p.DevicePackages, " "))
		fmt.Fprintf(&b, "    hasImageMetadata: 1\n")
		fmt.Fprintf(&b, "    SupportedDevices: %s\n", strings.Join(p.SupportedDevices, " "))
	}
	_, err = os.Stdout.WriteString(b.String())
	return err
}

// cmdCheckProfile is the real IB's _check_profile: the profile exists.
func cmdCheckProfile(topdir, profile string) error {
	ti, err := siminfo.Load(topdir)
	if err != nil {
		return err
	}
	_, err = ti.Profile(profile)
	return err
}

// cmdManifest prints the packages package_install would install, as the
// real IB's manifest lists them after installing (opkg list-installed,
// apk list --manifest). It resolves them from the feed indexes without
// installing: torwrt's lock runs `make manifest` on a feed that has the
// index and not yet the package files.
func cmdManifest(topdir, profile, packages string) error {
	ti, err := siminfo.Load(topdir)
	if err != nil {
		return err
	}
	p, err := ti.Profile(profile)
	if err != nil {
		return err
	}
	fs, err := loadFeedsFor(topdir, ti)
	if err != nil {
		return err
	}
	pkgs, err := fs.resolve(ti, p, packages)
	if err != nil {
		return err
	}
	if ti.APK() {
		_, err = os.Stdout.Write(apkManifest(pkgs))
		return err
	}
	var b strings.Builder
	for _, pk := range pkgs {
		fmt.Fprintf(&b, "%s - %s\n", pk.Name, pk.Version)
	}
	_, err = os.Stdout.WriteString(b.String())
	return err
}
