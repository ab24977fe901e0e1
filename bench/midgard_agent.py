"""Agent overhead: CPU (% of one core) and RSS of the real `midgard` process reading and pushing every second.

Two cases, each a separate agent process measured from outside with psutil over ``--seconds`` after a warm-up:

- ``zero-gpus``: this machine as it is (no NVML: the agent reports zero GPUs and the reason, plus the system);
- ``replay-8``: NVML answered by ``midgard.testing.fake_nvml`` replaying 8 A100-SXM4-80GB (one process each), so
  the real pynvml, the report, /proc lookups and the push run for 8 GPUs. A real driver's calls cost more than the
  replay's (NVML talks to the kernel module); the replay measures the agent's own share.

Each agent pushes to a gateway node module in this process (token-authenticated, real loopback HTTP), and
``/metrics`` is scraped every 5 s, like Prometheus. Usage: python bench/midgard_agent.py [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from aiohttp import web

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine
from odin_http.nodes import REGISTRY, NodesSettings, setup

REPLAY = (
    "import sys; from midgard.testing import fake_nvml as F; "
    "F.install(F.FakeNvmlLibrary(F.replicate(F.load_board('a100-sxm4-80gb'), 8))); "
    "from midgard.__main__ import main; sys.exit(main())"
)


async def gateway(token_file: Path) -> tuple[web.AppRunner, int, Any]:
    app = web.Application()
    setup(app, NodesSettings(token_file=str(token_file), kube_api_url="none"))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1], app[REGISTRY]  # type: ignore[union-attr]


def start(case: str, gw_port: int, token_file: Path, interval_s: float) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "MIDGARD_PORT": "0", "MIDGARD_LISTEN_HOST": "127.0.0.1", "MIDGARD_INTERVAL_S": str(interval_s),
           "MIDGARD_GATEWAY_URL": f"http://127.0.0.1:{gw_port}", "MIDGARD_TOKEN_FILE": str(token_file),
           "MIDGARD_NODE_NAME": case, "MIDGARD_LOG_LEVEL": "warning"}  # fmt: skip
    cmd = [sys.executable, "-c", REPLAY] if case == "replay-8" else [sys.executable, "-m", "midgard"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("midgard listening on"), f"agent did not start: {line!r}"
    return proc, int(line.rsplit(":", 1)[1])


def scrape(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return len(r.read())


async def measure(case: str, seconds: float, warmup_s: float, interval_s: float, tmp: Path) -> dict[str, Any]:
    token = tmp / "token"
    token.write_text("bench-token\n")
    runner, gw_port, registry = await gateway(token)
    proc, port = start(case, gw_port, token, interval_s)
    ps = psutil.Process(proc.pid)
    try:
        await asyncio.sleep(warmup_s)
        cpu0, t0, rss = sum(ps.cpu_times()[:2]), time.monotonic(), []
        metrics_bytes = 0
        while time.monotonic() - t0 < seconds:
            await asyncio.sleep(5.0)
            metrics_bytes = await asyncio.to_thread(scrape, port)
            rss.append(ps.memory_info().rss)
        cpu1, t1 = sum(ps.cpu_times()[:2]), time.monotonic()
        node = registry.nodes.get(case)
        received = node.latest["seq"] if node else 0
        gpus = len(node.latest["gpus"]) if node else 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        await runner.cleanup()
    return {"case": case, "gpus": gpus, "interval_s": interval_s, "seconds": round(t1 - t0, 1),
            "cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (t1 - t0), 2),
            "rss_mib_max": round(max(rss) / 2**20, 1), "rss_mib_last": round(rss[-1] / 2**20, 1),
            "reports_received_by_gateway": received, "metrics_bytes": metrics_bytes}  # fmt: skip


def replay_share(readings: int = 50) -> dict[str, float]:
    """In this process: how much of one 8-GPU NVML reading is the fake library's own work (not the agent's)."""
    from midgard.nvml import NvmlReader
    from midgard.testing import fake_nvml as F

    with F.installed(F.replicate(F.load_board("a100-sxm4-80gb"), 8)) as fake:
        reader = NvmlReader()
        reader.read()
        fake.seconds, started = 0.0, time.perf_counter()
        for _ in range(readings):
            reader.read()
        total = time.perf_counter() - started
        reader.close()
    return {"nvml_read_ms": round(1000 * total / readings, 2), "of_which_fake_library_ms":
            round(1000 * fake.seconds / readings, 2)}  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--interval-s", type=float, default=1.0)
    parser.add_argument("--cases", default="zero-gpus,replay-8")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [
            await measure(c, args.seconds, args.warmup, args.interval_s, Path(tmp)) for c in args.cases.split(",")
        ]
    share = replay_share()
    print(json.dumps({"machine": machine(), "results": results, "replay_share": share}, indent=1))
    print("\n| case | GPUs | interval | CPU (% of one core) | RSS max | reports pushed | /metrics size |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['case']} | {r['gpus']} | {r['interval_s']} s | {r['cpu_percent_of_one_core']} % | "
              f"{r['rss_mib_max']} MiB | {r['reports_received_by_gateway']} | {r['metrics_bytes']} B |")  # fmt: skip
    print(f"\nreplay-8: one NVML reading takes {share['nvml_read_ms']} ms here, of which "
          f"{share['of_which_fake_library_ms']} ms inside the fake library")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
