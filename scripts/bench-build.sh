#!/usr/bin/env bash
# Benchmarks imgbuild against the bare ImageBuilder on the same inputs, in
# one run on one machine (SIMULATED ImageBuilder, podman):
#   1. imgbuild build, cold cache          (pull, packages, go build, make image, post)
#   2. imgbuild build, warm cache          (the same again)
#   3. bare `make image` in the same container with the same mounts, N times
# and prints the overhead of imgbuild over the bare make image.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
PROFILE=${PROFILE:-gl-ar150}
RUNS=${RUNS:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -trimpath -o "$tmp/imgbuild" ./cmd/imgbuild
"$tmp/imgbuild" keygen -o "$tmp/k" >/dev/null
mkdir -p "$tmp/pub" && cp "$tmp/k.pub" "$tmp/pub/"

now() { date +%s.%N; }
build() { # $1 = cache dir, $2 = out dir
  "$tmp/imgbuild" build --simulated-ib --engine podman --profile "$PROFILE" --key "$tmp/k.sec" \
    --release-keys "$tmp/pub" --cache "$1" --out "$2" --work-dir "$tmp/work" --keep-work --json >"$2.json" 2>"$2.log"
}
t0=$(now); build "$tmp/cache" "$tmp/out1"; t1=$(now)
rm -rf "$tmp/work"
t2=$(now); build "$tmp/cache" "$tmp/out2"; t3=$(now)
cold=$(echo "$t1 - $t0" | bc); warm=$(echo "$t3 - $t2" | bc)

# The bare make image: the same image (by ID), the same mounts and argv
# that imgbuild used, taken from its own log line.
line=$(grep -m1 'container: podman --runtime runc run' "$tmp/out2.log" | sed 's/.*container: //')
# The log joins argv with spaces; the make variables are split back at
# their names (PACKAGES and DISABLED_SERVICES hold spaces).
mapfile -t argv < <(python3 -c '
import re, sys
line = sys.argv[1]
engine, make = line.split(" make image ", 1)
for w in engine.split(): print(w)
print("make"); print("image")
for m in re.finditer(r"([A-Z_]+)=(.*?)(?= [A-Z_]+=|$)", make): print(m.group(1) + "=" + m.group(2))
' "$line")
bare_total=0
for i in $(seq "$RUNS"); do
  rm -rf "$tmp/work/bin" && mkdir -m 0777 "$tmp/work/bin"
  # fresh run name each time
  for j in "${!argv[@]}"; do [ "${argv[$j]}" = "--name" ] && argv[$((j+1))]="torwrt-bench-$i-$$"; done
  s=$(now); "${argv[@]}" >/dev/null 2>&1; e=$(now)
  bare_total=$(echo "$bare_total + $e - $s" | bc)
done
bare=$(echo "scale=3; $bare_total / $RUNS" | bc)
run_step=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))[0]; print(r["timings"])' "$tmp/out2.json")
echo "profile                     $PROFILE (SIMULATED ImageBuilder, podman)"
echo "imgbuild, cold cache        ${cold}s"
echo "imgbuild, warm cache        ${warm}s"
echo "bare make image (avg of $RUNS) ${bare}s"
echo "warm imgbuild / bare        $(echo "scale=2; $warm / $bare" | bc)x"
echo "imgbuild step timings (warm): $run_step"
cmp "$tmp/out1/$PROFILE/"*-sysupgrade.bin "$tmp/out2/$PROFILE/"*-sysupgrade.bin && echo "cold and warm builds: byte-identical images"
