#!/usr/bin/env bash
# The release pipeline, as CI runs it and as anyone can run it locally:
#
#   1. build every profile (against the SIMULATED ImageBuilder unless
#      SIMULATED=0), then build again into a second directory and require
#      byte-identical images (imgbuild diff --exit-code);
#   2. write the unsigned update manifest for all profiles (release prepare);
#   3. collect THRESHOLD signatures from different key holders (release sign),
#      each checking the payload digest and the signatures already on it;
#   4. check M-of-N and the images (release verify --threshold);
#   5. write and sign the root key list (keys.json);
#   6. write cosign signatures, SBOMs and DSSE-signed provenance (release attest)
#      and check them with cosign and signify when those are installed.
#
# Keys: RELEASE_KEYS_DIR holds release-1.sec, release-2.sec, release-3.sec
# (usign, mode 0600) and their .pub files. Without it, three THROWAWAY keys
# are made under $WORK/keys (never committed, never printed). IMAGE_KEY
# (default: release-1.sec) signs the images and may be a pkcs11: or KMS URI;
# SIGNERS (default: "release-1.sec release-3.sec") sign the manifest.
#
# Outputs: $DIST/<profile>/ (images, .sig, .cosign.sig, cosign.pub, SBOM,
# provenance), $DIST/release.json, $DIST/keys.json, $DIST/release-keys/.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local

WORK=${WORK:-.cache/release}
DIST=${DIST:-$WORK/dist}
DIST_B=${DIST_B:-$WORK/dist-rebuild}
CACHE=${CACHE:-.cache/torwrt}
ENGINE=${TORWRT_ENGINE:-podman}
SIMULATED=${SIMULATED:-1}
THRESHOLD=${THRESHOLD:-2}
SEQUENCE=${SEQUENCE:-$(date -u +%s)}
# The build number routers compare (anti-rollback); it must grow with every
# release. Images state it in /etc/torwrt/release.json, the manifest lists it.
BUILD=${BUILD:-$SEQUENCE}
CHANNEL=${CHANNEL:-stable}
FIRMWARE_VERSION=${FIRMWARE_VERSION:-0.1.0}

log() { printf '\n== %s\n' "$*" >&2; }

mkdir -p "$WORK"
IMGBUILD=$WORK/imgbuild
log "building imgbuild"
go build -trimpath -o "$IMGBUILD" ./cmd/imgbuild

KEYS=${RELEASE_KEYS_DIR:-}
if [ -z "$KEYS" ]; then
  KEYS=$WORK/keys
  mkdir -p "$KEYS"
  chmod 700 "$KEYS"
  for i in 1 2 3; do
    if [ ! -f "$KEYS/release-$i.sec" ]; then
      "$IMGBUILD" keygen -o "$KEYS/release-$i" -comment "torwrt THROWAWAY release key $i (ci/release.sh)" >/dev/null
    fi
  done
  log "using THROWAWAY release keys in $KEYS (not for publishing)"
fi
IMAGE_KEY=${IMAGE_KEY:-$KEYS/release-1.sec}
SIGNERS=${SIGNERS:-"$KEYS/release-1.sec $KEYS/release-3.sec"}

PUB=$WORK/release-keys
rm -rf "$PUB" && mkdir -p "$PUB"
cp "$KEYS"/*.pub "$PUB"/

build() {
  local out=$1
  local args=(build --all --engine "$ENGINE" --key "$IMAGE_KEY" --release-keys "$PUB"
              --cache "$CACHE" --out "$out" --firmware-version "$FIRMWARE_VERSION" --build "$BUILD")
  if [ "$SIMULATED" = 1 ]; then args+=(--simulated-ib); fi
  "$IMGBUILD" "${args[@]}"
}

rm -rf "$DIST" "$DIST_B"
log "build 1 -> $DIST"
build "$DIST"
log "build 2 -> $DIST_B (reproducibility gate)"
build "$DIST_B"

log "comparing the two builds"
for dir in "$DIST"/*/; do
  p=$(basename "$dir")
  for img in "$dir"*-sysupgrade.bin; do
    "$IMGBUILD" diff --exit-code "$img" "$DIST_B/$p/$(basename "$img")"
  done
done
echo "reproducible: both builds are byte-identical" >&2

log "release prepare"
"$IMGBUILD" release prepare --dist "$DIST" --out "$DIST/release.json" --sequence "$SEQUENCE" --channel "$CHANNEL" | tee "$WORK/prepare.txt"
DIGEST=$(sed -n 's/^payload sha256 //p' "$WORK/prepare.txt")

n=0
for k in $SIGNERS; do
  n=$((n + 1))
  log "signature $n by $(basename "$k") (a separate key holder in CI)"
  "$IMGBUILD" release sign --key "$k" --keys "$PUB" --expect-sha256 "$DIGEST" "$DIST/release.json"
done

log "release verify --threshold $THRESHOLD"
"$IMGBUILD" release verify --threshold "$THRESHOLD" --keys "$PUB" --dist "$DIST" "$DIST/release.json"

pubs=("$PUB"/*.pub)
log "root key list ($THRESHOLD-of-${#pubs[@]})"
"$IMGBUILD" release keys --keys "$PUB" --threshold "$THRESHOLD" --out "$DIST/keys.json"
for k in $SIGNERS; do
  "$IMGBUILD" release sign --key "$k" --keys "$PUB" "$DIST/keys.json" >/dev/null
done
"$IMGBUILD" release verify "$DIST/keys.json"

log "cosign signatures, SBOMs, signed provenance"
attest=(release attest --dist "$DIST" --keys "$PUB" --key "$IMAGE_KEY")
if [ -n "${LOCK_DIR:-}" ]; then attest+=(--lock-dir "$LOCK_DIR"); fi
if [ -n "${BUILDER_ID:-}" ]; then attest+=(--builder-id "$BUILDER_ID"); fi
if [ -n "${SOURCE_COMMIT:-}" ]; then attest+=(--source-commit "$SOURCE_COMMIT" --source-repo "${SOURCE_REPO:-https://github.com/torwrt/torwrt}"); fi
"$IMGBUILD" "${attest[@]}"
mkdir -p "$DIST/release-keys" && cp "$PUB"/*.pub "$DIST/release-keys/"

log "checking with the tools users have"
for dir in "$DIST"/*/; do
  [ -f "$dir/build-report.json" ] || continue
  for img in "$dir"*-sysupgrade.bin; do
    fp=$(sed -n 's/.*"signed_by": "\([0-9a-f]*\)".*/\1/p' "$dir/build-report.json")
    pubfile=$(grep -l "$fp" "$PUB"/*.pub 2>/dev/null | head -1 || true)
    if command -v signify-openbsd >/dev/null && [ -n "$pubfile" ]; then
      signify-openbsd -V -q -p "$pubfile" -x "$img.sig" -m "$img"
      echo "signify-openbsd: $(basename "$img").sig OK" >&2
    fi
    if command -v cosign >/dev/null; then
      # With a key, --offline and --insecure-ignore-tlog cosign needs no
      # network; the dead loopback proxy keeps its TUF lookup on this machine.
      if ! TUF_ROOT=$WORK/tuf HTTPS_PROXY=http://127.0.0.1:9 HTTP_PROXY=http://127.0.0.1:9 NO_PROXY='' \
          cosign verify-blob --offline=true --key "$dir/cosign.pub" --signature "$img.cosign.sig" \
          --insecure-ignore-tlog=true "$img" >"$WORK/cosign.log" 2>&1; then
        cat "$WORK/cosign.log" >&2
        exit 1
      fi
      echo "cosign verify-blob: $(basename "$img") OK" >&2
    else
      echo "cosign not on PATH (scripts/install-cosign.sh installs it); skipped its check" >&2
    fi
  done
done

log "release ready in $DIST"
ls -1 "$DIST" "$DIST"/*/ >&2
