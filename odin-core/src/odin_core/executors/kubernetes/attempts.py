"""The attempts this executor follows, indexed by key, by object and by pod labels."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from ... import constants as C
from .handlers import KindHandler
from .status import Observation

Key = tuple[str, str, int]  # run id, task name, attempt
Obj = dict[str, Any]
_ENDED = ("Succeeded", "Failed")


@dataclass
class Attempt:
    key: Key
    handler: KindHandler
    name: str
    labels: dict[str, str]  # identity labels (run, task, attempt)
    run_path: str
    obj: Obj | None = None  # the main object, as last seen
    pods: dict[str, Obj] = field(default_factory=dict)
    last: Observation | None = None
    running_seen: bool = False
    done: bool = False
    captured: bool = False
    warned: bool = False  # reported that no controller acts on its object
    timer: asyncio.TimerHandle | None = None  # the pending timeout
    watchdog: asyncio.TimerHandle | None = None  # the no-controller warning
    pending_report: asyncio.TimerHandle | None = None  # the report of a pending reason, once it has lasted

    @property
    def run_id(self) -> str:
        return self.key[0]

    @property
    def task(self) -> str:
        return self.key[1]

    @property
    def number(self) -> int:
        return self.key[2]

    def pod_list(self) -> list[Obj]:
        return sorted(self.pods.values(), key=lambda p: p["metadata"]["name"])

    def pod_names(self) -> list[str]:
        return sorted(self.pods)

    def all_pods_finished(self) -> bool:
        return not self.unfinished_pods()

    def unfinished_pods(self) -> list[str]:
        return sorted(n for n, p in self.pods.items() if (p.get("status") or {}).get("phase") not in _ENDED)

    def cancel_timer(self) -> None:
        for handle in (self.timer, self.watchdog, self.pending_report):
            if handle is not None:
                handle.cancel()
        self.timer = self.watchdog = self.pending_report = None

    def cancel_pending_report(self) -> None:
        if self.pending_report is not None:
            self.pending_report.cancel()
            self.pending_report = None


def label_key(labels: dict[str, str]) -> tuple[str, str, str] | None:
    try:
        return labels[C.LABEL_RUN], labels[C.LABEL_TASK], labels[C.LABEL_ATTEMPT]
    except KeyError:
        return None


class AttemptIndex:
    def __init__(self) -> None:
        self.by_key: dict[Key, Attempt] = {}
        self._by_run: dict[str, dict[Key, Attempt]] = {}
        self._by_object: dict[tuple[str, str], Attempt] = {}
        self._by_labels: dict[tuple[str, str, str], Attempt] = {}

    def add(self, attempt: Attempt) -> None:
        self.by_key[attempt.key] = attempt
        self._by_run.setdefault(attempt.run_id, {})[attempt.key] = attempt
        self._by_object[(attempt.handler.resource.plural, attempt.name)] = attempt
        lk = label_key(attempt.labels)
        assert lk is not None
        self._by_labels[lk] = attempt

    def remove(self, attempt: Attempt) -> None:
        attempt.cancel_timer()
        self.by_key.pop(attempt.key, None)
        of_run = self._by_run.get(attempt.run_id)
        if of_run is not None:
            of_run.pop(attempt.key, None)
            if not of_run:
                del self._by_run[attempt.run_id]
        self._by_object.pop((attempt.handler.resource.plural, attempt.name), None)
        lk = label_key(attempt.labels)
        if lk is not None and self._by_labels.get(lk) is attempt:
            del self._by_labels[lk]

    def get(self, key: Key) -> Attempt | None:
        return self.by_key.get(key)

    def for_object(self, plural: str, name: str) -> Attempt | None:
        return self._by_object.get((plural, name))

    def for_labels(self, labels: dict[str, str]) -> Attempt | None:
        lk = label_key(labels)
        return None if lk is None else self._by_labels.get(lk)

    def of_run(self, run_id: str) -> list[Attempt]:
        return list(self._by_run.get(run_id, {}).values())

    def __len__(self) -> int:
        return len(self.by_key)

    def runs(self) -> int:
        return len(self._by_run)

    def latest(self, run_id: str, task: str) -> Attempt | None:
        found = [a for a in self.of_run(run_id) if a.task == task]
        return max(found, key=lambda a: a.number) if found else None


class Endings:
    """The tasks handling ended attempts (logs, report, removal), by run: a run's are found without a scan."""

    def __init__(self) -> None:
        self._by_run: dict[str, dict[Key, asyncio.Task[Any]]] = {}

    def add(self, key: Key, task: asyncio.Task[Any]) -> None:
        self._by_run.setdefault(key[0], {})[key] = task
        task.add_done_callback(lambda _t: self._discard(key, task))

    def _discard(self, key: Key, task: asyncio.Task[Any]) -> None:
        of_run = self._by_run.get(key[0])
        if of_run is None or of_run.get(key) is not task:
            return
        del of_run[key]
        if not of_run:
            del self._by_run[key[0]]

    def of_run(self, run_id: str) -> list[asyncio.Task[Any]]:
        return list(self._by_run.get(run_id, {}).values())

    def all(self) -> list[asyncio.Task[Any]]:
        return [t for of_run in self._by_run.values() for t in of_run.values()]

    def __len__(self) -> int:
        return sum(map(len, self._by_run.values()))

    def __bool__(self) -> bool:
        return bool(self._by_run)  # a run's entry goes with its last task
