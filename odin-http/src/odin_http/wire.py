"""JSON on the wire: camelCase out, camelCase or snake_case in; ISO 8601 times; request bodies read safely."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .errors import InvalidRequest, TooLarge, UnsupportedMediaType
from .keys import SETTINGS

_CAMEL = re.compile(r"_([a-z0-9])")
_SNAKE = re.compile(r"(?<=[a-z0-9])([A-Z])")


def camel(name: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), name)


def snake(name: str) -> str:
    return _SNAKE.sub(lambda m: "_" + m.group(1).lower(), name)


def snake_keys(value: Any) -> Any:
    """Request objects with every key in snake_case (camelCase and snake_case are both accepted)."""
    if isinstance(value, dict):
        return {snake(k) if isinstance(k, str) else k: snake_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [snake_keys(v) for v in value]
    return value


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def dumps(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


def reply(value: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(value, status=status, dumps=dumps, headers=headers)


async def body_object(request: web.Request, *, form: bool = False) -> dict[str, Any]:
    """The request body as an object with snake_case keys: JSON, or (``form``) a URL-encoded or multipart form."""
    max_bytes = request.app[SETTINGS].server.max_body_bytes
    if request.content_length is not None and request.content_length > max_bytes:
        raise TooLarge(f"the request body is larger than {max_bytes} bytes")
    ctype = request.content_type
    if form and ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        data = await request.post()
        return {snake(k): v for k, v in data.items() if isinstance(v, str)}
    raw = await read_body(request)
    if not raw.strip():
        return {}
    if ctype not in ("application/json", "application/octet-stream", "text/plain", ""):
        raise UnsupportedMediaType(f"send JSON (Content-Type: application/json), not {ctype}")
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise InvalidRequest(f"the body is not valid JSON: {e}") from None
    except RecursionError:
        raise InvalidRequest("the body nests too deeply") from None
    if not isinstance(value, dict):
        raise InvalidRequest(f"the body must be a JSON object, not {type(value).__name__}")
    return snake_keys(value)


async def read_body(request: web.Request) -> bytes:
    """The raw body, refused with 413 past the size limit (also when no Content-Length was sent)."""
    max_bytes = request.app[SETTINGS].server.max_body_bytes
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(f"the request body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def query_flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise InvalidRequest(f"query parameter {name!r} must be true or false, not {value!r}")


def string_field(obj: dict[str, Any], name: str, *, required: bool = True, max_len: int = 1024) -> str:
    value = obj.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidRequest(f'"{camel(name)}" must be a non-empty string')
    if len(value) > max_len:
        raise InvalidRequest(f'"{camel(name)}" is longer than {max_len} characters')
    return value


def page_params(request: web.Request) -> tuple[int, int]:
    """(limit, offset) of a list request, validated against the list settings."""
    lists = request.app[SETTINGS].lists
    try:
        limit = int(request.query.get("limit", lists.default_limit))
        offset = int(request.query.get("offset", 0))
    except ValueError:
        raise InvalidRequest("limit and offset must be integers") from None
    if not 1 <= limit <= lists.max_limit or offset < 0:
        raise InvalidRequest(f"limit must be 1..{lists.max_limit} and offset at least 0")
    return limit, offset


def paginate(request: web.Request, items: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """One page of ``items`` and its description: ``{limit, offset, total, next}`` (next: offset or null)."""
    limit, offset = page_params(request)
    chunk = items[offset : offset + limit]
    following = offset + limit if offset + limit < len(items) else None
    return chunk, {"limit": limit, "offset": offset, "total": len(items), "next": following}
