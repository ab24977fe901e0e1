"""Which handler serves which kind; extensions register their own (see samples/custom-kind)."""

from __future__ import annotations

from typing import Any

from ....errors import PermanentError
from ....spec.kinds import canonical_kind, register_kind
from ..resources import Resource
from .base import KindHandler
from .deployment import DeploymentHandler, ServiceHandler
from .job import JobHandler
from .pod import PodHandler
from .training import ElasticJobHandler, MPIJobHandler, PyTorchJobHandler, TFJobHandler

_HANDLERS: dict[str, KindHandler] = {}


def register_handler(handler: KindHandler, *aliases: str) -> KindHandler:
    """Serve ``handler.kind`` with ``handler`` (replacing a built-in one); also teaches the spec the kind."""
    register_kind(handler.kind, *aliases)
    _HANDLERS[handler.kind.lower()] = handler
    return handler


def handler_for(kind: str) -> KindHandler | None:
    canonical = canonical_kind(kind) or kind
    return _HANDLERS.get(canonical.lower())


def handlers() -> list[KindHandler]:
    return list(_HANDLERS.values())


for _h in (
    PodHandler(),
    JobHandler(),
    DeploymentHandler(),
    ServiceHandler(),
    PyTorchJobHandler(),
    TFJobHandler(),
    MPIJobHandler(),
    ElasticJobHandler(),
):
    register_handler(_h)


def resource_of(manifest: dict[str, Any]) -> Resource:
    """The REST coordinates of a manifest, among the kinds the registered handlers create."""
    for h in _HANDLERS.values():
        for r in (h.resource, *h.extra_resources):
            if r.kind == manifest["kind"] and r.api_version == manifest["apiVersion"]:
                return r
    raise PermanentError(f"no resource known for {manifest['apiVersion']} {manifest['kind']}")
