#!/usr/bin/env bash
# Build the local control-plane binaries from the Go module proxy:
#   - kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok, pinned by tools/k8s/go.mod;
#   - the Kubeflow training operator (cmd/training-operator.v1), pinned by tools/k8s/operator/go.mod, a
#     module of its own so that its older k8s.io/* pins (v0.29) never mix with the control plane's (v0.36);
#     its CRDs and webhook manifests are copied from the module next to the binary.
#
# Idempotent: a binary is built only when it is missing from its cache or the pins of its module
# (go.mod/go.sum) changed since it was built, so a warm run returns in milliseconds.
# Binaries and Go caches live outside the repository.
#
# Environment:
#   ODIN_K8S_CACHE  control-plane cache (default: ~/.cache/odin/k8s-v1.36.3); binaries in $ODIN_K8S_CACHE/bin
#   ODIN_K8S_OPERATOR_CACHE  operator cache (default: ~/.cache/odin/training-operator-v1.8.1): bin/, manifests/
#   ODIN_K8S_BUILD_PARALLELISM  go build -p (default: number of CPUs)
#   ODIN_K8S_FORCE=1  rebuild even when binaries exist
set -euo pipefail

readonly KUBE_VERSION="v1.36.3"
readonly KUBE_MAJOR="1"
readonly KUBE_MINOR="36"
readonly OPERATOR_MODULE="github.com/kubeflow/training-operator"
readonly OPERATOR_VERSION="v1.8.1"
readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly CACHE="${ODIN_K8S_CACHE:-$HOME/.cache/odin/k8s-${KUBE_VERSION}}"
readonly OPERATOR_CACHE="${ODIN_K8S_OPERATOR_CACHE:-$HOME/.cache/odin/training-operator-${OPERATOR_VERSION}}"

# binary name -> Go package (all pinned in their module's `tool` block)
declare -A PACKAGES=(
  [kube-apiserver]="k8s.io/kubernetes/cmd/kube-apiserver"
  [kube-controller-manager]="k8s.io/kubernetes/cmd/kube-controller-manager"
  [kube-scheduler]="k8s.io/kubernetes/cmd/kube-scheduler"
  [etcd]="go.etcd.io/etcd/server/v3"
  [kwok]="sigs.k8s.io/kwok/cmd/kwok"
  [training-operator]="${OPERATOR_MODULE}/cmd/training-operator.v1"
)
readonly CONTROL_PLANE=(kube-apiserver kube-controller-manager kube-scheduler etcd kwok)

log() { printf '[build.sh] %s\n' "$*" >&2; }

# Binaries built from other pins than the module's current go.mod/go.sum are stale (comments do not count).
pins_digest() { sed '/^[[:space:]]*\/\//d' "$1/go.mod" | cat - "$1/go.sum" | sha256sum | cut -d' ' -f1; }

# missing_binaries MODULE_DIR BIN NAME...: the names to (re)build
missing_binaries() {
  local module="$1" bin="$2" name stale=0
  shift 2
  [[ "$(cat "$bin/.pins" 2>/dev/null)" == "$(pins_digest "$module")" ]] || stale=1
  for name in "$@"; do
    if [[ "${ODIN_K8S_FORCE:-0}" == "1" || $stale == 1 || ! -x "$bin/$name" ]]; then
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

# build_one MODULE_DIR BIN NAME LDFLAGS
build_one() {
  local module="$1" bin="$2" name="$3" ldflags="$4" start
  start=$(date +%s)
  log "building $name (${PACKAGES[$name]})"
  (
    cd "$module"
    GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=readonly go build \
      -p "${ODIN_K8S_BUILD_PARALLELISM:-$(nproc)}" -trimpath \
      -ldflags "$ldflags" \
      -o "$bin/$name.tmp" "${PACKAGES[$name]}"
  )
  mv -f "$bin/$name.tmp" "$bin/$name"
  log "built $name in $(($(date +%s) - start))s"
}

# The operator's CRDs and webhooks, exactly as its module ships them (manifests/base).
copy_operator_manifests() {
  local src
  src="$(cd "$HERE/operator" && GOTOOLCHAIN=local GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' "$OPERATOR_MODULE")"
  [[ -n "$src" && -d "$src/manifests/base/crds" ]] || { log "no manifests in the $OPERATOR_MODULE module ($src)"; exit 1; }
  rm -rf "$OPERATOR_CACHE/manifests.tmp"
  mkdir -p "$OPERATOR_CACHE/manifests.tmp/crds" "$OPERATOR_CACHE/manifests.tmp/webhook"
  cp "$src"/manifests/base/crds/kubeflow.org_*.yaml "$OPERATOR_CACHE/manifests.tmp/crds/"
  cp "$src/manifests/base/webhook/manifests.yaml" "$OPERATOR_CACHE/manifests.tmp/webhook/"
  chmod -R u+w "$OPERATOR_CACHE/manifests.tmp"
  rm -rf "$OPERATOR_CACHE/manifests"
  mv "$OPERATOR_CACHE/manifests.tmp" "$OPERATOR_CACHE/manifests"
}

# build_module MODULE_DIR BIN LDFLAGS NAME...: returns (echoes) how many were built
build_module() {
  local module="$1" bin="$2" ldflags="$3" todo name
  shift 3
  mkdir -p "$bin"
  mapfile -t todo < <(missing_binaries "$module" "$bin" "$@")
  for name in "${todo[@]}"; do
    build_one "$module" "$bin" "$name" "$ldflags"
  done
  pins_digest "$module" >"$bin/.pins"
  echo "${#todo[@]}"
}

main() {
  command -v go >/dev/null || { log "go not found on PATH"; exit 1; }
  local start built ms
  start=$(date +%s%N)
  built=$(build_module "$HERE" "$CACHE/bin" "$(version_ldflags)" "${CONTROL_PLANE[@]}")
  local operator_built
  operator_built=$(build_module "$HERE/operator" "$OPERATOR_CACHE/bin" "-s -w" training-operator)
  if ((operator_built > 0)) || [[ ! -d "$OPERATOR_CACHE/manifests/crds" ]]; then
    copy_operator_manifests
  fi
  built=$((built + operator_built))
  ms=$((($(date +%s%N) - start) / 1000000))
  if ((built == 0)); then
    log "all binaries present in $CACHE/bin and $OPERATOR_CACHE/bin (${ms}ms)"
  else
    log "built $built binaries in $((ms / 1000))s"
  fi
}

main "$@"
