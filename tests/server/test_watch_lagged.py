"""A deliberately slow reader of WATCH (every run) is told what it missed, and can fetch all of it.

The reader's socket is made small (a 536-byte MSS and a 4 KiB receive buffer), so the server's sends block
after a few dozen kilobytes and the hub's queue (32 events here) overflows while runs go on. The reader must
then receive an explicit ``lagged`` message, and ``WATCH {run, after_seq: resume[run]}`` must give back every
event it did not get live: per run, live + resumed == the store's log, nothing missing.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from odin_core.api import Odin
from odin_core.executors.instant import InstantExecutor
from odin_core.service import ServiceSettings, serve_odin
from odin_core.settings import Settings
from server_support import Client, check, legacy
from websockets.asyncio.client import connect

WIDE_TASKS = 100  # about 3 events a task: ~300 events a run; the slow socket holds ~200
RUNS = 2
QUEUE = 32


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "pipelines"
    tasks = "".join(f"  - {{name: t{i}, image: x, command: c}}\n" for i in range(WIDE_TASKS))
    (base / "wide").mkdir(parents=True)
    (base / "wide" / "main.yml").write_text(f"name: wide\ntasks:\n{tasks}")
    (base / "one").mkdir()
    (base / "one" / "main.yml").write_text("name: one\ntasks:\n  - {name: a, image: x, command: c}\n")
    return base


@pytest.fixture
async def instant(tmp_path: Path, root: Path) -> Any:
    """A core whose tasks succeed at once (no processes), so events come faster than a slow reader reads."""
    settings = Settings.from_env({"ODIN_HOME": str(tmp_path / "home")})
    odin = await Odin.open(settings, executor=InstantExecutor(), root=root)
    odin.engine.hub.queue_size = QUEUE
    settings_ = ServiceSettings(host="127.0.0.1", port=0, root_path=root, ping_interval_s=None)
    async with serve_odin(odin, settings_) as server:
        yield odin, server
    await odin.close()


def _slow_socket(url: str) -> socket.socket:
    host, port = url.removeprefix("ws://").rsplit(":", 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)  # the server's send buffer sizes itself by it
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.setblocking(False)
    return sock


async def test_a_slow_watcher_gets_lagged_and_resumes_every_run_without_a_gap(instant):
    odin, server = instant
    async with connect(server.url, sock=_slow_socket(server.url), max_queue=1) as slow:
        await slow.send(json.dumps({"command": "WATCH", "request": {}, "id": "all"}))
        await slow.send(json.dumps({"command": "PING", "request": "subscribed?", "id": "p"}))
        assert json.loads(await slow.recv())["id"] == "p"  # WATCH subscribed before PING was answered

        runs = [
            (await legacy(server.url, "START", {"job": "wide", "watch": False}))[0]["response"] for _ in range(RUNS)
        ]
        for run_id in runs:  # the reader reads nothing meanwhile
            assert (await odin.wait(run_id)).status.value == "DONE"

        live: dict[str, list[int]] = {}
        lagged: list[dict[str, Any]] = []
        sentinel: str | None = None
        while True:  # now drain; once the lag is reported, one more run marks the end of the stream
            msg = json.loads(await slow.recv())
            check(msg, "reply.json")
            item = msg["response"]
            if item.get("kind") == "lagged":
                check(item, "lagged.json")
                lagged.append(item)
                if sentinel is None:
                    sentinel = (await legacy(server.url, "START", {"job": "one", "watch": False}))[0]["response"]
                continue
            check(item, "event.json")
            live.setdefault(item["run"], []).append(item["seq"])
            if item["run"] == sentinel and item["kind"] == "run" and item["status"] == "DONE":
                break

    assert lagged, "the reader never lagged: the test did not test anything"
    total = sum([await odin.store.last_seq(r) for r in runs])
    assert sum(len(live.get(r, [])) for r in runs) < total  # events really were dropped
    for run_id in runs:
        got = live.get(run_id, [])
        assert got == sorted(set(got)), "live events of a run come in order, each once"
        resume = min(msg["resume"].get(run_id, total) for msg in lagged)
        replies = await legacy(server.url, "WATCH", {"run": run_id, "after_seq": resume})
        resumed = [r["response"]["seq"] for r in replies if r["status"] == "OK"]
        stored = [e.seq for e in await odin.store.events(run_id)]
        assert sorted(set(got) | set(resumed)) == stored, run_id
        assert [s for s in got if s <= resume] == [s for s in stored if s <= resume], "nothing lost before resume"


async def test_other_clients_are_served_while_a_watcher_lags(instant):
    odin, server = instant
    async with connect(server.url, sock=_slow_socket(server.url), max_queue=1) as slow:
        await slow.send(json.dumps({"command": "WATCH", "request": {}, "id": "all"}))
        async with Client.connect(server.url) as fast:
            await fast.send("WATCH", {}, "w")
            started = await fast.call("START", {"job": "wide", "watch": False})
            assert (await odin.wait(started["response"])).status.value == "DONE"
            assert (await fast.call("PING", "ok", rid="p"))["response"] == "PONG ok"
            seen = await fast.run_event("w", started["response"])
            assert seen["seq"] >= 1
