"""The cluster's GPUs from the gateway: ``odin gpus``, ``odin nodes``, ``odin top RUN``.

The gateway (``odin-http``) aggregates the reports of every node's midgard agent; these commands read its
``/v1/gpus`` and ``/v1/nodes`` (``--server http(s)://HOST:9003``). Rendering is pure (rows from the JSON); the only
I/O is one GET per table.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import click
from rich.live import Live
from rich.table import Table

from .common import OUTPUT_TABLE, CliState, fail, make_console, print_table, state
from .fmt import dump

NEEDS_GATEWAY = "{cmd} reads the cluster from the gateway: pass --server http(s)://HOST:9003 (or set ODIN_SERVER)"


def _get(cli_state: CliState, path: str, cmd: str) -> dict[str, Any]:
    server = cli_state.server or ""
    if not server.startswith(("http://", "https://")):
        fail(NEEDS_GATEWAY.format(cmd=cmd))
    from ..http import TokenCache  # the token `odin login` cached for this server, when none is given

    token = cli_state.token or TokenCache().get(server).get("accessToken")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(server.rstrip("/") + path, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        fail(f"{server}{path}: HTTP {e.code}: {_message(e)}")
    except (urllib.error.URLError, OSError, ValueError) as e:
        fail(f"cannot read {server}{path}: {getattr(e, 'reason', e)}")
    raise AssertionError("unreachable")


def _message(e: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(e.read())["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return str(e.reason)


# -- pure rendering ---------------------------------------------------------------------------------------------
def _num(value: Any, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}{unit}" if isinstance(value, float) else f"{value}{unit}"


def _memory(mem: dict[str, Any] | None) -> str:
    mem = mem or {}
    return f"{_num(mem.get('used'))}/{_num(mem.get('total'))} MiB"


def _power(p: dict[str, Any] | None) -> str:
    p = p or {}
    return f"{_num(p.get('powerDraw'), digits=0)}/{_num(p.get('powerLimit'), digits=0)} W"


def _tasks(entry: dict[str, Any]) -> str:
    procs = entry.get("processes") or []
    ids = sorted({p.get("taskId") or "" for p in procs} - {""})
    if ids:
        return ", ".join(ids)
    return f"{len(procs)} process(es)" if procs else ""


def gpu_rows(body: dict[str, Any]) -> list[list[str]]:
    """One row per GPU (and per MIG instance): node, index, name, util, memory, temperature, power, task."""
    rows = []
    for g in body.get("gpus") or []:
        node = g.get("node", "") + (" (stale)" if g.get("stale") else "")
        util = (g.get("utilization") or {}).get("gpuUtil")
        temp = (g.get("temperature") or {}).get("gpuTemp")
        memory, power = _memory(g.get("fbMemoryUsage")), _power(g.get("powerReadings"))
        rows.append([node, str(g.get("index")), g.get("productName") or "?", _num(util, "%"), memory, _num(temp, "C"),
                     power, _tasks(g)])  # fmt: skip
        for m in g.get("migDevices") or []:
            profile = (m.get("productName") or "").rpartition(" MIG ")[2] or "MIG"
            rows.append(["", f"{g.get('index')}/{m.get('index')}", f"  MIG {profile}", _num(None), _memory(
                m.get("fbMemoryUsage")), "", "", _tasks(m)])  # fmt: skip
    return rows


def node_rows(body: dict[str, Any]) -> list[list[str]]:
    rows = []
    for n in body.get("nodes") or []:
        cap = n.get("capacity") or {}
        status = _node_status(n)
        rows.append([n.get("name", ""), n.get("host") or "", n.get("internalIp") or "-", str(len(n.get("gpus") or [])),
                     cap.get("cpu", "-"), cap.get("memory", "-"), status, n.get("lastReport") or "-"])  # fmt: skip
    return rows


def _node_status(n: dict[str, Any]) -> str:
    if n.get("ageS") is None:
        return "no agent"
    return f"stale ({n['ageS']:.0f}s)" if n.get("stale") else "ok"


def top_rows(body: dict[str, Any], run: str) -> list[list[str]]:
    """One row per (task of RUN, GPU it holds): the task's memory on the GPU, and the GPU's state."""
    idle = {(w.get("taskId"), w.get("gpuUuid")) for w in body.get("warnings") or []}
    rows = []
    for g in body.get("gpus") or []:
        migs = [(m, f"{g.get('index')}/{m.get('index')}") for m in g.get("migDevices") or []]
        for entry, label in migs or [(g, str(g.get("index")))]:  # with MIG on, a task holds an instance
            mine: dict[str, int] = {}
            for p in entry.get("processes") or []:
                if p.get("runId") == run or str(p.get("taskId") or "").startswith(f"{run}--"):
                    mine[p["taskId"]] = mine.get(p["taskId"], 0) + (p.get("used_memory") or 0)
            for task_id, used in sorted(mine.items()):
                flag = "idle" if (task_id, entry.get("uuid")) in idle else ""
                rows.append([task_id, g.get("node", ""), label, _num((g.get("utilization") or {}).get("gpuUtil"), "%"),
                             f"{used} MiB", _memory(entry.get("fbMemoryUsage")), _power(g.get("powerReadings")),
                             flag])  # fmt: skip
    return rows


def table(headers: list[str], rows: list[list[str]]) -> Table:
    t = Table(box=None, header_style="bold", pad_edge=False)
    for h in headers:
        t.add_column(h, no_wrap=True, justify="right" if h in ("GPU", "UTIL", "TEMP", "GPUS", "CPU") else "left")
    for r in rows:
        t.add_row(*r)
    return t


GPU_HEADERS = ["NODE", "GPU", "NAME", "UTIL", "MEMORY", "TEMP", "POWER", "TASK"]
NODE_HEADERS = ["NODE", "HOST", "INTERNAL IP", "GPUS", "CPU", "MEMORY", "STATUS", "LAST REPORT"]
TOP_HEADERS = ["TASK", "NODE", "GPU", "UTIL", "TASK MEMORY", "GPU MEMORY", "POWER", ""]


def _warnings(console: Any, body: dict[str, Any]) -> None:
    for w in body.get("warnings") or []:
        console.print(f"[yellow]warning:[/] {w.get('message')}", markup=True, soft_wrap=True)


# -- commands ---------------------------------------------------------------------------------------------------
@click.command("gpus", short_help="Every GPU of the cluster, like nvidia-smi on every node.")
@OUTPUT_TABLE
@click.pass_context
def gpus_cmd(ctx: click.Context, output: str) -> None:
    """Every GPU of the cluster (from the gateway's node agents): node, index, name, utilisation, memory,
    temperature, power and the Odin task using it.

    \b
    Examples:
      odin --server http://odin-http:9003 gpus
      odin --server http://odin-http:9003 gpus -o json
    """
    body = _get(state(ctx), "/v1/gpus", "odin gpus")
    if output != "table":
        click.echo(dump(body, output))
        return
    console = make_console()
    rows = gpu_rows(body)
    if not rows:
        console.print("no GPU reported: is a midgard agent running on the GPU nodes?")
    else:
        print_table(console, table(GPU_HEADERS, rows))
    _warnings(console, body)


@click.command("nodes", short_help="The cluster's nodes, their capacity and their agents.")
@OUTPUT_TABLE
@click.pass_context
def nodes_cmd(ctx: click.Context, output: str) -> None:
    """The cluster's nodes: host, internal IP, GPUs, capacity, and whether their agent reports (stale: silent).

    \b
    Examples:
      odin --server http://odin-http:9003 nodes
    """
    body = _get(state(ctx), "/v1/nodes", "odin nodes")
    if output != "table":
        click.echo(dump(body, output))
        return
    console = make_console()
    rows = node_rows(body)
    if rows:
        print_table(console, table(NODE_HEADERS, rows))
    else:
        console.print("no node reported yet")


@click.command("top", short_help="Live GPU use of a run's tasks.")
@click.argument("run_id", metavar="RUN")
@click.option(
    "--interval", type=click.FloatRange(min=0.5), default=2.0, show_default=True, help="Seconds between updates."
)
@click.option("--once", is_flag=True, help="Print one table and exit (also the default off a terminal).")
@OUTPUT_TABLE
@click.pass_context
def top_cmd(ctx: click.Context, run_id: str, interval: float, once: bool, output: str) -> None:
    """Live GPU use of RUN's tasks: which GPU each task holds, its memory there, the GPU's utilisation and power,
    and `idle` when the gateway warns that the task has left its GPU idle. Ctrl-C to stop.

    \b
    Examples:
      odin --server http://odin-http:9003 top ml-sweep-4kq2
    """
    cli_state, console = state(ctx), make_console()
    if output != "table":
        body = _get(cli_state, "/v1/gpus", "odin top")
        click.echo(dump([dict(zip(["task", "node", "gpu", "util", "taskMemory", "gpuMemory", "power", "flag"], r,
                                  strict=True)) for r in top_rows(body, run_id)], output))  # fmt: skip
        return

    def render() -> Table:
        rows = top_rows(_get(cli_state, "/v1/gpus", "odin top"), run_id)
        t = table(TOP_HEADERS, rows or [[f"no GPU held by {run_id}", "", "", "", "", "", "", ""]])
        t.caption = f"{run_id} · {time.strftime('%H:%M:%S')}"
        return t

    if once or not console.is_terminal:
        print_table(console, render())
        return
    try:
        with Live(render(), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(render(), refresh=True)
    except KeyboardInterrupt:
        pass
