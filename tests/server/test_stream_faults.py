"""Streams and in-flight requests under faults: a fast stream, a full connection, reused and self-naming ids."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from odin_core.service.commands import MAX_REPLY_BYTES
from server_support import Client
from websockets.asyncio.client import connect


async def finished_run(c: Client, job: str) -> str:
    await c.send("START", {"job": job}, "start")
    run_id = (await c.next("start"))["response"]
    while (msg := await c.next("start", 60))["status"] != "END":
        assert msg["status"] == "OK", msg
    return run_id


FOLLOWER = """
import json, sys
from websockets.sync.client import connect
with connect(sys.argv[1], max_size=None) as ws:
    ws.send(json.dumps({"command": "LOGS", "request": {"resource": sys.argv[2], "follow": True}}))
    frames = 0
    for frame in ws:
        frames += 1
        if frames == 1000:
            print("started", flush=True)
        if json.loads(frame)["status"] == "END":
            break
print("done", frames, flush=True)
"""


PINGER = """
import json, sys, time
from websockets.sync.client import connect
with connect(sys.argv[1]) as ws:
    waits = []
    for i in range(5):
        t0 = time.monotonic()
        ws.send(json.dumps({"command": "PING", "request": i, "id": i}))
        assert json.loads(ws.recv())["response"] == f"PONG {i}"
        waits.append(time.monotonic() - t0)
        time.sleep(0.05)
print(max(waits), flush=True)
"""


async def test_a_client_reading_a_long_log_as_fast_as_it_comes_does_not_hold_up_anyone_else(server: Any) -> None:
    """Before: every frame of a LOGS follow went into a socket buffer with room, so the stream never gave the loop
    back, and a PING from another connection waited until all 150,000 lines were sent (24 s in a probe). Both
    clients are processes of their own: this process's loop is the server's."""
    async with Client.connect(server.url) as c:
        run_id = await finished_run(c, "chatty")
    pipe = asyncio.subprocess.PIPE
    reader = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FOLLOWER, server.url, f"{run_id}--talk", stdout=pipe
    )
    pinger = None
    assert reader.stdout is not None
    try:
        assert await asyncio.wait_for(reader.stdout.readline(), 30) == b"started\n"
        pinger = await asyncio.create_subprocess_exec(sys.executable, "-c", PINGER, server.url, stdout=pipe)
        out, _ = await asyncio.wait_for(pinger.communicate(), 60)
        waited, streaming = float(out), reader.returncode is None
        assert waited < 0.5 and streaming, (
            f"a PING waited {waited:.2f} s; the stream {'ran on' if streaming else 'had ended'}"
        )
        assert await asyncio.wait_for(reader.stdout.readline(), 120) == b"done 150001\n"  # every line, then END
    finally:
        for proc in (reader, pinger):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()


async def test_a_log_longer_than_a_reply_comes_as_its_last_lines_in_one_frame_a_client_can_take(server: Any) -> None:
    async with Client.connect(server.url) as c:
        run_id = await finished_run(c, "chatty")
    async with connect(server.url) as ws:  # the library's default frame limit, 1 MiB, as most clients keep
        await ws.send(json.dumps({"command": "LOGS", "request": f"{run_id}--talk", "id": 1}))
        frame = await ws.recv()
        assert len(frame) <= 1 << 20
        text = json.loads(frame)["response"]
        note, *lines = text.split("\n")
        assert note.startswith("(the log's first ") and "lines are left out" in note
        assert set(lines) == {"x" * 99} and len(text) <= MAX_REPLY_BYTES
        skipped = int(note.removeprefix("(the log's first ").split(" ")[0].replace(",", ""))
        assert skipped + len(lines) == 150_000
        assert json.loads(await ws.recv())["status"] == "END"


async def test_an_id_in_use_is_refused_and_its_stream_can_still_be_cancelled(server: Any) -> None:
    """Before: the second request took the id's place, and once it ended the stream could no longer be named."""
    async with Client.connect(server.url) as c:
        await c.send("WATCH", {}, "w")
        reply = await c.call("PING", "again", rid="w")
        assert reply["status"] == "ERROR" and reply["error"]["code"] == "invalid_request", reply
        assert "in use by a request still in flight" in reply["response"]
        assert (await c.call("CANCEL", "w", rid="c"))["response"] == "cancelled w"
        assert (await c.next("w"))["status"] == "END"


async def test_cancel_and_ping_are_answered_on_a_connection_at_its_in_flight_limit(make_server: Any) -> None:
    server = await make_server(max_in_flight=4)
    async with Client.connect(server.url) as c:
        for n in range(4):
            await c.send("WATCH", {}, f"w{n}")
        busy = await c.call("STATUS", None, rid="s")
        assert busy["error"]["code"] == "too_busy" and "CANCEL some" in busy["response"]
        assert (await c.call("PING", "x", rid="p"))["response"] == "PONG x"
        assert (await c.call("CANCEL", "w2", rid="c"))["response"] == "cancelled w2"
        assert (await c.next("w2"))["status"] == "END"
        assert (await c.call("STATUS", None, rid="s2"))["status"] == "OK"  # a slot is free again


async def test_a_cancel_naming_its_own_id_is_refused(server: Any) -> None:
    async with Client.connect(server.url) as c:
        reply = await c.call("CANCEL", "me", rid="me")
        assert reply["error"]["code"] == "invalid_request" and "its own id" in reply["response"]


async def test_malformed_fields_get_their_own_errors_and_keep_their_id(server: Any) -> None:
    async with Client.connect(server.url) as c:
        reply = await c.call("STATUS", 5, rid="n")
        assert reply["error"]["code"] == "invalid_request" and "a pattern" in reply["response"]
        reply = await c.call("STATUS", {"odin": True, "limit": 1.5}, rid="l")
        assert reply["response"] == '"limit" must be a non-negative integer'
        await c.send_raw('{"command": "STATUS", "request": {"limit": ' + "9" * 5000 + '}, "id": "long"}')
        assert (await c.next("long"))["error"]["code"] == "invalid_request"  # before: no id, so no one to tell
        reply = await c.call("EVENTS", {"resource": "hello-00000000", "namespace": "../../etc"}, rid="e")
        assert reply["error"]["code"] == "invalid_request", reply


async def test_start_says_submitting_once_per_attempt(server: Any) -> None:
    """The first PENDING event is the attempt's submission; the next (its object made, or why it waits) adds none."""
    async with Client.connect(server.url) as c:
        await c.send("START", {"job": "hello"}, "start")
        run_id = (await c.next("start"))["response"]
        lines = []
        while (msg := await c.next("start", 60))["status"] != "END":
            lines.append(msg["response"])
    assert lines.count(f"Submitting {run_id}--greet") == 1, lines
    assert f"Done running {run_id}--greet" in lines


async def test_show_of_a_job_bigger_than_a_reply_lists_what_fits_and_says_what_is_left_out(
    server: Any, root: Path
) -> None:
    """Before: every file up to 1 MiB each went into one reply, and a client's 1 MiB frame limit closed it."""
    job = root / "bulky"
    job.mkdir()
    (job / "main.yml").write_text("tasks:\n  - {name: a, image: x, command: c}\n")
    for n in range(30):
        (job / f"data-{n:02}.txt").write_text("y" * 100_000)
    async with connect(server.url) as ws:  # the library's default frame limit, 1 MiB
        await ws.send(json.dumps({"command": "SHOW", "request": "bulky", "id": 1}))
        frame = await ws.recv()
    assert len(frame) <= 1 << 20
    files = json.loads(frame)["response"]
    shown = [name for name in files if name.startswith("data-")]
    assert 5 < len(shown) < 30 and files["data-00.txt"] == "y" * 100_000
    assert files["..."] == f"<{31 - len(shown)} files not shown: a reply holds 1,016 KiB at most>"  # main.yml too
