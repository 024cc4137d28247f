#!/bin/sh
# bench_compare.sh [IMAGE]
#
# Lists an xz squashfs image with the Go reader and with unsquashfs in one
# run and prints wall time and peak RSS side by side (from /usr/bin/time -v).
# Without IMAGE it builds the ~16 MiB image of BenchmarkWalkAndHash16MiB.
# Needs: go, /usr/bin/time (Debian package time), unsquashfs and mksquashfs
# (squashfs-tools).
set -eu
cd "$(dirname "$0")"
for tool in /usr/bin/time unsquashfs mksquashfs go; do
	command -v "$tool" >/dev/null || { echo "bench_compare.sh: $tool missing (Debian packages: time, squashfs-tools, golang)" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

go test -c -o "$tmp/squashfs.test" . >/dev/null
img=${1:-}
if [ -z "$img" ]; then
	img=$tmp/bench.sqfs
	SQUASHFS_BENCH_BUILD=$img "$tmp/squashfs.test" -test.run '^TestListImage$' >/dev/null
fi

# measure NAME CMD...: runs CMD under /usr/bin/time -v, output discarded.
measure() {
	name=$1
	shift
	/usr/bin/time -v -o "$tmp/time.txt" "$@" >/dev/null 2>"$tmp/err.txt" || {
		echo "bench_compare.sh: $name failed:" >&2
		cat "$tmp/err.txt" "$tmp/time.txt" >&2
		exit 1
	}
	wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$tmp/time.txt")
	user=$(sed -n 's/.*User time (seconds): //p' "$tmp/time.txt")
	rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$tmp/time.txt")
	printf '%-34s %10s %10s %12s\n' "$name" "$wall" "$user" "$((rss / 1024)) MiB"
}

echo "image: $img ($(stat -c %s "$img") bytes, $(unsquashfs -s "$img" | sed -n 's/^Compression //p'))"
printf '%-34s %10s %10s %12s\n' "lister" "wall" "user s" "peak RSS"
export SQUASHFS_LIST_IMAGE="$img"
SQUASHFS_LIST_NOHASH=1 measure "go: list" "$tmp/squashfs.test" -test.run '^TestListImage$'
measure "go: list + sha256 every file" "$tmp/squashfs.test" -test.run '^TestListImage$'
measure "unsquashfs -lls" unsquashfs -lls "$img"
measure "unsquashfs -d (extract all)" unsquashfs -q -no-progress -d "$tmp/x" "$img"
measure "unsquashfs -d -p 1 (1 thread)" unsquashfs -q -no-progress -p 1 -d "$tmp/y" "$img"
