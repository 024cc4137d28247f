#!/bin/sh
# Regenerates the apk-made test vectors in this directory. Needs the apk
# binary built from apk-tools (see README.md) as $APK. Run as root (file
# owners must be root:root) from this directory.
set -eu
APK=${APK:-/work/tools/apk-tools/build/src/apk}
export SOURCE_DATE_EPOCH=1700000000
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
umask 022
# Throwaway TEST key pair: signs test vectors only.
[ -f test-key.pem ] || openssl ecparam -name prime256v1 -genkey -noout -out test-key.pem
openssl ec -in test-key.pem -pubout -out test-key.pub.pem 2>/dev/null
mkdir -p "$W/files/etc/config" "$W/files/usr/bin" "$W/files/usr/share/torwrt-test"
printf 'config torwrt main\n\toption enabled 1\n' > "$W/files/etc/config/torwrt-test"
printf '#!/bin/sh\necho hello\n' > "$W/files/usr/bin/torwrt-hello"
chmod 0755 "$W/files/usr/bin/torwrt-hello"
chmod 0600 "$W/files/etc/config/torwrt-test"
: > "$W/files/usr/share/torwrt-test/empty"
ln -s torwrt-hello "$W/files/usr/bin/torwrt-hi"
chown -R -h root:root "$W/files"
find "$W/files" -exec touch -h -d @1700000000 {} +
printf '#!/bin/sh\necho installed\n' > "$W/post-install"
"$APK" mkpkg --compression none \
	-I name:torwrt-test -I version:1.0.0-r1 -I arch:mips_24kc \
	-I 'description:torwrt test package' -I license:MIT \
	-I origin:feeds/torwrt/torwrt-test -I 'maintainer:torwrt <dev@torwrt.invalid>' \
	-I url:https://torwrt.invalid/ -I 'depends:libc tor>=0.4' -I provides:torwrt-test-any \
	-I build-time:1700000000 \
	-F "$W/files" -s post-install:"$W/post-install" -o test-pkg.apk
"$APK" mkpkg \
	-I name:torwrt-test -I version:1.0.0-r1 -I arch:mips_24kc \
	-I 'description:torwrt test package' -I license:MIT \
	-I origin:feeds/torwrt/torwrt-test -I 'maintainer:torwrt <dev@torwrt.invalid>' \
	-I url:https://torwrt.invalid/ -I 'depends:libc tor>=0.4' -I provides:torwrt-test-any \
	-I build-time:1700000000 \
	-F "$W/files" -s post-install:"$W/post-install" -o test-pkg-deflate.apk
"$APK" mkpkg --compression none \
	-I name:libc -I version:1.2.5-r4 -I arch:mips_24kc -I license:MIT \
	-I 'description:fake libc' -I build-time:1700000000 -o test-libc.apk
"$APK" mkpkg --compression none \
	-I name:tor -I version:0.4.8.13-r1 -I arch:mips_24kc -I license:BSD-3-Clause \
	-I 'description:fake tor' -I depends:libc -I build-time:1700000000 -o test-tor.apk
"$APK" mkndx --allow-untrusted --compression none --sign-key "$PWD/test-key.pem" \
	-d 'torwrt test feed' -o test-index.adb test-pkg.apk test-libc.apk test-tor.apk
mkdir -p "$W/keys" && cp test-key.pub.pem "$W/keys/test-key.pem"
"$APK" adbdump test-pkg.apk > test-pkg.apk.dump
"$APK" adbdump --keys-dir "$W/keys" test-index.adb > test-index.adb.dump
# Install twice into fresh roots to see which installed-db fields are volatile.
mkdir -p "$W/repo"
cp test-index.adb "$W/repo/packages.adb"
cp test-pkg.apk "$W/repo/torwrt-test-1.0.0-r1.apk"
cp test-libc.apk "$W/repo/libc-1.2.5-r4.apk"
cp test-tor.apk "$W/repo/tor-0.4.8.13-r1.apk"
for n in 1 2; do
	mkdir -p "$W/root$n"
	"$APK" add --root "$W/root$n" --initdb --no-scripts --no-cache --keys-dir "$W/keys" \
		--repository "$W/repo/packages.adb" --arch mips_24kc torwrt-test >/dev/null
	cp "$W/root$n/lib/apk/db/installed" test-installed-$n
	[ $n = 1 ] && sleep 2
done
