"""The gateway's errors and THE table that maps an error code to an HTTP status (used once, by the middleware).

Errors are ``odin_core.errors`` classes (the core's codes arrive through the WebSocket client as the same classes)
plus the few only HTTP has. A response body is always ``{"error": {"code", "message"[, "details"]}}``.
"""

from __future__ import annotations

from typing import Any

from odin_core.errors import AuthError, Conflict, InvalidRequest, NotFound, OdinError, SpecError, UpstreamError

__all__ = [
    "STATUS_BY_CODE",
    "AuthError",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "MethodNotAllowed",
    "NotFound",
    "OdinError",
    "SpecError",
    "Throttled",
    "TooLarge",
    "Unavailable",
    "UnsupportedMediaType",
    "UpstreamError",
    "error_body",
    "status_of",
]


class Forbidden(OdinError):
    """Authenticated, but this user may not do this."""

    code = "forbidden"


class Throttled(OdinError):
    """Too many failed attempts: try again after ``retry_after_s``."""

    code = "throttled"

    def __init__(self, message: str, *, retry_after_s: float, **details: Any) -> None:
        super().__init__(message, retry_after_s=round(retry_after_s, 3), **details)
        self.retry_after_s = retry_after_s


class TooLarge(OdinError):
    code = "too_large"


class UnsupportedMediaType(OdinError):
    code = "unsupported_media_type"


class MethodNotAllowed(OdinError):
    code = "method_not_allowed"


class Unavailable(OdinError):
    """The core (or the database) cannot be reached now."""

    code = "unavailable"


STATUS_BY_CODE: dict[str, int] = {
    "invalid_request": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "too_large": 413,
    "unsupported_media_type": 415,
    "invalid_pipeline": 422,
    "throttled": 429,
    "internal": 500,
    "upstream": 502,
    "unavailable": 503,
    "too_busy": 503,
}


def status_of(error: OdinError) -> int:
    return STATUS_BY_CODE.get(error.code, 500)


def error_body(error: OdinError) -> dict[str, Any]:
    code = error.code if error.code in STATUS_BY_CODE else "internal"
    body: dict[str, Any] = {"code": code, "message": error.message}
    if error.details:
        body["details"] = error.details
    return {"error": body}
