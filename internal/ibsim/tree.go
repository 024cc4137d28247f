package ibsim

import (
	"encoding/json"
	"fmt"
	"strings"
)

// makefileTemplate is the simulated IB's Makefile. @NAME@ placeholders are
// filled per target by ibTree. Its image target is structured as the real
// IB's: one $(MAKE) <target> sub-make per step (package_reload,
// package_install, prepare_rootfs, build_image, checksum), so that torwrt's
// hooks/installed.mk, which includes it and redefines MAKE, can save the
// tree package_install leaves in $(TARGET_DIR) and restore it instead.
const makefileTemplate = `# SIMULATED OpenWrt ImageBuilder -- torwrt test fixture (internal/ibsim).
#
# This is NOT the OpenWrt ImageBuilder. It answers the same make targets
# (info, manifest, image) with the same variables, and it reproduces the
# real IB's non-reproducible behaviours on purpose, so that the torwrt
# builder can be tested end to end without network access. The firmware it
# writes does not boot: the kernel and every program are placeholders.
#
# Real tools used: GNU make, busybox sh, mksquashfs (squashfs-tools), called
# as staging_dir/host/bin/mksquashfs4 like the real IB's own build of it (here
# an absolute symlink to the container's /usr/bin/mksquashfs, as real IBs
# carry absolute symlinks to host tools in staging_dir/host/bin).
# Everything opkg or apk, the image scripts, usign, ucert and fwtool do is done by
# staging_dir/host/bin/ibsim-tool.
#
# The structure mirrors the real IB's Makefile (OpenWrt 24.10/25.12,
# target/imagebuilder/files/Makefile): make image runs its steps as
# sub-makes, each spelled $(MAKE) <target>, so that a makefile that
# includes this one and redefines MAKE (torwrt's hooks/installed.mk) is
# the one every step runs with:
#
#   image            the keys, then $(MAKE) _check_profile, $(MAKE) _call_image
#   _call_image      empties $(TARGET_DIR), then $(MAKE) package_reload,
#                    package_install, prepare_rootfs, build_image, checksum
#   package_reload   apk: apk add --initdb into $(TARGET_DIR); both:
#                    $(MAKE) package_index when packages/ has no index
#                    or one older than a file there
#   package_index    indexes (and signs) packages/, the IB's own feed
#   package_install  the package manager installs into $(TARGET_DIR): it
#                    reads PROFILE, PACKAGES and the feeds, never FILES,
#                    DISABLED_SERVICES or ADD_LOCAL_KEY
#   prepare_rootfs   ADD_LOCAL_KEY, FILES, init scripts enabled,
#                    DISABLED_SERVICES disabled
#   build_image      mksquashfs4, the sysupgrade image, manifest, profiles.json
#   checksum         sha256sums in BIN_DIR
#   manifest         $(MAKE) _call_manifest: package_reload, then the
#                    package set package_install would install

TOPDIR:=$(CURDIR)
SHELL:=/bin/sh
export PATH:=$(TOPDIR)/staging_dir/host/bin:$(PATH)
export LC_ALL:=C

# Baked into the release. Like an older IB, the simulated one does not
# export it: opkg's Installed-Time, apk's directory times and mksquashfs
# read the clock unless
# SOURCE_DATE_EPOCH is set in make's own environment (both honour it there).
IB_SOURCE_DATE_EPOCH:=@SDE@

BOARD:=@BOARD@
SUBTARGET:=@SUBTARGET@
ARCH_PACKAGES:=@ARCH@
DEFAULT_PROFILE:=@PROFILE@
IB_TOOL:=$(TOPDIR)/staging_dir/host/bin/ibsim-tool
BUILD_DIR:=$(TOPDIR)/build_dir/target-$(ARCH_PACKAGES)_musl
# The root tree the steps build, as in the real IB.
TARGET_DIR:=$(BUILD_DIR)/root-$(BOARD)
IMG_TMP:=$(BUILD_DIR)/tmp
PACKAGE_DIR:=$(TOPDIR)/packages
BUILD_KEY:=$(TOPDIR)/key-build
# The package manager of this release: apk (>= 25.12) when CONFIG_USE_APK
# is y, else opkg (<= 24.10). The real IB's rules.mk reads it from .config.
CONFIG_USE_APK:=@USE_APK@
ifeq ($(CONFIG_USE_APK),y)
# _check_keys of the real 25.12 IB: a local EC key signs packages/packages.adb.
BUILD_KEY_APK_SEC:=$(TOPDIR)/keys/local-private-key.pem
IB_APK_KEYS:=$(BUILD_KEY_APK_SEC)
# The key package_index signs the local index with.
IB_INDEX_KEY:=$(BUILD_KEY_APK_SEC)
else
IB_INDEX_KEY:=$(BUILD_KEY)
endif

# ---------------------------------------------------------------------------
# Input validation, in pure make: no user-supplied text reaches a shell or a
# second expansion before it passes. $(value X) reads the raw text, so a
# PACKAGES='$(shell ...)' is reported, never run.
ibsim_lower:=a b c d e f g h i j k l m n o p q r s t u v w x y z
ibsim_upper:=A B C D E F G H I J K L M N O P Q R S T U V W X Y Z
ibsim_digit:=0 1 2 3 4 5 6 7 8 9
ibsim_strip=$(if $(2),$(call ibsim_strip,$(subst $(firstword $(2)),,$(1)),$(wordlist 2,$(words $(2)),$(2))),$(1))
ibsim_badchars=$(strip $(foreach w,$(1),$(if $(call ibsim_strip,$(w),$(2)),$(w))))
ibsim_badstart=$(strip $(foreach w,$(1),$(if $(filter $(addsuffix %,$(ibsim_lower) $(ibsim_digit)),$(patsubst -%,%,$(w))),,$(w))))

IB_PACKAGES:=$(strip $(value PACKAGES))
IB_PROFILE:=$(strip $(value PROFILE))
IB_FILES:=$(strip $(value FILES))
IB_BIN_DIR:=$(strip $(value BIN_DIR))
IB_EXTRA_IMAGE_NAME:=$(strip $(value EXTRA_IMAGE_NAME))
IB_DISABLED_SERVICES:=$(strip $(value DISABLED_SERVICES))
IB_ADD_LOCAL_KEY:=$(strip $(value ADD_LOCAL_KEY))

ibsim_bad:=$(call ibsim_badchars,$(IB_PACKAGES),$(ibsim_lower) $(ibsim_digit) + . _ -) $(call ibsim_badstart,$(IB_PACKAGES))
ifneq ($(strip $(ibsim_bad)),)
$(error Invalid package name(s) in PACKAGES: $(strip $(ibsim_bad)) -- each must match ^-?[a-z0-9][a-z0-9+._-]*$$ [SIMULATED ImageBuilder])
endif
ibsim_bad:=$(call ibsim_badchars,$(IB_PROFILE),$(ibsim_lower) $(ibsim_digit) . _ -)
ifneq ($(words $(IB_PROFILE))$(ibsim_bad),$(if $(IB_PROFILE),1,0))
$(error Invalid PROFILE '$(IB_PROFILE)': one id of [a-z0-9._-], see 'make info' [SIMULATED ImageBuilder])
endif
ibsim_bad:=$(call ibsim_badchars,$(IB_DISABLED_SERVICES),$(ibsim_lower) $(ibsim_digit) . _ -)
ifneq ($(ibsim_bad),)
$(error Invalid service name(s) in DISABLED_SERVICES: $(ibsim_bad) -- want [a-z0-9._-] [SIMULATED ImageBuilder])
endif
ibsim_bad:=$(call ibsim_badchars,$(IB_EXTRA_IMAGE_NAME),$(ibsim_lower) $(ibsim_upper) $(ibsim_digit) . _ - +)
ifneq ($(words $(IB_EXTRA_IMAGE_NAME))$(ibsim_bad),$(if $(IB_EXTRA_IMAGE_NAME),1,0))
$(error Invalid EXTRA_IMAGE_NAME '$(IB_EXTRA_IMAGE_NAME)': one word of [A-Za-z0-9._+-] [SIMULATED ImageBuilder])
endif
ibsim_bad:=$(call ibsim_badchars,$(IB_FILES) $(IB_BIN_DIR),$(ibsim_lower) $(ibsim_upper) $(ibsim_digit) / . _ - +)
ifneq ($(ibsim_bad),)
$(error Invalid path(s) in FILES/BIN_DIR: $(ibsim_bad) -- want [A-Za-z0-9/._+-] [SIMULATED ImageBuilder])
endif
ibsim_bad:=$(call ibsim_badchars,$(IB_ADD_LOCAL_KEY),$(ibsim_lower) $(ibsim_digit))
ifneq ($(words $(IB_ADD_LOCAL_KEY))$(ibsim_bad),$(if $(IB_ADD_LOCAL_KEY),1,0))
$(error Invalid ADD_LOCAL_KEY '$(IB_ADD_LOCAL_KEY)': empty or one word of [a-z0-9], e.g. 1 [SIMULATED ImageBuilder])
endif
ifneq ($(words $(IB_FILES)),$(if $(IB_FILES),1,0))
$(error FILES must be one directory [SIMULATED ImageBuilder])
endif
ifneq ($(words $(IB_BIN_DIR)),$(if $(IB_BIN_DIR),1,0))
$(error BIN_DIR must be one directory [SIMULATED ImageBuilder])
endif
ifeq ($(IB_PROFILE),)
IB_PROFILE:=$(DEFAULT_PROFILE)
endif
ifeq ($(IB_BIN_DIR),)
IB_BIN_DIR:=$(TOPDIR)/bin/targets/$(BOARD)/$(SUBTARGET)
endif
ifneq ($(IB_FILES),)
ifeq ($(wildcard $(IB_FILES)),)
$(error FILES directory $(IB_FILES) does not exist [SIMULATED ImageBuilder])
endif
endif
# ---------------------------------------------------------------------------

.PHONY: help info manifest image clean FORCE _check_profile _call_image _call_manifest \
	package_reload package_index package_install prepare_rootfs build_image checksum
FORCE:

help:
	@$(IB_TOOL) notice
	@echo 'Available Commands (SIMULATED OpenWrt ImageBuilder):'
	@echo '	help:		This help text'
	@echo '	info:		Show a list of available target profiles'
	@echo '	manifest:	Show the packages make image would install'
	@echo '	image:		Build an image (see below for more information).'
	@echo '	clean:		Remove images and temporary build files'
	@echo 'Building images: make image PROFILE="<profile>" PACKAGES="<pkg> -<pkg>" FILES="<dir>" BIN_DIR="<dir>" EXTRA_IMAGE_NAME="<s>" DISABLED_SERVICES="<svc>"'

info:
	@$(IB_TOOL) notice
	@$(IB_TOOL) info --topdir '$(TOPDIR)'

$(BUILD_KEY):
	@$(IB_TOOL) keygen --topdir '$(TOPDIR)'

ifeq ($(CONFIG_USE_APK),y)
$(BUILD_KEY_APK_SEC):
	@$(IB_TOOL) apk-keygen --topdir '$(TOPDIR)'
endif

# The sub-makes see the variables of the command line (MAKEFLAGS) and
# validate them again; -s keeps make's "Entering directory" lines out of
# the output, as the real IB's $(MAKE) -s _call_image does.
image: $(BUILD_KEY) $(IB_APK_KEYS)
	@$(IB_TOOL) notice
	@$(MAKE) -s _check_profile
	@$(MAKE) -s _call_image

manifest: $(IB_INDEX_KEY)
	@$(IB_TOOL) notice
	@$(MAKE) -s _check_profile
	@$(MAKE) -s _call_manifest

_check_profile: FORCE
	@$(IB_TOOL) check-profile --topdir '$(TOPDIR)' --profile '$(IB_PROFILE)'

_call_image: FORCE
	@echo 'Building images for $(BOARD) - $(IB_PROFILE) [SIMULATED ImageBuilder]'
	@echo 'Packages: $(IB_PACKAGES)'
	@rm -rf '$(TARGET_DIR)' '$(IMG_TMP)'
	@mkdir -p '$(TARGET_DIR)' '$(IB_BIN_DIR)'
	@$(MAKE) package_reload
	@$(MAKE) package_install
	@$(MAKE) prepare_rootfs
	@$(MAKE) build_image
	@$(MAKE) checksum
	@echo 'Done: images are in $(IB_BIN_DIR) [SIMULATED ImageBuilder]'

# The real one installs and lists the result (opkg list-installed, apk
# list --manifest); the simulated one lists what package_install would
# install without installing: torwrt's lock runs it on a feed that has the
# index and not yet the package files.
_call_manifest: FORCE
	@rm -rf '$(TARGET_DIR)'
	@mkdir -p '$(TARGET_DIR)'
	@$(MAKE) package_reload >/dev/null
	@$(IB_TOOL) manifest --topdir '$(TOPDIR)' --profile '$(IB_PROFILE)' --packages '$(IB_PACKAGES)'

ifeq ($(CONFIG_USE_APK),)
package_reload: FORCE
	@if [ -d '$(PACKAGE_DIR)' ] && ( \
			[ ! -f '$(PACKAGE_DIR)/Packages' ] || \
			[ ! -f '$(PACKAGE_DIR)/Packages.gz' ] || \
			[ "$$(find '$(PACKAGE_DIR)' -newer '$(PACKAGE_DIR)/Packages.gz')" ] ); then \
		echo 'Package list missing or not up-to-date, generating it.' >&2; \
		$(MAKE) package_index; \
	else \
		echo 'opkg update: the feed indexes are read when packages are installed [SIMULATED opkg]' >&2; \
	fi
else
package_reload: FORCE
	@$(IB_TOOL) apk-initdb --topdir '$(TOPDIR)' --root '$(TARGET_DIR)'
	@if [ -d '$(PACKAGE_DIR)' ] && ( \
			[ ! -f '$(PACKAGE_DIR)/packages.adb' ] || \
			[ "$$(find '$(PACKAGE_DIR)' -newer '$(PACKAGE_DIR)/packages.adb')" ] ); then \
		echo 'Package list missing or not up-to-date, generating it.' >&2; \
		$(MAKE) package_index; \
	fi
endif

package_index: FORCE
	@echo >&2
	@echo 'Building package index... [SIMULATED ImageBuilder]' >&2
	@$(IB_TOOL) package-index --topdir '$(TOPDIR)'

package_install: FORCE
	@echo
	@echo 'Installing packages... [SIMULATED ImageBuilder]'
	@$(IB_TOOL) install --topdir '$(TOPDIR)' --profile '$(IB_PROFILE)' --packages '$(IB_PACKAGES)' --root '$(TARGET_DIR)'

prepare_rootfs: FORCE
	@echo
	@echo 'Finalizing root filesystem... [SIMULATED ImageBuilder]'
	@$(IB_TOOL) prepare-rootfs --topdir '$(TOPDIR)' --files '$(IB_FILES)' --disabled-services '$(IB_DISABLED_SERVICES)' --add-local-key '$(IB_ADD_LOCAL_KEY)' --root '$(TARGET_DIR)'

build_image: FORCE
	@echo
	@echo 'Building images... [SIMULATED ImageBuilder]'
	@rm -rf '$(IMG_TMP)'
	@mkdir -p '$(IMG_TMP)'
	@echo 'Building root filesystem with mksquashfs -comp xz [SIMULATED ImageBuilder]'
	@$(TOPDIR)/staging_dir/host/bin/mksquashfs4 '$(TARGET_DIR)' '$(IMG_TMP)/root.squashfs' -noappend -all-root -no-xattrs -comp xz -b 256k -no-progress -quiet
	@$(IB_TOOL) sysupgrade --topdir '$(TOPDIR)' --profile '$(IB_PROFILE)' --root '$(TARGET_DIR)' --rootfs '$(IMG_TMP)/root.squashfs' --bin-dir '$(IB_BIN_DIR)' --extra-name '$(IB_EXTRA_IMAGE_NAME)'
	@rm -rf '$(IMG_TMP)'

checksum: FORCE
	@echo
	@echo 'Calculating checksums... [SIMULATED ImageBuilder]'
	@$(IB_TOOL) checksum --bin-dir '$(IB_BIN_DIR)'

clean:
	rm -rf '$(TOPDIR)/build_dir/tmp' '$(TARGET_DIR)' '$(IMG_TMP)' '$(TOPDIR)/bin'
`

// ibFile is one file of the /builder tree.
type ibFile struct {
	path    string // relative to /builder; directories end in "/"
	mode    int64
	content []byte
}

// ibTree is the /builder tree of the simulated IB for t, without the tool.
func ibTree(t Target) ([]ibFile, error) {
	ti := t.info()
	info, err := json.MarshalIndent(ti, "", "  ")
	if err != nil {
		return nil, err
	}
	useAPK := ""
	if t.APK() {
		useAPK = "y"
	}
	mk := strings.NewReplacer(
		"@SDE@", fmt.Sprint(t.SourceDateEpoch),
		"@BOARD@", t.Target,
		"@SUBTARGET@", t.Subtarget,
		"@ARCH@", t.Arch,
		"@PROFILE@", t.IBProfile,
		"@USE_APK@", useAPK,
	).Replace(makefileTemplate)
	files := []ibFile{
		{path: "Makefile", mode: 0o644, content: []byte(mk)},
		{path: "README.SIMULATED", mode: 0o644, content: []byte(readme(t))},
		{path: ".config", mode: 0o644, content: []byte(dotConfig(t))},
		{path: ".ibsim-target.json", mode: 0o644, content: append(info, '\n')},
		{path: "packages/", mode: 0o755},
		{path: "tmp/", mode: 0o755},
		{path: "bin/", mode: 0o755},
		{path: t.kernelPath(), mode: 0o644, content: fakeKernel(t)},
	}
	if t.APK() {
		pem, err := FeedAPKKey().MarshalPEM()
		if err != nil {
			return nil, err
		}
		files = append(files,
			ibFile{path: "repositories", mode: 0o644, content: []byte(apkRepositories(t))},
			ibFile{path: "keys/" + FeedAPKKeyName, mode: 0o644, content: pem})
	} else {
		fk := FeedKey()
		files = append(files,
			ibFile{path: "repositories.conf", mode: 0o644, content: []byte(opkgRepositories(t))},
			ibFile{path: "keys/" + fk.Fingerprint.String(), mode: 0o644, content: fk.Marshal()})
	}
	return files, nil
}

// defaultFeeds are the release's feeds as the real IB lists them.
func (t Target) defaultFeeds() []string {
	base := "https://downloads.openwrt.org/releases/" + t.Version
	if !t.APK() {
		return []string{
			base + "/targets/" + t.TargetName() + "/packages",
			base + "/packages/" + t.Arch + "/base",
			base + "/packages/" + t.Arch + "/luci",
			base + "/packages/" + t.Arch + "/packages",
			base + "/packages/" + t.Arch + "/routing",
			base + "/packages/" + t.Arch + "/telephony",
		}
	}
	return []string{
		base + "/targets/" + t.TargetName() + "/packages/packages.adb",
		base + "/packages/" + t.Arch + "/base/packages.adb",
		base + "/targets/" + t.TargetName() + "/kmods/" + t.KernelVersion + "-1-" + t.vermagic() + "/packages.adb",
		base + "/packages/" + t.Arch + "/luci/packages.adb",
		base + "/packages/" + t.Arch + "/packages/packages.adb",
		base + "/packages/" + t.Arch + "/routing/packages.adb",
		base + "/packages/" + t.Arch + "/telephony/packages.adb",
	}
}

func opkgRepositories(t Target) string {
	names := []string{"openwrt_core", "openwrt_base", "openwrt_luci", "openwrt_packages", "openwrt_routing", "openwrt_telephony"}
	var b strings.Builder
	for i, u := range t.defaultFeeds() {
		fmt.Fprintf(&b, "src/gz %s %s\n", names[i], u)
	}
	fmt.Fprintf(&b, `## SIMULATED ImageBuilder: the feeds above are what a real %[1]s IB lists; the
## simulated one cannot reach them (no network). Bind-mount a repositories.conf
## with local feeds (src/gz NAME file:///path) over this file.
## This is the local package repository, do not remove!
src imagebuilder file:packages
option check_signature
`, t.Version)
	return b.String()
}

// apkRepositories is /builder/repositories: one packages.adb URL a line, as
// the real 25.12 IB lists them (apk's --repositories-file syntax).
func apkRepositories(t Target) string {
	var b strings.Builder
	for _, u := range t.defaultFeeds() {
		b.WriteString(u + "\n")
	}
	fmt.Fprintf(&b, `# SIMULATED ImageBuilder: the feeds above are what a real %[1]s IB lists; the
# simulated one cannot reach them (no network), and fails on them as apk does
# without network. Bind-mount a repositories file listing local indexes
# (/abs/path/packages.adb or file:///abs/path/packages.adb, one a line) over
# this file, and put the public key (*.pem) that signs them into keys/.
# packages/packages.adb is the IB's own local repository: it is indexed and
# signed with keys/local-private-key.pem when packages/ holds *.apk files.
`, t.Version)
	return b.String()
}

func dotConfig(t Target) string {
	apk := "# CONFIG_USE_APK is not set"
	if t.APK() {
		apk = "CONFIG_USE_APK=y"
	}
	return fmt.Sprintf(`# SIMULATED ImageBuilder configuration (torwrt test fixture)
CONFIG_TARGET_%[1]s=y
CONFIG_TARGET_%[1]s_%[2]s=y
CONFIG_TARGET_%[1]s_%[2]s_DEVICE_%[3]s=y
CONFIG_TARGET_BOARD="%[1]s"
CONFIG_TARGET_SUBTARGET="%[2]s"
CONFIG_TARGET_ARCH_PACKAGES="%[4]s"
CONFIG_VERSION_DIST="OpenWrt"
CONFIG_VERSION_NUMBER="%[5]s"
CONFIG_VERSION_CODE="%[6]s"
CONFIG_SIGNED_PACKAGES=y
%[7]s
CONFIG_TARGET_ROOTFS_SQUASHFS=y
CONFIG_TARGET_IMAGES_GZIP is not set
`, t.Target, t.Subtarget, t.IBProfile, t.Arch, t.Version, t.Revision, apk)
}

func readme(t Target) string {
	s := fmt.Sprintf(`SIMULATED OpenWrt ImageBuilder %s for %s (%s)
=====================================================================

This directory is a TEST FIXTURE of the torwrt project (internal/ibsim), not
the OpenWrt ImageBuilder. It accepts the same make targets and variables as a
real %s ImageBuilder:

  make info
  make manifest PROFILE=%s PACKAGES="..."
  make image PROFILE=%s PACKAGES="..." FILES=<dir> BIN_DIR=<dir> \
       EXTRA_IMAGE_NAME=<s> DISABLED_SERVICES="..."

and writes stock-format outputs (sysupgrade image with fwtool metadata and a
ucert signature chunk, <prefix>.manifest, profiles.json, sha256sums), plus a
file named SIMULATED. The kernel and every packaged program are placeholders:
the firmware does not boot.
`, t.Version, t.TargetName(), t.IBProfile, t.Version, t.IBProfile, t.IBProfile)
	if t.APK() {
		s += fmt.Sprintf(`
Package manager: apk-tools v3, as in OpenWrt 25.12 (.config: CONFIG_USE_APK=y).
  * repositories lists one packages.adb a line (the real %[1]s feeds, which
    need the network the simulation does not have). Replace it with local
    indexes: /abs/path/packages.adb or file:///abs/path/packages.adb.
  * Every index must be signed by a key in keys/*.pem (ECDSA P-256, PEM);
    %[2]s is the SIMULATED feed key (a public test key
    whose secret is public: it is not an OpenWrt key).
  * Packages are .apk v3 (ADB) files, checked against the index's identity
    hash before they are installed. The root filesystem gets the apk
    database: /lib/apk/db/installed, scripts.tar.gz, triggers,
    /etc/apk/world, /etc/apk/arch, /etc/apk/keys/, and
    /etc/apk/repositories.d/distfeeds.list (from base-files).
  * make manifest prints "name version" lines (apk list --manifest).
  * ADD_LOCAL_KEY=1 copies keys/local-public-key.pem into /etc/apk/keys.
  * The SOURCE_DATE_EPOCH baked into this simulated %[1]s is the sim's own;
    the real release's value is not known here.
`, t.Version, FeedAPKKeyName)
	}
	s += `
Like the real ImageBuilder it is NOT reproducible by itself:
  * mksquashfs runs without a fixed time (superblock and directory times
    come from the clock unless SOURCE_DATE_EPOCH is in make's environment);
`
	if t.APK() {
		s += `  * apk gives directories, symlinks and its database files the current
    time (it sets only regular files' times, from the package), and does
    not read SOURCE_DATE_EPOCH when it installs;
  * a fresh local apk key (keys/local-private-key.pem) is generated in each
    fresh container and signs packages/packages.adb (ECDSA: a fresh
    signature each time); with ADD_LOCAL_KEY=1 it lands in the image;
`
	} else {
		s += `  * opkg's Installed-Time is the current time (same exception);
`
	}
	s += `  * files from FILES keep their own mtimes and modes;
  * a fresh local signing key (key-build) is generated in each fresh
    container and signs the image.
`
	return s
}

// fakeKernel is the prebuilt "kernel" of the simulated IB: a labelled,
// deterministic, incompressible blob of a realistic size. It is not a Linux
// kernel.
func fakeKernel(t Target) []byte {
	head := fmt.Sprintf("SIMULATED KERNEL - not a Linux kernel. torwrt ImageBuilder test fixture, OpenWrt %s %s %s, Linux %s placeholder.\n",
		t.Version, t.Revision, t.TargetName(), t.KernelVersion)
	size := 1536*1024 + 4321
	seed := "SIMULATED kernel " + t.TargetName()
	if t.APK() {
		seed += " " + t.Version
	}
	return []byte(head + noise(seed, size-len(head)))
}
