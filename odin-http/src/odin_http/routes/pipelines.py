"""Runs: list, read, start (at the head or at a commit, templates rendered), stop, resubmit, clean up, follow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from .. import constants as C
from .. import views
from ..access import reader, require_user
from ..errors import InvalidRequest
from ..gitstore.names import job_path
from ..gitstore.templates import check_context
from ..keys import GATEWAY
from ..openapi import PAGE_PARAMS, json_body, op, param, ref
from ..sse import resume_from, stream
from ..wire import body_object, paginate, query_flag, reply, string_field

P = C.PREFIX
RUN_ID_MAX = 128


def _run_id(request: web.Request) -> str:
    run_id = request.match_info["id"]
    if len(run_id) > RUN_ID_MAX or "--" in run_id:
        raise InvalidRequest(f"{run_id!r} is not a run id")
    return run_id


async def _shown(gw: Any, views_: list[Any]) -> list[dict[str, Any]]:
    meta = await gw.users.runs([v.run.run_id for v in views_]) if views_ else {}
    return [views.pipeline(v, meta.get(v.run.run_id)) for v in views_]


async def list_pipelines(request: web.Request) -> web.Response:
    await reader(request)
    gw = request.app[GATEWAY]
    found = await gw.core.call(gw.core.status(request.query.get("q", "")))
    chunk, page = paginate(request, found)
    return reply({"pipelines": await _shown(gw, chunk), "page": page})


async def get_pipeline(request: web.Request) -> web.Response:
    await reader(request)
    gw = request.app[GATEWAY]
    view = await gw.core.call(gw.core.run(_run_id(request)))
    return reply({"pipeline": (await _shown(gw, [view]))[0]})


async def start_pipeline(request: web.Request) -> web.Response:
    user = await require_user(request, role=C.ROLE_USER)
    gw = request.app[GATEWAY]
    body = await body_object(request)
    spec = body.get("pipeline")
    if not isinstance(spec, dict):
        raise InvalidRequest('the body is {"pipeline": {"job": "<job>"}, "context": {...}}')
    job = job_path(string_field(spec, "job", max_len=512))
    rev = spec.get("commit") or spec.get("version") or None
    if rev is not None and not isinstance(rev, str):
        raise InvalidRequest('"commit" must be a commit id')
    run_id = spec.get("id") or None
    if run_id is not None and (not isinstance(run_id, str) or len(run_id) > RUN_ID_MAX):
        raise InvalidRequest('"id" must be a run id')
    context = check_context(body.get("context"))
    prepared = await gw.pipelines.prepare(job, rev, context)
    run = await gw.core.call(gw.core.submit(prepared.core_job, run_id=run_id))
    await gw.users.record_run(run.run_id, job, prepared.commit, user.username, context)
    gw.metrics.runs_started.inc()
    view = await gw.core.call(gw.core.run(run.run_id))
    return reply({"pipeline": (await _shown(gw, [view]))[0]})


async def delete_pipeline(request: web.Request) -> web.Response:
    await require_user(request, role=C.ROLE_USER)
    gw = request.app[GATEWAY]
    run_id = _run_id(request)
    db, fs = query_flag(request, "db"), query_flag(request, "fs")
    results = await gw.core.call(gw.core.cleanup(run_id, db=db, fs=fs))
    if db:
        await gw.users.forget_run(run_id)
    cleanups = [
        {
            "taskId": c.task_id,
            "cleanedFromK8s": c.cleaned_from_k8s,
            "purgedFromDb": c.purged_from_db,
            "removedFromFs": c.removed_from_fs,
        }
        for c in results
    ]
    return reply({"cleanups": cleanups})


async def stop_pipeline(request: web.Request) -> web.Response:
    user = await require_user(request, role=C.ROLE_USER)
    gw = request.app[GATEWAY]
    run_id = _run_id(request)
    given = (await body_object(request)).get("reason")
    reason = f"stopped by {user.username}" + (f": {given[:200]}" if isinstance(given, str) and given else "")
    await gw.core.call(gw.core.stop(run_id, reason))
    view = await gw.core.call(gw.core.run(run_id))
    return reply({"pipeline": (await _shown(gw, [view]))[0]})


async def resubmit_pipeline(request: web.Request) -> web.Response:
    await require_user(request, role=C.ROLE_USER)
    gw = request.app[GATEWAY]
    run_id = _run_id(request)
    result = await gw.core.call(gw.core.resubmit(run_id))
    view = await gw.core.call(gw.core.run(run_id))
    return reply(
        {
            "pipeline": (await _shown(gw, [view]))[0],
            "reused": list(result.get("reused", [])),
            "rerun": list(result.get("rerun", [])),
        }
    )


async def watch_pipeline(request: web.Request) -> web.StreamResponse:
    """The run's events live (SSE, ``id`` = the event's seq), from ``Last-Event-ID`` / ``after`` on."""
    await reader(request)
    gw = request.app[GATEWAY]
    run_id = _run_id(request)
    after = resume_from(request)
    await gw.core.call(gw.core.run(run_id))  # 404 before the stream starts

    async def source() -> AsyncIterator[tuple[int | None, str, Any]]:
        async for e in gw.core.watch(run_id, after_seq=after):
            yield e.seq, "event", views.event(e)

    return await stream(request, source(), end={"run": run_id})


def setup_routes(app: web.Application, gateway: object) -> None:
    app.router.add_get(f"{P}/pipelines", list_pipelines)
    app.router.add_post(f"{P}/pipelines", start_pipeline)
    app.router.add_get(f"{P}/pipelines/{{id}}", get_pipeline)
    app.router.add_delete(f"{P}/pipelines/{{id}}", delete_pipeline)
    app.router.add_post(f"{P}/pipelines/{{id}}/stop", stop_pipeline)
    app.router.add_post(f"{P}/pipelines/{{id}}/resubmit", resubmit_pipeline)
    app.router.add_get(f"{P}/pipelines/{{id}}/events/live", watch_pipeline)


_ID = param("id", "path", doc="the run id")
_ONE = json_body({"type": "object", "required": ["pipeline"], "properties": {"pipeline": ref("Pipeline")}})
_START = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["pipeline"],
                "properties": {
                    "pipeline": {
                        "type": "object",
                        "required": ["job"],
                        "properties": {
                            "job": {"type": "string", "description": "job path, `/` written `__` or `/`"},
                            "commit": {"type": "string", "description": "run the definition at this commit"},
                            "id": {"type": "string", "description": "a run id of your own (idempotent)"},
                        },
                    },
                    "context": {"type": "object", "description": "values for the job's *.jinja2 templates"},
                },
            }
        }
    },
}
_SSE = {
    "description": "server-sent events: `event: event` (id = seq, data = RunEvent) ..., then `event: end`",
    "content": {C.SSE_CONTENT_TYPE: {"schema": {"type": "string"}}},
}
_TIME = {"type": ["string", "null"], "format": "date-time"}
OPENAPI = {
    "paths": {
        f"{P}/pipelines": {
            "get": op(
                "Runs, newest first; `q` is a glob or a part of the run id or job",
                tag="pipelines",
                auth="read",
                params=[param("q", doc="pattern"), *PAGE_PARAMS],
                ok=json_body(
                    {
                        "type": "object",
                        "required": ["pipelines", "page"],
                        "properties": {"pipelines": {"type": "array", "items": ref("Pipeline")}, "page": ref("Page")},
                    }
                ),
            ),
            "post": op(
                "Start a run of a job (at the head, or at `commit`), templates rendered with `context`",
                tag="pipelines",
                auth="user",
                body=_START,
                ok=_ONE,
                errors=("400", "404", "409", "422"),
            ),
        },
        f"{P}/pipelines/{{id}}": {
            "get": op(
                "One run with its tasks", tag="pipelines", auth="read", params=[_ID], ok=_ONE, errors=("400", "404")
            ),
            "delete": op(
                "Clean a run up: its executor resources, and with db/fs its records and files",
                tag="pipelines",
                auth="user",
                params=[_ID, param("db", schema={"type": "boolean"}), param("fs", schema={"type": "boolean"})],
                ok=json_body(
                    {
                        "type": "object",
                        "required": ["cleanups"],
                        "properties": {"cleanups": {"type": "array", "items": ref("Cleanup")}},
                    }
                ),
                errors=("400", "404"),
            ),
        },
        f"{P}/pipelines/{{id}}/stop": {
            "post": op(
                "Stop a run (an optional `reason` is recorded after the user's name)",
                tag="pipelines",
                auth="user",
                params=[_ID],
                ok=_ONE,
                errors=("400", "404", "409"),
                body={
                    "content": {
                        "application/json": {"schema": {"type": "object", "properties": {"reason": {"type": "string"}}}}
                    }
                },
            )
        },
        f"{P}/pipelines/{{id}}/resubmit": {
            "post": op(
                "Run an ended run again, reusing every task that succeeded",
                tag="pipelines",
                auth="user",
                params=[_ID],
                errors=("400", "404", "409"),
                ok=json_body(
                    {
                        "type": "object",
                        "required": ["pipeline", "reused", "rerun"],
                        "properties": {
                            "pipeline": ref("Pipeline"),
                            "reused": {"type": "array", "items": {"type": "string"}},
                            "rerun": {"type": "array", "items": {"type": "string"}},
                        },
                    }
                ),
            )
        },
        f"{P}/pipelines/{{id}}/events/live": {
            "get": op(
                "Follow a run's events live (resumable: Last-Event-ID or `after`)",
                tag="pipelines",
                auth="read",
                params=[_ID, param("after", schema={"type": "integer", "minimum": 0})],
                ok=_SSE,
                errors=("400", "404"),
            )
        },
    },
    "schemas": {
        "Pipeline": {
            "type": "object",
            "required": ["id", "job", "status", "tasks"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "job": {"type": "string"},
                "jobId": {"type": "string"},
                "version": {"type": "string"},
                "commit": {"type": "string"},
                "definition": {"type": "string", "description": "the job's definition at the commit the run ran"},
                "status": {"enum": ["BUILDING", "RUNNING", "DONE", "TERMINATED"]},
                "message": {"type": "string"},
                "submitTime": _TIME,
                "completionTime": _TIME,
                "executor": {"type": "string"},
                "stopRequested": {"type": "boolean"},
                "startedBy": {"type": ["string", "null"]},
                "tasks": {"type": "array", "items": ref("Task")},
            },
        },
        "Task": {
            "type": "object",
            "required": ["id", "task", "name", "status", "state"],
            "properties": {
                "id": {"type": "string"},
                "task": {"type": "string"},
                "name": {"type": "string"},
                "status": {"enum": ["RUNNING", "SUCCEEDED", "FAILED", "MISSING"]},
                "state": {"type": "string"},
                "attempt": {"type": "integer"},
                "command": {"type": "array", "items": {"type": "string"}},
                "image": {"type": "string"},
                "args": {"type": "array"},
                "resourceType": {"type": "string"},
                "resourceId": {"type": "string"},
                "submitTime": _TIME,
                "startTime": _TIME,
                "completionTime": _TIME,
                "exitCode": {"type": ["integer", "null"]},
                "message": {"type": "string"},
                "outputs": {"type": "object"},
            },
        },
        "Cleanup": {
            "type": "object",
            "required": ["taskId", "cleanedFromK8s", "purgedFromDb", "removedFromFs"],
            "properties": {
                "taskId": {"type": "string"},
                "cleanedFromK8s": {"type": "boolean"},
                "purgedFromDb": {"type": "boolean"},
                "removedFromFs": {"type": "boolean"},
            },
        },
        "RunEvent": {
            "type": "object",
            "required": ["run", "seq", "kind", "status"],
            "properties": {
                "run": {"type": "string"},
                "seq": {"type": "integer"},
                "time": _TIME,
                "kind": {"type": "string"},
                "status": {"type": "string"},
                "task": {"type": "string"},
                "message": {"type": "string"},
                "data": {"type": "object"},
            },
        },
    },
}
