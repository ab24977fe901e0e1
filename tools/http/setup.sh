#!/usr/bin/env bash
# What the gateway's tests need beyond Python packages: an OpenSSH server (the git-over-SSH test runs one on
# loopback, tests/http/test_git_ssh.py). Idempotent; needs root (apt-get), as on the project's machines.
set -euo pipefail
if [ ! -x /usr/sbin/sshd ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends openssh-server >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends openssh-server >/dev/null; }
fi
