"""OpenAPI 3.1 of the node module's routes, for the gateway's document (``/v1/openapi.json``) to merge.

``paths()`` and ``schemas()`` are plain dicts; the tests validate live responses against them, so they stay true.
"""

from __future__ import annotations

from typing import Any

from odin_core.constants import NODE_REPORTS_PATH

ERROR = {"$ref": "#/components/schemas/Error"}
NULLABLE_NUMBER = {"type": ["number", "null"]}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def schemas() -> dict[str, Any]:
    gpu = {
        "type": "object",
        "required": ["index"],
        "properties": {
            "index": {"type": ["integer", "null"]},
            "id": {"type": ["string", "null"], "description": "PCI bus id (the original agent's name for it)"},
            "uuid": {"type": ["string", "null"]},
            "productName": {"type": ["string", "null"]},
            "utilization": {
                "type": "object",
                "properties": {"gpuUtil": NULLABLE_NUMBER, "memoryUtil": NULLABLE_NUMBER},
            },
            "fbMemoryUsage": {"type": "object"},
            "powerReadings": {"type": "object"},
            "temperature": {"type": "object"},
            "processes": {"type": "array", "items": {"type": "object"}},
            "migDevices": {"type": "array", "items": {"type": "object"}},
            "notSupported": {"type": "array", "items": {"type": "string"}},
            "errors": {"type": "object"},
        },
    }
    warning = {
        "type": "object",
        "required": ["code", "node", "taskId", "idleS", "message"],
        "properties": {"code": {"const": "gpu_idle"}, "node": {"type": "string"}, "taskId": {"type": "string"},
                       "runId": {"type": "string"}, "gpuUuid": {"type": "string"},
                       "gpuIndex": {"type": ["integer", "null"]}, "idleS": {"type": "number"},
                       "message": {"type": "string"}},
    }  # fmt: skip
    node = {
        "type": "object",
        "required": ["name", "host", "capacity", "gpus", "stale"],
        "properties": {"name": {"type": "string"}, "host": {"type": "string"},
                       "internalIp": {"type": ["string", "null"]}, "stale": {"type": "boolean"},
                       "ageS": NULLABLE_NUMBER,
                       "capacity": {"type": "object", "additionalProperties": {"type": "string"}},
                       "capacitySource": {"enum": ["kubernetes", "agent"]},
                       "gpus": {"type": "array", "items": {"$ref": "#/components/schemas/Gpu"}},
                       "tasks": {"type": "array"}, "lastReport": {"type": ["string", "null"]}},
    }  # fmt: skip
    point = {
        "type": "object",
        "required": ["timestamp", "node", "taskId", "gpuUuid"],
        "properties": {"timestamp": {"type": "number"}, "node": {"type": "string"}, "taskId": {"type": "string"},
                       "gpuUuid": {"type": "string"}, "gpuIndex": {"type": ["integer", "null"]},
                       "migIndex": {"type": ["integer", "null"]}, "gpuUtil": NULLABLE_NUMBER,
                       "usedMemory": {"type": ["integer", "null"]}},
    }  # fmt: skip
    report = {
        "type": "object",
        "required": ["version", "node", "agentId", "seq", "timestamp", "gpus"],
        "properties": {"version": {"const": 1}, "node": {"type": "string", "maxLength": 253},
                       "agentId": {"type": "string", "maxLength": 64}, "seq": {"type": "integer", "minimum": 0},
                       "timestamp": {"type": "number"}, "host": {"type": "string"}, "internalIp": {"type": "string"},
                       "gpus": {"type": "array", "maxItems": 64, "items": {"$ref": "#/components/schemas/Gpu"}},
                       "tasks": {"type": "array", "maxItems": 512, "items": {"type": "object"}},
                       "nvml": {"type": "object"}, "system": {"type": "object"}},
    }  # fmt: skip
    return {"Gpu": gpu, "NodeWarning": warning, "Node": node, "GpuPoint": point, "NodeReport": report}


def paths() -> dict[str, Any]:
    warnings = {"type": "array", "items": {"$ref": "#/components/schemas/NodeWarning"}}
    return {
        NODE_REPORTS_PATH: {"post": {
            "summary": "A node agent (midgard) pushes its reports",
            "security": [{"nodeToken": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"oneOf": [
                {"type": "object", "required": ["reports"], "properties": {"reports": {
                    "type": "array", "minItems": 1, "maxItems": 100,
                    "items": {"$ref": "#/components/schemas/NodeReport"}}}},
                {"$ref": "#/components/schemas/NodeReport"}]}}}},
            "responses": {
                "202": _json({"type": "object", "required": ["accepted", "new"], "properties": {
                    "accepted": {"type": "integer"}, "new": {"type": "integer"}}}, "accepted"),
                "400": _json(ERROR, "an invalid report (the field is named)"),
                "401": _json(ERROR, "missing or wrong node token"),
                "403": _json(ERROR, "the token is bound to another node"),
                "413": _json(ERROR, "request too large"),
            },
        }},
        "/v1/nodes": {"get": {
            "summary": "Every node: capacity, GPUs, host, internal IP, staleness; idle-GPU warnings",
            "responses": {"200": _json({"type": "object", "required": ["nodes", "warnings"], "properties": {
                "nodes": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
                "warnings": warnings}}, "the cluster's nodes")},
        }},
        "/v1/gpus": {"get": {
            "summary": "Every GPU of the cluster, each with its node",
            "responses": {"200": _json({"type": "object", "required": ["gpus", "warnings"], "properties": {
                "gpus": {"type": "array", "items": {"$ref": "#/components/schemas/Gpu"}}, "warnings": warnings}},
                "the cluster's GPUs")},
        }},
        "/v1/resources/{id}/gpus": {"get": {
            "summary": "GPU-utilisation timeline of a run (id) or a task (run--task)",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": _json({"type": "object", "required": ["id", "kind", "tasks", "points", "warnings"],
                              "properties": {"id": {"type": "string"}, "kind": {"enum": ["run", "task"]},
                                             "tasks": {"type": "array", "items": {"type": "string"}},
                                             "points": {"type": "array",
                                                        "items": {"$ref": "#/components/schemas/GpuPoint"}},
                                             "warnings": warnings}}, "the timeline"),
                "400": _json(ERROR, "not a run or task id"),
                "404": _json(ERROR, "nothing recorded for this id"),
            },
        }},
    }  # fmt: skip


def security_schemes() -> dict[str, Any]:
    return {"nodeToken": {"type": "http", "scheme": "bearer", "description": "a node token (ODIN_NODES_TOKEN_FILE)"}}
