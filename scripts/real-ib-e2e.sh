#!/usr/bin/env bash
# The real-ImageBuilder flow, end to end, as README.md shows it, on the real
# LEDE 17.01.4 ImageBuilder fixture (../shared/fixtures/real-ib):
#
#   1. sign the fixture's sha256sums with a throwaway key (upstream publishes
#      none for it) and `imgbuild ib import` it;
#   2. `imgbuild lock` the test profile gl-mt300a-lede17 and require the lock
#      to equal the committed one (same archive + userland lock => same
#      image digest, on any machine);
#   3. `imgbuild build --engine podman` twice, from different working
#      directories with umask 022 / 002, TZ UTC / Asia/Tokyo and different
#      TMPDIRs, and require byte-identical images and signatures;
#   4. check the image with signify-openbsd, imgbuild verify, and the stock
#      fwtool/ucert rules (imgbuild verify implements them), and the daemon
#      inside it: a static MIPS32 little-endian binary that runs under
#      qemu-mipsel-static.
#
# Podman runs on an EMPTY store of its own (CONTAINERS_STORAGE_CONF), and
# the cache lives under a dot-directory, as on a fresh machine. A missing
# tool fails the run. Needs root (podman with runc).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export GOTOOLCHAIN=local
FIXTURE=${FIXTURE:-$root/../shared/fixtures/real-ib}
ARCHIVE=$FIXTURE/lede-17.01.4-ramips-mt7620-imagebuilder.tar.zst
PROFILE=gl-mt300a-lede17

for tool in podman runc signify-openbsd qemu-mipsel-static unsquashfs readelf cmp; do
  command -v "$tool" >/dev/null || { echo "real-ib-e2e: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
[ -f "$ARCHIVE" ] || { echo "real-ib-e2e: fixture $ARCHIVE is missing" >&2; exit 1; }

work=$(mktemp -d /tmp/torwrt-real-ib.XXXXXX)
cleanup() {
  # The overlay driver leaves mounts behind; podman takes its own store
  # apart (only ever the one made here, never the machine's).
  if [ "${CONTAINERS_STORAGE_CONF:-}" = "$work/podman/storage.conf" ]; then
    podman --runtime runc system reset --force >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
. "$root/scripts/lib/fresh-podman.sh"
fresh_podman_store "$work/podman"

step() { printf '\n== %s\n' "$*"; }
secs() { date +%s.%N; }
since() { echo "$(date +%s.%N) - $1" | bc | xargs printf '%.1f'; }

go build -trimpath -o "$work/imgbuild" ./cmd/imgbuild
ib=$work/imgbuild
cache=$work/home/.cache/torwrt

step "throwaway keys: one signs the fixture's sha256sums, one is the release key"
mkdir -p "$work/keys"
"$ib" keygen -o "$work/keys/sums" -comment "throwaway key: sha256sums of the real-ib fixture" >/dev/null
"$ib" keygen -o "$work/keys/release" -comment "throwaway release key (real-ib e2e)" >/dev/null
keydir() { # $1 = .pub file, $2 = directory: usign key dirs name files by fingerprint
  mkdir -p "$2"
  cp "$1" "$2/$(sed -n 2p "$1" | base64 -d | dd bs=1 skip=2 count=8 2>/dev/null | od -An -tx1 | tr -d ' \n')"
}
keydir "$work/keys/sums.pub" "$work/keys/sums.d"
keydir "$work/keys/release.pub" "$work/keys/release.d"
mkdir -p "$work/keys/release-pub" && cp "$work/keys/release.pub" "$work/keys/release-pub/"
sed -n "s/  / */p" "$FIXTURE/SHA256SUMS" > "$work/sha256sums"
signify-openbsd -S -s "$work/keys/sums.sec" -m "$work/sha256sums" -x "$work/sha256sums.sig"

step "imgbuild ib import (empty cache under a dot-directory)"
t=$(secs)
"$ib" ib import "$ARCHIVE" --sha256sums "$work/sha256sums" --sig "$work/sha256sums.sig" \
  --keys "$work/keys/sums.d" --cache "$cache" --json > "$work/import.json"
import_s=$(since "$t")
digest=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["digest"])' "$work/import.json")
echo "imported as $digest in ${import_s}s"

step "imgbuild lock --profile $PROFILE --engine podman (empty podman store)"
cp "profiles/$PROFILE/lock.json" "$work/lock.committed.json"
t=$(secs)
"$ib" lock --profile "$PROFILE" --engine podman --cache "$cache" -o "$work/lock.json"
lock_s=$(since "$t")
if ! cmp -s "$work/lock.json" "$work/lock.committed.json"; then
  diff -u "$work/lock.committed.json" "$work/lock.json" || true
  echo "real-ib-e2e: the lock made here differs from profiles/$PROFILE/lock.json" >&2
  exit 1
fi
echo "lock equals the committed one (${lock_s}s)"

step "a real-world failure names its cause: a profile this ImageBuilder does not have"
mkdir -p "$work/alt/profiles/$PROFILE"
sed 's/^ib_profile: .*/ib_profile: glinet_gl-ar150/' "profiles/$PROFILE/profile.yaml" > "$work/alt/profiles/$PROFILE/profile.yaml"
if "$ib" lock --root "$work/alt" --profile "$PROFILE" --engine podman --cache "$cache" -o "$work/alt/lock.json" 2> "$work/alt/err"; then
  echo "real-ib-e2e: locking an unknown ImageBuilder profile succeeded" >&2
  exit 1
fi
grep -F 'this ImageBuilder has no profile "glinet_gl-ar150"' "$work/alt/err"

build() { # $1 = name, $2 = umask, $3 = TZ
  mkdir -p "$work/$1/cwd" "$work/$1/tmp"
  (
    cd "$work/$1/cwd"
    umask "$2"
    export TZ=$3 TMPDIR=$work/$1/tmp
    "$ib" build --root "$root" --profile "$PROFILE" --engine podman \
      --key "$work/keys/release.sec" --release-keys "$work/keys/release-pub" \
      --cache "$cache" --out "$work/$1/dist"
  )
}
step "imgbuild build #1 (umask 022, TZ=UTC)"
t=$(secs); build a 022 UTC; build_a_s=$(since "$t")
step "imgbuild build #2 (umask 002, TZ=Asia/Tokyo, another TMPDIR and working directory)"
t=$(secs); build b 002 Asia/Tokyo; build_b_s=$(since "$t")

img_a=$(ls "$work"/a/dist/$PROFILE/*-sysupgrade.bin)
img_b=$(ls "$work"/b/dist/$PROFILE/*-sysupgrade.bin)
cmp "$img_a" "$img_b"
cmp "$img_a.sig" "$img_b.sig"
echo "byte-identical: $(basename "$img_a") ($(stat -c %s "$img_a") bytes, sha256 $(sha256sum "$img_a" | cut -c1-16)…)"

step "signatures: signify-openbsd and imgbuild verify (fwtool chunks, ucert, board)"
signify-openbsd -V -p "$work/keys/release.pub" -x "$img_a.sig" -m "$img_a"
"$ib" verify --keys "$work/keys/release.d" --board gl-mt300a "$img_a"
if "$ib" verify --keys "$work/keys/release.d" --board glinet,gl-ar150 "$img_a" >/dev/null 2>&1; then
  echo "real-ib-e2e: the image was accepted for another board" >&2
  exit 1
fi

step "the daemon inside the image: static MIPS32 little-endian, runs under qemu-mipsel-static"
off=$(grep -obUaP 'hsqs' "$img_a" | head -1 | cut -d: -f1)
dd if="$img_a" of="$work/rootfs.sq" iflag=skip_bytes skip="$off" status=none
unsquashfs -n -d "$work/rootfs" "$work/rootfs.sq" usr/sbin/torwrt-verify >/dev/null
daemon=$work/rootfs/usr/sbin/torwrt-verify
readelf -h "$daemon" | grep -q "little endian" || { echo "daemon is not little-endian" >&2; exit 1; }
readelf -h "$daemon" | grep -q "MIPS" || { echo "daemon is not MIPS" >&2; exit 1; }
if readelf -l "$daemon" | grep -q INTERP; then echo "daemon is dynamically linked" >&2; exit 1; fi
qemu-mipsel-static "$daemon" --version

printf '\nreal-ib-e2e: OK  import %ss, lock %ss, build %ss and %ss, image %s bytes\n' \
  "$import_s" "$lock_s" "$build_a_s" "$build_b_s" "$(stat -c %s "$img_a")"
