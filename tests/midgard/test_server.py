"""The agent's HTTP endpoints over real sockets, with a recorded board replayed below pynvml."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as s, s.get(url) as r:
        return r.status, r.headers.get("Content-Type", ""), await r.text()


async def test_gpus_report_metrics_and_health(board, replay, start_agent):
    replay(board("a100-sxm4-40gb-mig"))
    running = await start_agent()
    await running.agent.wait_for(2, timeout_s=10)
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{running.url}/v1/gpus") as r:
            assert r.status == 200
            body = await r.json()
        async with s.get(f"{running.url}/v1/report") as r:
            full = await r.json()
        async with s.get(f"{running.url}/healthz") as r:
            health = (r.status, await r.json())
    assert body["node"] == "gpu-node-1" and body["internalIp"] == "10.0.0.7"
    assert [g["productName"] for g in body["gpus"]] == ["NVIDIA A100-SXM4-40GB"] * 2
    assert full["seq"] >= 2 and full["system"]["cpu"]["count"] >= 1
    assert health[0] == 200 and health[1]["ok"] is True and health[1]["gpus"] == 2
    status, ctype, text = await get(f"{running.url}/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(text)}
    assert {"DCGM_FI_DEV_FB_USED", "DCGM_FI_DEV_GPU_TEMP", "midgard_readings"} <= names


async def test_before_the_first_reading_endpoints_say_not_ready(start_agent):
    running = await start_agent(loop=False)
    for path in ("/v1/gpus", "/v1/report"):
        status, _, text = await get(f"{running.url}{path}")
        assert status == 503 and '"not_ready"' in text
    status, _, _ = await get(f"{running.url}/healthz")
    assert status == 503
    status, _, text = await get(f"{running.url}/metrics")
    assert status == 200 and "midgard_readings_total 0" in text


async def test_this_machine_zero_gpus_with_the_reason(start_agent):
    running = await start_agent()
    await running.agent.wait_for(1, timeout_s=10)
    status, _, text = await get(f"{running.url}/v1/gpus")
    assert status == 200 and '"gpus":[]' in text and "libnvidia-ml.so.1 not found" in text


async def test_bad_requests_get_errors_and_the_server_keeps_serving(start_agent):
    running = await start_agent()
    await running.agent.wait_for(1, timeout_s=10)
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{running.url}/v1/gpus", data=b"x" * 4096) as r:
            assert r.status in (405, 413)
        async with s.get(f"{running.url}/v1/../../etc/passwd") as r:
            assert r.status == 404
        async with s.get(f"{running.url}/nope") as r:
            assert r.status == 404
    status, _, _ = await get(f"{running.url}/v1/gpus")
    assert status == 200


async def test_a_reading_that_fails_does_not_stop_the_agent(board, replay, start_agent):
    table = board("t4")
    replay(table)
    running = await start_agent()
    agent = running.agent
    first = await agent.wait_for(1, timeout_s=10)
    original = agent.system.read
    calls = {"n": 0}

    def broken():
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("psutil exploded")
        return original()

    agent.system.read = broken
    later = await agent.wait_for(first["seq"] + 1, timeout_s=10)
    assert agent.readings_failed == 1 and later["seq"] == first["seq"] + 1
