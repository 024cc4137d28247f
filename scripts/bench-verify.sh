#!/usr/bin/env bash
# bench-verify.sh: throughput and peak memory of `imgbuild verify` on
# 16 MiB and 64 MiB signed sysupgrade images.
#
# Verification streams the image (CRC chain, Ed25519 over the signed range,
# two SHA-256 passes), so peak memory must not grow with the image size: a
# 64 MB router keeps the image in tmpfs and cannot hold it twice. The script
# fails if the 64 MiB run needs noticeably more memory than the 16 MiB one.
#
# Usage: scripts/bench-verify.sh [SIZE_MIB ...]    (default: 16 64)
# Env:   IMGBUILD=path  use this imgbuild binary instead of building one
#        RUNS=n         timed runs per image, best one reported (default 3)
# Needs: go, perl (Compress::Zlib, part of Debian's perl), /usr/bin/time
#        (Debian package: time).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(16 64)
runs=${RUNS:-3}

if [ ! -x /usr/bin/time ]; then
	echo "bench-verify: /usr/bin/time not found; install the Debian package time (apt-get install -y time)" >&2
	exit 1
fi
perl -MCompress::Zlib -e 1 2>/dev/null || {
	echo "bench-verify: perl with Compress::Zlib not found; install the Debian package perl" >&2
	exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/bench-verify.XXXXXX")
trap 'rm -rf "$work"' EXIT

imgbuild=${IMGBUILD:-}
if [ -z "$imgbuild" ]; then
	imgbuild=$work/imgbuild
	(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$imgbuild" ./cmd/imgbuild)
fi

# append_chunk IMAGE TYPE DATAFILE: append an fwtool chunk (formats.md §2);
# crc32 IEEE over the file so far plus the data, no final xor.
append_chunk() {
	perl -MCompress::Zlib -e '
		my ($img, $type, $datafile) = @ARGV;
		open(my $d, "<:raw", $datafile) or die "$datafile: $!";
		my $data = do { local $/; <$d> };
		close $d;
		open(my $f, "+<:raw", $img) or die "$img: $!";
		my ($crc, $buf) = (0, "");
		while (read($f, $buf, 1 << 20)) { $crc = crc32($buf, $crc) }
		$crc = crc32($data, $crc);
		seek($f, 0, 2) or die;
		print $f $data, pack("NNCx3N", 0x46577830, (~$crc) & 0xffffffff, $type, length($data) + 16);
		close $f or die;
	' "$@"
}

fp=$("$imgbuild" keygen -o "$work/bench" --json | sed -n 's/.*"fingerprint": "\([0-9a-f]*\)".*/\1/p')
mkdir "$work/keys"
cp "$work/bench.pub" "$work/keys/$fp"

{
	printf '\0\0\0\0\0\0\0\0'
	printf '%s\n' '{  "metadata_version": "1.1", "compat_version": "1.0",   "supported_devices":["glinet,gl-ar150","gl-ar150"], "version": { "dist": "OpenWrt", "version": "24.10.3", "revision": "r28872-daca7c049b", "target": "ath79/generic", "board": "glinet_gl-ar150" } }'
} >"$work/meta"

printf '%-8s %12s %10s %16s %14s\n' "image" "bytes" "best s" "throughput" "max RSS"
declare -A rss
for mib in "${sizes[@]}"; do
	img=$work/image-${mib}MiB.bin
	head -c "$((mib << 20))" /dev/urandom >"$img"
	append_chunk "$img" 1 "$work/meta"
	"$imgbuild" sign --key "$work/bench.sec" "$img" >/dev/null
	bytes=$(stat -c %s "$img")
	best_ns=
	max_kb=0
	for _ in $(seq "$runs"); do
		sync
		start=$(date +%s%N)
		/usr/bin/time -v -o "$work/time.txt" "$imgbuild" verify --keys "$work/keys" --board glinet,gl-ar150 "$img" >/dev/null
		ns=$(($(date +%s%N) - start))
		kb=$(awk -F': *' '/Maximum resident set size/ {print $2}' "$work/time.txt")
		if [ -z "$best_ns" ] || [ "$ns" -lt "$best_ns" ]; then best_ns=$ns; fi
		if [ "$kb" -gt "$max_kb" ]; then max_kb=$kb; fi
	done
	rss[$mib]=$max_kb
	awk -v n="${mib}MiB" -v b="$bytes" -v ns="$best_ns" -v kb="$max_kb" 'BEGIN {
		printf "%-8s %12d %10.3f %11.1f MB/s %10.1f MiB\n", n, b, ns / 1e9, b / (ns / 1e9) / 1e6, kb / 1024
	}'
	rm -f "$img" "$img.sig"
done

# Peak memory must not follow the image size: allow 8 MiB of noise between
# the smallest and the largest image.
first=${sizes[0]}
last=${sizes[${#sizes[@]} - 1]}
if [ "${rss[$last]}" -gt $((rss[$first] + 8192)) ]; then
	echo "bench-verify: FAIL: max RSS grows with image size (${rss[$first]} KiB at ${first} MiB, ${rss[$last]} KiB at ${last} MiB)" >&2
	exit 1
fi
echo "max RSS does not grow with image size (${rss[$first]} KiB at ${first} MiB, ${rss[$last]} KiB at ${last} MiB)"
