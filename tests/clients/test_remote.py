"""``RemoteOdin`` end to end against the real server on a loopback port: the same API as the in-process ``Odin``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from typing import Any

import pytest
from odin_client.remote import Disconnected, RemoteOdin, error_from_reply
from odin_core.api import Odin
from odin_core.errors import AuthError, Conflict, InvalidRequest, NotFound, OdinError, SpecError
from odin_core.model import CleanupResult, Event, RunRecord, RunStatus, RunView, TaskRecord, TaskStatus
from odin_core.service import Service

TOKEN = "s3cret-token"

pytestmark = pytest.mark.timeout(60)


def same(a: Any, b: Any) -> bool:
    """Equal records, views, events (or lists, dicts of them); times may travel as ISO 8601 with microseconds,
    so floats agree to 10 µs."""
    if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b):
        if type(a) is not type(b):
            return False
        a, b = ({f.name: getattr(x, f.name) for f in dataclasses.fields(x)} for x in (a, b))  # type: ignore[arg-type]
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) < 1e-5
    return bool(a == b)


async def test_submit_watch_and_read_a_run(server: Service, odin: Odin) -> None:
    async with RemoteOdin(server.url) as remote:
        run = await remote.submit("pair", run_id="pair-remote")
        assert isinstance(run, RunRecord)
        assert (run.run_id, run.job, run.name) == ("pair-remote", "pair", "pair")

        events = [ev async for ev in remote.watch(run.run_id)]
        assert all(isinstance(e, Event) and e.run_id == run.run_id for e in events)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert (events[-1].kind, events[-1].status) == ("run", "DONE")
        assert same(events, await odin.store.events(run.run_id))  # the same records, times included

        final = await remote.wait(run.run_id)
        assert final.status is RunStatus.DONE and final.completed is not None
        assert same(final, (await odin.run(run.run_id)).run)

        view = await remote.run(run.run_id)
        assert isinstance(view, RunView) and same(view, await odin.run(run.run_id))
        assert [t.status for t in view.tasks] == [TaskStatus.SUCCEEDED, TaskStatus.SUCCEEDED]

        assert same(await remote.status("pair"), await odin.status("pair"))
        assert await remote.status("nothing-like-this") == []

        task = await remote.task("pair-remote--first")
        assert isinstance(task, TaskRecord) and same(task, await odin.task("pair-remote--first"))
        assert same(await remote.data("pair-remote"), await odin.data("pair-remote"))
        assert same(await remote.data("pair-remote--second"), await odin.data("pair-remote--second"))

        assert same(await remote.events("pair-remote"), await odin.events("pair-remote"))
        assert same(await remote.events("pair-remote", after_seq=3), await odin.events("pair-remote", after_seq=3))
        assert same(await remote.events("pair-remote--first"), await odin.events("pair-remote--first"))
        assert await remote.cluster_events("pair-remote") == []  # the local executor reports none

        assert [line async for line in remote.logs("pair-remote--first")] == ["one", "two"]
        assert [line async for line in remote.logs("pair-remote--first", lines=1)] == ["two"]
        followed = [line async for line in remote.logs("pair-remote--second", follow=True)]
        assert followed == [line async for line in odin.logs("pair-remote--second", follow=True)]
        assert "second here" in followed


async def test_many_requests_in_flight_on_one_connection(server: Service) -> None:
    async with RemoteOdin(server.url) as remote:
        run = await remote.submit("chain")
        pongs, events, views = await asyncio.gather(
            asyncio.gather(*(remote.ping(str(i)) for i in range(30))),
            asyncio.gather(*(_collect(remote.watch(run.run_id)) for _ in range(3))),
            asyncio.gather(*(remote.run(run.run_id) for _ in range(10))),
        )
        assert pongs == [f"PONG {i}" for i in range(30)]
        assert events[0] == events[1] == events[2]
        assert events[0][-1].status == "DONE"
        assert {v.run.run_id for v in views} == {run.run_id}
        assert remote.connection is not None  # still the one connection


async def _collect(events):
    return [e async for e in events]


@pytest.mark.parametrize("how", ["close", "abort"])
async def test_watch_resumes_after_the_connection_drops(server: Service, odin: Odin, how: str) -> None:
    async with RemoteOdin(server.url) as remote:
        run = await remote.submit("chain")
        seen: list[int] = []
        dropped: list[object] = []
        async for ev in remote.watch(run.run_id):
            seen.append(ev.seq)
            if len(seen) in (3, 8):  # twice, mid-stream
                ws = remote.connection
                assert ws is not None
                dropped.append(ws)
                if how == "close":
                    await ws.close()
                else:
                    ws.transport.abort()  # as a network failure: no closing handshake
        assert len(dropped) == 2 and dropped[0] is not dropped[1]
        stored = [e.seq for e in await odin.store.events(run.run_id)]
        assert seen == stored  # nothing lost, nothing twice, in order
        assert (await remote.run(run.run_id)).run.status is RunStatus.DONE


async def test_watch_resumes_across_a_server_restart(make_server, odin: Odin) -> None:
    server = await make_server()
    port = int(server.url.rsplit(":", 1)[1])
    async with RemoteOdin(server.url) as remote:
        run = await remote.submit("chain")
        seen: list[int] = []
        async for ev in remote.watch(run.run_id):
            seen.append(ev.seq)
            if len(seen) == 4:
                await server.stop()  # closes with 1001; the run goes on in the engine

                async def restart() -> None:
                    await asyncio.sleep(0.5)
                    await make_server(port=port)

                restarting = asyncio.ensure_future(restart())
        await restarting
        assert seen == [e.seq for e in await odin.store.events(run.run_id)]


async def test_watch_after_seq_resumes_from_there(server: Service, odin: Odin) -> None:
    async with RemoteOdin(server.url) as remote:
        run = await remote.submit("hello")
        everything = [e async for e in remote.watch(run.run_id)]
        tail = [e async for e in remote.watch(run.run_id, after_seq=2)]
        assert same(tail, everything[2:])
        assert [e async for e in remote.watch(run.run_id, after_seq=everything[-1].seq)] == []


async def test_watch_gives_up_when_the_server_stays_away(make_server) -> None:
    server = await make_server()
    remote = RemoteOdin(server.url, reconnect_timeout_s=0.5)
    try:
        run = await remote.submit("slow")
        events = remote.watch(run.run_id)
        await anext(events)
        await server.stop()
        with pytest.raises(Disconnected):
            async for _ in events:
                pass
    finally:
        await remote.close()


async def test_stop_ends_a_run_terminated(server: Service) -> None:
    async with RemoteOdin(server.url) as remote:
        run = await remote.submit("slow")
        async for ev in remote.watch(run.run_id):
            if ev.kind == "task" and ev.status == "RUNNING":
                break
        stopped = await remote.stop(run.run_id, reason="enough")
        assert isinstance(stopped, RunRecord)
        final = await asyncio.wait_for(remote.wait(run.run_id), 30)
        assert final.status is RunStatus.TERMINATED
        assert "enough" in final.message
        assert (await remote.task(f"{run.run_id}--wait")).status is TaskStatus.CANCELLED


async def test_failed_run_and_resubmit(server: Service, root) -> None:
    async with RemoteOdin(server.url) as remote:
        run = await remote.submit("sad")
        final = await remote.wait(run.run_id)
        assert final.status is RunStatus.TERMINATED
        assert [line async for line in remote.logs(f"{run.run_id}--boom")] == ["about to fail"]
        result = await remote.resubmit(run.run_id)
        assert result["run_id"] == run.run_id and sorted(result["rerun"]) == ["boom", "never"]
        assert (await remote.wait(run.run_id)).status is RunStatus.TERMINATED


async def test_cleanup(server: Service, odin: Odin, tmp_path) -> None:
    async with RemoteOdin(server.url) as remote:
        run = await remote.submit("hello")
        await remote.wait(run.run_id)
        results = await remote.cleanup(run.run_id, db=True, fs=True)
        assert results == [CleanupResult(f"{run.run_id}--greet", False, purged_from_db=True, removed_from_fs=True)]
        with pytest.raises(NotFound):
            await remote.run(run.run_id)
        assert await odin.store.get_run(run.run_id) is None


async def test_errors_raise_the_matching_class(server: Service) -> None:
    async with RemoteOdin(server.url) as remote:
        with pytest.raises(NotFound, match="no run"):
            await remote.run("no-such-run")
        with pytest.raises(NotFound):
            await remote.data("no-such-run--task")
        with pytest.raises(NotFound):
            await anext(remote.watch("no-such-run"))
        with pytest.raises(NotFound):
            await remote.submit("no/such/job")
        with pytest.raises(InvalidRequest):
            await remote.submit("../outside")
        with pytest.raises(InvalidRequest):
            await remote.task("not-a-task-id")
        with pytest.raises(SpecError) as spec:
            await remote.submit("team/bad")
        assert spec.value.problems and all(p.file.endswith("main.yml") for p in spec.value.problems)
        assert spec.value.code == "invalid_pipeline"

        await remote.submit("hello", run_id="taken")
        with pytest.raises(Conflict):
            await remote.submit("pair", run_id="taken")
        slow = await remote.submit("slow")
        with pytest.raises(Conflict):
            await remote.resubmit(slow.run_id)
        await remote.stop(slow.run_id)

        with pytest.raises(InvalidRequest, match="NOPE not found"):
            await remote.request("NOPE", None)
        assert await remote.ping("still fine") == "PONG still fine"  # errors leave the connection working


def test_error_mapping_table() -> None:
    def err(code: str, **details: object) -> OdinError:
        error = {"code": code, "message": "m", **details}
        return error_from_reply({"status": "ERROR", "response": "m", "error": error})

    assert type(err("not_found")) is NotFound
    assert type(err("unauthorized")) is AuthError
    assert type(err("conflict")) is Conflict
    assert type(err("invalid_request")) is InvalidRequest
    problem = {"file": "main.yml", "line": 3, "column": 5, "field": "tasks[0].name", "message": "bad", "hint": ""}
    spec = err("invalid_pipeline", details={"problems": [problem]})
    assert isinstance(spec, SpecError) and spec.problems[0].line == 3
    busy = err("too_busy")
    assert type(busy) is OdinError and busy.code == "too_busy"
    legacy = error_from_reply({"status": "ERROR", "response": "FOO not found."})  # a reply without `error`
    assert type(legacy) is OdinError and str(legacy) == "FOO not found."


async def test_token_on_the_handshake(make_server) -> None:
    server = await make_server(token=TOKEN)
    async with RemoteOdin(server.url, token=TOKEN) as remote:
        hello = await remote.hello()
        assert hello["protocol"] == 1 and hello["authenticated"] is True
        assert (await remote.status()) == []
    with pytest.raises(AuthError):
        async with RemoteOdin(server.url, token="wrong") as remote:
            await remote.ping()
    async with RemoteOdin(server.url) as anonymous:
        assert await anonymous.ping("x") == "PONG x"  # allowed before authenticating
        with pytest.raises(AuthError):
            await anonymous.status()
    assert "s3cret" not in repr(RemoteOdin(server.url, token=TOKEN))


async def test_show_validate_hello(server: Service) -> None:
    async with RemoteOdin(server.url) as remote:
        files = await remote.show("hello")
        assert set(files) == {"main.yml"} and "name: hello" in files["main.yml"]
        assert (await remote.validate("pair")) == {"valid": True, "tasks": 2, "problems": []}
        bad = await remote.validate("team/bad")
        assert bad["valid"] is False and bad["problems"]
        hello = await remote.hello()
        assert hello["executor"] == "local" and "watch" in hello["features"]


async def test_unreachable_server_and_closed_client(server: Service) -> None:
    with pytest.raises(Disconnected, match="cannot connect"):
        async with RemoteOdin("ws://127.0.0.1:9", open_timeout_s=2):
            pass
    with pytest.raises(InvalidRequest):
        async with RemoteOdin("http://nope"):
            pass
    remote = RemoteOdin(server.url)
    await remote.ping()
    await remote.close()
    with pytest.raises(Disconnected):
        await remote.ping()


async def test_leaving_a_stream_early_cancels_it_and_close_leaves_no_task(server: Service, monkeypatch) -> None:
    before = set(asyncio.all_tasks())
    remote = RemoteOdin(server.url)
    run = await remote.submit("slow")
    ws = remote.connection
    assert ws is not None
    sent: list[dict[str, Any]] = []
    send = ws.send

    async def spy(frame: Any, *args: Any, **kwargs: Any) -> None:
        sent.append(json.loads(frame))
        await send(frame, *args, **kwargs)

    monkeypatch.setattr(ws, "send", spy)
    events = remote.watch(run.run_id)
    assert (await anext(events)).seq == 1
    await events.aclose()  # leaving early: the server is told to end the stream
    async with contextlib.aclosing(remote.logs(f"{run.run_id}--wait", follow=True)) as lines:
        waiter = asyncio.ensure_future(anext(lines, None))
        await asyncio.sleep(0.3)
        waiter.cancel()  # a consumer cancelled while waiting: the same
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
    streams = [f["id"] for f in sent if f["command"] in ("WATCH", "LOGS")]
    assert [f["request"] for f in sent if f["command"] == "CANCEL"] == streams
    assert await remote.ping("after") == "PONG after"

    await remote.stop(run.run_id)
    await remote.wait(run.run_id)
    await remote.close()
    await asyncio.sleep(0)
    leftover = {t for t in asyncio.all_tasks() - before if "odin-client" in t.get_name()}
    assert not leftover
