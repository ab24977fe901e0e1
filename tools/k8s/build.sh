#!/usr/bin/env bash
# Build the local control-plane binaries (kube-apiserver, kube-controller-manager,
# kube-scheduler, etcd, kwok) from the Go module proxy, pinned by tools/k8s/go.mod.
#
# Idempotent: a binary is built only when it is missing from the cache or the pins in
# go.mod/go.sum changed since it was built, so a warm run returns in milliseconds.
# Binaries and Go caches live outside the repository.
#
# Environment:
#   ODIN_K8S_CACHE  cache root (default: ~/.cache/odin/k8s-v1.36.3); binaries go to $ODIN_K8S_CACHE/bin
#   ODIN_K8S_BUILD_PARALLELISM  go build -p (default: number of CPUs)
#   ODIN_K8S_FORCE=1  rebuild even when binaries exist
set -euo pipefail

readonly KUBE_VERSION="v1.36.3"
readonly KUBE_MAJOR="1"
readonly KUBE_MINOR="36"
readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly CACHE="${ODIN_K8S_CACHE:-$HOME/.cache/odin/k8s-${KUBE_VERSION}}"
readonly BIN="$CACHE/bin"

# binary name -> Go package (all pinned in go.mod's `tool` block)
declare -A PACKAGES=(
  [kube-apiserver]="k8s.io/kubernetes/cmd/kube-apiserver"
  [kube-controller-manager]="k8s.io/kubernetes/cmd/kube-controller-manager"
  [kube-scheduler]="k8s.io/kubernetes/cmd/kube-scheduler"
  [etcd]="go.etcd.io/etcd/server/v3"
  [kwok]="sigs.k8s.io/kwok/cmd/kwok"
)
readonly ORDER=(kube-apiserver kube-controller-manager kube-scheduler etcd kwok)

log() { printf '[build.sh] %s\n' "$*" >&2; }

# Binaries built from other pins than the current go.mod/go.sum are stale (comments do not count).
pins_digest() { sed '/^[[:space:]]*\/\//d' "$HERE/go.mod" | cat - "$HERE/go.sum" | sha256sum | cut -d' ' -f1; }

missing_binaries() {
  local name stale=0
  [[ "$(cat "$BIN/.pins" 2>/dev/null)" == "$(pins_digest)" ]] || stale=1
  for name in "${ORDER[@]}"; do
    if [[ "${ODIN_K8S_FORCE:-0}" == "1" || $stale == 1 || ! -x "$BIN/$name" ]]; then
      printf '%s\n' "$name"
    fi
  done
}

version_ldflags() {
  local pkg flags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X ${pkg}.gitVersion=${KUBE_VERSION}"
    flags+=" -X ${pkg}.gitMajor=${KUBE_MAJOR}"
    flags+=" -X ${pkg}.gitMinor=${KUBE_MINOR}"
    flags+=" -X ${pkg}.gitTreeState=clean"
  done
  printf '%s' "$flags"
}

build_one() {
  local name="$1" start
  start=$(date +%s)
  log "building $name (${PACKAGES[$name]})"
  (
    cd "$HERE"
    GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly go build \
      -p "${ODIN_K8S_BUILD_PARALLELISM:-$(nproc)}" -trimpath \
      -ldflags "$(version_ldflags)" \
      -o "$BIN/$name.tmp" "${PACKAGES[$name]}"
  )
  mv -f "$BIN/$name.tmp" "$BIN/$name"
  log "built $name in $(($(date +%s) - start))s"
}

main() {
  command -v go >/dev/null || { log "go not found on PATH"; exit 1; }
  local start todo name
  start=$(date +%s%N)
  mkdir -p "$BIN"
  mapfile -t todo < <(missing_binaries)
  for name in "${todo[@]}"; do
    build_one "$name"
  done
  pins_digest >"$BIN/.pins"
  local ms=$((($(date +%s%N) - start) / 1000000))
  if ((${#todo[@]} == 0)); then
    log "all binaries present in $BIN (${ms}ms)"
  else
    log "built ${#todo[@]} binaries into $BIN in $((ms / 1000))s"
  fi
}

main "$@"
