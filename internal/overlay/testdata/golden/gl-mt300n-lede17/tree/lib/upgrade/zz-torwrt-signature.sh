# torwrt: a sysupgrade image must carry a valid release signature.
# Nothing skips this check: not a missing ucert, not sysupgrade -F, not LuCI.
#
# How it takes effect (docs/threat-model.md has the long version):
#  - /sbin/sysupgrade, procd's ubus "system" object and anything else that
#    validates an image run /usr/libexec/validate_firmware_image, which
#    sources every /lib/upgrade/*.sh in name order and then calls
#    fwtool_check_signature. This file sorts after fwtool.sh, so the
#    definition below replaces the stock one, which only warns.
#  - On any failure it calls notify_firmware_broken: the image is then not
#    just "invalid" (which -F overrides) but "not forceable", and procd's
#    sysupgrade method refuses it even when asked to force.
#  - The image must pass two independent verifiers with the same keys: the
#    stock ucert, and torwrt-verify (which also rejects all-zero signatures
#    and the "# fake certificate" chunk). Keys come from /etc/torwrt/keys, which
#    only this image writes; /etc/opkg/keys may also hold keys of packages.

REQUIRE_IMAGE_SIGNATURE=1
REQUIRE_IMAGE_METADATA=1

torwrt_reject_image() {
	echo "torwrt: $1: image refused (release signatures are mandatory; -F does not skip this check)"
	if type notify_firmware_broken >/dev/null 2>&1; then
		notify_firmware_broken
	fi
	return 1
}

fwtool_check_signature() {
	[ $# -eq 1 ] || {
		torwrt_reject_image "expected one image path"
		return 1
	}
	[ -x /usr/bin/ucert ] || {
		torwrt_reject_image "/usr/bin/ucert is missing"
		return 1
	}
	[ -x /usr/sbin/torwrt-verify ] || {
		torwrt_reject_image "/usr/sbin/torwrt-verify is missing"
		return 1
	}
	rm -f /tmp/sysupgrade.ucert
	fwtool -q -s /tmp/sysupgrade.ucert "$1" || {
		torwrt_reject_image "no signature in image"
		return 1
	}
	fwtool -q -T -s /dev/null "$1" | ucert -V -m - -c /tmp/sysupgrade.ucert -P '/etc/torwrt/keys' || {
		torwrt_reject_image "ucert does not accept the signature"
		return 1
	}
	# The board is this image's own, passed explicitly: torwrt-verify
	# refuses an image when it knows no board rather than skip the check.
	/usr/sbin/torwrt-verify image -q --keys '/etc/torwrt/keys' --board 'gl-mt300n' "$1" || {
		torwrt_reject_image "torwrt-verify does not accept the image"
		return 1
	}
	return 0
}
