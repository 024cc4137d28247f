#!/usr/bin/env bash
# Benchmarks imgbuild's step cache and parallel builds, and imgbuild
# against the bare ImageBuilder, side by side in one run on one machine, on
# the REAL LEDE 17.01.4 ImageBuilder fixture in podman:
#
#   0. imgbuild ib import + lock of both profiles (reported, not measured
#      against a target)
#   1. cold: a build of PROFILE on an empty podman store, with empty Go,
#      step and package caches (the imported image is in the image cache)
#   2. warm no-op: the same again (target <= 2 s)
#   3. one changed overlay file (--country SE: the radios' config): the
#      installed package tree is replayed, make image runs from FILES on
#      (target <= 0.3x cold); and the same with --no-step-cache, which must
#      give the same bytes
#   4. PROFILE2 (another device of the same ImageBuilder) cold, then both
#      cold side by side in one `build --profile A --profile B` (target <=
#      1.2x the slower single cold build)
#   5. bare `make image` of the same image (by ID) in the same container
#      setup (podman --runtime runc, --network none, every capability
#      dropped), with the same PROFILE, PACKAGES and FILES overlay, RUNS
#      times, against a warm --no-step-cache rebuild
#
# Ratios, not timed tests: the numbers move with the machine, the ratios
# say what the cache and imgbuild cost. Every dist file of the builds that
# must agree is compared. Needs root (podman).
#
# MODE=simulated (make bench-build-sim) instead measures the step cache and
# --all against the SIMULATED ImageBuilder (podman, no network), side by
# side in one run: a cold build of each default profile, a warm no-op
# rebuild, a rebuild with one changed overlay file (--country: the radios'
# config), and --all against the slowest single profile.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export GOTOOLCHAIN=local

if [ "${MODE:-}" = simulated ]; then
  tmp=$(mktemp -d /tmp/torwrt-bench-sim.XXXXXX)
  trap 'rm -rf "$tmp"' EXIT
  now() { date +%s.%N; }
  ib=$tmp/imgbuild
  go build -trimpath -o "$ib" ./cmd/imgbuild
  "$ib" keygen -o "$tmp/k" >/dev/null
  # $1 = label, $2 = cache, $3 = out, rest = build flags; prints seconds.
  run() {
    local label=$1 cache=$2 out=$3; shift 3
    local s e
    s=$(now)
    "$ib" build --simulated-ib --engine podman --key "$tmp/k.sec" --release-keys "$tmp/k.pub" \
      --cache "$cache" --out "$out" "$@" >"$tmp/$label.out" 2>"$tmp/$label.log"
    e=$(now)
    echo "$e - $s" | bc
  }
  steps() { sed -n 's/.*built in [^ ]* (\(.*\))$/\1/p' "$tmp/$1.log" | head -1; }
  cold_ar=$(run cold-ar150 "$tmp/c1" "$tmp/d1" --profile gl-ar150)
  cold_mt=$(run cold-mt300a "$tmp/c2" "$tmp/d2" --profile gl-mt300a)
  warm=$(run warm "$tmp/c1" "$tmp/d3" --profile gl-ar150)
  overlay=$(run overlay "$tmp/c1" "$tmp/d4" --profile gl-ar150 --country SE)
  all=$(run all "$tmp/c3" "$tmp/d5" --all)
  slowest=$(printf '%s\n%s\n' "$cold_ar" "$cold_mt" | sort -g | tail -1)
  printf 'SIMULATED ImageBuilder, podman %s, %s CPUs (times include the simulated IB setup)\n' "$(podman --version | cut -d' ' -f3)" "$(nproc)"
  printf 'cold gl-ar150                 %6.2fs  [%s]\n' "$cold_ar" "$(steps cold-ar150)"
  printf 'cold gl-mt300a                %6.2fs  [%s]\n' "$cold_mt" "$(steps cold-mt300a)"
  printf 'warm no-op gl-ar150           %6.2fs  (target <= 2s)  [%s]\n' "$warm" "$(steps warm)"
  printf 'one changed overlay file      %6.2fs  = %.2fx cold (target <= 0.3x)  [%s]\n' "$overlay" "$(echo "scale=3; $overlay / $cold_ar" | bc)" "$(steps overlay)"
  printf -- '--all, cold                   %6.2fs  = %.2fx the slowest single profile (target <= 1.2x)\n' "$all" "$(echo "scale=3; $all / $slowest" | bc)"
  cmp -s "$tmp/d1/gl-ar150/sha256sums" "$tmp/d3/gl-ar150/sha256sums" && echo "warm rebuild: dist/gl-ar150 sha256sums identical to the cold build's"
  cmp -s "$tmp"/d1/gl-ar150/*-sysupgrade.bin "$tmp"/d5/gl-ar150/*-sysupgrade.bin && echo "--all: the gl-ar150 image is identical to the single build's (its provenance records the other command line)"
  exit 0
fi
PROFILE=${PROFILE:-gl-mt300a-lede17}
# A second device of the same real ImageBuilder, for two profiles side by side.
PROFILE2=${PROFILE2:-gl-mt300n-lede17}
RUNS=${RUNS:-3}
for tool in podman runc signify-openbsd bc python3; do
  command -v "$tool" >/dev/null || { echo "bench-build: $tool is missing" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/torwrt-bench.XXXXXX)
cleanup() {
  if [ "${CONTAINERS_STORAGE_CONF:-}" = "$tmp/podman/storage.conf" ]; then
    podman --runtime runc system reset --force >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
. scripts/lib/common.sh
FIXTURE=$(real_ib_dir "$root")
ARCHIVE=$FIXTURE/lede-17.01.4-ramips-mt7620-imagebuilder.tar.zst
fresh_podman_store "$tmp/podman"

now() { date +%s.%N; }
ib=$tmp/imgbuild
go build -trimpath -o "$ib" ./cmd/imgbuild
"$ib" keygen -o "$tmp/k" >/dev/null
"$ib" keygen -o "$tmp/sums" >/dev/null
mkdir -p "$tmp/pub" "$tmp/sumskeys" && cp "$tmp/k.pub" "$tmp/pub/"
cp "$tmp/sums.pub" "$tmp/sumskeys/$(sed -n 2p "$tmp/sums.pub" | base64 -d | dd bs=1 skip=2 count=8 2>/dev/null | od -An -tx1 | tr -d ' \n')"
sed -n "s/  / */p" "$FIXTURE/SHA256SUMS" > "$tmp/sha256sums"
signify-openbsd -S -s "$tmp/sums.sec" -m "$tmp/sha256sums" -x "$tmp/sha256sums.sig"
cache=$tmp/home/.cache/torwrt

t0=$(now)
"$ib" ib import "$ARCHIVE" --sha256sums "$tmp/sha256sums" --sig "$tmp/sha256sums.sig" --keys "$tmp/sumskeys" --cache "$cache" >/dev/null 2>"$tmp/import.log"
t1=$(now)
for p in "$PROFILE" "$PROFILE2"; do
  "$ib" lock --profile "$p" --engine podman --cache "$cache" -o "$tmp/lock.json" >/dev/null 2>"$tmp/lock.log"
  cmp -s "$tmp/lock.json" "profiles/$p/lock.json" || { echo "bench-build: the lock of $p differs from the committed one" >&2; exit 1; }
done
t2=$(now)
import_s=$(echo "$t1 - $t0" | bc); lock_s=$(echo "($t2 - $t1) / 2" | bc -l)

# cold NAME: from here on, NAME's builds start as on a fresh machine: an
# empty podman store, an empty Go build cache, and an imgbuild cache that
# holds only the imported ImageBuilder image (hard links to it: no step,
# package or compile result).
cold() {
  podman --runtime runc system reset --force >/dev/null 2>&1
  fresh_podman_store "$tmp/podman"
  mkdir -p "$tmp/c-$1"
  cp -al "$cache/images" "$tmp/c-$1/images"
}
build() { # $1 = cache name; $2 = out dir; more flags follow (--profile ...)
  local c=$1 out=$2
  shift 2
  GOCACHE=$tmp/c-$c/go "$ib" build --engine podman --key "$tmp/k.sec" \
    --release-keys "$tmp/pub" --cache "$tmp/c-$c" --out "$out" --work-dir "$tmp/work-${out##*/}" --keep-work --json "$@" >"$out.json" 2>"$out.log"
}
timed() { # prints the seconds the command took
  local s e
  s=$(now); "$@"; e=$(now)
  echo "$e - $s" | bc
}
cold a
cold=$(timed build a "$tmp/out1" --profile "$PROFILE")
warm=$(timed build a "$tmp/out2" --profile "$PROFILE")
# One changed overlay file: the radios' config (--country), nothing else.
overlay=$(timed build a "$tmp/out-se" --profile "$PROFILE" --country SE)
overlay_full=$(timed build a "$tmp/out-se-full" --profile "$PROFILE" --country SE --no-step-cache)
# Warm caches (images, packages, Go) but every step run again: make image
# really runs, as in the bare comparison below.
rerun=$(timed build a "$tmp/out3" --profile "$PROFILE" --no-step-cache)
cold b
cold2=$(timed build b "$tmp/out-p2" --profile "$PROFILE2")
cold both
both=$(timed build both "$tmp/out-both" --profile "$PROFILE" --profile "$PROFILE2" --jobs 2)
slowest=$(printf '%s\n%s\n' "$cold" "$cold2" | sort -g | tail -1)

# The bare make image: the image imgbuild ran (by ID: its config digest),
# the same container flags, the same overlay (imgbuild's rendered FILES),
# the ImageBuilder's own repositories.conf, no torwrt hook.
ref=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["image"]["ref"])' "profiles/$PROFILE/lock.json")
id=$(python3 -c '
import json, sys
idx = json.load(open(sys.argv[1] + "/index.json"))
want = sys.argv[2].split("@")[1]
for m in idx["manifests"]:
    if m["digest"] == want:
        man = json.load(open(sys.argv[1] + "/blobs/sha256/" + want.split(":")[1]))
        print(man["config"]["digest"].split(":")[1])
' "$cache/images" "$ref")
pk=$(sed -n 's/^  add: \[\(.*\)\]/\1/p' "profiles/$PROFILE/profile.yaml" | tr -d ',')
rm_=$(sed -n 's/^  remove: \[\(.*\)\]/\1/p' "profiles/$PROFILE/profile.yaml" | tr -d ',' | sed 's/\([^ ]\+\)/-\1/g')
ibprofile=$(sed -n 's/^ib_profile: //p' "profiles/$PROFILE/profile.yaml")
bare_total=0
for i in $(seq "$RUNS"); do
  rm -rf "$tmp/bare" && mkdir -p "$tmp/bare"
  s=$(now)
  podman --runtime runc run --rm --name "torwrt-bench-$i-$$" --pull never --network none --cap-drop all \
    --security-opt no-new-privileges --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
    -v "$tmp/work-out1/files:/torwrt/files:ro" -v "$tmp/bare:/out:rw" -w /builder "$id" \
    sh -c 'umask 022; exec make image PROFILE="$1" PACKAGES="$2" FILES=/torwrt/files BIN_DIR=/out' sh \
    "$ibprofile" "$pk $rm_" >"$tmp/bare.log" 2>&1
  e=$(now)
  ls "$tmp"/bare/*-sysupgrade.bin >/dev/null
  bare_total=$(echo "$bare_total + $e - $s" | bc)
done
bare=$(echo "scale=3; $bare_total / $RUNS" | bc)
# build --json is one document: {"schema", "ok", "result": {"builds": [...]}}.
steps() {
  python3 -c 'import json,sys; b=json.load(open(sys.argv[1]))["result"]["builds"][0]; print(", ".join("%s %s" % kv for kv in b["timings"].items()), "| cached:", " ".join(b.get("cached") or []) or "none")' "$1"
}
size=$(stat -c %s "$(ls "$tmp/out1/$PROFILE"/*-sysupgrade.bin)")
printf 'profile                      %s (REAL LEDE 17.01.4 ImageBuilder, podman %s, %s CPUs)\n' "$PROFILE" "$(podman --version | cut -d' ' -f3)" "$(nproc)"
printf 'ib import                    %.1fs\n' "$import_s"
printf 'lock (trial make image)      %.1fs per profile\n' "$lock_s"
printf 'cold                         %.1fs  (empty podman store, Go, step and package caches)\n' "$cold"
printf 'warm no-op                   %.1fs  (target <= 2s)\n' "$warm"
printf 'one changed overlay file     %.1fs  = %.2fx cold (target <= 0.3x); in full (--no-step-cache) %.1fs\n' "$overlay" "$(echo "scale=3; $overlay / $cold" | bc)" "$overlay_full"
printf 'two profiles side by side    %.1fs  = %.2fx the slowest single cold build (target <= 1.2x; %s alone %.1fs)\n' "$both" "$(echo "scale=3; $both / $slowest" | bc)" "$PROFILE2" "$cold2"
printf 'warm rerun (--no-step-cache) %.1fs\n' "$rerun"
printf 'bare make image (avg of %d)   %.1fs\n' "$RUNS" "$bare"
printf 'cold / bare                  %.2fx\n' "$(echo "scale=3; $cold / $bare" | bc)"
printf 'warm rerun / bare            %.2fx\n' "$(echo "scale=3; $rerun / $bare" | bc)"
printf 'image                        %s bytes\n' "$size"
echo "steps, cold:            $(steps "$tmp/out1.json")"
echo "steps, warm:            $(steps "$tmp/out2.json")"
echo "steps, changed overlay: $(steps "$tmp/out-se.json")"
echo "steps, warm rerun:      $(steps "$tmp/out3.json")"
same() { # $1, $2: dist dirs of one profile; every file in $1 equals $2's
  local n=0 f
  for f in "$1"/*; do cmp "$f" "$2/${f##*/}"; n=$((n + 1)); done
  [ "$n" -ge 10 ] || { echo "bench-build: only $n files in $1" >&2; exit 1; }
  echo "$n"
}
n=$(same "$tmp/out1/$PROFILE" "$tmp/out2/$PROFILE")
same "$tmp/out1/$PROFILE" "$tmp/out3/$PROFILE" >/dev/null
echo "cold, warm and rerun builds: all $n files in dist/$PROFILE byte-identical"
n=$(same "$tmp/out-se/$PROFILE" "$tmp/out-se-full/$PROFILE")
echo "changed overlay, from the cached installed tree and in full: all $n files byte-identical"
for f in "$tmp/out-both/$PROFILE"/*-sysupgrade.bin "$tmp/out-both/$PROFILE2"/*-sysupgrade.bin; do
  p=$(basename "$(dirname "$f")")
  [ "$p" = "$PROFILE" ] && single=$tmp/out1 || single=$tmp/out-p2
  cmp "$f" "$single/$p/${f##*/}"
done
echo "side by side: both images identical to the single builds' (the provenance records the other command line)"
