#!/bin/sh
# torwrt: stands in for the ImageBuilder's mksquashfs4 during `make image`
# (installed by entry.sh; the original is "$0.ib"). It makes the root tree
# independent of when and by whom it was built, then runs the original
# with exactly the arguments the ImageBuilder passed:
#   - opkg's Installed-Time becomes SOURCE_DATE_EPOCH (older ImageBuilders
#     stamp the clock there even when SOURCE_DATE_EPOCH is set);
#   - only the keys torwrt's FILES overlay ships stay in etc/opkg/keys and
#     etc/torwrt/keys (the ImageBuilder adds its own build key), and apk's
#     keys and feed list (etc/apk/keys, etc/apk/repositories.d) go: no
#     package manager runs on the router, so nothing there may trust an
#     upstream feed (OpenWrt 25.12's apk writes no install time or other
#     volatile value into lib/apk/db, so the database needs no rewrite);
#   - every file, directory and link gets SOURCE_DATE_EPOCH as its time,
#     for mksquashfs versions that do not take -fixed-time;
#   - the original runs pinned to one CPU: squashfs-tools before 4.4 (LEDE
#     17.01 ships 4.2) write fragment blocks from their own thread, and
#     where they land among the data blocks depends on thread timing even
#     with -processors 1 (measured: two runs on one tree differ). On one
#     CPU the order is fixed. The options stay the ImageBuilder's own.
# SOURCE_DATE_EPOCH and TORWRT_FILES come from the environment torwrt sets.
set -eu
real="$0.ib"
src=${1:-}
case "$src" in
"" | -*) exec "$real" "$@" ;;
esac
if [ ! -d "$src" ]; then
	exec "$real" "$@"
fi
: "${SOURCE_DATE_EPOCH:?torwrt: SOURCE_DATE_EPOCH is not set}"
: "${TORWRT_FILES:?torwrt: TORWRT_FILES is not set}"
status="$src/usr/lib/opkg/status"
if [ -f "$status" ]; then
	sed -i "s/^Installed-Time: .*/Installed-Time: $SOURCE_DATE_EPOCH/" "$status"
fi
for dir in etc/opkg/keys etc/torwrt/keys etc/apk/keys etc/apk/repositories.d; do
	[ -d "$src/$dir" ] || continue
	for key in "$src/$dir"/* "$src/$dir"/.[!.]*; do
		[ -e "$key" ] || [ -L "$key" ] || continue
		name=${key##*/}
		if [ ! -e "$TORWRT_FILES/$dir/$name" ]; then
			echo "torwrt: removing $dir/$name (not shipped by torwrt's overlay)" >&2
			rm -f "$key"
		fi
	done
done
find "$src" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
cpu=$(taskset -pc $$ 2>/dev/null | sed 's/.*: *//; s/[-,].*//')
echo "torwrt: root tree normalized (times $SOURCE_DATE_EPOCH, umask 022); running the ImageBuilder's own ${0##*/} on CPU ${cpu:-?}" >&2
if [ -n "$cpu" ]; then
	exec taskset -c "$cpu" "$real" "$@"
fi
echo "torwrt: no taskset in this ImageBuilder's userland: mksquashfs runs unpinned" >&2
exec "$real" "$@"
