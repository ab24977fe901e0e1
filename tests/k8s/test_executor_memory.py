"""A long-lived core's Kubernetes executor holds nothing for runs that ended: its attempt index and its
watches' caches go back to empty after every batch of runs, however many ran before, and the memory
left after each batch does not grow batch after batch.

Memory is traced (``tracemalloc``) after a full collection at the end of each batch. A leak grows it
by about the same amount every batch; a one-time step (a table resized once, say) grows it once: so the
median growth per batch is what counts. asyncio's TLS layer is left out: it allocates a 256 KiB read
buffer for every new connection, and the client opens one when a burst needs it (32 at most), so these
buffers step up and down from batch to batch (0.3–0.6 MB steps failed the median twice: the snapshots'
difference showed +259 KiB in asyncio/sslproto.py each time), bounded by the connection limit."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import gc
import itertools
import statistics
import tracemalloc

from executor_support import WAIT_S
from odin_core.engine import Engine
from odin_core.executors.kubernetes import KubernetesExecutor
from odin_core.model import RunStatus
from odin_core.settings import KubernetesSettings
from odin_core.spec.model import PipelineSpec, TaskSpec
from odin_core.store.sqlite import SqliteStore

ROUNDS = 7
RUNS_PER_ROUND = 10
MEDIAN_GROWTH = 48 * 1024
"""Bytes per batch at most: a leak of one pod-sized object (10 KiB) per run, 100 KiB a batch, fails."""
EMPTY = {"attempts": 0, "runs": 0, "ending": 0, "cached pods": 0}
TLS_BUFFERS = tracemalloc.Filter(False, asyncio.sslproto.__file__)


def traced_bytes() -> int:
    """What is allocated now, but asyncio's per-connection TLS buffers (bounded by the connection limit)."""
    snapshot = tracemalloc.take_snapshot().filter_traces([TLS_BUFFERS])
    return sum(stat.size for stat in snapshot.statistics("filename"))


async def test_memory_stays_flat_as_runs_end(kube, namespace, tmp_path):
    store = SqliteStore(tmp_path / "odin.db")
    await store.open()
    settings = KubernetesSettings(kubeconfig=kube.kubeconfig, namespace=namespace, qps=200, burst=200)
    executor = KubernetesExecutor(tmp_path / "data", settings)
    engine = Engine(store, executor, root_path=tmp_path, data_path=tmp_path / "data")
    spec = PipelineSpec("flat", (TaskSpec("step", "odin/task:test", ("run",)),), job="flat")
    traced: list[int] = []
    tracemalloc.start()
    try:
        await engine.start(adopt=False)
        for _ in range(ROUNDS):
            runs = [await engine.submit(spec) for _ in range(RUNS_PER_ROUND)]
            finals = await asyncio.wait_for(asyncio.gather(*(engine.wait(r.run_id) for r in runs)), WAIT_S * 2)
            assert all(f.status is RunStatus.DONE for f in finals), [f.message for f in finals]
            assert executor.followed()["attempts"] > 0 or executor.followed() == EMPTY
            await asyncio.wait_for(executor.settled(), WAIT_S)
            assert executor.followed() == EMPTY  # nothing kept for the runs that ended
            gc.collect()
            traced.append(traced_bytes())
    finally:
        tracemalloc.stop()
        await engine.close()
        await executor.close()
        await store.close()
    # What a batch leaves behind (the engine's and the store's included) does not grow batch after batch
    # (the first batch warms up: connections, caches, imports).
    growth = [after - before for before, after in itertools.pairwise(traced[1:])]
    assert statistics.median(growth) < MEDIAN_GROWTH, traced
