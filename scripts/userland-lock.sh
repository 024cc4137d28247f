#!/usr/bin/env bash
# Regenerates internal/userland/bookworm-amd64.lock, the pinned Debian
# bookworm packages of the ImageBuilder userland layer, from this machine's
# apt lists; fetches them, builds the layer, prints its DiffID and digest,
# and updates the golden layer digest the tests check
# (internal/userland/testdata/bookworm-amd64-layer.golden, epoch 0).
#
# Run on Debian 12 bookworm amd64 whose apt sources are bookworm,
# bookworm-updates and bookworm-security, after `apt-get update` (this
# script does not update the lists). Review the lock diff like code.
#
#   scripts/userland-lock.sh [-epoch N] [-no-layer]
#
# Downloads and layers are cached in $TORWRT_USERLAND_CACHE (default
# .cache/userland).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local
cache=${TORWRT_USERLAND_CACHE:-$PWD/.cache/userland}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
go run ./internal/userland/cmd/userland-lock -cache "$cache" "$@"
for a in "$@"; do
  case "$a" in -no-layer|--no-layer) exit 0 ;; esac
done
TORWRT_USERLAND_CACHE=$cache go test -count=1 -run '^TestRealBookwormUserland$/^golden$' ./internal/userland -update >/dev/null
echo "updated internal/userland/testdata/bookworm-amd64-layer.golden" >&2
