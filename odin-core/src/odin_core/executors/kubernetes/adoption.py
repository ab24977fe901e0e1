"""What a core that takes a run over finds of each active attempt, and what that means (pure).

An attempt is identified on the cluster by its run, task and attempt labels, not by a name a core
remembered: a core killed between creating an object and recording its resource id still finds it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ...model import TaskRecord
from .attempts import label_key
from .names import identity_labels

Obj = dict[str, Any]
LabelKey = tuple[str, str, str]


class Finding(Enum):
    ADOPT = "adopt"  # its object exists: follow it as if never interrupted
    LOST = "lost"  # it was started (a resource id was recorded) and its object is gone without a result
    NEVER_STARTED = "never started"  # nothing exists and nothing was recorded: submit it again


@dataclass(frozen=True)
class Found:
    record: TaskRecord
    finding: Finding
    obj: Obj | None = None
    pods: tuple[Obj, ...] = ()


def identity(rec: TaskRecord) -> LabelKey:
    key = label_key(identity_labels(rec.run_id, rec.name, rec.attempt))
    assert key is not None
    return key


def by_identity(objects: Iterable[Obj]) -> dict[LabelKey, list[Obj]]:
    """Objects grouped by their (run, task, attempt) labels; objects without them are left out."""
    found: dict[LabelKey, list[Obj]] = {}
    for obj in objects:
        key = label_key(obj["metadata"].get("labels") or {})
        if key is not None:
            found.setdefault(key, []).append(obj)
    return found


def decide(rec: TaskRecord, main: list[Obj], pods: list[Obj]) -> Found:
    """``main``: the objects of the attempt's kind carrying its labels; ``pods``: its pods."""
    alive = [o for o in main if not o["metadata"].get("deletionTimestamp")] or main
    if alive:
        return Found(rec, Finding.ADOPT, alive[0], tuple(pods))
    if rec.resource_id:
        return Found(rec, Finding.LOST)
    return Found(rec, Finding.NEVER_STARTED)
