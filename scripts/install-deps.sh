#!/usr/bin/env bash
# Installs the Debian packages torwrt's build and tests use. Idempotent;
# used by .ci/run, `make demo` and `make test`. Needs root (or sudo).
set -euo pipefail

pkgs=(
  podman runc uidmap            # container engine (run with --runtime runc)
  qemu-user-static              # run the MIPS daemon in tests
  squashfs-tools squashfs-tools-ng busybox-static make binutils  # simulated ImageBuilder, rootfs normalization, readers
  tor nftables iproute2         # overlay tests: torrc, firewall, leak tests
  signify-openbsd               # signature cross-checks
  softhsm2 opensc               # PKCS#11 HSM for release signing tests
  chromium                      # status page screenshots
  time xz-utils zstd ca-certificates git
)

"$(dirname "$0")/install-cosign.sh"   # cosign for the release signature tests
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Debian's tor package would start a system tor that contacts public relays
# as soon as it is installed. Nothing here may leave the machine, so no
# package may start a service while it installs (policy-rc.d), and tor's
# units are masked for good measure.
policy=/usr/sbin/policy-rc.d
had_policy=0
[ -e "$policy" ] && had_policy=1
if [ $had_policy = 0 ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
fi
$SUDO systemctl mask tor.service tor@default.service >/dev/null 2>&1 || true
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if [ $had_policy = 0 ]; then $SUDO rm -f "$policy"; fi
# Debian's tor package starts a system tor; tests run their own offline
# instances and do not use it.
$SUDO systemctl stop tor >/dev/null 2>&1 || $SUDO service tor stop >/dev/null 2>&1 || true
