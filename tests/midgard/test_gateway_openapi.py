"""The node module's OpenAPI fragment matches what its routes answer (live requests, jsonschema 2020-12)."""

from __future__ import annotations

import json
import time

import aiohttp
import jsonschema
from midgard_support import report_for
from odin_core.constants import NODE_REPORTS_PATH
from odin_http.nodes_openapi import paths, schemas

MESSAGE = {"type": "object", "required": ["code", "message"],
           "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}  # fmt: skip
ERROR = {"type": "object", "required": ["error"], "properties": {"error": MESSAGE}}


def check(path: str, method: str, status: int, body: object) -> None:
    schema = paths()[path][method]["responses"][str(status)]["content"]["application/json"]["schema"]
    root = {"components": {"schemas": {**schemas(), "Error": ERROR}}, **schema}
    jsonschema.Draft202012Validator(root).validate(body)


def test_the_fragment_is_openapi_shaped():
    for path, item in paths().items():
        assert path.startswith("/v1/")
        for op in item.values():
            assert op["summary"] and op["responses"]
    jsonschema.Draft202012Validator.check_schema({"components": {"schemas": schemas()}})


async def test_live_answers_match(start_gateway):
    gw = await start_gateway()
    now = time.time()
    reports = [report_for("n1", ts=now - 5 + i, seq=i) for i in range(5)]
    auth = {"Authorization": "Bearer node-secret"}
    request_schema = paths()[NODE_REPORTS_PATH]["post"]["requestBody"]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({"components": {"schemas": schemas()}, **request_schema}).validate(
        {"reports": reports}
    )
    async with aiohttp.ClientSession() as s:
        async with s.post(gw.url + NODE_REPORTS_PATH, json={"reports": reports}, headers=auth) as r:
            check(NODE_REPORTS_PATH, "post", r.status, await r.json())
        for headers, body in [({}, {"reports": reports}), (auth, {"reports": []})]:
            async with s.post(gw.url + NODE_REPORTS_PATH, json=body, headers=headers) as r:
                check(NODE_REPORTS_PATH, "post", r.status, await r.json())
        for path in ("/v1/nodes", "/v1/gpus", "/v1/resources/sweep-ab12/gpus", "/v1/resources/nothing/gpus",
                     "/v1/resources/BAD!/gpus"):  # fmt: skip
            async with s.get(gw.url + path) as r:
                template = "/v1/resources/{id}/gpus" if path.startswith("/v1/resources") else path
                check(template, "get", r.status, json.loads(await r.read()))
