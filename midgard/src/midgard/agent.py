"""The agent: one reading per interval (NVML, /proc, pods, psutil, then the pure report), kept for the HTTP server
and handed to the pusher. Blocking reads run in threads; the two loops are supervised tasks of one ``TaskSet``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from odin_core.tasks import TaskSet

from . import __version__, procfs, report
from .nvml import NvmlReader
from .pods import PodResolver
from .push import Pusher, PushState
from .settings import AgentSettings
from .system import SystemReader

log = logging.getLogger("midgard")


class Agent:
    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self.ident = report.Identity(node=settings.node, host=settings.hostname, internal_ip=settings.internal_ip,
                                     agent_id=uuid.uuid4().hex[:12], interval_s=settings.interval_s,
                                     version=__version__)  # fmt: skip
        self.nvml = NvmlReader()
        self.system = SystemReader(settings.disk_paths)
        self.pods = PodResolver(api_url=settings.kube_url(), namespaces=settings.pod_namespaces, node=settings.node,
                                token_file=settings.kube_token_file, ca_file=settings.kube_ca_file,
                                relist_s=settings.pod_relist_s)  # fmt: skip
        self.state = PushState(settings.buffer_reports, settings.interval_s, settings.backoff_max_s)
        self.pusher = (
            Pusher(settings.gateway_url, settings.token, self.state, settings.push_timeout_s)
            if settings.gateway_url
            else None
        )
        self.latest: dict[str, Any] | None = None
        self.latest_at = 0.0
        self.seq = 0
        self.readings_failed = 0
        self.last_reading_s = 0.0
        self.changed = asyncio.Condition()
        self.pushed = asyncio.Condition()
        self._new = asyncio.Event()
        self._tasks = TaskSet("midgard")

    async def collect(self) -> dict[str, Any]:
        """One reading, published to ``latest`` (and the pusher's buffer)."""
        started = time.perf_counter()
        raw = await asyncio.to_thread(self.nvml.read)
        facts = await asyncio.to_thread(procfs.facts_of, report.all_pids(raw), self.settings.proc_root)
        pods = await self.pods.resolve(f.pod_uid for f in facts.values())
        system = await asyncio.to_thread(self.system.read)
        self.seq += 1
        rep = report.build_report(self.ident, raw, facts=facts, pods=pods, system=system, seq=self.seq,
                                  now=time.time())  # fmt: skip
        self.last_reading_s = time.perf_counter() - started
        await self._publish(rep)
        return rep

    async def _publish(self, rep: dict[str, Any]) -> None:
        if self.seq == 1:
            _log_first(rep)
        async with self.changed:
            self.latest, self.latest_at = rep, time.monotonic()
            self.changed.notify_all()
        if self.pusher is not None:
            self.state.add(rep)
            self._new.set()

    async def wait_for(self, seq: int, timeout_s: float) -> dict[str, Any]:
        """The first report with ``seq`` or later (tests and the GPU check wait on this, never on a sleep)."""
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: self.seq >= seq), timeout_s)
            assert self.latest is not None
            return self.latest

    async def wait_pushed(self, predicate: Callable[[PushState], bool], timeout_s: float) -> PushState:
        """Wait until the push state satisfies ``predicate`` (checked after every push attempt)."""
        async with self.pushed:
            await asyncio.wait_for(self.pushed.wait_for(lambda: predicate(self.state)), timeout_s)
        return self.state

    def start(self) -> None:
        self._tasks.spawn(self._read_loop(), "read")
        if self.pusher is not None:
            self._tasks.spawn(self._push_loop(), "push")

    async def close(self) -> None:
        await self._tasks.close()
        if self.pusher is not None:
            await self.pusher.close()
        await self.pods.close()
        await asyncio.to_thread(self.nvml.close)

    async def _read_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            try:
                await self.collect()
            except Exception:  # one bad reading must not end the agent; the next interval tries again
                self.readings_failed += 1
                log.exception("reading failed (%d so far)", self.readings_failed)
            next_at += self.settings.interval_s
            now = loop.time()
            if next_at < now:  # a reading overran: skip the missed ticks instead of bursting
                next_at = now + self.settings.interval_s
            await asyncio.sleep(next_at - now)

    async def _push_loop(self) -> None:
        assert self.pusher is not None
        while True:
            await self._new.wait()
            self._new.clear()
            delivered = await self.pusher.flush()
            async with self.pushed:
                self.pushed.notify_all()
            if not delivered:
                await asyncio.sleep(self.state.delay())
                self._new.set()  # try again after the backoff even if no new reading came

    def healthy(self) -> bool:
        return self.latest is not None and time.monotonic() - self.latest_at < 3 * self.settings.interval_s + 5

    def own_metrics(self) -> list[tuple[str, str, str, float]]:
        s = self.state
        return [
            ("midgard_readings_total", "counter", "Readings taken since the agent started.", self.seq),
            ("midgard_readings_failed_total", "counter", "Readings that failed.", self.readings_failed),
            ("midgard_reading_seconds", "gauge", "Duration of the last reading.", round(self.last_reading_s, 6)),
            ("midgard_push_sent_reports_total", "counter", "Reports the gateway accepted.", s.sent),
            ("midgard_push_dropped_reports_total", "counter", "Reports dropped from a full buffer.", s.dropped),
            ("midgard_push_rejected_reports_total", "counter", "Reports the gateway refused as invalid.", s.rejected),
            ("midgard_push_failures", "gauge", "Failed pushes in a row (0: the gateway takes reports).", s.failures),
            ("midgard_buffered_reports", "gauge", "Reports waiting for the gateway.", len(s.buffer)),
        ]


def _log_first(rep: dict[str, Any]) -> None:
    n = len(rep["gpus"])
    if rep["nvml"]["available"]:
        log.info("midgard on node %s: %d GPU(s), driver %s", rep["node"], n, rep["nvml"]["driverVersion"])
    else:
        log.warning("midgard on node %s: 0 GPUs: %s", rep["node"], rep["nvml"]["reason"])
