"""The wire format: commands, reply statuses, request parsing and the one mapping from errors to replies.

Everything here is pure (no I/O), so the shapes can be tested without a socket.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from ..errors import InvalidRequest, OdinError

log = logging.getLogger("odin.server")

PROTOCOL_VERSION = 1

OK, ERROR, END = "OK", "ERROR", "END"

# Commands of the first Odin (§5 of the compatibility reference), then ours.
LEGACY_COMMANDS = ("START", "STATUS", "CLEANUP", "DATA", "EVENTS", "LOGS", "SHOW", "PING")
NEW_COMMANDS = ("HELLO", "AUTH", "WATCH", "STOP", "VALIDATE", "RESUBMIT", "CANCEL")
PUBLIC_COMMANDS = frozenset({"HELLO", "AUTH", "PING"})  # allowed before a connection is authenticated

FEATURES = ("multiplex", "watch", "resume", "stop", "validate", "resubmit", "cancel", "auth")

# Close codes and reasons (a reason must fit in 123 bytes).
CLOSE_GOING_AWAY = 1001
CLOSE_SLOW_CONSUMER = 1013
REASON_SHUTDOWN = "server shutting down: reconnect and resume WATCH with after_seq"
REASON_SLOW = "slow consumer: reconnect and resume WATCH with after_seq = last seq seen"

RESERVED_KEYS = frozenset({"command", "request", "token"})  # never echoed back (a token must not travel back)


class BadFrame(InvalidRequest):
    """A frame that is not a request; ``extra`` holds the keys to echo when they could be read."""

    def __init__(self, message: str, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.extra = extra or {}


class TooBusy(OdinError):
    """Too many requests in flight on one connection."""

    code = "too_busy"


class ShuttingDown(OdinError):
    """The server is draining; reconnect to another one (or the same one once it is back)."""

    code = "unavailable"


# The one table of error codes a client sees (``code`` of OdinError subclasses; anything else is internal).
ERROR_CODES = {
    "invalid_request": "the frame is not JSON, not an object, a command is unknown, a payload has the wrong shape",
    "invalid_pipeline": "the pipeline has problems; details.problems lists each with file, line, column, field",
    "not_found": "no such run, task or job",
    "unauthorized": "missing or bad token",
    "conflict": "a run id already used by another job; resubmitting a run that is still active",
    "too_busy": "too many requests in flight on this connection",
    "unavailable": "the server is shutting down",
    "upstream": "a system the core depends on (Kubernetes, the store) failed",
    "internal": "a bug; the server log has the traceback",
}


@dataclass(frozen=True)
class Request:
    command: str
    payload: Any
    extra: dict[str, Any] = field(default_factory=dict)  # echoed back in every reply
    token: str | None = None

    @property
    def id(self) -> Any:
        return self.extra.get("id")


def parse(frame: str | bytes) -> Request:
    """A request from one frame; raises BadFrame (with the extra keys found, if any)."""
    try:
        msg = json.loads(frame)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise BadFrame(f"frame is not JSON: {e}") from e
    if not isinstance(msg, dict):
        raise BadFrame(f"a request is a JSON object, not {type(msg).__name__}")
    extra = {k: v for k, v in msg.items() if k not in RESERVED_KEYS}
    command = msg.get("command")
    if not isinstance(command, str) or not command:
        raise BadFrame("a request needs a non-empty string 'command'", extra)
    token = msg.get("token")
    if token is not None and not isinstance(token, str):
        raise BadFrame("'token' must be a string", extra)
    return Request(command.upper(), msg.get("request"), extra, token)


def reply(extra: dict[str, Any], status: str, response: Any) -> dict[str, Any]:
    return {**extra, "status": status, "response": response}


def error_reply(extra: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    """THE mapping from an exception to an ERROR reply: OdinError keeps its code; anything else is internal."""
    if isinstance(exc, OdinError):
        error = exc.to_dict()
    else:
        log.error("internal error", exc_info=exc)
        error = {"code": "internal", "message": f"internal error: {type(exc).__name__}: {exc}"}
    return {**extra, "status": ERROR, "response": error["message"], "error": error}


def unknown_command(command: str) -> InvalidRequest:
    return InvalidRequest(f"{command} not found.")
