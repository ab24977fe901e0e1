"""``SyncOdinClient``: the same API without an event loop (run here on a worker thread, as a plain program would)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from odin_client.remote import RemoteOdin
from odin_client.sync import SyncOdinClient
from odin_core.errors import NotFound
from odin_core.model import RunRecord, RunStatus, RunView, TaskStatus
from odin_core.service import Service

pytestmark = pytest.mark.timeout(60)


def scenario(url: str) -> dict[str, object]:
    with SyncOdinClient(url) as odin:
        assert odin.ping("sync") == "PONG sync"
        run = odin.submit("pair")
        assert isinstance(run, RunRecord)
        seqs = [ev.seq for ev in odin.watch(run.run_id)]  # a plain generator
        final = odin.wait(run.run_id)
        view = odin.run(run.run_id)
        lines = list(odin.logs(f"{run.run_id}--first"))
        statuses = odin.status()
        with pytest.raises(NotFound):
            odin.data("no-such-run")
        # leaving a generator early is fine; the client keeps working
        first = next(iter(odin.watch(run.run_id)))
        assert odin.data(run.run_id)["status"] == "DONE"
        thread = odin._thread
    assert not thread.is_alive()  # close() ended the loop thread
    return {"seqs": seqs, "final": final, "view": view, "lines": lines, "statuses": statuses, "first": first}


async def test_sync_client(server: Service) -> None:
    got = await asyncio.to_thread(scenario, server.url)
    assert got["seqs"] == list(range(1, len(got["seqs"]) + 1))  # type: ignore[arg-type]
    final = got["final"]
    assert isinstance(final, RunRecord) and final.status is RunStatus.DONE
    view = got["view"]
    assert isinstance(view, RunView) and [t.status for t in view.tasks] == [TaskStatus.SUCCEEDED] * 2
    assert got["lines"] == ["one", "two"]
    assert got["first"].seq == 1  # type: ignore[attr-defined]
    assert not [t for t in threading.enumerate() if t.name == "odin-client-loop"]


def test_sync_client_has_every_remote_method() -> None:
    client = SyncOdinClient("ws://127.0.0.1:9")
    try:
        public = [n for n in dir(RemoteOdin) if not n.startswith("_") and callable(getattr(RemoteOdin, n))]
        assert {"submit", "watch", "wait", "stop", "run", "status", "logs", "cleanup", "events"} <= set(public)
        for name in public:
            assert callable(getattr(client, name))
    finally:
        client.close()
