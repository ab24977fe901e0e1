"""Helpers of the server tests: the jobs, the schemas, and a legacy-style client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from importlib import resources
from typing import Any

import jsonschema
from websockets.asyncio.client import connect

PY = sys.executable
JOBS = {
    "hello": f"""
        name: hello
        tasks:
          - {{name: greet, image: busybox, command: {PY}, args: ["-c", "print('hello from $TASK_ID')"]}}
        """,
    "chain": f"""
        name: chain
        tasks:
          - {{name: a, image: busybox, command: {PY}, args: ["-c", "pass"]}}
          - {{name: b, image: busybox, command: {PY}, args: ["-c", "pass"], depends: a}}
          - {{name: c, image: busybox, command: {PY}, args: ["-c", "pass"], depends: b}}
          - {{name: d, image: busybox, command: {PY}, args: ["-c", "pass"], depends: c}}
        """,
    "slow": f"""
        name: slow
        tasks:
          - {{name: wait, image: busybox, command: {PY}, args: ["-c", "import time; time.sleep(60)"]}}
        """,
    "flaky": f"""
        name: flaky
        tasks:
          - {{name: ok, image: busybox, command: {PY}, args: ["-c", "pass"]}}
          - name: gate
            image: busybox
            command: {PY}
            args: ["-c", "import os,sys; sys.exit(0 if os.path.exists('$ROOT_PATH/fixed') else 3)"]
            depends: ok
        """,
    "ner": f"""
        name: bert.ner
        tasks:
          - {{name: tag, image: busybox, command: {PY}, args: ["-c", "pass"]}}
        """,
    "chatty": f"""
        name: chatty
        tasks:
          - name: talk
            image: busybox
            command: {PY}
            args: ["-c", "import sys; sys.stdout.write(('x' * 99 + chr(10)) * 150000)"]
        """,
    "team/bad": """
        name: bad
        tasks:
          - {name: a_b, image: x}
        """,
}


def schema(name: str) -> dict[str, Any]:
    return json.loads(resources.files("odin_core.service").joinpath("schemas", name).read_text())


def check(instance: Any, name: str) -> None:
    jsonschema.validate(instance, schema(name), format_checker=jsonschema.FormatChecker())


async def legacy(url: str, command: str, request: Any, **extra: Any) -> list[dict[str, Any]]:
    """As the first Odin's clients do: one connection per request, read until END or the first OK/ERROR
    (streams: until END or ERROR). Every reply is checked against the reply schema and echoes the extras."""
    follow = command in {"START", "LOGS", "WATCH"}
    follow = follow and not (isinstance(request, dict) and request.get("watch") is False)
    replies = []
    async with connect(url) as ws:
        await ws.send(json.dumps({"command": command, "request": request, **extra}))
        async for frame in ws:
            msg = json.loads(frame)
            check(msg, "reply.json")
            assert all(msg[k] == v for k, v in extra.items()), msg
            replies.append(msg)
            if msg["status"] in ("ERROR", "END") or (msg["status"] == "OK" and not follow):
                break
    return replies


class Client:
    """One multiplexed connection: requests by id, replies sorted into a queue per id by a reader task."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.queues: dict[Any, asyncio.Queue[dict[str, Any]]] = {}
        self.reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(cls, url: str, **kw: Any) -> AsyncIterator[Client]:
        async with connect(url, **kw) as ws:
            client = cls(ws)
            try:
                yield client
            finally:
                client.reader.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await client.reader

    async def _read(self) -> None:
        async for frame in self.ws:
            msg = json.loads(frame)
            check(msg, "reply.json")
            self.queue(msg.get("id")).put_nowait(msg)

    def queue(self, rid: Any) -> asyncio.Queue[dict[str, Any]]:
        return self.queues.setdefault(rid, asyncio.Queue())

    async def send(self, command: str, payload: Any = None, rid: Any = None, **extra: Any) -> None:
        await self.ws.send(json.dumps({"command": command, "request": payload, "id": rid, **extra}))

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def next(self, rid: Any, timeout: float = 30) -> dict[str, Any]:
        return await asyncio.wait_for(self.queue(rid).get(), timeout)

    async def call(self, command: str, payload: Any = None, rid: Any = "call") -> dict[str, Any]:
        """One request, its first reply."""
        await self.send(command, payload, rid)
        return await self.next(rid)

    async def run_event(self, rid: Any, run_id: str, timeout: float = 30) -> dict[str, Any]:
        """The next event of ``run_id`` on the WATCH stream ``rid`` (events of other runs are passed over)."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.next(rid, timeout)
                assert msg["status"] == "OK", msg
                if msg["response"].get("run") == run_id:
                    return msg["response"]
