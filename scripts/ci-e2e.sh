#!/usr/bin/env bash
# What CI runs before the Go tests (see `make test`), as a newcomer on a
# fresh machine would: README's main command (`make demo`, SIMULATED
# ImageBuilder) on an EMPTY podman store, then the real-ImageBuilder flow
# (scripts/real-ib-e2e.sh, on its own empty store). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=$(mktemp -d /tmp/torwrt-ci-e2e.XXXXXX)
cleanup() {
  if [ "${CONTAINERS_STORAGE_CONF:-}" = "$work/podman/storage.conf" ]; then
    podman --runtime runc system reset --force >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
. scripts/lib/common.sh

echo "== make demo on an empty podman store (SIMULATED ImageBuilder)"
fresh_podman_store "$work/podman"
start=$(date +%s)
DIST=$work/dist ./scripts/demo.sh
echo "make demo: $(( $(date +%s) - start ))s"
ls "$work"/dist/*/*-sysupgrade.bin >/dev/null
cleanup_store() { podman --runtime runc system reset --force >/dev/null 2>&1 || true; }
cleanup_store
unset CONTAINERS_STORAGE_CONF
echo
echo "== the real ImageBuilder (LEDE 17.01.4 fixture), import -> lock -> build twice in podman"
./scripts/real-ib-e2e.sh
