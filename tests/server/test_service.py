"""Beyond the legacy protocol: multiplexing, WATCH and resume, stop, resubmit, limits, auth, shutdown."""

from __future__ import annotations

import asyncio
import json
import time

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from odin_core.errors import InvalidRequest
from odin_core.service import ServiceSettings, serve_odin
from server_support import check, legacy
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


async def request(ws, command, payload=None, **extra):
    await ws.send(json.dumps({"command": command, "request": payload, **extra}))


async def collect(ws, ids, until_end=True):
    """Replies per id until each id has its END (or ERROR / one OK when not a stream)."""
    got = {i: [] for i in ids}
    open_ids = set(ids)
    while open_ids:
        msg = json.loads(await asyncio.wait_for(ws.recv(), 30))
        check(msg, "reply.json")
        got[msg["id"]].append(msg)
        if msg["status"] in ("END", "ERROR") or not until_end:
            open_ids.discard(msg["id"])
    return got


async def test_many_requests_in_flight_on_one_connection(server):
    async with connect(server.url) as ws:
        await request(ws, "START", {"job": "chain", "watch": False}, id="s")
        run_id = (await collect(ws, ["s"], until_end=False))["s"][0]["response"]
        await request(ws, "WATCH", {"run": run_id}, id="w")
        await request(ws, "PING", "x", id="p")
        await request(ws, "HELLO", {"protocol": 1}, id="h")
        got = await collect(ws, ["w", "p", "h"], until_end=False)
        check(got["h"][0]["response"], "hello.json")
        assert got["p"][0]["response"] == "PONG x"
        rest = await collect(ws, ["w"])
    events = [m["response"] for m in got["w"] + rest["w"] if m["status"] == "OK"]
    for e in events:
        check(e, "event.json")
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert (events[-1]["kind"], events[-1]["status"]) == ("run", "DONE")


async def test_watch_resumes_after_a_drop_with_nothing_lost_or_twice(server, odin):
    run_id = (await legacy(server.url, "START", {"job": "chain", "watch": False}))[0]["response"]
    seen = []
    async with connect(server.url) as ws:
        await request(ws, "WATCH", {"run": run_id}, id=1)
        for _ in range(3):
            seen.append(json.loads(await ws.recv())["response"]["seq"])
    # the connection is gone; the run went on meanwhile
    await odin.wait(run_id)
    replies = await legacy(server.url, "WATCH", {"run": run_id, "after_seq": seen[-1]})
    seen += [r["response"]["seq"] for r in replies if r["status"] == "OK"]
    stored = [e.seq for e in await odin.store.events(run_id)]
    assert seen == stored and replies[-1]["status"] == "END"


async def test_stop_and_resubmit(server, odin, root):
    run_id = (await legacy(server.url, "START", {"job": "slow", "watch": False}))[0]["response"]
    (stopped,) = await legacy(server.url, "STOP", {"run": run_id, "reason": "enough"})
    assert stopped["response"]["run_id"] == run_id
    final = await asyncio.wait_for(odin.wait(run_id), 15)
    assert (final.status.value, final.message) == ("TERMINATED", "enough")

    flaky = (await legacy(server.url, "START", {"job": "flaky", "watch": False}))[0]["response"]
    assert (await odin.wait(flaky)).status.value == "TERMINATED"
    (root / "fixed").touch()
    (again,) = await legacy(server.url, "RESUBMIT", flaky)
    assert again["response"] == {"run_id": flaky, "reused": ["ok"], "rerun": ["gate"]}
    replies = await legacy(server.url, "WATCH", {"run": flaky, "after_seq": 0})
    assert replies[-2]["response"]["status"] == "DONE"
    (conflict,) = await legacy(server.url, "RESUBMIT", flaky)
    assert conflict["error"]["code"] == "conflict"


async def test_cancel_ends_a_stream(server):
    async with connect(server.url) as ws:
        await request(ws, "WATCH", {}, id="all")  # every run, live: never ends by itself
        await request(ws, "CANCEL", "all", id="c")
        got = await collect(ws, ["all", "c"], until_end=False)
        assert got["c"][0]["status"] == "OK"
        if got["all"][0]["status"] != "END":
            got = await collect(ws, ["all"])
        assert got["all"][-1]["status"] == "END"


async def test_a_hundred_concurrent_clients(server):
    async def client(i: int) -> str:
        async with connect(server.url) as ws:
            await request(ws, "PING", str(i), id=i)
            await request(ws, "STATUS", "", id=-i - 1)
            got = await collect(ws, [i, -i - 1], until_end=False)
            assert got[-i - 1][0]["status"] == "OK"
            return got[i][0]["response"]

    answers = await asyncio.gather(*(client(i) for i in range(100)))
    assert answers == [f"PONG {i}" for i in range(100)]


async def test_too_many_requests_in_flight(make_server):
    server = await make_server(max_in_flight=2)
    async with connect(server.url) as ws:
        for i in range(3):
            await request(ws, "WATCH", {}, id=i)
        msg = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert (msg["id"], msg["error"]["code"]) == (2, "too_busy")


async def test_oversized_frames_close_only_that_connection(make_server):
    server = await make_server(max_message_bytes=1024)
    async with connect(server.url) as other:
        with pytest.raises(ConnectionClosed) as closed:
            async with connect(server.url) as ws:
                await ws.send("x" * 5000)
                await ws.recv()
        assert closed.value.rcvd.code == 1009
        await request(other, "PING", "still here", id=1)
        assert json.loads(await other.recv())["response"] == "PONG still here"


frames = st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
        max_leaves=10,
    ).map(json.dumps),
    st.fixed_dictionaries(
        {"command": st.sampled_from(["START", "STATUS", "DATA", "LOGS", "WATCH", "STOP", "CLEANUP", "SHOW"])},
        optional={"request": st.one_of(st.none(), st.integers(), st.text(max_size=20), st.lists(st.integers()))},
    ).map(json.dumps),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(frames, min_size=1, max_size=5))
async def test_malformed_input_never_disturbs_the_server(server, batch):
    async with connect(server.url) as good:
        try:
            async with connect(server.url) as bad:
                for frame in batch:
                    await bad.send(frame)
                for _ in batch:
                    msg = json.loads(await asyncio.wait_for(bad.recv(), 5))
                    check(msg, "reply.json")
        except (ConnectionClosed, TimeoutError):
            pass  # a stream may legitimately stay open; the point is the other connection
        await request(good, "PING", "ok", id="g")
        assert json.loads(await asyncio.wait_for(good.recv(), 5))["response"] == "PONG ok"


async def test_authentication_is_required_off_loopback(odin, root):
    with pytest.raises(InvalidRequest, match="without authentication"):
        ServiceSettings(host="0.0.0.0", root_path=root).check()
    with pytest.raises(InvalidRequest):
        async with serve_odin(odin, ServiceSettings(host="0.0.0.0", port=0, root_path=root)):
            pass


async def test_tokens_and_jwts(make_server):
    server = await make_server(token="s3cret", jwt_secret="gateway-signing-key-of-32-bytes-or-more")
    (denied,) = await legacy(server.url, "STATUS", "")
    assert denied["error"]["code"] == "unauthorized"
    assert (await legacy(server.url, "PING", "x"))[0]["response"] == "PONG x"
    with pytest.raises(InvalidStatus) as refused:
        async with connect(server.url, additional_headers={"Authorization": "Bearer wrong"}):
            pass
    assert refused.value.response.status_code == 401
    async with connect(server.url, additional_headers={"Authorization": "Bearer s3cret"}) as ws:
        await request(ws, "STATUS", "", id=1)
        assert json.loads(await ws.recv())["status"] == "OK"
    good = jwt.encode(
        {"sub": "alice", "exp": int(time.time()) + 60}, "gateway-signing-key-of-32-bytes-or-more", algorithm="HS256"
    )
    expired = jwt.encode(
        {"sub": "alice", "exp": int(time.time()) - 60}, "gateway-signing-key-of-32-bytes-or-more", algorithm="HS256"
    )
    async with connect(server.url) as ws:
        await request(ws, "HELLO", {"token": expired}, id=1)
        assert json.loads(await ws.recv())["error"]["code"] == "unauthorized"
        await request(ws, "HELLO", {"token": good}, id=2)
        assert json.loads(await ws.recv())["response"]["authenticated"] is True
        await request(ws, "STATUS", "", id=3)
        assert json.loads(await ws.recv())["status"] == "OK"


async def test_shutdown_closes_with_going_away_and_runs_go_on(odin, root):
    ctx = serve_odin(odin, ServiceSettings(host="127.0.0.1", port=0, root_path=root, shutdown_grace_s=2))
    server = await ctx.__aenter__()
    run_id = (await legacy(server.url, "START", {"job": "slow", "watch": False}))[0]["response"]
    async with connect(server.url) as ws:
        await request(ws, "WATCH", {"run": run_id}, id="w")
        await ws.recv()
        await ctx.__aexit__(None, None, None)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await ws.recv()
    assert closed.value.rcvd.code == 1001
    run = await odin.store.get_run(run_id)
    assert run is not None and not run.status.is_terminal  # the run is still going, for a successor to adopt
    await odin.stop(run_id)


async def test_status_pages_in_the_store_for_new_clients(server):
    async with connect(server.url) as ws:
        for i in range(3):
            await request(ws, "START", {"job": "chain", "watch": False}, id=f"s{i}")
            await collect(ws, [f"s{i}"], until_end=False)
        await request(ws, "STATUS", {"pattern": "", "odin": True, "limit": 2, "offset": 1}, id="page")
        (page,) = (await collect(ws, ["page"], until_end=False))["page"]
        await request(ws, "STATUS", {"pattern": "", "odin": True}, id="all")
        (everything,) = (await collect(ws, ["all"], until_end=False))["all"]
    labels = [e["pipeline_status"]["label"] for e in everything["response"]]
    assert [e["pipeline_status"]["label"] for e in page["response"]] == labels[1:3]
