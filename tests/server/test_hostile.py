"""Hostile requests over a real socket: each gets an ERROR reply and touches nothing.

Every test keeps a second stream open on the same connection (``WATCH`` of every run) and a second client, and
checks after the bad requests that both still work: a bad request ends neither its connection's other streams
nor anyone else's service.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from server_support import Client


def snapshot(base: Path, data: Path) -> dict[str, bytes | None]:
    """Every path under ``base`` outside the run data directory (file contents, None for directories)."""
    out: dict[str, bytes | None] = {}
    for p in base.rglob("*"):
        if p.is_relative_to(data) or p.name.startswith("odin.db"):  # the database changes as runs go on
            continue
        out[str(p.relative_to(base))] = p.read_bytes() if p.is_file() and not p.is_symlink() else None
    return out


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A directory a run id like ``../../victim`` would point at from the data directory."""
    v = tmp_path / "victim"
    v.mkdir()
    (v / "precious.txt").write_text("do not delete")
    return v


@pytest.fixture
async def witness(server: Any) -> Any:
    """A connection with a stream open (WATCH of every run), to send the bad requests on."""
    async with Client.connect(server.url) as c:
        await c.send("WATCH", {}, "w")
        yield c


async def still_serving(url: str, conn: Client, **connect: Any) -> None:
    """``conn``'s WATCH stream still delivers (a new run's events arrive on it) and another client is served."""
    async with Client.connect(url, **connect) as other:
        started = await other.call("START", {"job": "hello", "watch": False})
        assert started["status"] == "OK", started
        event = await conn.run_event("w", started["response"])
        assert event["run"] == started["response"]
        assert (await other.call("PING", "still here"))["response"] == "PONG still here"


def _hostile_ids(victim: Path) -> list[str]:
    return [
        "../../victim",
        str(victim),  # absolute
        "..",  # the directory holding the database
        ".",
        "victim/../..",
        "a\x00b",
        "x" * 300,
        "Upper",
        "a--b",
        "a/b",
        "-a",
        " a",
        "a\n",
    ]


def _requests(bad: str) -> list[tuple[str, Any]]:
    own = [
        ("START", {"job": "hello", "run_id": bad}),
        ("STOP", {"run": bad, "reason": "x"}),
        ("STOP", bad),
        ("RESUBMIT", {"run": bad}),
        ("CLEANUP", {"work": bad, "purge_db": True, "purge_fs": True}),
        ("WATCH", {"run": bad}),
    ]
    resources = [bad, f"hello-abcd1234--{bad}"] if "--" not in bad else []  # `a--b` is a valid task id
    for res in resources:
        own += [
            ("DATA", {"resource": res}),
            ("LOGS", {"resource": res, "namespace": "default"}),
            ("LOGS", {"resource": res, "follow": True}),
            ("EVENTS", {"resource": res, "namespace": "default"}),
        ]
    return own


async def test_hostile_ids_are_refused_and_nothing_outside_the_data_dir_changes(
    server, odin, witness, victim, tmp_path
):
    before = snapshot(tmp_path, odin.settings.data)
    for n, bad in enumerate(_hostile_ids(victim)):
        for k, (command, payload) in enumerate(_requests(bad)):
            reply = await witness.call(command, payload, rid=f"{n}.{k}")
            assert reply["status"] == "ERROR", (bad, command, reply)
            assert reply["error"]["code"] == "invalid_request", (bad, command, reply)
            assert "Traceback" not in reply["response"]
    assert snapshot(tmp_path, odin.settings.data) == before
    assert (victim / "precious.txt").read_text() == "do not delete"
    assert not (odin.settings.data / ".." / ".." / "victim" / "greet").exists()
    assert await odin.store.get_run("..") is None
    await still_serving(server.url, witness)


@pytest.fixture
def links(root: Path, tmp_path: Path) -> Path:
    """Jobs that reach out of the pipelines root through links, and one link that stays inside it."""
    outside = tmp_path / "outside"
    (outside / "job").mkdir(parents=True)
    (outside / "secret.txt").write_text("TOP SECRET")
    (outside / "job" / "main.yml").write_text((root / "hello" / "main.yml").read_text())
    (outside / "main.yml").write_text((root / "hello" / "main.yml").read_text().replace("hello", "stolen"))

    (root / "leaky").mkdir()
    (root / "leaky" / "main.yml").write_text((root / "hello" / "main.yml").read_text())
    (root / "leaky" / "passwd").symlink_to(outside / "secret.txt")
    (root / "leaky" / "etc").symlink_to(outside, target_is_directory=True)
    (root / "linked-main").mkdir()
    (root / "linked-main" / "main.yml").symlink_to(outside / "main.yml")
    (root / "away").symlink_to(outside / "job", target_is_directory=True)
    (root / "alias").mkdir()
    (root / "alias" / "main.yml").symlink_to(Path("..") / "hello" / "main.yml")  # stays inside: allowed
    return outside


async def test_links_out_of_the_root_are_refused(server, witness, links):
    show = await witness.call("SHOW", "leaky", rid="s")
    files = show["response"]
    assert files["passwd"].startswith("<not shown") and "TOP SECRET" not in str(files)
    assert not any(name.startswith("etc") for name in files)  # a linked directory is not walked
    for job in ("linked-main", "away"):
        for command in ("SHOW", "VALIDATE", "START"):
            reply = await witness.call(command, job, rid=f"{command}-{job}")
            assert reply["error"]["code"] == "invalid_request", (command, job, reply)
            assert "outside the pipelines root" in reply["response"]
    assert "stolen" not in str(await witness.call("STATUS", "", rid="st"))
    alias = await witness.call("VALIDATE", "alias", rid="alias")
    assert alias["response"]["valid"] is True
    await still_serving(server.url, witness)


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize(
    ("frame", "correlated"),
    [
        pytest.param(_deep(100_000), False, id="nested-100k"),
        pytest.param('{"command": "PING", "request": ' + _deep(40) + ', "id": "deep"}', True, id="nested-40"),
        pytest.param('{"command": "PING", "request": NaN, "id": "deep"}', True, id="nan"),
        pytest.param('{"command": "STATUS", "request": {"x": -Infinity}, "id": "deep"}', True, id="infinity"),
        pytest.param('{"command": "PING\\u0000", "id": "deep"}', True, id="nul-command"),
        pytest.param('{"command": "' + "P" * 10_000 + '", "id": "deep"}', True, id="long-command"),
        pytest.param(b"\xff\xfe", False, id="not-utf8"),
    ],
)
async def test_malformed_frames_get_an_error_and_end_no_stream(server, witness, frame, correlated):
    await witness.send_raw(frame)
    reply = await witness.next("deep" if correlated else None)
    assert (reply["status"], reply["error"]["code"]) == ("ERROR", "invalid_request"), reply
    await still_serving(server.url, witness)


@pytest.mark.parametrize(
    ("command", "payload"),
    [
        pytest.param("SHOW", "hel\x00lo", id="show-nul"),
        pytest.param("START", {"job": "hello\x00"}, id="start-nul"),
        pytest.param("VALIDATE", "a" * 300, id="validate-long-part"),
        pytest.param("SHOW", "a/" * 3000, id="show-long-path"),
        pytest.param("STATUS", "x\x00", id="status-nul"),
        pytest.param("STATUS", "x" * 5000, id="status-long"),
        pytest.param("STOP", {"run": "hello-abcd1234", "reason": "r\x00"}, id="reason-nul"),
        pytest.param("WATCH", {"run": "hello-abcd1234", "after_seq": 2**70}, id="huge-seq"),
        pytest.param("LOGS", {"resource": "hello-abcd1234--greet", "lines": 2**70}, id="huge-lines"),
        pytest.param("START", {"job": "../" * 40 + "etc"}, id="start-up-and-out"),
        pytest.param("LOGS", {"resource": "hello-abcd1234--greet", "namespace": "../kube-system"}, id="logs-ns"),
    ],
)
async def test_nul_bytes_and_long_names_are_invalid_requests(server, witness, command, payload):
    reply = await witness.call(command, payload)
    assert (reply["status"], reply["error"]["code"]) == ("ERROR", "invalid_request"), reply
    assert "Traceback" not in reply["response"] and "internal" not in reply["response"]
    await still_serving(server.url, witness)


async def test_an_unknown_command_is_named_only_after_authentication(make_server):
    server = await make_server(token="s3cret")
    auth = {"additional_headers": {"Authorization": "Bearer s3cret"}}
    async with Client.connect(server.url) as anonymous:
        reply = await anonymous.call("FROBNICATE", None)
        assert reply["error"]["code"] == "unauthorized" and "not found" not in reply["response"]
        assert (await anonymous.call("PING", "x"))["response"] == "PONG x"
    async with Client.connect(server.url, **auth) as c:
        await c.send("WATCH", {}, "w")
        reply = await c.call("FROBNICATE", None)
        assert (reply["response"], reply["error"]["code"]) == ("FROBNICATE not found.", "invalid_request")
        await still_serving(server.url, c, **auth)


async def test_two_authorization_headers_are_a_bad_request(make_server):
    from websockets.exceptions import InvalidStatus

    server = await make_server(token="s3cret")
    headers = [("Authorization", "Bearer s3cret"), ("Authorization", "Bearer other")]
    async with Client.connect(server.url, additional_headers={"Authorization": "Bearer s3cret"}) as c:
        await c.send("WATCH", {}, "w")
        with pytest.raises(InvalidStatus) as refused:
            async with Client.connect(server.url, additional_headers=headers):
                pass
        assert refused.value.response.status_code == 400
        assert b"more than one Authorization header" in refused.value.response.body
        await still_serving(server.url, c, additional_headers={"Authorization": "Bearer s3cret"})


def _jwt(key: str, lifetime_s: float) -> str:
    import time

    import jwt

    return jwt.encode({"sub": "alice", "exp": int(time.time() + lifetime_s)}, key, algorithm="HS256")


async def test_a_jwt_that_expires_ends_the_connections_authority_and_its_streams(make_server):
    key = "gateway-signing-key-of-32-bytes-or-more"
    server = await make_server(jwt_secret=key)
    fresh = {"additional_headers": {"Authorization": f"Bearer {_jwt(key, 600)}"}}
    async with Client.connect(server.url, additional_headers={"Authorization": f"Bearer {_jwt(key, 2)}"}) as c:
        hello = await c.call("HELLO", {"protocol": 1}, rid="h")
        assert hello["response"]["authenticated"] is True and "expires" in hello["response"]
        await c.send("WATCH", {}, "w")  # a protected stream opened while the token is valid
        assert (await c.call("STATUS", "", rid="s1"))["status"] == "OK"
        ended = await c.next("w", timeout=10)  # the stream ends with the token: an ERROR, nothing after it
        assert (ended["status"], ended["error"]["code"]) == ("ERROR", "unauthorized"), ended
        assert "expired" in ended["response"]
        refused = await c.call("STATUS", "", rid="s2")
        assert refused["error"]["code"] == "unauthorized" and "expired" in refused["response"]
        assert (await c.call("PING", "p", rid="p"))["response"] == "PONG p"  # open commands still answer
        again = await c.call("HELLO", {"token": _jwt(key, 600)}, rid="h2")
        assert again["response"]["authenticated"] is True
        assert (await c.call("STATUS", "", rid="s3"))["status"] == "OK"
        await c.send("WATCH", {}, "w")
        await still_serving(server.url, c, **fresh)


def test_snapshot_sees_changes(tmp_path):
    """The file-system check above can fail: it notices a file created or deleted outside the data dir."""
    data = tmp_path / "data"
    data.mkdir()
    before = snapshot(tmp_path, data)
    (data / "inside").write_text("ok")
    assert snapshot(tmp_path, data) == before
    (tmp_path / "outside").write_text("x")
    assert snapshot(tmp_path, data) != before
    os.remove(tmp_path / "outside")
    assert snapshot(tmp_path, data) == before
