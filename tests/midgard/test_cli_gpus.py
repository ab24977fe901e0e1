"""`odin gpus`, `odin nodes`, `odin top RUN` against a live gateway fed with real agent reports."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from midgard import report
from midgard.nvml import NvmlReader
from midgard.report import Identity, PodFacts, ProcFacts
from midgard_support import report_for

RUN = "sweep-ab12"


def agent_report(node: str) -> dict:
    reader = NvmlReader()
    raw = reader.read()
    reader.close()
    pods = {"u1": PodFacts("u1", "odin", f"{RUN}--train-1", RUN, "train", f"{RUN}--train")}
    facts = {41877: ProcFacts("python", "u1", "c" * 64)}
    ident = Identity(node, node, "10.0.0.5", "agent-x", 1.0, "test")
    return report.build_report(ident, raw, facts=facts, pods=pods, system={"cpu": {"count": 64}}, seq=1,
                               now=time.time())  # fmt: skip


async def odin(gateway_url: str, *args: str) -> tuple[int, str, str]:
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "odin_client", "--server", gateway_url, *args, stdout=pipe, stderr=pipe
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_gpus_nodes_and_top(board, replay, start_gateway):
    replay(board("a100-sxm4-40gb-mig"))
    gw = await start_gateway()
    now = time.time()
    gw.registry.ingest([agent_report("gpu-a")], now)
    gw.registry.ingest([report_for("gpu-b", ts=now - 100, seq=1, task_id=None)], now - 100)  # silent since: stale

    code, out, err = await odin(gw.url, "gpus")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["NODE", "GPU", "NAME", "UTIL", "MEMORY", "TEMP", "POWER", "TASK"]
    assert any(line.startswith("gpu-a") and "NVIDIA A100-SXM4-40GB" in line and "46/400 W" in line for line in lines)
    assert any("0/0" in line and "MIG 3g.20gb" in line and f"{RUN}--train" in line for line in lines)
    assert any("gpu-b (stale)" in line and "Tesla T4" in line for line in lines)

    code, out, _ = await odin(gw.url, "gpus", "-o", "json")
    assert code == 0 and {g["node"] for g in json.loads(out)["gpus"]} == {"gpu-a", "gpu-b"}

    code, out, _ = await odin(gw.url, "nodes")
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert code == 0 and "ok" in rows["gpu-a"] and "stale" in rows["gpu-b"] and "10.0.0.5" in rows["gpu-a"]

    code, out, _ = await odin(gw.url, "top", RUN, "--once")
    assert code == 0
    (row,) = [line for line in out.splitlines() if line.startswith(f"{RUN}--train")]
    assert "gpu-a" in row and "0/0" in row and "10240 MiB" in row and "10251/20096 MiB" in row

    code, out, _ = await odin(gw.url, "top", "other-run", "--once")
    assert code == 0 and "no GPU held by other-run" in out


async def test_without_a_gateway_one_clear_line(start_gateway):
    code, _, err = await odin("ws://127.0.0.1:30000", "gpus")
    assert code == 1 and "pass --server http(s)://HOST:9003" in err and "Traceback" not in err
    gw = await start_gateway()
    code, _, err = await odin(gw.url + "/nope", "nodes")
    assert code == 1 and "HTTP 404" in err and "Traceback" not in err
