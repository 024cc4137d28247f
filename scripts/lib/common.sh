# Sourced by scripts that must run as on a fresh machine: gives podman an
# empty store of its own (a new graphroot and runroot under $1), whatever
# the machine's store already holds. A warm store hides image-loading bugs
# (podman 4.3 refusing `oci:` paths with a dot-directory, for one).
fresh_podman_store() {
  local dir=$1
  mkdir -p "$dir/graph" "$dir/run"
  cat > "$dir/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$dir/graph"
runroot = "$dir/run"
CONF
  export CONTAINERS_STORAGE_CONF=$dir/storage.conf
  if [ -n "$(podman --runtime runc images -q 2>/dev/null)" ]; then
    echo "fresh_podman_store: the store at $dir is not empty" >&2
    return 1
  fi
}

# real_ib_dir prints the real-ImageBuilder fixture's directory: $FIXTURE,
# else shared/fixtures/real-ib beside the checkout or a parent of it, else
# /work/shared/fixtures/real-ib (internal/testfixture looks the same way).
real_ib_dir() {
  local d=$1
  if [ -n "${FIXTURE:-}" ]; then echo "$FIXTURE"; return; fi
  while :; do
    if [ -f "$d/shared/fixtures/real-ib/SHA256SUMS" ]; then echo "$d/shared/fixtures/real-ib"; return; fi
    [ "$d" = / ] && break
    d=$(dirname "$d")
  done
  echo /work/shared/fixtures/real-ib
}
