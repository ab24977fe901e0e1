"""The REST API end to end: gateway + core + local executor over real sockets, jobs in a real git repository."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import aiohttp
from http_support import Running

PY = sys.executable


def task(name: str, code: str, depends: str = "") -> str:
    dep = f", depends: {depends}" if depends else ""
    return f"  - {{name: {name}, image: busybox, command: {PY}, args: ['-c', {json.dumps(code)}]{dep}}}\n"


HELLO = "name: hello\ntasks:\n" + task("greet", "print('hello'); print('world')")
SLOW = "name: slow\ntasks:\n" + task("wait", "import time; time.sleep(60)")
FLAKY = (
    "name: flaky\ntasks:\n"
    + task("ok", "print('ok')")
    + task("gate", "import os,sys; sys.exit(0 if os.path.exists(os.environ['ODIN_WORK_PATH'] + '/fixed') else 3)", "ok")
)
CHAIN = "name: chain\ntasks:\n" + "".join(
    task(f"t{i}", f"import time; time.sleep(0.1); print({i})", f"t{i - 1}" if i else "") for i in range(5)
)
TEMPLATE = (
    "name: templ\ntasks:\n  - {name: say, image: '{{ image }}', command: "
    + PY
    + ", args: ['-c', 'print(\"{{ word }}\")']}\n"
)


async def push(gw: Running, h: dict[str, str], job: str, text: str, name: str = "main.yml") -> dict[str, Any]:
    status, body = await gw.call(
        "POST", f"/v1/jobs/{job}/files/{name}", data=text, headers={**h, "Content-Type": "text/plain"}
    )
    assert status == 200, body
    return body  # type: ignore[no-any-return]


async def start(gw: Running, h: dict[str, str], job: str, **extra: Any) -> dict[str, Any]:
    context = extra.pop("context", None)
    body: dict[str, Any] = {"pipeline": {"job": job, **extra}}
    if context is not None:
        body["context"] = context
    status, reply = await gw.call("POST", "/v1/pipelines", json=body, headers=h)
    assert status == 200, reply
    return reply["pipeline"]  # type: ignore[no-any-return]


async def follow(gw: Running, run_id: str, after: int = 0, *, limit: int | None = None) -> list[dict[str, Any]]:
    """Read the run's live event stream (SSE) until it ends (or ``limit`` events)."""
    events: list[dict[str, Any]] = []
    async with gw.session.get(gw.u(f"/v1/pipelines/{run_id}/events/live?after={after}")) as r:
        assert r.status == 200 and r.content_type == "text/event-stream"
        kind = ""
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "event":
                events.append(json.loads(line[6:]))
                if limit and len(events) >= limit:
                    break
            elif line.startswith("data: ") and kind == "end":
                break
    return events


async def test_push_run_follow_read(gw: Running) -> None:
    h = await gw.add_user("ann")
    written = await push(gw, h, "team__hello", HELLO)
    assert written["location"].startswith("team/hello/main.yml@")
    run = await start(gw, h, "team__hello")
    assert run["job"] == "team/hello" and run["commit"] == written["commit"] and run["startedBy"] == "ann"
    events = await follow(gw, run["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1)) and events[-1]["status"] == "DONE"
    status, body = await gw.call("GET", f"/v1/pipelines/{run['id']}")
    assert body["pipeline"]["status"] == "DONE" and body["pipeline"]["version"] == written["commit"]
    assert body["pipeline"]["tasks"][0]["status"] == "SUCCEEDED"
    status, logs = await gw.call("GET", f"/v1/resources/{run['id']}--greet/logs")
    assert (status, logs) == (200, "hello\nworld")
    status, data = await gw.call("GET", f"/v1/resources/{run['id']}/data")
    assert data["status"] == "DONE" and data["job"] == "team/hello" and data["tasks"][0]["exitCode"] == 0
    status, ev = await gw.call("GET", f"/v1/resources/{run['id']}/events")
    assert {"eventType", "reason", "source", "message", "timestamp"} <= set(ev["events"][0])
    status, listed = await gw.call("GET", "/v1/pipelines?q=hello")
    assert [p["id"] for p in listed["pipelines"]] == [run["id"]]


async def test_live_events_resume_from_a_sequence_number(gw: Running) -> None:
    h = await gw.token()
    await push(gw, h, "chain", CHAIN)
    run = await start(gw, h, "chain")
    first = await follow(gw, run["id"], limit=3)
    rest = await follow(gw, run["id"], after=first[-1]["seq"])
    seqs = [e["seq"] for e in first + rest]
    assert seqs == list(range(1, len(seqs) + 1)) and rest[-1]["status"] == "DONE"
    async with gw.session.get(
        gw.u(f"/v1/pipelines/{run['id']}/events/live"), headers={"Last-Event-ID": str(seqs[-2])}
    ) as r:
        text = await r.text()
    assert f"id: {seqs[-1]}\n" in text and f"id: {seqs[-2]}\n" not in text


async def test_logs_followed_live_and_resumed_by_line(gw: Running) -> None:
    h = await gw.token()
    await push(gw, h, "hello", HELLO)
    run = await start(gw, h, "hello")
    async with gw.session.get(gw.u(f"/v1/resources/{run['id']}--greet/logs?follow=true")) as r:
        text = await r.text()
    assert 'id: 1\nevent: line\ndata: "hello"' in text and 'id: 2\nevent: line\ndata: "world"' in text
    async with gw.session.get(gw.u(f"/v1/resources/{run['id']}--greet/logs?follow=true&after=1")) as r:
        again = await r.text()
    assert '"hello"' not in again and '"world"' in again and "event: end" in again


async def test_a_run_at_an_older_commit_runs_that_commit(gw: Running) -> None:
    h = await gw.token()
    old = await push(gw, h, "hello", HELLO)
    await push(gw, h, "hello", HELLO.replace("print('hello'); print('world')", "print('new')"))
    run = await start(gw, h, "hello", commit=old["commit"])
    await follow(gw, run["id"])
    assert (await gw.call("GET", f"/v1/resources/{run['id']}--greet/logs"))[1] == "hello\nworld"
    assert (await gw.call("GET", f"/v1/pipelines/{run['id']}"))[1]["pipeline"]["version"] == old["commit"]
    _status, body = await gw.call("GET", "/v1/jobs/hello/history")
    assert [c["commit"] for c in body["commits"]][-1] == old["commit"] and len(body["commits"]) == 2
    _status, body = await gw.call("GET", f"/v1/jobs/hello?commit={old['commit']}")
    assert body["job"]["commit"] == old["commit"] and "world" in body["job"]["configs"][0]["content"]


async def test_templates_are_rendered_with_the_context(gw: Running) -> None:
    h = await gw.token()
    await push(gw, h, "templ", TEMPLATE, name="main.yml.jinja2")
    run = await start(gw, h, "templ", context={"image": "busybox:1.36", "word": "rendered"})
    await follow(gw, run["id"])
    assert (await gw.call("GET", f"/v1/resources/{run['id']}--say/logs"))[1] == "rendered"
    assert run["tasks"][0]["image"] == "busybox:1.36"
    status, body = await gw.call("POST", "/v1/pipelines", json={"pipeline": {"job": "templ"}}, headers=h)
    assert status == 400 and "undefined" in body["error"]["message"]


async def test_stop_resubmit_and_cleanup(gw: Running, root: Any) -> None:
    h = await gw.token()
    await push(gw, h, "slow", SLOW)
    run = await start(gw, h, "slow")
    status, body = await gw.call("POST", f"/v1/pipelines/{run['id']}/stop", headers=h)
    assert status == 200
    events = await follow(gw, run["id"])
    assert events[-1]["status"] == "TERMINATED"
    await push(gw, h, "flaky", FLAKY)
    flaky = await start(gw, h, "flaky")
    await follow(gw, flaky["id"])
    status, body = await gw.call("GET", f"/v1/pipelines/{flaky['id']}")
    assert body["pipeline"]["status"] == "TERMINATED"
    work = root / ".odin" / "commits" / flaky["commit"] / "flaky"
    (work / "fixed").write_text("")  # what the failing task waits for, in the snapshot it runs from
    status, body = await gw.call("POST", f"/v1/pipelines/{flaky['id']}/resubmit", headers=h)
    assert status == 200 and body["reused"] == ["ok"] and body["rerun"] == ["gate"]
    await follow(gw, flaky["id"])
    assert (await gw.call("GET", f"/v1/pipelines/{flaky['id']}"))[1]["pipeline"]["status"] == "DONE"
    status, body = await gw.call("DELETE", f"/v1/pipelines/{flaky['id']}?db=true&fs=true", headers=h)
    assert status == 200 and {c["taskId"] for c in body["cleanups"]} == {f"{flaky['id']}--ok", f"{flaky['id']}--gate"}
    assert all(c["purgedFromDb"] for c in body["cleanups"])
    assert (await gw.call("GET", f"/v1/pipelines/{flaky['id']}"))[0] == 404


async def test_validate_without_running(gw: Running) -> None:
    h = await gw.token()
    await push(gw, h, "bad", "name: bad\ntasks:\n  - {name: a_b, image: x}\n")
    status, body = await gw.call("POST", "/v1/jobs/bad/validate", json={})
    assert status == 200 and body["valid"] is False and body["problems"]
    status, body = await gw.call("POST", "/v1/pipelines", json={"pipeline": {"job": "bad"}}, headers=h)
    assert status == 422 and body["error"]["code"] == "invalid_pipeline" and body["error"]["details"]["problems"]
    await push(gw, h, "hello", HELLO)
    status, body = await gw.call("POST", "/v1/jobs/hello/validate")
    assert status == 200 and body["valid"] is True and body["tasks"] == 1


async def test_jobs_create_update_list_and_conflicts(gw: Running) -> None:
    h = await gw.token()
    status, created = await gw.call("POST", "/v1/jobs", json={"job": {"name": "team__new"}}, headers=h)
    assert status == 200 and created["job"]["name"] == "team/new"
    status, body = await gw.call("POST", "/v1/jobs", json={"job": {"name": "team__new"}}, headers=h)
    assert status == 409
    tasks = [{"name": "t", "image": "busybox", "command": "echo", "numGpus": 0, "pullPolicy": "Always"}]
    status, body = await gw.call("PUT", "/v1/jobs/team__new", json={"job": {"tasks": tasks}}, headers=h)
    assert status == 200 and body["job"]["tasks"][0]["pullPolicy"] == "Always"
    status, raw = await gw.call("GET", "/v1/jobs/team__new/files/main.yml")
    assert "pull_policy: Always" in raw
    base = body["job"]["commit"]
    await push(gw, h, "team__new", "x: 1\n", name="conf.yml")
    status, body = await gw.call("POST", "/v1/jobs/team__new/files/main.yml", data="x", headers={**h, "If-Match": base})
    assert status == 200  # main.yml is untouched since base
    status, body = await gw.call(
        "POST", "/v1/jobs/team__new/files/conf.yml", data="x: 2\n", headers={**h, "If-Match": base}
    )
    assert status == 409 and body["error"]["code"] == "conflict"
    for i in range(3):
        await gw.call("POST", "/v1/jobs", json={"job": {"name": f"p{i}"}}, headers=h)
    status, page = await gw.call("GET", "/v1/jobs?limit=2&offset=1")
    assert [j["name"] for j in page["jobs"]] == ["p1", "p2"] and page["page"] == {
        "limit": 2, "offset": 1, "total": 4, "next": 3}  # fmt: skip


async def test_concurrent_api_writes_lose_nothing(gw: Running) -> None:
    h = await gw.token()
    await push(gw, h, "hello", HELLO)
    results = await asyncio.gather(*(push(gw, h, "hello", f"{i}\n", name=f"f{i}.txt") for i in range(12)))
    assert len({r["commit"] for r in results}) == 12
    _status, body = await gw.call("GET", "/v1/jobs/hello")
    assert {f"f{i}.txt" for i in range(12)} <= {c["name"] for c in body["job"]["configs"]}


async def test_hostile_names_are_refused_and_nothing_leaves_the_repository(gw: Running, root: Any) -> None:
    h = await gw.token()
    await push(gw, h, "hello", HELLO)
    (root.parent / "secret.txt").write_text("top secret")
    for path in [
        "/v1/jobs/..__..__etc/files/passwd",
        "/v1/jobs/hello/files/..%2F..%2Fsecret.txt",
        "/v1/jobs/hello/files/.git%2Fconfig",
        "/v1/jobs/.odin/files/x",
        "/v1/jobs/hello/files/a%2F..%2F..%2Fx",
    ]:
        for method in ("GET", "POST"):
            status, body = await gw.call(method, path, data="x", headers={**h, "Content-Type": "text/plain"})
            assert status in (400, 404), (method, path, status, body)
            assert "top secret" not in json.dumps(body)
    status, body = await gw.call("POST", "/v1/pipelines", json={"pipeline": {"job": "../../etc"}}, headers=h)
    assert status == 400
    big = "x" * (2 << 20)
    status, body = await gw.call("POST", "/v1/jobs/hello/files/big.txt", data=big, headers=h)
    assert status == 413 and body["error"]["code"] == "too_large"


async def test_errors_are_json_with_the_right_status(gw: Running) -> None:
    h = await gw.token()
    cases = [
        ("GET", "/v1/pipelines/nope-123", None, 404, "not_found"),
        ("GET", "/v1/resources/nope-123--x/logs", None, 404, "not_found"),
        ("GET", "/v1/no/such/route", None, 404, "not_found"),
        ("PATCH", "/v1/pipelines", None, 405, "method_not_allowed"),
        ("POST", "/v1/pipelines", {"pipeline": 3}, 400, "invalid_request"),
        ("POST", "/v1/pipelines", {"pipeline": {"job": "ghost"}}, 404, "not_found"),
        ("GET", "/v1/pipelines?limit=0", None, 400, "invalid_request"),
        ("GET", "/v1/jobs/hello?commit=zzz", None, 400, "invalid_request"),
    ]
    for method, path, body, status, code in cases:
        got, reply = await gw.call(method, path, json=body, headers=h)
        assert (got, reply["error"]["code"]) == (status, code), (method, path, reply)
    async with gw.session.post(gw.u("/v1/pipelines"), data="{not json", headers=h) as r:
        assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_request"


async def test_a_core_that_is_down_is_a_503_and_the_gateway_keeps_serving(make_gateway: Any, make_server: Any) -> None:
    from dataclasses import replace

    from odin_http.settings import CoreSettings, Secret

    gw = await make_gateway(core=replace(CoreSettings(url="ws://127.0.0.1:9", jwt_secret=Secret("x" * 64))))
    status, body = await gw.call("GET", "/v1/pipelines")
    assert status == 503 and body["error"]["code"] == "unavailable"
    status, body = await gw.call("GET", "/v1/ready")
    assert status == 503 and body["checks"] == {"database": True, "core": False}
    assert (await gw.call("GET", "/v1/health"))[0] == 200
    assert (await gw.call("GET", "/v1/app"))[1]["coreStatus"] == "down"


async def test_a_core_with_another_secret_refuses_the_gateway(make_gateway: Any, make_server: Any) -> None:
    from odin_http.settings import CoreSettings, Secret

    other = await make_server(jwt_secret="y" * 64)
    gw = await make_gateway(core=CoreSettings(url=other.url, jwt_secret=Secret("z" * 64)))
    status, body = await gw.call("GET", "/v1/pipelines")
    assert status == 401 or status == 503, body


async def test_metrics_and_probes(gw: Running) -> None:
    await gw.call("GET", "/v1/ping")
    status, text = await gw.call("GET", "/metrics")
    assert status == 200 and 'odin_http_requests_total{method="GET",route="/v1/ping",status="200"}' in text
    status, body = await gw.call("GET", "/v1/ready")
    assert status == 200 and body["checks"] == {"database": True, "core": True}
    async with gw.session.get(gw.u("/v1/docs")) as r:
        page = await r.text()
    assert r.status == 200 and "/v1/pipelines/{id}/events/live" in page


async def test_secrets_never_appear_in_responses(gw: Running, caplog: Any) -> None:
    from http_support import ADMIN_PASSWORD, CORE_SECRET, USER_SECRET

    h = await gw.token()
    seen = []
    for path in ("/v1/app", "/v1/users", "/v1/users/root", "/v1/openapi.json", "/metrics", "/v1/ready"):
        seen.append(json.dumps((await gw.call("GET", path, headers=h))[1]))
    text = "\n".join(seen) + caplog.text + repr(gw.gateway.settings)
    for secret in (ADMIN_PASSWORD, CORE_SECRET, USER_SECRET, "argon2"):
        assert secret not in text


async def test_the_session_is_closed_cleanly_when_a_client_drops_a_stream(gw: Running) -> None:
    h = await gw.token()
    await push(gw, h, "slow", SLOW)
    run = await start(gw, h, "slow")
    async with aiohttp.ClientSession() as other, other.get(gw.u(f"/v1/pipelines/{run['id']}/events/live")) as r:
        await r.content.readline()
    await gw.call("POST", f"/v1/pipelines/{run['id']}/stop", headers=h)
    assert (await follow(gw, run["id"]))[-1]["status"] == "TERMINATED"
    assert (await gw.call("GET", "/v1/ping"))[0] == 200


async def test_a_live_stream_survives_a_core_restart(make_gateway: Any, odin: Any, root: Any) -> None:
    """The core goes away mid-run and comes back on the same address: the gateway's one upstream connection
    reconnects and the client's stream resumes after the last seq it had: nothing lost, nothing twice."""
    import socket

    from http_support import CORE_SECRET
    from odin_core.service import ServiceSettings, serve_odin
    from odin_http.settings import CoreSettings, Secret

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = ServiceSettings(host="127.0.0.1", port=port, root_path=root, jwt_secret=CORE_SECRET)
    first = serve_odin(odin, settings)
    await first.__aenter__()
    core = CoreSettings(url=f"ws://127.0.0.1:{port}", jwt_secret=Secret(CORE_SECRET), reconnect_timeout_s=30)
    gw = await make_gateway(core=core)
    h = await gw.token()
    slow_chain = "name: chain\ntasks:\n" + "".join(
        task(f"t{i}", "import time; time.sleep(0.3)", f"t{i - 1}" if i else "") for i in range(6)
    )
    await push(gw, h, "chain", slow_chain)
    run = await start(gw, h, "chain")
    seen: list[int] = []
    second = None
    async with gw.session.get(gw.u(f"/v1/pipelines/{run['id']}/events/live")) as r:
        kind = ""
        async for raw in r.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind == "event":
                seen.append(json.loads(line[6:])["seq"])
                if len(seen) == 3:  # the core goes away, and comes back
                    await first.__aexit__(None, None, None)
                    second = serve_odin(odin, settings)
                    await second.__aenter__()
            elif kind == "end":
                break
    assert second is not None
    await second.__aexit__(None, None, None)
    assert seen == list(range(1, len(seen) + 1)) and len(seen) > 3
    assert (await odin.run(run["id"])).run.status.value == "DONE"


async def test_a_lost_users_database_is_a_503_not_a_500(gw: Running) -> None:
    h = await gw.token()
    await gw.gateway.users.pool.close()  # the database goes away under the gateway
    status, body = await gw.call("GET", "/v1/users", headers=h)
    assert status == 503 and body["error"]["code"] == "unavailable"
    status, body = await gw.call("GET", "/v1/ready")
    assert status == 503 and body["checks"]["database"] is False
    assert (await gw.call("GET", "/v1/health"))[0] == 200


async def test_replicas_share_users_tokens_and_the_repository(make_gateway: Any) -> None:
    """Two gateways on one PostgreSQL and one pipelines volume: a token of one works on the other, a logout on one
    holds on both, and writes through both at once all land."""
    one, two = await make_gateway(), await make_gateway()
    tokens = await one.login()
    h = {"Authorization": f"Bearer {tokens['accessToken']}"}
    assert (await two.call("GET", "/v1/users", headers=h))[0] == 200
    await push(one, h, "hello", HELLO)
    writes = [push(gw, h, "hello", f"{i}\n", name=f"r{i}.txt") for i in range(10) for gw in (one, two)]
    await asyncio.gather(*writes)
    _status, body = await two.call("GET", "/v1/jobs/hello")
    assert {f"r{i}.txt" for i in range(10)} <= {c["name"] for c in body["job"]["configs"]}
    run = await start(two, h, "hello")
    assert (await one.call("GET", f"/v1/pipelines/{run['id']}"))[1]["pipeline"]["startedBy"] == "root"
    assert run["definition"] == f"/v1/jobs/hello?commit={run['commit']}"
    assert (await one.call("POST", "/v1/auth/logout", headers=h))[0] == 200
    assert (await two.call("GET", "/v1/users", headers=h))[0] == 401


async def test_malformed_bodies_get_a_clear_400_and_the_gateway_keeps_serving(gw: Running) -> None:
    h = await gw.token()
    cases = [
        ("POST", "/v1/auth", b"\xff\xfe{", "application/json", 400),
        ("POST", "/v1/auth", b"[1, 2]", "application/json", 400),
        ("POST", "/v1/auth", b"<xml/>", "application/xml", 415),
        ("POST", "/v1/auth", b"username=root", "application/x-www-form-urlencoded", 400),
        ("POST", "/v1/users", b'{"user": [1]}', "application/json", 400),
        ("POST", "/v1/users", b'{"user": {"username": "../x", "password": "long-enough"}}', "application/json", 400),
        ("POST", "/v1/users", b'{"user": {"username": "shorty", "password": "short"}}', "application/json", 400),
        ("POST", "/v1/pipelines", b'{"pipeline": {"job": "hello"}, "context": [1]}', "application/json", 400),
        ("POST", "/v1/pipelines", b"[" * 10000, "application/json", 400),
    ]
    for method, path, data, ctype, status in cases:
        got, body = await gw.call(method, path, data=data, headers={**h, "Content-Type": ctype})
        assert got == status and body["error"]["message"], (path, data[:40], got, body)
    assert (await gw.call("GET", "/v1/ping"))[0] == 200


async def test_every_list_pages(gw: Running) -> None:
    h = await gw.token()
    await push(gw, h, "chain", CHAIN)
    run = await start(gw, h, "chain")
    await follow(gw, run["id"])
    _s, all_events = await gw.call("GET", f"/v1/resources/{run['id']}/events")
    total = all_events["page"]["total"]
    _s, page = await gw.call("GET", f"/v1/resources/{run['id']}/events?limit=3&offset=3")
    assert [e["seq"] for e in page["runEvents"]] == [4, 5, 6] and page["page"]["next"] == (6 if total > 6 else None)
    for name in ("a", "b", "c"):
        await gw.add_user(name)
    _s, users = await gw.call("GET", "/v1/users?limit=2&offset=1", headers=h)
    assert [u["username"] for u in users["users"]] == ["b", "c"] and users["page"]["total"] == 4
    _s, runs = await gw.call("GET", "/v1/pipelines?limit=1")
    assert len(runs["pipelines"]) == 1 and runs["page"]["total"] == 1
    _s, history = await gw.call("GET", "/v1/jobs/chain/history?limit=1")
    assert len(history["commits"]) == 1 and history["page"]["next"] is None
