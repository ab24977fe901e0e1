"""WebSocket fan-out: publish-to-receive latency of WATCH events, and memory per idle connection.

The server (Service over a SQLite store) and the event publisher run in this process; the watchers and the idle
connections run in a child process with their own event loop, so client work does not slow the server's loop.
Events are synthetic: batches are committed to the store and published through the engine's Hub at a fixed
rate, exactly as the engine does (persist, then publish). Latency = receive time - the event's ``time``.
Loopback only; about one minute. Usage: python bench/ws_fanout.py [--watchers 100] [--rate 1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, summary
from odin_core.api import Odin
from odin_core.executors.instant import InstantExecutor
from odin_core.model import Event, RunRecord, RunStatus
from odin_core.service import Service, ServiceSettings
from odin_core.settings import Settings
from odin_core.store.base import Lease
from websockets.asyncio.client import connect

RUN = "bench-fanout"
BATCH_MS = 10


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- child process: clients ---------------------------------------------------------------------------


async def _watcher(url: str, total: int, ready: asyncio.Event, lat: list[float]) -> None:
    async with connect(url, max_size=None, max_queue=None, compression=None) as ws:
        await ws.send(json.dumps({"command": "WATCH", "request": {"run": RUN, "after_seq": 1}, "id": 1}))
        ready.set()
        got = 0
        while got < total:
            msg = json.loads(await ws.recv())
            if msg["status"] != "OK":
                return
            lat.append(time.time() - datetime.fromisoformat(msg["response"]["time"]).timestamp())
            got += 1


async def _watchers(url: str, n: int, total: int, conn: Any) -> None:
    lat: list[float] = []
    readies = [asyncio.Event() for _ in range(n)]
    tasks = [asyncio.create_task(_watcher(url, total, r, lat)) for r in readies]
    await asyncio.gather(*(r.wait() for r in readies))
    conn.send("ready")
    await asyncio.wait(tasks, timeout=120)
    conn.send(lat)


async def _idle(url: str, n: int, conn: Any) -> None:
    sockets = []
    for _ in range(n):
        ws = await connect(url, compression=None, ping_interval=None)
        await ws.send(json.dumps({"command": "PING", "request": "x"}))
        await ws.recv()
        sockets.append(ws)
    conn.send("open")
    conn.recv()
    for ws in sockets:
        await ws.close()


def clients(kind: str, url: str, n: int, total: int, conn: Any) -> None:
    asyncio.run(_watchers(url, n, total, conn) if kind == "watch" else _idle(url, n, conn))


# -- this process: server and publisher ----------------------------------------------------------------


async def publish(odin: Odin, lease: Lease, rate: int, seconds: float) -> int:
    hub, store = odin.engine.hub, odin.store
    per_batch, seq = max(rate * BATCH_MS // 1000, 1), 1
    start = time.perf_counter()
    for i in range(int(seconds * 1000 / BATCH_MS)):
        await asyncio.sleep(max(start + i * BATCH_MS / 1000 - time.perf_counter(), 0))
        now = time.time()
        events = [Event(RUN, seq + k + 1, now, "task", "RUNNING", f"t{k}") for k in range(per_batch)]
        seq += per_batch
        await store.commit(lease, None, (), events)
        hub.publish(events)
    return seq - 1


async def wait_pipe(conn: Any) -> Any:
    while not conn.poll():
        await asyncio.sleep(0.01)
    return conn.recv()


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="odin-bench-"))
    settings = Settings(home=tmp, store_url=f"sqlite:///{tmp / 'odin.db'}")
    odin = Odin(settings, await _store(settings), InstantExecutor(), root=tmp)
    service = Service(odin, ServiceSettings(host="127.0.0.1", port=0, root_path=tmp, ping_interval_s=None))
    await service.start()
    url = service.url
    first = Event(RUN, 1, time.time(), "run", "RUNNING")
    # a run held by this bench's publisher, its heartbeat in the future: the engine leaves it alone
    fake = RunRecord(RUN, job="bench", status=RunStatus.RUNNING, owner="bench-publisher")
    lease = await odin.store.create_run(fake, {}, [], [first], now=time.time() + 86_400)
    assert lease is not None
    total = int(args.rate * args.seconds)
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe()
    child = ctx.Process(target=clients, args=("watch", url, args.watchers, total, there))
    child.start()
    await wait_pipe(here)
    await publish(odin, lease, args.rate, args.seconds)
    lat = await wait_pipe(here)
    await asyncio.to_thread(child.join)
    ms = [x * 1000 for x in lat]
    fanout = {"watchers": args.watchers, "rate_per_s": args.rate, "events": total, "received": len(ms)}
    fanout.update({k: round(v, 2) for k, v in summary(ms).items()} if ms else {})
    idle = await measure_idle(url, args.idle, ctx)
    await service.stop()
    await odin.close()
    return {"machine": machine(), "fanout_latency_ms": fanout, "idle_connections": idle}


async def measure_idle(url: str, n: int, ctx: Any) -> dict[str, Any]:
    before = rss_mib()
    here, there = ctx.Pipe()
    child = ctx.Process(target=clients, args=("idle", url, n, 0, there))
    child.start()
    await wait_pipe(here)
    await asyncio.sleep(0.5)
    after = rss_mib()
    here.send("close")
    await asyncio.to_thread(child.join)
    per_kib = (after - before) * 1024 / n
    return {
        "connections_opened": n,
        "server_rss_mib_before": round(before, 1),
        "server_rss_mib_after": round(after, 1),
        "kib_per_idle_connection": round(per_kib, 1),
        "extrapolated_connections_per_gib": int(1024 * 1024 / per_kib) if per_kib > 0 else None,
    }


async def _store(settings: Settings) -> Any:
    from odin_core.store import open_store

    return await open_store(settings.store)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--watchers", type=int, default=100)
    p.add_argument("--rate", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--idle", type=int, default=5000, help="idle connections opened (RSS extrapolated to 1 GiB)")
    print(json.dumps(asyncio.run(main(p.parse_args())), indent=2))
