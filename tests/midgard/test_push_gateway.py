"""The push protocol end to end: real agents (recorded boards below pynvml) pushing to a live gateway module."""

from __future__ import annotations

import json
import socket

import aiohttp
import pytest
from midgard.push import DROP, RETRY, SENT, PushState, outcome
from midgard_support import report_for

TIMEOUT_S = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_reports_reach_the_gateway_and_its_listing(board, replay, start_agent, start_gateway, tmp_path):
    replay(board("a100-sxm4-40gb-mig"))
    gw = await start_gateway()
    token = tmp_path / "token"
    token.write_text("node-secret\n")
    running = await start_agent(gateway_url=gw.url, token_file=str(token))
    await running.agent.wait_pushed(lambda s: s.sent >= 3, TIMEOUT_S)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{gw.url}/v1/nodes") as r:
            listing = await r.json()
        async with s.get(f"{gw.url}/v1/gpus") as r:
            gpus = (await r.json())["gpus"]
    (node,) = listing["nodes"]
    assert (node["name"], node["host"], node["internalIp"], node["stale"]) == ("gpu-node-1", "gpu-node-1", "10.0.0.7",
                                                                               False)  # fmt: skip
    assert [g["productName"] for g in node["gpus"]] == ["NVIDIA A100-SXM4-40GB"] * 2
    assert node["capacity"]["nvidia.com/gpu"] == "2" and node["capacitySource"] == "agent"
    assert [(g["node"], g["index"]) for g in gpus] == [("gpu-node-1", 0), ("gpu-node-1", 1)]
    assert len(gw.registry.nodes["gpu-node-1"].seen) >= 3 and gw.registry.accepted >= 3


async def test_a_wrong_token_is_refused_and_nothing_is_lost_once_it_is_fixed(board, replay, start_agent,
                                                                             start_gateway, tmp_path):  # fmt: skip
    replay(board("t4"))
    gw = await start_gateway(tokens=["right-one"])
    token = tmp_path / "token"
    token.write_text("wrong-one\n")
    running = await start_agent(gateway_url=gw.url, token_file=str(token), backoff_max_s=0.2)
    agent = running.agent
    await agent.wait_pushed(lambda s: s.failures >= 2 and len(s.buffer) >= 3, TIMEOUT_S)
    assert gw.registry.nodes == {} and agent.state.sent == 0
    assert "refused the node token" in agent.pusher.last_problem
    waiting = [r["seq"] for r in agent.state.buffer]
    token.write_text("right-one\n")  # the token file is read at every push: a rotation needs no restart
    await agent.wait_pushed(lambda s: s.sent >= len(waiting) and s.failures == 0, TIMEOUT_S)
    arrived = [seq for _, seq in gw.registry.nodes["gpu-node-1"].seen]
    assert arrived[: len(waiting)] == waiting  # every buffered report arrived, in order


async def test_gateway_away_then_back_buffer_is_bounded(board, replay, start_agent, start_gateway, tmp_path):
    replay(board("h100-80gb-hbm3"))
    port = free_port()
    token = tmp_path / "token"
    token.write_text("node-secret")
    running = await start_agent(gateway_url=f"http://127.0.0.1:{port}", token_file=str(token), buffer_reports=4,
                                backoff_max_s=0.2)  # fmt: skip
    agent = running.agent
    await agent.wait_for(8, TIMEOUT_S)
    assert len(agent.state.buffer) == 4 and agent.state.dropped >= 4 and agent.state.failures >= 1
    assert "unreachable" in agent.pusher.last_problem
    gw = await start_gateway(port=port)
    await agent.wait_pushed(lambda s: s.sent >= 4 and s.failures == 0, TIMEOUT_S)
    assert "gpu-node-1" in gw.registry.nodes


async def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as s, s.post(url, data=body, headers=headers or {}) as r:
        return r.status, await r.json()


AUTH = {"Authorization": "Bearer node-secret", "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        pytest.param({}, "missing node token", id="missing"),
        pytest.param({"Authorization": "Bearer nope"}, "wrong node token", id="wrong"),
        pytest.param({"Authorization": "Basic bm9kZS1zZWNyZXQ="}, "missing node token", id="not-bearer"),
        pytest.param({"Authorization": "Bearer node-secretX"}, "wrong node token", id="prefix"),
    ],
)
async def test_missing_or_wrong_token_refused(start_gateway, headers, message):
    gw = await start_gateway()
    status, body = await post(f"{gw.url}/v1/nodes/reports", json.dumps(report_for("n1", ts=1, seq=1)).encode(),
                              headers)  # fmt: skip
    assert status == 401 and body["error"]["code"] == "unauthorized" and message in body["error"]["message"]
    assert gw.registry.nodes == {}


async def test_a_gateway_without_tokens_refuses_every_report(start_gateway):
    gw = await start_gateway(tokens=[])
    status, body = await post(f"{gw.url}/v1/nodes/reports", b"{}", {"Authorization": "Bearer anything"})
    assert status == 401 and "ODIN_HTTP_NODES_TOKEN_FILE" in body["error"]["message"]


async def test_token_rotation_on_the_gateway(start_gateway):
    gw = await start_gateway(tokens=["old"])
    body = json.dumps(report_for("n1", ts=1, seq=1)).encode()
    assert (await post(f"{gw.url}/v1/nodes/reports", body, {"Authorization": "Bearer old"}))[0] == 202
    gw.token_file.write_text("new\nnewer\n")
    import os

    os.utime(gw.token_file, (1, 1))  # a different mtime even within one clock tick
    assert (await post(f"{gw.url}/v1/nodes/reports", body, {"Authorization": "Bearer old"}))[0] == 401
    assert (await post(f"{gw.url}/v1/nodes/reports", body, {"Authorization": "Bearer newer"}))[0] == 202


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        pytest.param(b"{not json", 400, "not JSON", id="not-json"),
        pytest.param(b'{"reports": []}', 400, "1..100", id="empty-batch"),
        pytest.param(
            json.dumps({"reports": [report_for("n1", ts=1, seq=i) for i in range(101)]}).encode(),
            400,
            "1..100",
            id="batch-too-large",
        ),
        pytest.param(
            json.dumps({**report_for("n1", ts=1, seq=1), "version": 9}).encode(), 400, "version", id="version"
        ),
        pytest.param(
            json.dumps({**report_for("n1", ts=1, seq=1), "node": "../etc"}).encode(), 400, "node", id="node-path"
        ),
        pytest.param(b" " * (1024 * 1024 + 10), 413, "larger than", id="body-too-large"),
    ],
)
async def test_bad_reports_get_an_error_and_the_gateway_keeps_serving(start_gateway, body, status, message):
    gw = await start_gateway(max_body_bytes=1024 * 1024)
    got, reply = await post(f"{gw.url}/v1/nodes/reports", body, AUTH)
    assert got == status and message in reply["error"]["message"]
    good = json.dumps({"reports": [report_for("n1", ts=1, seq=1)]}).encode()
    assert (await post(f"{gw.url}/v1/nodes/reports", good, AUTH)) == (202, {"accepted": 1, "new": 1})


async def test_resource_timeline_and_warnings_over_http(start_gateway):
    import time

    gw = await start_gateway(idle_after_s=30)
    now = time.time()
    reports = [report_for("n1", ts=now - 40 + i, seq=i, util=1, task_id="sweep-ab12--train") for i in range(41)]
    assert (await post(f"{gw.url}/v1/nodes/reports", json.dumps({"reports": reports[:100]}).encode(), AUTH))[0] == 202
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{gw.url}/v1/resources/sweep-ab12/gpus") as r:
            run = await r.json()
        async with s.get(f"{gw.url}/v1/resources/sweep-ab12--train/gpus") as r:
            task = await r.json()
        async with s.get(f"{gw.url}/v1/resources/unknown-run/gpus") as r:
            missing = (r.status, await r.json())
        async with s.get(f"{gw.url}/v1/resources/BAD%20ID/gpus") as r:
            bad = r.status
        async with s.get(f"{gw.url}/v1/nodes") as r:
            listing = await r.json()
    assert run["kind"] == "run" and run["tasks"] == ["sweep-ab12--train"] and len(run["points"]) == 41
    assert task["kind"] == "task" and task["points"][-1]["gpuUtil"] == 1.0
    assert [w["code"] for w in run["warnings"]] == ["gpu_idle"]
    assert missing[0] == 404 and missing[1]["error"]["code"] == "not_found" and bad == 400
    assert [w["taskId"] for w in listing["warnings"]] == ["sweep-ab12--train"]


@pytest.mark.parametrize(
    ("status", "result"),
    [(200, SENT), (202, SENT), (400, DROP), (413, DROP), (401, RETRY), (403, RETRY), (404, RETRY), (429, RETRY),
     (500, RETRY), (503, RETRY)],
)  # fmt: skip
def test_what_a_status_means(status, result):
    assert outcome(status) == result


def test_backoff_doubles_to_the_maximum_and_resets():
    state = PushState(capacity=3, interval_s=1.0, backoff_max_s=8.0, jitter=lambda: 1.0)
    delays = []
    for _ in range(6):
        state.settle(1, RETRY)
        delays.append(state.delay())
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    state.add({"seq": 1})
    state.settle(1, SENT)
    assert state.delay() == 0.0 and state.failures == 0 and state.sent == 1


def test_the_buffer_drops_the_oldest_when_full():
    state = PushState(capacity=3, interval_s=1.0, backoff_max_s=8.0)
    for i in range(5):
        state.add({"seq": i})
    assert [r["seq"] for r in state.buffer] == [2, 3, 4] and state.dropped == 2
    state.settle(2, DROP)
    assert [r["seq"] for r in state.buffer] == [4] and state.rejected == 2


def test_gateway_settings_from_the_environment():
    from odin_http.nodes import NodesSettings

    s = NodesSettings.from_env({"ODIN_HTTP_NODES_STALE_AFTER_S": "12", "ODIN_HTTP_NODES_HISTORY_POINTS": "10"})
    assert (s.stale_after_s, s.history_points, s.kube_api_url) == (12.0, 10, "https://kubernetes.default.svc")
    assert NodesSettings.from_env({"ODIN_HTTP_NODES_KUBE_API_URL": "none"}).kube_api_url == "none"
    with pytest.raises(ValueError, match="ODIN_HTTP_NODES_IDLE_AFTER_S: 'later' is not a valid float"):
        NodesSettings.from_env({"ODIN_HTTP_NODES_IDLE_AFTER_S": "later"})


async def test_a_token_bound_to_a_node_reports_only_that_node(start_gateway):
    gw = await start_gateway(tokens=["shared", "tok-a gpu-a", "tok-b gpu-b"])
    url = f"{gw.url}/v1/nodes/reports"

    def body(*nodes: str) -> bytes:
        return json.dumps({"reports": [report_for(n, ts=1, seq=i) for i, n in enumerate(nodes)]}).encode()

    assert (await post(url, body("gpu-a"), {"Authorization": "Bearer tok-a"}))[0] == 202
    status, reply = await post(url, body("gpu-a", "gpu-b"), {"Authorization": "Bearer tok-a"})
    assert status == 403 and reply["error"]["code"] == "forbidden" and "gpu-a, not gpu-b" in reply["error"]["message"]
    assert "gpu-b" not in gw.registry.nodes  # the whole batch was refused
    assert (await post(url, body("gpu-b", "gpu-c"), {"Authorization": "Bearer shared"}))[0] == 202
