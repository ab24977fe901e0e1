#!/usr/bin/env python3
"""``odin-wait-for HOST:PORT... [--timeout S] -- COMMAND...``: wait until every address accepts a TCP connection,
then replace this process with COMMAND.

Compose files order their services with `depends_on: condition: service_healthy`, but not every engine honours it
(podman-compose on podman < 4.6 starts in order without waiting), and the core and the gateway stop at once when
PostgreSQL does not answer yet. docker-compose.yml starts them through this, so the order holds on every engine.
Exit 1 with one line on stderr when the deadline passes."""

from __future__ import annotations

import os
import socket
import sys
import time

DEFAULT_TIMEOUT_S = 120.0
RETRY_S = 0.5


def parse(argv: list[str]) -> tuple[list[tuple[str, int]], float, list[str]]:
    if "--" not in argv:
        raise ValueError("usage: odin-wait-for HOST:PORT... [--timeout S] -- COMMAND...")
    split = argv.index("--")
    head, command = argv[:split], argv[split + 1 :]
    timeout = DEFAULT_TIMEOUT_S
    if "--timeout" in head:
        i = head.index("--timeout")
        timeout = float(head[i + 1])
        del head[i : i + 2]
    addresses = []
    for item in head:
        host, _, port = item.rpartition(":")
        addresses.append((host, int(port)))
    if not command:
        raise ValueError("odin-wait-for: no command after --")
    return addresses, timeout, command


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:  # refused, not resolvable yet, unreachable
        return False


def main(argv: list[str]) -> int:
    try:
        addresses, timeout, command = parse(argv)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    deadline = time.monotonic() + timeout
    for host, port in addresses:
        while not reachable(host, port):
            if time.monotonic() > deadline:
                print(f"odin-wait-for: {host}:{port} did not answer within {timeout:.0f}s", file=sys.stderr)
                return 1
            time.sleep(RETRY_S)
    os.execvp(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
