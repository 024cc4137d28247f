# torwrt: the command every `make image` runs under, in the container (or
# the host runner's copy of the ImageBuilder). Constant text: every value
# arrives as an argument or an environment variable, never spliced in.
#
#   sh -c "$ENTRY" torwrt-build HOOK make image PROFILE=... PACKAGES=...
#
# 1. A fixed umask, whatever the caller's: the ImageBuilder creates
#    directories and files (opkg's info files, rc.d links, the root itself)
#    with the process umask, so umask 002 on the caller's side would give a
#    group-writable root filesystem and umask 077 fails the ImageBuilder's
#    own proper-umask check.
# 2. The ImageBuilder's own mksquashfs (staging_dir/host/bin/mksquashfs4)
#    is wrapped by HOOK, which normalizes the root tree and then runs the
#    original binary with the options the ImageBuilder gave it. Nothing is
#    ever re-packed with other tools or other options.
set -eu
umask 022
hook=$1
shift
wrapped=0
for tool in staging_dir/host/bin/mksquashfs4 staging_dir/host/bin/mksquashfs; do
	if [ -e "$tool" ] || [ -L "$tool" ]; then
		if [ ! -e "$tool.ib" ] && [ ! -L "$tool.ib" ]; then
			mv "$tool" "$tool.ib"
		fi
		cp "$hook" "$tool"
		chmod 0755 "$tool"
		wrapped=1
	fi
done
if [ "$wrapped" = 0 ]; then
	echo "torwrt: this ImageBuilder has no staging_dir/host/bin/mksquashfs4: cannot normalize its root filesystem" >&2
	exit 2
fi
exec "$@"
