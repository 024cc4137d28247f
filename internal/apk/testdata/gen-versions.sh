#!/bin/sh
# Records how the real apk (see README.md) orders and validates versions
# (TestCompareVersionsApk). Run from this directory with $APK as in gen.sh.
set -eu
APK=${APK:-/work/tools/apk-tools/build/src/apk}
V="1.2.3-r1 1.2.3-r10 1.2.3-r2 1.2.3-r0 1.2.3 1.2.3_rc1 1.2.3_rc2 1.2.3_rc10 1.2.3_alpha 1.2.3_beta1
1.2.3_pre2 1.2.3_p1 1.2.3_git20240101 1.2.3_cvs 1.2.3_svn1 1.2.3_hg 1.2.3a 1.2.3b-r1 1.2.10 1.2.03 1.2.3.1
1.2 2 0 0.4.8.13-r1 0.4.8.9-r1 1678~a1b2c3d4e5-r2 1678~a1b2c3d4e5-r10 1678~a1b2c3d4e4-r2 1678~a1b2c3d4e-r2
1679~0a1b2c3d-r1 1678 1678-r1 2025.10.07-r2 2024.07.04-r1 24.10.0-r1 25.12.0_rc1-r1 25.12.0-r1 1.0.1_rc1_p2
1.0.1_rc1 1.01 1.001 1.1 1.10 2025.11.12~e5b2f12b-r1 2025.11.12~e5b2f12b 1.2.3_rc1~abc-r1 1.2.3z"
BAD="abc 1.0-x 1.0_foo 1.0~XYZ 1.0~ 1..0 1.0-r1-r2 1.0_rc1.2 1.0a.1 1.0~abc_rc1 1.0-r 6.6.93-1-abcdef v1.0 1.0A"
{
	for a in $V; do
		for b in $V; do
			printf '%s %s %s\n' "$a" "$b" "$("$APK" version -t "$a" "$b")"
		done
	done
	for v in $V $BAD; do
		if [ -z "$("$APK" version -c "$v")" ]; then echo "valid $v"; else echo "invalid $v"; fi
	done
} > versions.txt
