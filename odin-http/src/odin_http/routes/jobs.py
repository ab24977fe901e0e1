"""Pipeline definitions in git: list, read (at any commit), create, update, delete, files, history, validate.

Every write is one commit authored by the user. ``If-Match: <commit>`` (or ``baseCommit``) makes a write refuse
with 409 when a file it touches changed since that commit; without it, the write is applied on the newest head.
"""

from __future__ import annotations

from typing import Any

import yaml
from aiohttp import web

from .. import constants as C
from ..access import reader, require_user
from ..errors import InvalidRequest
from ..gitstore.names import file_path, job_id, job_path
from ..gitstore.repo import Author, Change
from ..gitstore.templates import check_context
from ..keys import GATEWAY
from ..openapi import PAGE_PARAMS, json_body, op, param, ref
from ..users import User
from ..wire import body_object, camel, iso, page_params, paginate, read_body, reply, snake_keys

P = C.PREFIX


def _job(request: web.Request) -> str:
    return job_path(request.match_info["id"])


def _rev(request: web.Request) -> str | None:
    return request.query.get("commit") or None


def _author(user: User) -> Author:
    full = f"{user.firstname} {user.lastname}".strip()
    return Author(full or user.username, f"{user.username}@users.odin")


def _base(request: web.Request, body: dict[str, Any] | None = None) -> str | None:
    base = request.headers.get("If-Match", "").strip('" ') or (body or {}).get("base_commit") or None
    if base is not None and not isinstance(base, str):
        raise InvalidRequest('"baseCommit" must be a commit id')
    return base


def _tasks(files: dict[str, bytes]) -> list[Any]:
    raw = files.get(C.MAIN_FILE)
    if raw is None:
        return []
    try:
        doc = yaml.safe_load(raw)
    except yaml.YAMLError:
        return []
    tasks = doc.get("tasks") if isinstance(doc, dict) else None
    return [_camel_keys(t) for t in tasks] if isinstance(tasks, list) else []


def _camel_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {camel(str(k)): _camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel_keys(v) for v in value]
    return value


def _job_wire(job: str, sha: str, files: dict[str, bytes]) -> dict[str, Any]:
    configs = [
        {"id": f"{job_id(job)}/{name}", "name": name, "content": data.decode(errors="replace")}
        for name, data in sorted(files.items())
    ]
    return {
        "id": job_id(job),
        "name": job,
        "location": f"{job}@{sha}",
        "commit": sha,
        "templated": any(n.endswith(C.TEMPLATE_SUFFIX) for n in files),
        "tasks": _tasks(files),
        "configs": configs,
    }


async def list_jobs(request: web.Request) -> web.Response:
    await reader(request)
    gw = request.app[GATEWAY]
    q = request.query.get("q", "")
    head = await gw.pipelines.head()
    found = [j for j in await gw.pipelines.jobs(_rev(request)) if q in j or q in job_id(j)]
    chunk, page = paginate(request, found)
    jobs = [{"id": job_id(j), "name": j, "location": f"{j}@{head or ''}"} for j in chunk]
    return reply({"jobs": jobs, "commit": head or "", "page": page})


async def get_job(request: web.Request) -> web.Response:
    await reader(request)
    job = _job(request)
    sha, files = await request.app[GATEWAY].pipelines.files(job, _rev(request))
    return reply({"job": _job_wire(job, sha, files)})


def _definition(job: str, data: dict[str, Any], *, creating: bool) -> dict[str, bytes | None]:
    """The files a job object asks to write: ``tasks`` become main.yml; ``configs`` are files by name."""
    out: dict[str, bytes | None] = {}
    tasks = data.get("tasks")
    if tasks is not None:
        if not isinstance(tasks, list):
            raise InvalidRequest('"tasks" must be a list of task objects')
        doc = {"name": job.rsplit("/", 1)[-1].lower(), "tasks": snake_keys(tasks)}
        out[C.MAIN_FILE] = yaml.safe_dump(doc, sort_keys=False).encode()
    elif creating:
        out[C.MAIN_FILE] = yaml.safe_dump({"name": job.rsplit("/", 1)[-1].lower(), "tasks": []}).encode()
    configs = data.get("configs") or []
    if not isinstance(configs, list):
        raise InvalidRequest('"configs" must be a list of {"name", "content"}')
    for item in configs:
        if not isinstance(item, dict) or not isinstance(item.get("content"), str):
            raise InvalidRequest('each config is {"name": "file name", "content": "text"}')
        out[file_path(item.get("name"))] = item["content"].encode()
    return out


def _job_object(body: dict[str, Any]) -> dict[str, Any]:
    data = body.get("job")
    if not isinstance(data, dict):
        raise InvalidRequest('the body is {"job": {"name": "<job>", "tasks": [...], "configs": [...]}}')
    return data


async def create_job(request: web.Request) -> web.Response:
    user = await require_user(request, role=C.ROLE_USER)
    gw = request.app[GATEWAY]
    data = _job_object(await body_object(request))
    job = job_path(data.get("name") or data.get("id"))
    change = Change(job, _definition(job, data, creating=True), f"create {job}", create=True)
    sha = await gw.pipelines.write(change, _author(user))
    _sha, files = await gw.pipelines.files(job, sha)
    return reply({"job": _job_wire(job, sha, files)})


async def update_job(request: web.Request) -> web.Response:
    user = await require_user(request, role=C.ROLE_USER)
    gw = request.app[GATEWAY]
    job = _job(request)
    body = await body_object(request)
    data = _job_object(body)
    files = _definition(job, data, creating=False)
    if not files:
        raise InvalidRequest('nothing to change: give "tasks" and/or "configs"')
    change = Change(job, files, f"update {job}", base=_base(request, data))
    sha = await gw.pipelines.write(change, _author(user))
    _sha, now = await gw.pipelines.files(job, sha)
    return reply({"job": _job_wire(job, sha, now)})


async def delete_job(request: web.Request) -> web.Response:
    user = await require_user(request, role=C.ROLE_USER)
    gw = request.app[GATEWAY]
    job = _job(request)
    _sha, files = await gw.pipelines.files(job)
    change = Change(job, dict.fromkeys(files), f"delete {job}", base=_base(request))
    sha = await gw.pipelines.write(change, _author(user))
    return reply({"job": {"id": job_id(job), "name": job, "commit": sha, "deleted": True}})


async def get_file(request: web.Request) -> web.Response:
    await reader(request)
    job, name = _job(request), file_path(request.match_info["filename"])
    sha, data = await request.app[GATEWAY].pipelines.read(job, name, _rev(request))
    return web.Response(body=data, content_type="application/octet-stream", headers={"ETag": f'"{sha}"'})


async def put_file(request: web.Request) -> web.Response:
    user = await require_user(request, role=C.ROLE_USER)
    gw = request.app[GATEWAY]
    job, name = _job(request), file_path(request.match_info["filename"])
    data = await read_body(request)
    change = Change(job, {name: data}, f"{request.method.lower()} {job}/{name}", base=_base(request))
    sha = await gw.pipelines.write(change, _author(user))
    return reply({"bytes": len(data), "location": f"{job}/{name}@{sha}", "commit": sha})


async def delete_file(request: web.Request) -> web.Response:
    user = await require_user(request, role=C.ROLE_USER)
    gw = request.app[GATEWAY]
    job, name = _job(request), file_path(request.match_info["filename"])
    await gw.pipelines.read(job, name)  # 404 for a file that is not there
    sha = await gw.pipelines.write(
        Change(job, {name: None}, f"delete {job}/{name}", base=_base(request)), _author(user)
    )
    return reply({"bytes": 0, "location": f"{job}/{name}@{sha}", "commit": sha})


async def history(request: web.Request) -> web.Response:
    await reader(request)
    limit, offset = page_params(request)
    commits = await request.app[GATEWAY].pipelines.history(_job(request), limit=limit + 1, offset=offset)
    following = offset + limit if len(commits) > limit else None
    shown = [{**c, "time": iso(c["time"])} for c in commits[:limit]]
    return reply({"commits": shown, "page": {"limit": limit, "offset": offset, "total": None, "next": following}})


async def validate(request: web.Request) -> web.Response:
    await reader(request)
    gw = request.app[GATEWAY]
    body = await body_object(request)
    job = _job(request)
    prepared = await gw.pipelines.prepare(job, _rev(request) or body.get("commit"), check_context(body.get("context")))
    result = await gw.core.call(gw.core.validate(prepared.core_job))
    return reply({**result, "commit": prepared.commit})


def setup_routes(app: web.Application, gateway: object) -> None:
    r = app.router
    r.add_get(f"{P}/jobs", list_jobs)
    r.add_post(f"{P}/jobs", create_job)
    r.add_get(f"{P}/jobs/{{id}}", get_job)
    r.add_put(f"{P}/jobs/{{id}}", update_job)
    r.add_delete(f"{P}/jobs/{{id}}", delete_job)
    r.add_get(f"{P}/jobs/{{id}}/history", history)
    r.add_post(f"{P}/jobs/{{id}}/validate", validate)
    r.add_get(f"{P}/jobs/{{id}}/files/{{filename:.+}}", get_file)
    r.add_post(f"{P}/jobs/{{id}}/files/{{filename:.+}}", put_file)
    r.add_put(f"{P}/jobs/{{id}}/files/{{filename:.+}}", put_file)
    r.add_delete(f"{P}/jobs/{{id}}/files/{{filename:.+}}", delete_file)


_ID = param("id", "path", doc="job path, `/` written `__`")
_FILE = param("filename", "path", doc="file path inside the job")
_COMMIT = param("commit", doc="read at this commit (default: the head)")
_IF_MATCH = param("If-Match", "header", doc="refuse with 409 if a touched file changed since this commit")
_JOB_IN = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "tasks": {"type": "array", "items": {"type": "object"}},
        "configs": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "content"],
                "properties": {"name": {"type": "string"}, "content": {"type": "string"}},
            },
        },
        "baseCommit": {"type": "string"},
    },
}
_JOB_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"type": "object", "required": ["job"], "properties": {"job": _JOB_IN}}}
    },
}
_RAW = {
    "required": True,
    "content": {
        "text/plain": {"schema": {"type": "string"}},
        "application/octet-stream": {"schema": {"type": "string"}},
    },
}
_ONE = json_body({"type": "object", "required": ["job"], "properties": {"job": ref("Job")}})
_WRITTEN = json_body(
    {
        "type": "object",
        "required": ["bytes", "location", "commit"],
        "properties": {"bytes": {"type": "integer"}, "location": {"type": "string"}, "commit": {"type": "string"}},
    }
)
_VALIDATE_BODY = {
    "content": {
        "application/json": {
            "schema": {"type": "object", "properties": {"context": {"type": "object"}, "commit": {"type": "string"}}}
        }
    }
}
_WRITE_ERRORS = ("400", "404", "409", "413")
_WRITE_FILE = op(
    "Write a file (one commit); the body is the content",
    tag="jobs",
    auth="user",
    params=[_ID, _FILE, _IF_MATCH],
    body=_RAW,
    ok=_WRITTEN,
    errors=_WRITE_ERRORS,
)
OPENAPI = {
    "paths": {
        f"{P}/jobs": {
            "get": op(
                "Pipeline definitions (at the head, or at `commit`)",
                tag="jobs",
                auth="read",
                params=[param("q", doc="part of the job path"), _COMMIT, *PAGE_PARAMS],
                errors=("400", "404"),
                ok=json_body(
                    {
                        "type": "object",
                        "required": ["jobs", "commit", "page"],
                        "properties": {
                            "jobs": {"type": "array", "items": ref("JobSummary")},
                            "commit": {"type": "string"},
                            "page": ref("Page"),
                        },
                    }
                ),
            ),
            "post": op(
                "Create a job (one commit)", tag="jobs", auth="user", body=_JOB_BODY, ok=_ONE, errors=_WRITE_ERRORS
            ),
        },
        f"{P}/jobs/{{id}}": {
            "get": op(
                "A job's tasks and files",
                tag="jobs",
                auth="read",
                params=[_ID, _COMMIT],
                ok=_ONE,
                errors=("400", "404"),
            ),
            "put": op(
                "Change a job's tasks (main.yml) and files (one commit)",
                tag="jobs",
                auth="user",
                params=[_ID, _IF_MATCH],
                body=_JOB_BODY,
                ok=_ONE,
                errors=_WRITE_ERRORS,
            ),
            "delete": op(
                "Delete a job (one commit; history keeps it)",
                tag="jobs",
                auth="user",
                params=[_ID, _IF_MATCH],
                errors=("400", "404", "409"),
                ok=json_body({"type": "object", "required": ["job"], "properties": {"job": {"type": "object"}}}),
            ),
        },
        f"{P}/jobs/{{id}}/history": {
            "get": op(
                "The commits that changed a job, newest first",
                tag="jobs",
                auth="read",
                params=[_ID, *PAGE_PARAMS],
                errors=("400", "404"),
                ok=json_body(
                    {
                        "type": "object",
                        "required": ["commits", "page"],
                        "properties": {
                            "commits": {"type": "array", "items": ref("Commit")},
                            "page": {"type": "object"},
                        },
                    }
                ),
            ),
        },
        f"{P}/jobs/{{id}}/validate": {
            "post": op(
                "Check a job without running it (templates rendered with `context`)",
                tag="jobs",
                auth="read",
                params=[_ID, _COMMIT],
                body=_VALIDATE_BODY,
                errors=("400", "404"),
                ok=json_body(
                    {
                        "type": "object",
                        "required": ["valid", "tasks", "problems", "commit"],
                        "properties": {
                            "valid": {"type": "boolean"},
                            "tasks": {"type": "integer"},
                            "problems": {"type": "array"},
                            "commit": {"type": "string"},
                        },
                    }
                ),
            ),
        },
        f"{P}/jobs/{{id}}/files/{{filename}}": {
            "get": op(
                "A file of a job",
                tag="jobs",
                auth="read",
                params=[_ID, _FILE, _COMMIT],
                errors=("400", "404"),
                ok={"description": "the file", "content": {"application/octet-stream": {"schema": {"type": "string"}}}},
            ),
            "post": _WRITE_FILE,
            "put": _WRITE_FILE,
            "delete": op(
                "Remove a file (one commit)",
                tag="jobs",
                auth="user",
                params=[_ID, _FILE, _IF_MATCH],
                ok=_WRITTEN,
                errors=("400", "404", "409"),
            ),
        },
    },
    "schemas": {
        "JobSummary": {
            "type": "object",
            "required": ["id", "name", "location"],
            "properties": {"id": {"type": "string"}, "name": {"type": "string"}, "location": {"type": "string"}},
        },
        "Job": {
            "type": "object",
            "required": ["id", "name", "location", "commit", "tasks", "configs"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "location": {"type": "string"},
                "commit": {"type": "string"},
                "templated": {"type": "boolean"},
                "tasks": {"type": "array"},
                "configs": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["id", "name", "content"],
                        "properties": {
                            "id": {"type": "string"},
                            "name": {"type": "string"},
                            "content": {"type": "string"},
                        },
                    },
                },
            },
        },
        "Commit": {
            "type": "object",
            "required": ["commit", "author", "email", "time", "message"],
            "properties": {
                "commit": {"type": "string"},
                "author": {"type": "string"},
                "email": {"type": "string"},
                "time": {"type": ["string", "null"]},
                "message": {"type": "string"},
            },
        },
    },
}
