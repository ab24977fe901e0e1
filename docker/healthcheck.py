#!/usr/bin/env python3
"""The images' health check: ``odin-healthcheck ws://127.0.0.1:30000`` sends the core a PING over its WebSocket
protocol (allowed before authentication) and expects its PONG; ``odin-healthcheck http://127.0.0.1:9003/v1/health``
expects a 200. Exit 0 when healthy, 1 with one line on stderr when not (what `docker ps` / `podman healthcheck run`
show). The URL defaults to ``$ODIN_HEALTHCHECK_URL``, so a changed port needs only that variable."""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 4.0


def check_ws(url: str) -> str | None:
    from websockets.exceptions import WebSocketException
    from websockets.sync.client import connect

    try:
        with connect(url, open_timeout=TIMEOUT_S, close_timeout=1) as ws:
            ws.send(json.dumps({"command": "PING", "request": "healthcheck", "id": 1}))
            reply = json.loads(ws.recv(timeout=TIMEOUT_S))
    except (OSError, TimeoutError, WebSocketException, ValueError) as e:
        return f"{url}: {e}"
    if reply.get("status") != "OK" or reply.get("response") != "PONG healthcheck":
        return f"{url}: unexpected reply {reply!r}"
    return None


def check_http(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as answer:
            status = answer.status
    except urllib.error.HTTPError as e:
        status = e.code
    except (OSError, ValueError) as e:
        return f"{url}: {e}"
    return None if status == 200 else f"{url}: HTTP {status}"


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else os.environ.get("ODIN_HEALTHCHECK_URL", "")
    if not url:
        print("usage: odin-healthcheck URL (ws://… or http://…), or set ODIN_HEALTHCHECK_URL", file=sys.stderr)
        return 2
    problem = check_ws(url) if url.startswith(("ws://", "wss://")) else check_http(url)
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
