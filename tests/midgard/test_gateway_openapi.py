"""The node module's part of the gateway's OpenAPI document matches what its routes answer (live requests)."""

from __future__ import annotations

import json
import time

import aiohttp
import jsonschema
from midgard_support import report_for
from odin_core.constants import NODE_REPORTS_PATH
from odin_http import nodes
from odin_http.openapi import document

DOC = document([nodes])


def check(path: str, method: str, status: int, body: object) -> None:
    spec = DOC["paths"][path][method]
    assert str(status) in spec["responses"], (method, path, status)
    schema = spec["responses"][str(status)]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**schema, "components": DOC["components"]}).validate(body)


def test_every_route_of_the_module_is_documented():
    from aiohttp import web

    app = web.Application()
    nodes.setup(app, nodes.NodesSettings(kube_api_url="none"))
    routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes() if r.method != "HEAD"}
    assert routes == {(m, p) for p, ops in nodes.OPENAPI["paths"].items() for m in ops}
    jsonschema.Draft202012Validator.check_schema({"components": DOC["components"]})


async def test_live_answers_match(start_gateway):
    gw = await start_gateway()
    now = time.time()
    reports = [report_for("n1", ts=now - 5 + i, seq=i) for i in range(5)]
    auth = {"Authorization": "Bearer node-secret"}
    request_schema = DOC["paths"][NODE_REPORTS_PATH]["post"]["requestBody"]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**request_schema, "components": DOC["components"]}).validate({"reports": reports})
    async with aiohttp.ClientSession() as s:
        async with s.post(gw.url + NODE_REPORTS_PATH, json={"reports": reports}, headers=auth) as r:
            check(NODE_REPORTS_PATH, "post", r.status, await r.json())
        for headers, body in [({}, {"reports": reports}), (auth, {"reports": []})]:
            async with s.post(gw.url + NODE_REPORTS_PATH, json=body, headers=headers) as r:
                check(NODE_REPORTS_PATH, "post", r.status, await r.json())
        async with s.post(gw.url + NODE_REPORTS_PATH, data=b"x" * (9 * 2**20), headers=auth) as r:
            check(NODE_REPORTS_PATH, "post", r.status, await r.json())
        for path in ("/v1/nodes", "/v1/gpus", "/v1/resources/sweep-ab12/gpus", "/v1/resources/nothing/gpus",
                     "/v1/resources/BAD!/gpus"):  # fmt: skip
            async with s.get(gw.url + path) as r:
                template = "/v1/resources/{id}/gpus" if path.startswith("/v1/resources") else path
                check(template, "get", r.status, json.loads(await r.read()))
