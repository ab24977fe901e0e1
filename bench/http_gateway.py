#!/usr/bin/env python3
"""Gateway throughput and latency: listing runs, reading a run, starting a run; and its overhead over the core.

Starts real processes: PostgreSQL (tools/services), `odin-core serve` (local executor, SQLite) and `odin-http serve`
on free loopback ports. This process is the load: ``--concurrency`` clients, each sending requests back to back,
through the gateway (HTTP, a bearer token) and, for the same operation, straight to the core over WebSocket
(``RemoteOdin``, one multiplexed connection). The overhead is gateway latency / direct latency (p50 and p99).

    python bench/http_gateway.py [--requests 400] [--concurrency 8] [--runs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from _common import machine, percentile
from odin_client.remote import RemoteOdin
from odin_http.tokens import core_token

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
JOB = "name: tiny\ntasks:\n  - {name: t, image: busybox, command: /bin/true}\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launcher() -> Any:
    spec = importlib.util.spec_from_file_location("odin_services_launch", ROOT / "tools" / "services" / "launch.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def wait_ready(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError):
                async with s.get(f"{url}/v1/ready") as r:
                    if r.status == 200:
                        return
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the gateway at {url} did not become ready")


async def measure(n: int, concurrency: int, op: Callable[[int], Awaitable[Any]]) -> dict[str, float]:
    latencies: list[float] = []
    counter = iter(range(n))

    async def client() -> None:
        for i in counter:
            start = time.perf_counter()
            await op(i)
            latencies.append(time.perf_counter() - start)

    wall = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    wall = time.perf_counter() - wall
    return {
        "requests": n,
        "rps": round(n / wall, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
    }


async def bench(args: argparse.Namespace, work: Path, dsn: str) -> dict[str, Any]:
    root, home = work / "pipelines", work / "home"
    root.mkdir()
    core_secret, user_secret, password = secrets.token_hex(32), secrets.token_hex(32), secrets.token_hex(12)
    core_port, http_port = free_port(), free_port()
    core = subprocess.Popen(
        [BIN / "odin-core", "serve", "--root-path", root, "--port", str(core_port), "--home", home,
         "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL, env={**os.environ, "ODIN_JWT_SECRET": core_secret},  # secrets never in argv
    )  # fmt: skip
    env = {
        **os.environ,
        "ODIN_HTTP_SERVER_PORT": str(http_port),
        "ODIN_HTTP_SERVER_LOG_LEVEL": "WARNING",
        "ODIN_HTTP_CORE_URL": f"ws://127.0.0.1:{core_port}",
        "ODIN_HTTP_CORE_JWT_SECRET": core_secret,
        "ODIN_HTTP_AUTH_JWT_SECRET": user_secret,
        "ODIN_HTTP_AUTH_ROOT_USERNAME": "admin",
        "ODIN_HTTP_AUTH_ROOT_PASSWORD": password,
        "ODIN_HTTP_DATABASE_DSN": dsn,
        "ODIN_HTTP_DATABASE_POOL_MAX": str(max(4, args.concurrency)),
        "ODIN_HTTP_GIT_ROOT": str(root),
    }
    gateway = subprocess.Popen([BIN / "odin-http", "serve"], env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{http_port}"
    try:
        await wait_ready(url)
        return await scenarios(args, url, f"ws://127.0.0.1:{core_port}", core_secret, password)
    finally:
        for proc in (gateway, core):
            proc.terminate()
            proc.wait(timeout=30)


async def scenarios(args: argparse.Namespace, url: str, ws_url: str, core_secret: str, password: str) -> dict[str, Any]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=args.concurrency)) as s:
        async with s.post(f"{url}/v1/auth", json={"username": "admin", "password": password}) as r:
            h = {"Authorization": f"Bearer {(await r.json())['accessToken']}"}
        async with s.post(f"{url}/v1/jobs/tiny/files/main.yml", data=JOB, headers=h) as r:
            assert r.status == 200, await r.text()

        async def http(method: str, path: str, *, token: bool = True, **kw: Any) -> Any:
            async with s.request(method, f"{url}{path}", headers=h if token else {}, **kw) as r:
                body = await r.json()
                if r.status != 200:
                    raise RuntimeError(f"{method} {path}: {r.status} {body}")
                return body

        started = [await http("POST", "/v1/pipelines", json={"pipeline": {"job": "tiny"}}) for _ in range(args.runs)]
        run_id = started[0]["pipeline"]["id"]
        snapshot = f".odin/commits/{started[0]['pipeline']['commit']}/tiny"  # the path the gateway gives the core
        async with RemoteOdin(ws_url, token=core_token(core_secret, 3600)) as direct:
            await direct.wait(run_id)
            n, c = args.requests, args.concurrency
            results = {
                "list": {
                    "gateway": await measure(n, c, lambda i: http("GET", f"/v1/pipelines?limit={args.runs}")),
                    "direct": await measure(n, c, lambda i: direct.status("")),
                },
                "read": {
                    "gateway": await measure(n, c, lambda i: http("GET", f"/v1/pipelines/{run_id}")),
                    "direct": await measure(n, c, lambda i: direct.run(run_id)),
                },
                "read-anonymous": {  # a public read: no token, so no session lookup in PostgreSQL
                    "gateway": await measure(n, c, lambda i: http("GET", f"/v1/pipelines/{run_id}", token=False)),
                    "direct": await measure(n, c, lambda i: direct.run(run_id)),
                },
                "start": {
                    "gateway": await measure(
                        n // 4, c, lambda i: http("POST", "/v1/pipelines", json={"pipeline": {"job": "tiny"}})
                    ),
                    "direct": await measure(n // 4, c, lambda i: direct.submit(snapshot)),
                },
            }
    for r in results.values():
        g, d = r["gateway"], r["direct"]
        r["overhead"] = {"p50": round(g["p50_ms"] / d["p50_ms"], 2), "p99": round(g["p99_ms"] / d["p99_ms"], 2)}
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=400, help="requests per list/read scenario (start: a quarter)")
    p.add_argument("--concurrency", type=int, default=8, help="clients sending at once")
    p.add_argument("--runs", type=int, default=50, help="runs made before measuring (what list returns)")
    args = p.parse_args()
    services = launcher()
    pg = services.Postgres.start()
    try:
        with tempfile.TemporaryDirectory(prefix="odin-http-bench-") as work:
            results = asyncio.run(bench(args, Path(work), pg.create_database()))
    finally:
        pg.stop()
    settings = {"requests": args.requests, "concurrency": args.concurrency, "runs": args.runs, **machine()}
    print(json.dumps({"settings": settings, "results": results}, indent=1))
    print(f"\n{'operation':<15} {'path':<8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}   overhead p50/p99")
    for name, r in results.items():
        for path in ("gateway", "direct"):
            m = r[path]
            extra = f"   {r['overhead']['p50']}x / {r['overhead']['p99']}x" if path == "gateway" else ""
            print(f"{name:<15} {path:<8} {m['rps']:>8} {m['p50_ms']:>8} {m['p99_ms']:>8}{extra}")


if __name__ == "__main__":
    main()
