"""The OpenAPI 3.1 document, assembled from what each route module declares next to its handlers.

Helpers keep the declarations short: ``op`` describes one operation; every operation gets the error responses its
kind can produce (the shared ``Error`` schema), so the document says what the error middleware really answers.
"""

from __future__ import annotations

from typing import Any

from . import __version__
from . import constants as C

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}
PAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["limit", "offset", "total", "next"],
    "properties": {
        "limit": {"type": "integer"},
        "offset": {"type": "integer"},
        "total": {"type": "integer"},
        "next": {"type": ["integer", "null"]},
    },
}
_ERRORS = {
    "400": "invalid request",
    "401": "no token, or a token that is not good",
    "403": "the token's user may not do this",
    "404": "not found",
    "409": "conflict",
    "413": "the body is too large",
    "415": "unsupported body type",
    "422": "the pipeline is invalid",
    "429": "too many attempts",
    "502": "the core failed",
    "503": "the core or the database is unavailable",
}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {"description": description or "OK", "content": {"application/json": {"schema": schema}}}


def param(name: str, where: str = "query", *, schema: dict[str, Any] | None = None, doc: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "in": where, "schema": schema or {"type": "string"}}
    if where == "path":
        out["required"] = True
    if doc:
        out["description"] = doc
    return out


PAGE_PARAMS = [
    param("limit", schema={"type": "integer", "minimum": 1, "maximum": 1000}, doc="items per page"),
    param("offset", schema={"type": "integer", "minimum": 0}, doc="items to skip"),
]


def op(
    summary: str,
    *,
    tag: str,
    ok: dict[str, Any],
    params: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
    auth: str = "none",
    errors: tuple[str, ...] = ("400",),
    status: str = "200",
) -> dict[str, Any]:
    """One operation. ``auth``: "none", "read" (a token when public reads are off), "user" or "admin"."""
    codes = set(errors) | {"503"}
    if auth != "none":
        codes |= {"401"}
    if auth in ("user", "admin"):
        codes |= {"403"}
    if body is not None:
        codes |= {"400", "413", "415"}
    out: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "parameters": params or [],
        "responses": {status: ok, **{c: json_body(ref("Error"), _ERRORS[c]) for c in sorted(codes)}},
    }
    if auth != "none":
        out["security"] = [{"bearer": []}] if auth != "read" else [{}, {"bearer": []}]
        out["x-odin-role"] = auth
    if body is not None:
        out["requestBody"] = body
    return out


def document(modules: list[Any]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA, "Page": PAGE_SCHEMA}
    for module in modules:
        spec = getattr(module, "OPENAPI", {})
        for path, ops in spec.get("paths", {}).items():
            paths.setdefault(path, {}).update(ops)
        schemas.update(spec.get("schemas", {}))
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Odin HTTP gateway",
            "version": __version__,
            "description": "Users, tokens, git-backed pipeline definitions and runs of the Odin core. "
            "Bodies are JSON in camelCase (snake_case keys are accepted too); errors are "
            '{"error": {"code", "message"}}.',
        },
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "x-prefix": C.PREFIX,
    }
