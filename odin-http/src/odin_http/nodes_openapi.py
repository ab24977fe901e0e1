"""OpenAPI 3.1 of the node module's routes: its part of the gateway's document (``OPENAPI`` of ``odin_http.nodes``).

Written with ``odin_http.openapi.op``, so every operation lists the errors the gateway can answer; the gateway's
document test checks the routes against it and real answers against its schemas.
"""

from __future__ import annotations

from typing import Any

from .openapi import json_body, op, param, ref

NULLABLE_NUMBER = {"type": ["number", "null"]}
TAG = "nodes"


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
                       "gpus": {"type": "array", "items": {"$ref": "#/components/schemas/NodeGpu"}},
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
                       "gpus": {"type": "array", "maxItems": 64, "items": {"$ref": "#/components/schemas/NodeGpu"}},
                       "tasks": {"type": "array", "maxItems": 512, "items": {"type": "object"}},
                       "nvml": {"type": "object"}, "system": {"type": "object"}},
    }  # fmt: skip
    return {"NodeGpu": gpu, "NodeWarning": warning, "Node": node, "GpuPoint": point, "NodeReport": report}


def openapi(reports_path: str) -> dict[str, Any]:
    warnings = {"type": "array", "items": ref("NodeWarning")}
    batch = {"oneOf": [
        {"type": "object", "required": ["reports"], "properties": {"reports": {
            "type": "array", "minItems": 1, "maxItems": 100, "items": ref("NodeReport")}}},
        ref("NodeReport")]}  # fmt: skip
    push = op(
        "A node agent (midgard) pushes its reports, with a node token (not a user token)",
        tag=TAG, status="202", errors=("400", "401", "403"),
        ok=json_body({"type": "object", "required": ["accepted", "new"], "properties": {
            "accepted": {"type": "integer"}, "new": {"type": "integer"}}}, "accepted"),
        body={"required": True, "content": {"application/json": {"schema": batch}}},
    )  # fmt: skip
    push["security"] = [{"bearer": []}]
    listing = {"type": "object", "required": ["nodes", "warnings"],
               "properties": {"nodes": {"type": "array", "items": ref("Node")}, "warnings": warnings}}  # fmt: skip
    gpus = {"type": "object", "required": ["gpus", "warnings"],
            "properties": {"gpus": {"type": "array", "items": ref("NodeGpu")}, "warnings": warnings}}  # fmt: skip
    timeline = {"type": "object", "required": ["id", "kind", "tasks", "points", "warnings"],
                "properties": {"id": {"type": "string"}, "kind": {"enum": ["run", "task"]},
                               "tasks": {"type": "array", "items": {"type": "string"}},
                               "points": {"type": "array", "items": ref("GpuPoint")},
                               "warnings": warnings}}  # fmt: skip
    return {
        "paths": {
            reports_path: {"post": push},
            "/v1/nodes": {"get": op("Every node: capacity, GPUs, host, internal IP, staleness; idle-GPU warnings",
                                    tag=TAG, ok=json_body(listing), auth="read", errors=())},
            "/v1/gpus": {"get": op("Every GPU of the cluster, each with its node", tag=TAG, ok=json_body(gpus),
                                   auth="read", errors=())},
            "/v1/resources/{id}/gpus": {"get": op(
                "GPU-utilisation timeline of a run (id) or a task (run--task)", tag=TAG, ok=json_body(timeline),
                params=[param("id", "path", doc="a run id or a task id")], auth="read", errors=("400", "404"))},
        },
        "schemas": schemas(),
    }  # fmt: skip
