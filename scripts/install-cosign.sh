#!/usr/bin/env bash
# Installs cosign v2.6.5 from the Go module proxy into TOOLS_DIR
# (default /usr/local/bin when root, else ~/.local/bin). The release tests
# and ci/release.sh check torwrt's detached signatures with it. Idempotent.
# Building it takes about 4 minutes on 2 cores the first time.
set -euo pipefail
VERSION=v2.6.5
if [ "$(id -u)" -eq 0 ]; then
  TOOLS_DIR=${TOOLS_DIR:-/usr/local/bin}
else
  TOOLS_DIR=${TOOLS_DIR:-$HOME/.local/bin}
fi
if [ -x "$TOOLS_DIR/cosign" ] && "$TOOLS_DIR/cosign" version 2>/dev/null | grep -q "GitVersion:.*${VERSION#v}"; then
  exit 0
fi
if command -v cosign >/dev/null && cosign version 2>/dev/null | grep -q "GitVersion:.*${VERSION#v}"; then
  exit 0
fi
mkdir -p "$TOOLS_DIR"
echo "installing cosign $VERSION into $TOOLS_DIR (go install; takes a few minutes)" >&2
GOTOOLCHAIN=local GOBIN="$(cd "$TOOLS_DIR" && pwd)" go install "github.com/sigstore/cosign/v2/cmd/cosign@$VERSION"
"$TOOLS_DIR/cosign" version >/dev/null
