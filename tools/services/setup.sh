#!/usr/bin/env bash
# Install and build what the store tests need, on a fresh machine or a warm one (idempotent):
#   * PostgreSQL from Debian's packages (postgresql-15, when no /usr/lib/postgresql/*/bin/initdb exists),
#     and the cached template cluster the test servers start from;
#   * FerretDB v1.24.2 from the Go module proxy (build_ferretdb.sh).
# `make services` runs this; `make test` depends on it.
set -euo pipefail

readonly HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log() { printf '[services/setup.sh] %s\n' "$*" >&2; }

install_postgres() {
  if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    return
  fi
  if [[ $(id -u) != 0 ]]; then
    log "PostgreSQL is missing: install it (sudo apt-get install -y postgresql-15) and run this again"
    exit 1
  fi
  log "installing PostgreSQL from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's package would create and start a cluster on port 5432; the tests start their own.
  mkdir -p /etc/postgresql-common/createcluster.d
  echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/odin-no-main.conf
  apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
}

install_postgres
python3 "$HERE/launch.py" prepare >/dev/null
python3 "$HERE/launch.py" reap >&2
bash "$HERE/build_ferretdb.sh"
