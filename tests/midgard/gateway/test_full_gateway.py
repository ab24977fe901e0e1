"""A real agent pushing to the whole gateway (odin-http on PostgreSQL, a real core), and `odin gpus` reading it."""

from __future__ import annotations

import asyncio
import dataclasses
import sys

import aiohttp
from odin_http.nodes import NodesSettings

TIMEOUT_S = 30


async def test_agent_to_gateway_to_cli(board, replay, start_agent, make_gateway, tmp_path):
    tokens = tmp_path / "node-tokens"
    tokens.write_text("node-secret gpu-node-1\n")
    gw = await make_gateway(modules={"nodes": NodesSettings(token_file=str(tokens), kube_api_url="none")})
    replay(board("a100-sxm4-40gb-mig"))
    token = tmp_path / "token"
    token.write_text("node-secret")
    running = await start_agent(gateway_url=gw.url, token_file=str(token))
    await running.agent.wait_pushed(lambda s: s.sent >= 2, TIMEOUT_S)

    status, listing = await gw.call("GET", "/v1/nodes")
    assert status == 200 and [n["name"] for n in listing["nodes"]] == ["gpu-node-1"]
    status, doc = await gw.call("GET", "/v1/openapi.json")
    assert {"/v1/nodes", "/v1/gpus", "/v1/nodes/reports", "/v1/resources/{id}/gpus"} <= set(doc["paths"])
    status, metrics = await gw.call("GET", "/metrics")
    assert "/v1/nodes/reports" in metrics  # the gateway's own request metrics see the node routes

    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "odin_client", "--server", gw.url, "gpus",
                                                stdout=pipe, stderr=pipe)  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert "gpu-node-1" in out.decode() and "NVIDIA A100-SXM4-40GB" in out.decode()

    # a user JWT is not a node token; an anonymous POST is refused
    user = await gw.token()
    async with aiohttp.ClientSession() as s:
        for headers in (user, {}):
            async with s.post(f"{gw.url}/v1/nodes/reports", json={"reports": []}, headers=headers) as r:
                assert r.status == 401 and (await r.json())["error"]["code"] == "unauthorized"


async def test_reads_need_a_token_when_public_reads_are_off(make_gateway):
    from odin_http.settings import ServerSettings

    gw = await make_gateway(server=dataclasses.replace(ServerSettings(host="127.0.0.1", port=0), public_reads=False))
    for path in ("/v1/nodes", "/v1/gpus", "/v1/resources/run-x/gpus"):
        status, body = await gw.call("GET", path)
        assert status == 401 and body["error"]["code"] == "unauthorized", path
    status, body = await gw.call("GET", "/v1/nodes", headers=await gw.token())
    assert status == 200 and body == {"nodes": [], "warnings": []}
