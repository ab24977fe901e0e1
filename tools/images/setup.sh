#!/usr/bin/env bash
# What the image, compose and deployment tests need beyond Python packages (those are in requirements-dev.txt):
# podman, buildah, runc, mmdebstrap and podman's helpers, installed from Debian; then podman's own settings files
# under the cache (docs/operations.md, "Building images here"). Idempotent; needs root (apt-get), as on the
# project's machines. ODIN_IMAGES_CACHE moves the cache (default ~/.cache/odin/images).
set -euo pipefail
CACHE="${ODIN_IMAGES_CACHE:-$HOME/.cache/odin/images}"
PACKAGES=(podman buildah runc mmdebstrap conmon catatonit slirp4netns netavark aardvark-dns uidmap iptables)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  echo "[images] installing ${missing[*]}" >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
fi

# crun fails on this host's mixed cgroup layout and root lacks CAP_SYS_RESOURCE: runc, cgroupfs, our own
# directories (so nothing is left in /var/lib/containers or /etc/containers), file events.
mkdir -p "$CACHE"/{conf,storage,run,tmp,volumes,networks,base}
cat > "$CACHE/conf/containers.conf.new" <<CONF
# Written by tools/images/setup.sh: podman's settings for Odin's image tests.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
init_path = "/usr/bin/catatonit"
log_driver = "k8s-file"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$CACHE/run/events.log"
tmp_dir = "$CACHE/tmp"
volume_path = "$CACHE/volumes"

[network]
network_backend = "netavark"
network_config_dir = "$CACHE/networks"
CONF
cat > "$CACHE/conf/storage.conf.new" <<CONF
# Written by tools/images/setup.sh.
[storage]
driver = "overlay"
graphroot = "$CACHE/storage"
runroot = "$CACHE/run"
CONF
cat > "$CACHE/conf/registries.conf.new" <<CONF
# Written by tools/images/setup.sh: no registry is searched for short names (there is none to reach here).
unqualified-search-registries = []
CONF
for f in containers.conf storage.conf registries.conf; do
  if cmp -s "$CACHE/conf/$f.new" "$CACHE/conf/$f"; then rm "$CACHE/conf/$f.new"; else mv "$CACHE/conf/$f.new" "$CACHE/conf/$f"; fi
done
