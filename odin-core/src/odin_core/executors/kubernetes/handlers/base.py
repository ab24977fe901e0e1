"""The handler contract: one class per kind turns a Launch into manifests and objects into an Observation.

Handlers are pure: the executor does the I/O (create, watch, delete) and asks the handler what the
objects it sees mean. Add a kind by subclassing :class:`KindHandler` and calling ``register_handler``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from ...base import Launch
from ..names import MAX_NAME
from ..podspec import PodOptions
from ..resources import Resource
from ..status import Observation

Obj = dict[str, Any]


class KindHandler(ABC):
    kind: ClassVar[str]
    """Canonical kind name, as ``odin_core.spec.kinds`` knows it."""
    resource: ClassVar[Resource]
    """The main object: its status decides the attempt's."""
    extra_resources: ClassVar[tuple[Resource, ...]] = ()
    """Kinds of other objects created alongside the main one (same name and labels)."""
    container: ClassVar[str] = "main"
    """Name of the task's container (training operators expect their own)."""
    long_running: ClassVar[bool] = False
    """SUCCEEDED means "up": the objects stay until the run is cleaned up."""
    name_limit: ClassVar[int] = MAX_NAME
    """Longest object name; kinds whose controllers derive longer names from it ask for less."""
    controller: ClassVar[str] = ""
    """The controller that must act on the main object when it is not a built-in one ("the Kubeflow training
    operator"): when nothing acts on the object for a while, the attempt says so, naming it."""

    @abstractmethod
    def manifests(self, launch: Launch, name: str, opts: PodOptions) -> list[Obj]:
        """Objects to create for this attempt, the main one first."""

    @abstractmethod
    def observe(self, obj: Obj | None, pods: list[Obj]) -> Observation:
        """The attempt's state from its main object (None until seen) and its pods."""

    def controller_acted(self, obj: Obj | None, pods: list[Obj]) -> bool:
        """Whether a controller has done anything with the attempt's object: written its status, made pods."""
        return bool(pods) or bool((obj or {}).get("status"))

    def pod_labels(self, name: str) -> dict[str, str]:
        """Extra labels on the attempt's pods (besides Odin's run/task/attempt labels)."""
        return {}

    def manifest_head(self, name: str, opts: PodOptions) -> Obj:
        return {
            "apiVersion": self.resource.api_version,
            "kind": self.resource.kind,
            "metadata": {"name": name, "labels": dict(opts.labels), "annotations": dict(opts.annotations)},
        }
