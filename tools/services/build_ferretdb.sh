#!/usr/bin/env bash
# Build FerretDB (a MongoDB-protocol server, here on its SQLite backend) from the Go module proxy,
# for the MongoDB job-store tests. Same habits as tools/k8s/build.sh: cached outside the repository,
# idempotent (a warm run returns at once), GOTOOLCHAIN=local.
#
# The module as served by the proxy lacks the generated build/version/version.txt, and a binary
# built without it panics at start: copy the source out of the module cache, write that file, build.
#
# Environment:
#   ODIN_SERVICES_CACHE  cache root (default: ~/.cache/odin/services); the binary goes to
#                        $ODIN_SERVICES_CACHE/ferretdb-$VERSION/ferretdb
#   ODIN_FERRETDB_FORCE=1  rebuild even when the binary exists
set -euo pipefail

readonly VERSION="v1.24.2"
readonly MODULE="github.com/FerretDB/FerretDB"
readonly CACHE="${ODIN_SERVICES_CACHE:-$HOME/.cache/odin/services}"
readonly OUT="$CACHE/ferretdb-$VERSION"
readonly BIN="$OUT/ferretdb"

log() { printf '[build_ferretdb.sh] %s\n' "$*" >&2; }

main() {
  if [[ "${ODIN_FERRETDB_FORCE:-0}" != "1" && -x "$BIN" ]]; then
    log "ferretdb $VERSION present at $BIN"
    return
  fi
  command -v go >/dev/null || { log "go not found on PATH (install Go to build FerretDB)"; exit 1; }
  local start src dir
  start=$(date +%s)
  mkdir -p "$OUT"
  log "downloading $MODULE@$VERSION from the Go module proxy"
  dir=$(cd "$OUT" && GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json "$MODULE@$VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -n "$dir" && -d "$dir" ]] || { log "module download gave no source directory"; exit 1; }
  src="$OUT/src"
  rm -rf "$src"
  cp -r "$dir" "$src"
  chmod -R u+w "$src"
  mkdir -p "$src/build/version"
  echo "$VERSION" >"$src/build/version/version.txt"
  log "building ferretdb (this takes a few minutes cold)"
  (
    cd "$src"
    GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" \
      -o "$BIN.tmp" ./cmd/ferretdb
  )
  mv -f "$BIN.tmp" "$BIN"
  rm -rf "$src"
  log "built $BIN in $(($(date +%s) - start))s"
}

main "$@"
