#!/usr/bin/env bash
# The real-ImageBuilder flow, end to end, on the real LEDE 17.01.4
# ImageBuilder fixture (../shared/fixtures/real-ib):
#
#   1. README.md's real-ImageBuilder block, run verbatim: throwaway keys,
#      a signed sha256sums, `imgbuild ib import`, `imgbuild lock` (which must
#      reproduce the committed lock: same archive + userland lock => same
#      image digest on any machine), `imgbuild build --engine podman`,
#      signify-openbsd -V and imgbuild verify (the stock fwtool/ucert rules);
#   2. a profile naming a board this ImageBuilder lacks fails with its cause;
#   3. a second build from another working directory with umask 002,
#      TZ=Asia/Tokyo and another TMPDIR must give the same bytes;
#   4. one changed overlay file (--country SE): a build that restores the
#      installed package tree from the step cache (make image from FILES
#      on) gives the same bytes, every file in dist/, as a --no-step-cache
#      build of the same inputs;
#   5. a second device of the same ImageBuilder (gl-mt300n-lede17, a
#      profile directory and nothing else): its committed lock is
#      reproduced and it builds beside the first in one `build`;
#   6. the image is refused for another board, and the daemon inside it is a
#      static MIPS32 little-endian binary that runs under qemu-mipsel-static.
#
# Podman runs on an EMPTY store of its own (CONTAINERS_STORAGE_CONF) and
# imgbuild's cache starts empty under a dot-directory (a fresh HOME), as on
# a fresh machine. A missing tool fails the run. Needs root (podman, runc).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export GOTOOLCHAIN=local
PROFILE=gl-mt300a-lede17

for tool in podman runc signify-openbsd qemu-mipsel-static unsquashfs readelf cmp; do
  command -v "$tool" >/dev/null || { echo "real-ib-e2e: $tool is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done
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
. "$root/scripts/lib/common.sh"
FIXTURE=$(real_ib_dir "$root")
ARCHIVE=$FIXTURE/lede-17.01.4-ramips-mt7620-imagebuilder.tar.zst
[ -f "$ARCHIVE" ] || { echo "real-ib-e2e: fixture $ARCHIVE is missing" >&2; exit 1; }
fresh_podman_store "$work/podman"

step() { printf '\n== %s\n' "$*"; }
secs() { date +%s.%N; }
since() { echo "$(date +%s.%N) - $1" | bc | xargs printf '%.1f'; }

# README's real-ImageBuilder block, verbatim, in this checkout, with a fresh
# HOME (so imgbuild's default cache ~/.cache/torwrt starts empty under a
# dot-directory) and the Go caches of the caller (a cold Go cache is
# bench-build's business, not this test's).
export GOCACHE=$(go env GOCACHE) GOMODCACHE=$(go env GOMODCACHE) GOPATH=$(go env GOPATH)
export HOME=$work/home
mkdir -p "$HOME"
cache=$HOME/.cache/torwrt
rm -rf .cache/real-ib dist/$PROFILE
cp "profiles/$PROFILE/lock.json" "$work/lock.committed.json"
sed -n '/<!-- real-ib:begin -->/,/<!-- real-ib:end -->/p' README.md | sed '/^<!--/d; /^```/d' > "$work/readme-flow.sh"
grep -q "imgbuild ib import" "$work/readme-flow.sh" || { echo "real-ib-e2e: no real-ib block in README.md" >&2; exit 1; }
step "README.md's real-ImageBuilder flow, verbatim"
t=$(secs)
F=$FIXTURE bash -euo pipefail -x "$work/readme-flow.sh"
readme_s=$(since "$t")
ib=$root/bin/imgbuild
if ! cmp -s "profiles/$PROFILE/lock.json" "$work/lock.committed.json"; then
  diff -u "$work/lock.committed.json" "profiles/$PROFILE/lock.json" || true
  cp "$work/lock.committed.json" "profiles/$PROFILE/lock.json"
  echo "real-ib-e2e: imgbuild lock made a lock that differs from the committed one" >&2
  exit 1
fi
echo "README flow: ${readme_s}s; the lock it made equals the committed one"

step "a real-world failure names its cause: a profile this ImageBuilder does not have"
mkdir -p "$work/alt/profiles/$PROFILE"
sed 's/^ib_profile: .*/ib_profile: glinet_gl-ar150/' "profiles/$PROFILE/profile.yaml" > "$work/alt/profiles/$PROFILE/profile.yaml"
if "$ib" lock --root "$work/alt" --profile "$PROFILE" --engine podman --cache "$cache" -o "$work/alt/lock.json" 2> "$work/alt/err"; then
  echo "real-ib-e2e: locking an unknown ImageBuilder profile succeeded" >&2
  exit 1
fi
grep -F 'this ImageBuilder has no profile "glinet_gl-ar150"' "$work/alt/err"

build() { # $1 = name, $2 = umask, $3 = TZ, more build flags follow
  local name=$1 mask=$2 tz=$3
  shift 3
  mkdir -p "$work/$name/cwd" "$work/$name/tmp"
  (
    cd "$work/$name/cwd"
    umask "$mask"
    export TZ=$tz TMPDIR=$work/$name/tmp
    "$ib" build --root "$root" --profile "$PROFILE" --engine podman \
      --key "$root/.cache/real-ib/release.sec" --release-keys "$root/.cache/real-ib/release.pub" \
      --out "$work/$name/dist" "$@"
  ) 2> >(tee "$work/$name.log" >&2)
}
step "imgbuild build #2 (umask 002, TZ=Asia/Tokyo, another TMPDIR and working directory)"
# --no-step-cache: this build runs make image again rather than replaying
# the first build's result from the step cache.
t=$(secs); build b 002 Asia/Tokyo --no-step-cache; build_b_s=$(since "$t")

img_a=$(ls "$root"/dist/$PROFILE/*-sysupgrade.bin)
img_b=$(ls "$work"/b/dist/$PROFILE/*-sysupgrade.bin)
cmp "$img_a" "$img_b"
cmp "$img_a.sig" "$img_b.sig"
echo "byte-identical: $(basename "$img_a") ($(stat -c %s "$img_a") bytes, sha256 $(sha256sum "$img_a" | cut -c1-16)…)"

step "one changed overlay file: the installed package tree from the step cache, or make image in full, give the same bytes"
t=$(secs); build c 022 UTC --country SE; build_c_s=$(since "$t")
grep -q "installed package tree is replayed from the step cache" "$work/c.log" ||
  { echo "real-ib-e2e: the build with a changed overlay did not restore the installed package tree" >&2; exit 1; }
t=$(secs); build d 077 America/Denver --country SE --no-step-cache; build_d_s=$(since "$t")
n=0
for f in "$work/d/dist/$PROFILE"/*; do
  cmp "$f" "$work/c/dist/$PROFILE/${f##*/}"
  n=$((n + 1))
done
[ "$n" -ge 10 ] || { echo "real-ib-e2e: only $n files in dist/$PROFILE" >&2; exit 1; }
if cmp -s "$img_a" "$(ls "$work"/c/dist/$PROFILE/*-sysupgrade.bin)"; then
  echo "real-ib-e2e: --country SE made the same image as the brand's country" >&2
  exit 1
fi
echo "changed overlay: ${build_c_s}s restoring the installed tree, ${build_d_s}s in full; all $n files in dist/$PROFILE identical"

step "a second device of this ImageBuilder, added as data only (profiles/gl-mt300n-lede17): its lock is reproduced, and it builds side by side with the first"
P2=gl-mt300n-lede17
t=$(secs)
"$ib" lock --profile "$P2" --engine podman --cache "$cache" -o "$work/lock-p2.json"
cmp "$work/lock-p2.json" "profiles/$P2/lock.json"
build e 022 UTC --profile "$P2" --jobs 2
"$ib" verify --keys "$root/.cache/real-ib/release.pub" --board gl-mt300n "$work/e/dist/$P2/"*-sysupgrade.bin >/dev/null
cmp "$img_a" "$(ls "$work/e/dist/$PROFILE/"*-sysupgrade.bin)"
echo "second device: lock reproduced, built beside $PROFILE in $(since "$t")s (with its lock); $PROFILE's image unchanged"

step "the image is refused for another board"
if "$ib" verify --keys "$root/.cache/real-ib/release.pub" --board glinet,gl-ar150 "$img_a" >/dev/null 2>&1; then
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

printf '\nreal-ib-e2e: OK  README flow (import, lock, build, verify) %ss, second build %ss, changed overlay %ss (in full %ss), image %s bytes\n' \
  "$readme_s" "$build_b_s" "$build_c_s" "$build_d_s" "$(stat -c %s "$img_a")"
