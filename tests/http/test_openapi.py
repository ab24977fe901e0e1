"""The OpenAPI document is true: every route is in it and only those, and real answers conform to its schemas."""

from __future__ import annotations

from typing import Any

import jsonschema
from http_support import Running
from odin_http.app import make_app
from test_api import HELLO, follow, push, start

METHODS = {"GET", "POST", "PUT", "DELETE", "PATCH"}


def routes_of(gw: Running) -> set[tuple[str, str]]:
    app = make_app(gw.gateway)
    out = set()
    for route in app.router.routes():
        if route.method in METHODS and route.resource is not None:
            out.add((route.method.lower(), route.resource.canonical))
    return out


def test_every_route_is_documented_and_only_those(gw: Running) -> None:
    doc = gw.gateway.openapi
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert routes_of(gw) == documented
    assert doc["openapi"] == "3.1.0"
    for path, ops in doc["paths"].items():
        for method, spec in ops.items():
            names = {p["name"] for p in spec["parameters"] if p["in"] == "path"}
            assert names == {part[1:-1] for part in path.split("/") if part.startswith("{")}, (method, path)


def check(doc: dict[str, Any], method: str, path: str, status: int, body: Any) -> None:
    spec = doc["paths"][path][method]
    assert str(status) in spec["responses"], (method, path, status)
    content = spec["responses"][str(status)].get("content", {})
    schema = content.get("application/json", {}).get("schema")
    if schema is not None:
        jsonschema.validate(
            body, {**schema, "components": doc["components"]}, cls=jsonschema.Draft202012Validator,
            format_checker=jsonschema.FormatChecker(),
        )  # fmt: skip


async def test_answers_conform_to_the_document(gw: Running) -> None:
    doc = gw.gateway.openapi
    h = await gw.token()
    await push(gw, h, "team__hello", HELLO)
    run = await start(gw, h, "team__hello")
    await follow(gw, run["id"])
    rid, sha = run["id"], run["commit"]
    calls = [
        ("get", "/v1/ping", "/v1/ping", None),
        ("get", "/v1/app", "/v1/app", None),
        ("get", "/v1/health", "/v1/health", None),
        ("get", "/v1/ready", "/v1/ready", None),
        ("get", "/v1/users", "/v1/users", None),
        ("get", "/v1/users/{username}", "/v1/users/root", None),
        ("get", "/v1/users/{username}", "/v1/users/nobody", None),
        ("post", "/v1/users", "/v1/users", {"user": {"username": "ann", "password": "password-ann"}}),
        ("put", "/v1/users/{username}", "/v1/users/ann", {"user": {"firstname": "Ann"}}),
        ("delete", "/v1/users/{username}", "/v1/users/ann", None),
        ("get", "/v1/pipelines", "/v1/pipelines?limit=1", None),
        ("get", "/v1/pipelines/{id}", f"/v1/pipelines/{rid}", None),
        ("get", "/v1/pipelines/{id}", "/v1/pipelines/none-1", None),
        ("post", "/v1/pipelines/{id}/resubmit", f"/v1/pipelines/{rid}/resubmit", None),
        ("post", "/v1/pipelines/{id}/stop", f"/v1/pipelines/{rid}/stop", None),
        ("get", "/v1/resources/{id}/events", f"/v1/resources/{rid}/events", None),
        ("get", "/v1/resources/{id}/data", f"/v1/resources/{rid}--greet/data", None),
        ("get", "/v1/resources/{id}/logs", f"/v1/resources/{rid}--greet/logs", None),
        ("get", "/v1/jobs", "/v1/jobs", None),
        ("get", "/v1/jobs/{id}", f"/v1/jobs/team__hello?commit={sha}", None),
        ("get", "/v1/jobs/{id}/history", "/v1/jobs/team__hello/history", None),
        ("post", "/v1/jobs/{id}/validate", "/v1/jobs/team__hello/validate", {}),
        ("post", "/v1/jobs", "/v1/jobs", {"job": {"name": "other"}}),
        ("put", "/v1/jobs/{id}", "/v1/jobs/other", {"job": {"configs": [{"name": "a.txt", "content": "a"}]}}),
        ("delete", "/v1/jobs/{id}/files/{filename}", "/v1/jobs/other/files/a.txt", None),
        ("delete", "/v1/jobs/{id}", "/v1/jobs/other", None),
        ("delete", "/v1/pipelines/{id}", f"/v1/pipelines/{rid}?db=true", None),
        ("post", "/v1/auth", "/v1/auth", {"username": "root", "password": "wrong-password"}),
    ]
    for method, template, path, body in calls:
        status, reply = await gw.call(method.upper(), path, json=body, headers=h)
        check(doc, method, template, status, reply)
