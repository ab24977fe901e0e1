"""Pod logs: snapshots, followed streams (threads feeding the loop) and captures to the run's data dir.

A task's log file (``<data>/<run>/.odin/logs/<task>.log``, as for the local executor) receives every
attempt's pod logs when the attempt ends, before its objects go, so logs outlive the pods. Lines of
tasks with several pods (training replicas) are prefixed with ``[<pod>]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import urllib3

from ...batching import BatchThread, Outcome
from ..local import log_path
from .client import ApiError, KubeClient
from .resources import PODS

Obj = dict[str, Any]
_END = object()
FOLLOW_CHECK_S = 0.5


def prefix(pod: str, text: str, many: bool) -> list[str]:
    lines = text.splitlines()
    return [f"[{pod}] {ln}" for ln in lines] if many else lines


async def pod_log(
    client: KubeClient, namespace: str, pod: str, *, container: str | None, tail: int | None, strict: bool = False
) -> str:
    """The pod's log; a refusal becomes a line saying why (``strict``: only a refusal, not a failure to ask)."""
    query = {"container": container, "tailLines": tail}
    try:
        raw = await client.request("get", PODS.path(namespace, pod, "log"), query=query, raw=True)
    except ApiError as e:
        if strict and e.retryable:
            raise
        return f"(no log for {pod}: {e.message})\n"
    return raw.decode(errors="replace")


async def snapshot(
    client: KubeClient, namespace: str, pods: list[str], *, container: str | None, tail: int | None
) -> list[str]:
    texts = await asyncio.gather(*(pod_log(client, namespace, p, container=container, tail=tail) for p in pods))
    lines: list[str] = []
    for pod, text in zip(pods, texts, strict=True):
        lines += prefix(pod, text, len(pods) > 1)
    return lines[-tail:] if tail else lines


Append = Callable[[Path, str], Awaitable[None]]


async def append_in_thread(path: Path, text: str) -> None:
    await asyncio.to_thread(append, path, text.encode())


async def capture(
    client: KubeClient,
    namespace: str,
    run_path: str,
    task: str,
    attempt: int,
    pods: list[str],
    container: str,
    write: Append = append_in_thread,
) -> None:
    """Append the attempt's pod logs to the task's log file (every attempt under a header after the first).

    A read that the API server refuses (no such pod, no log) leaves a line saying so; one that cannot
    be done (the server unreachable after the client's retries) raises."""
    path = log_path(run_path, task)
    header = [f"----- attempt {attempt} -----"] if attempt > 1 else []
    if len(pods) == 1:
        text = await pod_log(client, namespace, pods[0], container=container, tail=None, strict=True)
        lines = text.splitlines()
    else:
        lines = await snapshot(client, namespace, sorted(pods), container=container, tail=None) if pods else []
    await write(path, _text(header, lines))


def _text(header: list[str], lines: list[str]) -> str:
    return "".join(f"{ln}\n" for ln in [*header, *lines])


_APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC


def append(path: Path, data: bytes) -> None:
    """Blocking: append ``data`` to the file at ``path`` (made, with its directory, if missing).

    One ``open`` (and no text-file layer) when the directory exists; ``makedirs`` only on a run's first
    capture. Mode 0644, as the local executor's task logs. All or nothing: a write that fails part way (a
    full disk) is cut back off, so the same append can be tried again without doubling what got through."""
    try:
        fd = os.open(path, _APPEND, 0o644)
    except FileNotFoundError:
        os.makedirs(path.parent, exist_ok=True)
        fd = os.open(path, _APPEND, 0o644)
    try:
        view = memoryview(data)
        start = -1
        while view:
            try:
                view = view[os.write(fd, view) :]
            except OSError:
                if start >= 0:
                    os.ftruncate(fd, start)
                raise
            if start < 0 and view:  # only a write cut short needs the size it started from
                start = os.fstat(fd).st_size - (len(data) - len(view))
    finally:
        os.close(fd)


INLINE_BYTES = 64 * 1024
"""Text of a batch of appends at most for it to be written on the event loop (a page-cache write)."""


class Appends(BatchThread[None]):
    """Captured logs' appends, batched on a thread of their own; a small batch is written on the loop itself.

    An append is an ``open``, a ``write`` and a ``close``, and on a run's first capture ``makedirs`` of its
    three directories: 22 µs, and 82–858 µs with the directories, on this project's machines (depending on the
    file system's directory). Through the thread, the thread alone took 0.3–1.1 ms per capture in
    ``bench/k8s_throughput.py --only odin`` runs, where the same appends on the loop took 0.58 ms, most of it
    the directories (``docs/benchmarks.md``). A batch of more than ``inline_max`` appends, or of more than
    ``INLINE_BYTES`` of text, goes to the thread, so the loop is held a few milliseconds at most on a local file
    system (a data path on a network file system that stalls would stall the loop with it)."""

    inline_max = 4

    def __init__(self) -> None:
        super().__init__(None, name="odin-k8s-files")

    async def append(self, path: Path, text: str) -> None:
        data = text.encode()
        await self.call(lambda _: append(path, data), len(data))

    def run_inline(self, items: list[tuple[Callable[[None], Any], asyncio.Future[Any], Any]]) -> list[Outcome] | None:
        if sum(size for _, _, size in items) > INLINE_BYTES:
            return None
        return self.run_batch(items)  # the same calls, on the loop


class Follower:
    """Follows several pods' logs at once; each stream is a thread reading a ``follow=true`` response."""

    def __init__(self, client: KubeClient, namespace: str, container: str | None, tail: int | None) -> None:
        self.client = client
        self.namespace = namespace
        self.container = container
        self.tail = tail
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.followed: set[str] = set()
        self.open = 0
        self._loop = asyncio.get_running_loop()
        self._responses: list[urllib3.HTTPResponse] = []
        self._stop = threading.Event()

    def add(self, pod: str, many: bool) -> None:
        if pod in self.followed:
            return
        self.followed.add(pod)
        self.open += 1
        threading.Thread(target=self._read, args=(pod, many), name=f"odin-log-{pod}", daemon=True).start()

    def _read(self, pod: str, many: bool) -> None:
        query = {"follow": "true", "container": self.container, "tailLines": self.tail}
        try:
            resp = self.client.stream_sync("get", PODS.path(self.namespace, pod, "log"), query, None)
            self._responses.append(resp)
            if self._stop.is_set():  # close() ran while this stream was opening: it missed this response
                resp.shutdown()
            buf = b""
            for chunk in resp.stream(8192):
                buf += chunk
                *done, buf = buf.split(b"\n")
                for line in done:
                    self._put(prefix(pod, line.decode(errors="replace"), many) or [""])
            if buf:
                self._put(prefix(pod, buf.decode(errors="replace"), many))
        except Exception as e:  # a pod without logs yet, or a stream closed by close()
            if not self._stop.is_set():
                self._put([f"[{pod}] (log stream ended: {e})"])
        finally:
            self._send(_END)

    def _put(self, lines: list[str]) -> None:
        if not self._stop.is_set():
            for line in lines:
                self._send(line)

    def _send(self, item: Any) -> None:
        # A stream may end after its reader's loop has closed (the follow was abandoned, the server stopped):
        # nobody reads the queue any more, so the item is dropped rather than raised in this thread.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self.queue.put_nowait, item)

    def close(self) -> None:
        self._stop.set()
        for resp in self._responses:
            with contextlib.suppress(Exception):
                resp.shutdown()

    async def lines(
        self, pods: Callable[[], list[str]], finished: Callable[[], bool], until: Callable[[], Awaitable[bool]] | None
    ) -> AsyncIterator[str]:
        """Lines as they come, from every pod ``pods()`` names, until the task ended and ``until()`` agrees."""
        try:
            while True:
                current = pods()
                for pod in current:
                    self.add(pod, len(current) > 1)
                try:
                    item = await asyncio.wait_for(self.queue.get(), FOLLOW_CHECK_S)
                except TimeoutError:
                    if finished() and (until is None or await until()):
                        return
                    continue
                if item is _END:
                    self.open -= 1
                elif isinstance(item, str):
                    yield item
        finally:
            self.close()
