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
