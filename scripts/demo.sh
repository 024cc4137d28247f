#!/usr/bin/env bash
# The main job on a machine without access to the OpenWrt servers: build
# and sign both profiles against the SIMULATED ImageBuilder, served from an
# in-process registry and run in podman with no network. A throwaway
# release key is made for the demo (never committed; removed on exit is
# not needed: it lives under .cache/demo-keys with mode 0600).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
DIST=${DIST:-dist}
KEYS=.cache/demo-keys
command -v signify-openbsd >/dev/null || { echo "demo: signify-openbsd is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
mkdir -p "$KEYS" bin
go build -trimpath -o bin/imgbuild ./cmd/imgbuild
if [ ! -f "$KEYS/demo-release.sec" ]; then
  bin/imgbuild keygen -o "$KEYS/demo-release" -comment "torwrt demo release key (throwaway)" >/dev/null
fi
mkdir -p "$KEYS/pub" && cp "$KEYS/demo-release.pub" "$KEYS/pub/"
bin/imgbuild build --all --simulated-ib --engine "${TORWRT_ENGINE:-podman}" \
  --key "$KEYS/demo-release.sec" --release-keys "$KEYS/pub" \
  --cache .cache/torwrt --out "$DIST"

# The router's key directory layout: one file per key, named by fingerprint.
fp=$(sed -n 2p "$KEYS/demo-release.pub" | base64 -d | dd bs=1 skip=2 count=8 2>/dev/null | od -An -tx1 | tr -d ' \n')
mkdir -p "$KEYS/opkg-keys" && cp "$KEYS/demo-release.pub" "$KEYS/opkg-keys/$fp"
echo
echo "== checking the signed images as a router would (SIMULATED ImageBuilder build)"
for img in "$DIST"/*/*-sysupgrade.bin; do
  bin/imgbuild verify --keys "$KEYS/opkg-keys" "$img"
  signify-openbsd -V -q -p "$KEYS/demo-release.pub" -x "$img.sig" -m "$img"
  echo "signify-openbsd: $img.sig OK"
done
echo
echo "Images, signatures, manifests, reports and provenance are in $DIST/<profile>/."
echo "Verify one yourself:  bin/imgbuild verify --keys $KEYS/opkg-keys $DIST/gl-ar150/*-sysupgrade.bin"
