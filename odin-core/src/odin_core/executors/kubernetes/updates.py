"""What the executor reports to the engine, and how API errors become Odin errors (pure)."""

from __future__ import annotations

from typing import Any

from ...errors import PermanentError, TemporaryError
from ...model import AttemptUpdate, TaskRecord, TaskStatus
from .attempts import Attempt
from .client import ApiError
from .resources import Resource
from .status import Observation


def labels_of(obj: dict[str, Any]) -> dict[str, str]:
    return obj["metadata"].get("labels") or {}


def submit_error(what: str, resource: Resource, e: ApiError) -> Exception:
    """429, 5xx and connection failures (after the client's own retries) are temporary; 4xx refusals are not."""
    if e.retryable:
        return TemporaryError(f"could not create {what}: {e}", delay_s=e.retry_after_s or 1.0)
    if e.status == 404 and resource.group:
        return PermanentError(
            f"could not create {what}: the cluster does not serve {resource.kind} ({resource.api_version}): "
            f"the CustomResourceDefinition {resource.crd} is not installed",
            status=e.status,
            crd=resource.crd,
        )
    return PermanentError(f"{what} rejected by the API server: {e.message}", status=e.status, reason=e.reason)


def no_controller(attempt: Attempt, after_s: float) -> str:
    handler = attempt.handler
    return (
        f"no controller has acted on {handler.kind} {attempt.name} for {after_s:g} s — "
        f"is {handler.controller} installed?"
    )


def update(attempt: Attempt, obs: Observation) -> AttemptUpdate:
    return AttemptUpdate(
        attempt.run_id,
        attempt.task,
        attempt.number,
        obs.status,
        exit_code=obs.exit_code,
        message=obs.message,
        outputs=dict(obs.outputs),
        resource_id=attempt.name,
        permanent=obs.permanent,
    )


def lost(rec: TaskRecord, why: str) -> AttemptUpdate:
    return AttemptUpdate(rec.run_id, rec.name, rec.attempt, TaskStatus.FAILED, message=f"lost: {why}")


def lost_attempt(attempt: Attempt) -> AttemptUpdate:
    why = f"{attempt.handler.kind} {attempt.name} no longer exists after the restart"
    return AttemptUpdate(attempt.run_id, attempt.task, attempt.number, TaskStatus.FAILED, message=f"lost: {why}")
