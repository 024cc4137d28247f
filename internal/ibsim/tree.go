package ibsim

import (
	"encoding/json"
	"fmt"
	"strings"
)

// makefileTemplate is the simulated IB's Makefile. @NAME@ placeholders are
// filled per target by ibTree.
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
# Everything opkg, the image scripts, usign, ucert and fwtool do is done by
# staging_dir/host/bin/ibsim-tool.

TOPDIR:=$(CURDIR)
SHELL:=/bin/sh
export PATH:=$(TOPDIR)/staging_dir/host/bin:$(PATH)
export LC_ALL:=C

# Baked into the release. Like an older IB, the simulated one does not
# export it: opkg's Installed-Time and mksquashfs read the clock unless
# SOURCE_DATE_EPOCH is set in make's own environment (both honour it there).
IB_SOURCE_DATE_EPOCH:=@SDE@

BOARD:=@BOARD@
SUBTARGET:=@SUBTARGET@
ARCH_PACKAGES:=@ARCH@
DEFAULT_PROFILE:=@PROFILE@
IB_TOOL:=$(TOPDIR)/staging_dir/host/bin/ibsim-tool
BUILD_DIR:=$(TOPDIR)/build_dir/target-$(ARCH_PACKAGES)_musl
TARGET_DIR:=$(BUILD_DIR)/root-$(BOARD)
IMG_TMP:=$(BUILD_DIR)/tmp
BUILD_KEY:=$(TOPDIR)/key-build

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

.PHONY: help info manifest image clean FORCE
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

manifest:
	@$(IB_TOOL) notice
	@$(IB_TOOL) manifest --topdir '$(TOPDIR)' --profile '$(IB_PROFILE)' --packages '$(IB_PACKAGES)'

$(BUILD_KEY):
	@$(IB_TOOL) keygen --topdir '$(TOPDIR)'

image: $(BUILD_KEY)
	@$(IB_TOOL) notice
	@echo 'Building images for $(BOARD) - $(IB_PROFILE) [SIMULATED ImageBuilder]'
	@echo 'Packages: $(IB_PACKAGES)'
	@rm -rf '$(TARGET_DIR)' '$(IMG_TMP)'
	@mkdir -p '$(IMG_TMP)'
	@$(IB_TOOL) rootfs --topdir '$(TOPDIR)' --profile '$(IB_PROFILE)' --packages '$(IB_PACKAGES)' --files '$(IB_FILES)' --disabled-services '$(IB_DISABLED_SERVICES)' --root '$(TARGET_DIR)'
	@echo 'Building root filesystem with mksquashfs -comp xz [SIMULATED ImageBuilder]'
	@$(TOPDIR)/staging_dir/host/bin/mksquashfs4 '$(TARGET_DIR)' '$(IMG_TMP)/root.squashfs' -noappend -all-root -no-xattrs -comp xz -b 256k -no-progress -quiet
	@$(IB_TOOL) sysupgrade --topdir '$(TOPDIR)' --profile '$(IB_PROFILE)' --root '$(TARGET_DIR)' --rootfs '$(IMG_TMP)/root.squashfs' --bin-dir '$(IB_BIN_DIR)' --extra-name '$(IB_EXTRA_IMAGE_NAME)'
	@rm -rf '$(IMG_TMP)'
	@echo 'Done: images are in $(IB_BIN_DIR) [SIMULATED ImageBuilder]'

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
	mk := strings.NewReplacer(
		"@SDE@", fmt.Sprint(SourceDateEpoch),
		"@BOARD@", t.Target,
		"@SUBTARGET@", t.Subtarget,
		"@ARCH@", t.Arch,
		"@PROFILE@", t.IBProfile,
	).Replace(makefileTemplate)
	repos := fmt.Sprintf(`src/gz openwrt_core https://downloads.openwrt.org/releases/%[1]s/targets/%[2]s/packages
src/gz openwrt_base https://downloads.openwrt.org/releases/%[1]s/packages/%[3]s/base
src/gz openwrt_luci https://downloads.openwrt.org/releases/%[1]s/packages/%[3]s/luci
src/gz openwrt_packages https://downloads.openwrt.org/releases/%[1]s/packages/%[3]s/packages
src/gz openwrt_routing https://downloads.openwrt.org/releases/%[1]s/packages/%[3]s/routing
src/gz openwrt_telephony https://downloads.openwrt.org/releases/%[1]s/packages/%[3]s/telephony
## SIMULATED ImageBuilder: the feeds above are what a real %[1]s IB lists; the
## simulated one cannot reach them (no network). Bind-mount a repositories.conf
## with local feeds (src/gz NAME file:///path) over this file.
## This is the local package repository, do not remove!
src imagebuilder file:packages
option check_signature
`, Version, t.TargetName(), t.Arch)
	readme := fmt.Sprintf(`SIMULATED OpenWrt ImageBuilder %s for %s (%s)
=====================================================================

This directory is a TEST FIXTURE of the torwrt project (internal/ibsim), not
the OpenWrt ImageBuilder. It accepts the same make targets and variables as a
real 24.10 ImageBuilder:

  make info
  make manifest PROFILE=%s PACKAGES="..."
  make image PROFILE=%s PACKAGES="..." FILES=<dir> BIN_DIR=<dir> \
       EXTRA_IMAGE_NAME=<s> DISABLED_SERVICES="..."

and writes stock-format outputs (sysupgrade image with fwtool metadata and a
ucert signature chunk, <prefix>.manifest, profiles.json, sha256sums), plus a
file named SIMULATED. The kernel and every packaged program are placeholders:
the firmware does not boot.

Like the real ImageBuilder it is NOT reproducible by itself:
  * mksquashfs runs without a fixed time (superblock and directory times
    come from the clock unless SOURCE_DATE_EPOCH is in make's environment);
  * opkg's Installed-Time is the current time (same exception);
  * files from FILES keep their own mtimes and modes;
  * a fresh local signing key (key-build) is generated in each fresh
    container and signs the image.
`, Version, t.TargetName(), t.IBProfile, t.IBProfile, t.IBProfile)
	config := fmt.Sprintf(`# SIMULATED ImageBuilder configuration (torwrt test fixture)
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
CONFIG_TARGET_ROOTFS_SQUASHFS=y
CONFIG_TARGET_IMAGES_GZIP is not set
`, t.Target, t.Subtarget, t.IBProfile, t.Arch, Version, Revision)
	fk := FeedKey()
	files := []ibFile{
		{path: "Makefile", mode: 0o644, content: []byte(mk)},
		{path: "README.SIMULATED", mode: 0o644, content: []byte(readme)},
		{path: "repositories.conf", mode: 0o644, content: []byte(repos)},
		{path: ".config", mode: 0o644, content: []byte(config)},
		{path: ".ibsim-target.json", mode: 0o644, content: append(info, '\n')},
		{path: "keys/" + fk.Fingerprint.String(), mode: 0o644, content: fk.Marshal()},
		{path: "packages/", mode: 0o755},
		{path: "tmp/", mode: 0o755},
		{path: "bin/", mode: 0o755},
		{path: t.kernelPath(), mode: 0o644, content: fakeKernel(t)},
	}
	return files, nil
}

// fakeKernel is the prebuilt "kernel" of the simulated IB: a labelled,
// deterministic, incompressible blob of a realistic size. It is not a Linux
// kernel.
func fakeKernel(t Target) []byte {
	head := fmt.Sprintf("SIMULATED KERNEL - not a Linux kernel. torwrt ImageBuilder test fixture, OpenWrt %s %s %s, Linux %s placeholder.\n",
		Version, Revision, t.TargetName(), KernelVersion)
	size := 1536*1024 + 4321
	return []byte(head + noise("SIMULATED kernel "+t.TargetName(), size-len(head)))
}
