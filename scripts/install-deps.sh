#!/usr/bin/env bash
# Installs the packages torwrt's build and tests use, on Debian (12, the
# project's own CI machine) and Ubuntu (24.04, GitHub's hosted runners).
# Idempotent; used by .ci/run, `make demo` and `make test`. Needs root (or
# sudo).
#
# Ubuntu ships Chromium only as a snap, which a runner cannot install, so
# there the script installs no browser and uses one already on the machine
# (GitHub's images have google-chrome and chromium); it stops when there is
# none. If only google-chrome is there it links /usr/local/bin/chromium to it,
# the name the status page's browser tests look for.
#
# Environment (for ci/lint's test of the OS branching):
#   TORWRT_OS_RELEASE   os-release file to read (default /etc/os-release)
#   TORWRT_DEPS_DRY_RUN =1: print os=, packages= and browser= and change
#                       nothing (no apt, no cosign, no link)
set -euo pipefail

os_release=${TORWRT_OS_RELEASE:-/etc/os-release}
dry_run=${TORWRT_DEPS_DRY_RUN:-0}

[ -r "$os_release" ] || { echo "install-deps: cannot read $os_release" >&2; exit 1; }
# shellcheck source=/dev/null
os_id=$(. "$os_release" && printf '%s' "${ID:-}")
# shellcheck source=/dev/null
os_like=$(. "$os_release" && printf '%s' "${ID_LIKE:-}")
case " $os_id $os_like " in
  *" ubuntu "*) os=ubuntu ;;
  *" debian "*) os=debian ;;
  *) echo "install-deps: unsupported OS \"$os_id\" in $os_release: Debian 12 and Ubuntu 24.04 are supported" >&2; exit 1 ;;
esac

pkgs=(
  podman runc uidmap            # container engine (run with --runtime runc)
  qemu-user-static              # run the MIPS daemon in tests
  squashfs-tools squashfs-tools-ng busybox-static make binutils  # simulated ImageBuilder, rootfs normalization, readers
  tor nftables iproute2         # overlay tests: torrc, firewall, leak tests
  signify-openbsd               # signature cross-checks
  softhsm2 opensc               # PKCS#11 HSM for release signing tests
  shellcheck                    # actionlint's script checks (ci/lint)
  time xz-utils zstd ca-certificates git
)

# The browser for the status page screenshots: Debian's package, or on
# Ubuntu whatever Chrome or Chromium the machine already has.
browser=""
link_chromium=""
if [ "$os" = debian ]; then
  pkgs+=(chromium)
else
  for b in chromium chromium-browser google-chrome google-chrome-stable; do
    if p=$(command -v "$b"); then browser=$p; break; fi
  done
  if [ -z "$browser" ]; then
    echo "install-deps: no Chrome or Chromium on this Ubuntu machine (Ubuntu's chromium is a snap);" \
      "install google-chrome-stable from Google's .deb (GitHub's runners have it)" >&2
    exit 1
  fi
  case "${browser##*/}" in
    chromium | chromium-browser) ;;
    *) link_chromium=/usr/local/bin/chromium ;;
  esac
fi

if [ "$dry_run" = 1 ]; then
  printf 'os=%s\n' "$os"
  printf 'packages=%s\n' "${pkgs[*]}"
  printf 'browser=%s\n' "$browser"
  printf 'link=%s\n' "$link_chromium"
  exit 0
fi

"$(dirname "$0")/install-cosign.sh"   # cosign for the release signature tests
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
if [ -n "$link_chromium" ]; then
  echo "linking $link_chromium -> $browser" >&2
  $SUDO ln -sf "$browser" "$link_chromium"
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
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
