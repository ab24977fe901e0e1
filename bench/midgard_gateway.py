"""Gateway ingest: 1,000 simulated nodes pushing one report per second, and GET /v1/nodes latency under that load.

Three processes, each with its own event loop: the gateway (an aiohttp app with the node module only, as the
gateway mounts it, token-authenticated), the nodes (100 keep-alive connections; each of the ``--nodes`` nodes
POSTs its report once per second at its own offset), and a reader that GETs /v1/nodes every ``--read-every`` s and
times each full response. The reports are real agent reports: built once from a replayed board (``--gpus`` GPUs,
``a100-sxm4-80gb``, one process per GPU) by the agent's own code, then given each node's name, seq and time.
Usage: python bench/midgard_gateway.py [--nodes 1000] [--gpus 4] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiohttp import web

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, summary
from odin_http.nodes import REGISTRY, NodesSettings, setup

WORKERS = 100


def template(gpus: int) -> bytes:
    """One node's report as JSON, with NODE/SEQ/TS placeholders (made by the agent's real reading code)."""
    from midgard import report
    from midgard.nvml import NvmlReader
    from midgard.system import SystemReader
    from midgard.testing import fake_nvml as F

    with F.installed(F.replicate(F.load_board("a100-sxm4-80gb"), gpus)):
        reader = NvmlReader()
        raw = reader.read()
        reader.close()
    pods = {"pod-uid": report.PodFacts("pod-uid", "odin", "sweep--train-1", "sweep", "train", "sweep--train")}
    facts = {280058: report.ProcFacts("python", "pod-uid", "c" * 64)}
    ident = report.Identity("NODE", "NODE", "10.0.0.1", "AGENT", 1.0, "bench")
    rep = report.build_report(ident, raw, facts=facts, pods=pods, system=SystemReader().read(), seq=0, now=0.0)
    rep["seq"], rep["timestamp"] = "SEQ", "TS"
    return json.dumps(rep).replace('"SEQ"', "SEQ").replace('"TS"', "TS").encode()


def run_gateway(token_file: str, port_q: Any, stop: Any, stats_q: Any) -> None:
    async def main() -> None:
        app = web.Application(client_max_size=8 * 2**20)
        setup(app, NodesSettings(token_file=token_file, kube_api_url="none", history_points=600))
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port_q.put(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        proc = psutil.Process()
        cpu0 = sum(proc.cpu_times()[:2])
        while not stop.is_set():
            await asyncio.sleep(0.2)
        reg = app[REGISTRY]
        stats_q.put({"accepted": reg.accepted, "nodes": len(reg.nodes), "cpu_s": sum(proc.cpu_times()[:2]) - cpu0,
                     "rss_mib": round(proc.memory_info().rss / 2**20, 1)})  # fmt: skip
        await runner.cleanup()

    asyncio.run(main())


def node_parts(body: bytes, n: int) -> tuple[bytes, bytes, bytes]:
    """Node ``n``'s report split around SEQ and TS, so each push only joins bytes (the generator must be cheap)."""
    own = body.replace(b"NODE", f"node-{n:04d}".encode()).replace(b"AGENT", b"a" + str(n).encode())
    head, rest = own.split(b"SEQ", 1)
    middle, tail = rest.split(b"TS", 1)
    return b'{"reports":[' + head, middle, tail + b"]}"


async def _post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int, body: bytes) -> int:
    """One keep-alive HTTP/1.1 POST written by hand: the load generator must cost far less than the gateway."""
    writer.write(
        b"POST /v1/nodes/reports HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer bench-token\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (port, len(body)) + body
    )
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    return status


def run_nodes(port: int, nodes: int, seconds: float, body: bytes, q: Any) -> None:
    parts = [node_parts(body, n) for n in range(nodes)]

    async def worker(mine: list[int], t0: float, out: dict[str, Any]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        seq = 0
        while time.monotonic() - t0 < seconds:
            for n in mine:
                delay = t0 + seq + n / nodes - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                head, middle, tail = parts[n]
                data = b"".join((head, str(seq).encode(), middle, repr(time.time()).encode(), tail))
                started = time.perf_counter()
                status = await _post(reader, writer, port, data)
                out["latency"].append(time.perf_counter() - started)
                out["status"][status] = out["status"].get(status, 0) + 1
            seq += 1
        writer.close()

    async def main() -> None:
        out: dict[str, Any] = {"status": {}, "latency": []}
        t0 = time.monotonic() + 0.5
        async with asyncio.TaskGroup() as tg:
            for w in range(WORKERS):
                tg.create_task(worker(list(range(w, nodes, WORKERS)), t0, out))
        q.put({"status": out["status"], "sent": len(out["latency"]), "elapsed": time.monotonic() - t0,
               "push_latency_ms": {k: round(v * 1000, 2) for k, v in summary(out["latency"]).items()}})  # fmt: skip

    asyncio.run(main())


def run_reader(port: int, seconds: float, every_s: float, warmup_s: float, q: Any) -> None:
    async def main() -> None:
        times, sizes, last = [], [], b'{"nodes": []}'
        async with aiohttp.ClientSession() as session:
            t0 = time.monotonic()
            while time.monotonic() - t0 < seconds:
                started = time.perf_counter()
                async with session.get(f"http://127.0.0.1:{port}/v1/nodes") as r:
                    body = await r.read()
                elapsed = time.perf_counter() - started
                if time.monotonic() - t0 >= warmup_s:
                    times.append(elapsed)
                    sizes.append(len(body))
                    last = body
                await asyncio.sleep(max(0.0, every_s - elapsed))
        stale = sum(1 for n in json.loads(last)["nodes"] if n["stale"])
        q.put({"gets": len(times), "latency_ms": {k: round(v * 1000, 1) for k, v in summary(times).items()},
               "response_mib": round(sum(sizes) / len(sizes) / 2**20, 2), "stale_nodes_at_end": stale})  # fmt: skip

    asyncio.run(main())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--gpus", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--read-every", type=float, default=0.5)
    args = parser.parse_args()
    body = template(args.gpus)
    load_before = os.getloadavg()
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp:
        token = Path(tmp) / "tokens"
        token.write_text("bench-token\n")
        port_q, stats_q, nodes_q, reader_q, stop = ctx.Queue(), ctx.Queue(), ctx.Queue(), ctx.Queue(), ctx.Event()
        gw = ctx.Process(target=run_gateway, args=(str(token), port_q, stop, stats_q))
        gw.start()
        port = port_q.get(timeout=60)
        pushers = ctx.Process(target=run_nodes, args=(port, args.nodes, args.seconds, body, nodes_q))
        reader = ctx.Process(target=run_reader, args=(port, args.seconds, args.read_every, args.warmup, reader_q))
        pushers.start()
        reader.start()
        pushed, read = nodes_q.get(timeout=args.seconds + 600), reader_q.get(timeout=args.seconds + 600)
        stop.set()
        gateway = stats_q.get(timeout=60)
        for p in (pushers, reader, gw):
            p.join(timeout=60)
    offered = args.nodes
    result = {
        "machine": machine(),
        "settings": {"nodes": args.nodes, "gpus_per_node": args.gpus, "seconds": args.seconds, "warmup_s": args.warmup,
                     "read_every_s": args.read_every, "report_bytes": len(body), "connections": WORKERS},
        "pushes": pushed, "gets": read, "gateway": gateway,
        "ingest_reports_per_s": round(pushed["sent"] / pushed["elapsed"], 1), "offered_per_s": offered,
        "gateway_cpu_percent_of_one_core": round(100 * gateway["cpu_s"] / pushed["elapsed"], 1),
        "gateway_cpu_ms_per_report": round(1000 * gateway["cpu_s"] / max(1, gateway["accepted"]), 3),
        "load_average_before_after": [round(load_before[0], 1), round(os.getloadavg()[0], 1)],
    }  # fmt: skip
    print(json.dumps(result, indent=1))
    g, r = read["latency_ms"], result
    print("\n| nodes | GPUs/node | reports/s (offered) | push p99 | GET /v1/nodes p50 | p99 | max | response "
          "| gateway CPU | CPU per report | gateway RSS | load avg |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    push_p99 = pushed["push_latency_ms"]["p99"]
    print(f"| {args.nodes} | {args.gpus} | {r['ingest_reports_per_s']} ({offered}) | {push_p99} ms "
          f"| {g['p50']} ms | {g['p99']} ms | {g['max']} ms | {read['response_mib']} MiB "
          f"| {r['gateway_cpu_percent_of_one_core']} % | {r['gateway_cpu_ms_per_report']} ms "
          f"| {gateway['rss_mib']} MiB | {r['load_average_before_after']} |")  # fmt: skip


if __name__ == "__main__":
    main()
