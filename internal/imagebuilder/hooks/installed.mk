# torwrt: the makefile `make image` reads instead of the ImageBuilder's own
# when a build caches the installed package tree (make -f THIS image ...).
# It includes the ImageBuilder's Makefile unchanged and adds one of two
# modes, chosen by TORWRT_INSTALLED in the environment torwrt sets:
#
#   save     after package_install (and LEDE's package_remove), before the
#            first step that reads FILES, the target root is archived to
#            $TORWRT_INSTALLED_DIR/installed.tar;
#   restore  package_install unpacks that archive instead of running the
#            package manager; package_remove is already in it; opkg's
#            package index is not rebuilt (nothing after package_install
#            reads it; apk's is, the 25.12 image steps read the feed list).
#
# The tree package_install leaves depends only on the ImageBuilder, the
# package set and the locked package files, never on FILES, so a build
# whose overlay changed restores it and runs the ImageBuilder's own steps
# from FILES on: copy_files/prepare_rootfs, the init script enabling,
# build_image, checksum. torwrt's step cache keys the archive by exactly
# those inputs; a build with --no-step-cache never reads this file.
#
# The archive keeps every mode as package_install left it. Unpacking runs
# under umask 000: an ImageBuilder run by a user other than root (the
# build images here run as one) gets the archive's modes only so, since
# busybox tar ignores -p for such a user (a sticky /tmp came back 1755).
#
# The ImageBuilder runs each step as a sub-make ($(MAKE) package_install),
# so MAKE names this file for them. Recipes see only constant text and the
# ImageBuilder's own variables.
torwrt_installed_mk := $(abspath $(firstword $(MAKEFILE_LIST)))
include Makefile
MAKE := $(MAKE) -f $(torwrt_installed_mk)

ifeq ($(TORWRT_INSTALLED),save)
prepare_files copy_files package_postinst prepare_rootfs: torwrt-save-installed

torwrt-save-installed: FORCE
	@if [ ! -e "$$TORWRT_INSTALLED_DIR/installed.tar" ]; then \
		echo "torwrt: saving the installed package tree for the step cache" >&2; \
		tar -C "$(TARGET_DIR)" -cf "$$TORWRT_INSTALLED_DIR/installed.tar.tmp" . && \
		mv "$$TORWRT_INSTALLED_DIR/installed.tar.tmp" "$$TORWRT_INSTALLED_DIR/installed.tar"; \
	fi
endif

ifeq ($(TORWRT_INSTALLED),restore)
package_install: FORCE
	@echo
	@echo "Installing packages... (torwrt: restoring the installed package tree from the step cache)"
	rm -rf "$(TARGET_DIR)"
	mkdir -p "$(TARGET_DIR)"
	umask 000 && tar -C "$(TARGET_DIR)" -xpf "$$TORWRT_INSTALLED_DIR/installed.tar"

package_remove: FORCE
	@echo "torwrt: package_remove is in the restored tree" >&2

ifeq ($(CONFIG_USE_APK),)
package_index: FORCE
	@echo "torwrt: package index not rebuilt; the installed tree is restored" >&2
endif
endif
