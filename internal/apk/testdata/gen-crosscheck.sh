#!/bin/sh
# Has the real apk check an index written by WriteIndex (TestWriteIndexCrossCheck).
# Run from this directory after `go test -run TestWriteIndexCrossCheck -update ..`
# (which writes gowrite-index.adb). Needs $APK as in gen.sh; run as root.
set -eu
APK=${APK:-/work/tools/apk-tools/build/src/apk}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/keys" "$W/repo" "$W/root"
cp test-key.pub.pem "$W/keys/test-key.pem"
"$APK" adbdump --keys-dir "$W/keys" gowrite-index.adb > gowrite-index.adb.dump
"$APK" verify --keys-dir "$W/keys" gowrite-index.adb > gowrite-index.adb.verify 2>&1
cp gowrite-index.adb "$W/repo/packages.adb"
cp test-pkg.apk "$W/repo/torwrt-test-1.0.0-r1.apk"
cp test-libc.apk "$W/repo/libc-1.2.5-r4.apk"
cp test-tor.apk "$W/repo/tor-0.4.8.13-r1.apk"
"$APK" add --root "$W/root" --initdb --no-scripts --no-cache --keys-dir "$W/keys" \
	--repository "$W/repo/packages.adb" --arch mips_24kc torwrt-test >/dev/null
cp "$W/root/lib/apk/db/installed" gowrite-installed
# Three versions of one name, indexed by mkndx (TestWriteIndexVersionsMatchApk).
export SOURCE_DATE_EPOCH=1700000000
for v in 1.0-r2 1.0-r10 1.0_rc1-r1; do
	"$APK" mkpkg --compression none -I name:torwrt-ver -I version:$v -I arch:mips_24kc \
		-I license:MIT -I 'description:version order' -I build-time:1700000000 -o "$W/torwrt-ver-$v.apk"
done
cp "$W/torwrt-ver-1.0-r10.apk" torwrt-ver-1.0-r10.apk
"$APK" mkndx --allow-untrusted --compression none --sign-key "$PWD/test-key.pem" -d 'torwrt versions' \
	-o versions-index.adb "$W/torwrt-ver-1.0-r10.apk" "$W/torwrt-ver-1.0-r2.apk" "$W/torwrt-ver-1.0_rc1-r1.apk" >/dev/null
"$APK" adbdump --keys-dir "$W/keys" versions-index.adb > versions-index.adb.dump
