#!/usr/bin/env bash
# Benchmarks imgbuild against the bare ImageBuilder, in one run on one
# machine, on the REAL LEDE 17.01.4 ImageBuilder fixture in podman:
#
#   0. imgbuild ib import + lock (reported, not part of the ratio)
#   1. imgbuild build, cold: empty podman store, empty Go build cache and
#      package caches (the imported image is in the image cache)
#   2. imgbuild build, warm: the same again
#   3. bare `make image` of the same image (by ID) in the same container
#      setup (podman --runtime runc, --network none, every capability
#      dropped), with the same PROFILE, PACKAGES and FILES overlay, RUNS
#      times
#
# and prints warm/bare and cold/bare ratios. A ratio, not a timed test: the
# numbers move with the machine, the ratio says what imgbuild costs.
# Needs root (podman). PROFILE defaults to gl-mt300a-lede17.
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
"$ib" lock --profile "$PROFILE" --engine podman --cache "$cache" -o "$tmp/lock.json" >/dev/null 2>"$tmp/lock.log"
cmp -s "$tmp/lock.json" "profiles/$PROFILE/lock.json" || { echo "bench-build: the lock differs from the committed one" >&2; exit 1; }
t2=$(now)
import_s=$(echo "$t1 - $t0" | bc); lock_s=$(echo "$t2 - $t1" | bc)
# lock loaded the image into podman; a cold build starts from an empty store.
podman --runtime runc system reset --force >/dev/null 2>&1
fresh_podman_store "$tmp/podman"

build() { # $1 = out dir; $2 = GOCACHE; more flags follow
  out=$1 gocache=$2
  shift 2
  GOCACHE=$gocache "$ib" build --profile "$PROFILE" --engine podman --key "$tmp/k.sec" \
    --release-keys "$tmp/pub" --cache "$cache" --out "$out" --work-dir "$tmp/work" --keep-work --json "$@" >"$out.json" 2>"$out.log"
}
rm -rf "$tmp/work"
t0=$(now); build "$tmp/out1" "$tmp/gocache"; t1=$(now)
rm -rf "$tmp/work"
t2=$(now); build "$tmp/out2" "$tmp/gocache"; t3=$(now)
# Warm caches (images, packages, Go) but every step run again: make image
# really runs, as in the bare comparison below.
rm -rf "$tmp/work"
t4=$(now); build "$tmp/out3" "$tmp/gocache" --no-step-cache; t5=$(now)
cold=$(echo "$t1 - $t0" | bc); warm=$(echo "$t3 - $t2" | bc); rerun=$(echo "$t5 - $t4" | bc)

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
    -v "$tmp/work/files:/torwrt/files:ro" -v "$tmp/bare:/out:rw" -w /builder "$id" \
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
size=$(stat -c %s "$(ls "$tmp"/out1/"$PROFILE"/*-sysupgrade.bin)")
printf 'profile                      %s (REAL LEDE 17.01.4 ImageBuilder, podman %s)\n' "$PROFILE" "$(podman --version | cut -d' ' -f3)"
printf 'ib import                    %.1fs\n' "$import_s"
printf 'lock (trial make image)      %.1fs\n' "$lock_s"
printf 'imgbuild build, cold         %.1fs  (empty podman store, Go and package caches)\n' "$cold"
printf 'imgbuild build, warm         %.1fs  (compile and make image replayed from the step cache)\n' "$warm"
printf 'imgbuild build, warm, rerun  %.1fs  (--no-step-cache: make image runs again)\n' "$rerun"
printf 'bare make image (avg of %d)   %.1fs\n' "$RUNS" "$bare"
printf 'cold / bare                  %.2fx\n' "$(echo "scale=3; $cold / $bare" | bc)"
printf 'warm / bare                  %.2fx\n' "$(echo "scale=3; $warm / $bare" | bc)"
printf 'warm rerun / bare            %.2fx\n' "$(echo "scale=3; $rerun / $bare" | bc)"
printf 'image                        %s bytes\n' "$size"
echo "steps, warm:       $(steps "$tmp/out2.json")"
echo "steps, warm rerun: $(steps "$tmp/out3.json")"
for f in "$tmp/out1/$PROFILE/"*; do
  cmp "$f" "$tmp/out2/$PROFILE/${f##*/}"
  cmp "$f" "$tmp/out3/$PROFILE/${f##*/}"
done
echo "cold, warm and rerun builds: every file in dist/$PROFILE byte-identical"
