"""Watch events and list pages decoded into the fields Odin reads, not whole objects.

Most of a watched object is never read: a pod's ``metadata.managedFields`` (a third of its JSON, and
most of its small dicts) and its ``spec`` beyond ``nodeName``. msgspec decodes against a partial schema
(``TypedDict``s whose values are ``Any``) and skips the rest without building it, so an event costs about
a sixth of the allocations of a full decode (fewer garbage collections too) and the watches' caches hold
smaller objects. The values kept are what the API server sent, unchanged and untyped (``Any`` accepts
any JSON), so a schema never refuses an object; anything msgspec cannot decode falls back to a full decode.

What a cached object holds:
- a Pod: ``kind``, ``apiVersion``, ``metadata`` (all of ``ObjectMeta`` but ``managedFields``),
  ``spec.nodeName`` only, and the whole ``status``;
- other kinds with a spec (Jobs, Deployments, Services, training jobs): ``metadata`` as above, the
  whole ``spec`` and ``status``;
- Events: everything (they have no spec and are read whole).
A watch's error object (``kind: Status``) keeps ``code``, ``reason`` and ``message``.

Code that needs more of a pod than this reads it from the API, not from a watch's cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

from .client import loads
from .resources import EVENTS, PODS, Resource

Obj = dict[str, Any]
Decode = Callable[[bytes], Obj]

try:
    import msgspec
except ImportError:  # pragma: no cover - msgspec comes with odin-core[kubernetes]
    msgspec = None  # type: ignore[assignment]


class ObjectMeta(TypedDict, total=False):
    """Every field of ObjectMeta except managedFields."""

    name: Any
    generateName: Any
    namespace: Any
    selfLink: Any
    uid: Any
    resourceVersion: Any
    generation: Any
    creationTimestamp: Any
    deletionTimestamp: Any
    deletionGracePeriodSeconds: Any
    labels: Any
    annotations: Any
    ownerReferences: Any
    finalizers: Any


class PodSpec(TypedDict, total=False):
    nodeName: Any


class Pod(TypedDict, total=False):
    """A Pod, or a watch's Status (error) object."""

    kind: Any
    apiVersion: Any
    metadata: ObjectMeta
    spec: PodSpec
    status: Any
    code: Any
    reason: Any
    message: Any
    details: Any


class Object(TypedDict, total=False):
    """A kind with a spec and a status, or a watch's Status (error) object."""

    kind: Any
    apiVersion: Any
    metadata: ObjectMeta
    spec: Any
    status: Any
    code: Any
    reason: Any
    message: Any
    details: Any


class PodEvent(TypedDict, total=False):
    type: Any
    object: Pod


class ObjectEvent(TypedDict, total=False):
    type: Any
    object: Object


class PodList(TypedDict, total=False):
    kind: Any
    apiVersion: Any
    metadata: Any
    items: list[Pod]


class ObjectList(TypedDict, total=False):
    kind: Any
    apiVersion: Any
    metadata: Any
    items: list[Object]


def _partial(schema: Any) -> Decode:
    if msgspec is None:  # pragma: no cover
        return loads
    decoder = msgspec.json.Decoder(schema)
    errors = (msgspec.DecodeError, msgspec.ValidationError)

    def decode(raw: bytes) -> Obj:
        try:
            return decoder.decode(raw)  # type: ignore[no-any-return]
        except errors:  # not an object where the schema wants one: decode it whole
            return loads(raw)  # type: ignore[no-any-return]

    return decode


_POD_EVENT, _OBJECT_EVENT = _partial(PodEvent), _partial(ObjectEvent)
_POD_LIST, _OBJECT_LIST = _partial(PodList), _partial(ObjectList)


def event_decoder(resource: Resource) -> Decode:
    """How one line of ``resource``'s watch is decoded."""
    if resource == EVENTS:
        return loads
    return _POD_EVENT if resource == PODS else _OBJECT_EVENT


def list_decoder(resource: Resource) -> Decode:
    """How one page of ``resource``'s list is decoded."""
    if resource == EVENTS:
        return loads
    return _POD_LIST if resource == PODS else _OBJECT_LIST
