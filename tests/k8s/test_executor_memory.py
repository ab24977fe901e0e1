"""A long-lived core's Kubernetes executor holds nothing for runs that ended: its attempt index and its
watches' caches go back to empty after every batch of runs, however many ran before."""

from __future__ import annotations

import asyncio
import tracemalloc

from executor_support import WAIT_S
from odin_core.engine import Engine
from odin_core.executors.kubernetes import KubernetesExecutor
from odin_core.model import RunStatus
from odin_core.settings import KubernetesSettings
from odin_core.spec.model import PipelineSpec, TaskSpec
from odin_core.store.sqlite import SqliteStore

ROUNDS = 3
RUNS_PER_ROUND = 10
EMPTY = {"attempts": 0, "runs": 0, "ending": 0, "cached pods": 0}


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
            traced.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
        await engine.close()
        await executor.close()
        await store.close()
    # What a round leaves behind (the engine's and the store's included) does not grow round after round.
    assert traced[-1] - traced[1] < 2 * max(traced[1] - traced[0], 1) + 512 * 1024, traced
