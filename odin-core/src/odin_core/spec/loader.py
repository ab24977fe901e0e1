"""Load and validate a pipeline directory into an immutable :class:`PipelineSpec`.

Checking happens in passes over the whole file (fields, then names, dependencies, references, variables,
cycles) and every pass keeps going after a problem, so a user fixes a file in one round trip instead of one
error at a time. Only a YAML syntax error stops early: nothing after it can be trusted.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..constants import DEFAULT_PIPELINE_NAME, MAIN_FILE
from ..errors import Problem, SpecError
from . import fields as f
from .checks import Checker, Invalid, Key, Reported, did_you_mean, record
from .graph import find_cycles, format_cycle
from .model import Location, PipelineSpec, TaskSpec
from .references import find_references
from .source import FieldPath, format_path, read_source
from .variables import variable_problems

VARIABLE_FIELDS = ("args", "env", "inputs", "outputs")  # where $VARS are substituted
REFERENCE_FIELDS = ("args", "env", "inputs")  # where ^task references are resolved


def load_pipeline(job_dir: str | Path, *, root: Path | None = None, shown: str | None = None) -> PipelineSpec:
    """The validated pipeline of ``job_dir``; raises :class:`SpecError` listing every problem.

    Problems name the file ``shown`` when given (the caller knows how the user named it), else see
    :func:`shown_file`.
    """
    spec, problems = _load(Path(job_dir), root, shown)
    if problems or spec is None:
        raise SpecError(problems)
    return spec


def validate_pipeline(job_dir: str | Path, *, root: Path | None = None, shown: str | None = None) -> list[Problem]:
    """Every problem of ``job_dir`` (empty when it is valid), in file order."""
    return _load(Path(job_dir), root, shown)[1]


def _load(job_dir: Path, root: Path | None, shown: str | None = None) -> tuple[PipelineSpec | None, list[Problem]]:
    path = job_dir.resolve()
    job = _job_name(path, root)
    inside = root if job is not None else None  # a job outside the root gets its own problem below
    source = read_source(path, MAIN_FILE, shown=shown or shown_file(job_dir, root), root=inside)
    if isinstance(source, list):
        return None, source
    ck = Checker(source)
    ck.problems += source.problems
    if job is None:
        ck.problems.append(
            Problem(source.file, 0, 0, "", f"{str(path)!r} is not inside the pipelines root {str(root)!r}")
        )
    spec = _Pipeline(ck).build(job=job or path.name, path=path)
    ck.problems.sort(key=lambda p: (p.line, p.column))
    return (None if ck.problems else spec), ck.problems


def _relative(path: Path, root: Path | None) -> str | None:
    """The job's path under ``root`` ("team/job", "." for the root itself); None without a root or outside it."""
    if root is None:
        return None
    try:
        return path.relative_to(root.resolve()).as_posix()
    except ValueError:
        return None


def _job_name(path: Path, root: Path | None) -> str | None:
    """The job's name: its path under ``root`` (None when it is not under it), else its directory's name."""
    if root is None:
        return path.name
    job = _relative(path, root)
    return path.name if job == "." else job


def shown_file(job_dir: Path, root: Path | None) -> str:
    """``main.yml`` as the user named it: under the job's path in the pipelines root (what a client sends:
    ``team/job/main.yml``), else under the directory as given on the command line (``samples/hello/main.yml``)."""
    job = _relative(job_dir.resolve(), root)
    return (Path(job) / MAIN_FILE).as_posix() if job is not None else (job_dir / MAIN_FILE).as_posix()


def _written(raw: Any, key: Key) -> str:
    """The spelling of ``key`` the user wrote (problems name the field as written)."""
    if isinstance(raw, dict):
        for spelling in key.spellings():
            if spelling in raw:
                return spelling
    return key.name


_KEYS = {k.name: k for k in f.TASK_KEYS}


class _Pipeline:
    """One validation of one file; holds the parsed pieces between passes."""

    def __init__(self, ck: Checker) -> None:
        self.ck = ck
        self.raw_tasks: list[Any] = []
        self.tasks: list[dict[str, Any]] = []  # parsed fields per task (partial when a field was bad)
        self.index: dict[str, int] = {}  # task name -> position of its first definition

    def build(self, *, job: str, path: Path) -> PipelineSpec | None:
        top = self._top()
        for i, raw in enumerate(self.raw_tasks):
            self.tasks.append(self._task(("tasks", i), raw))
        self._names()
        deps = [self._depends(i) for i in range(len(self.tasks))]
        self._variables()
        self._mounts()
        self._cycles(deps)
        if self.ck.problems:
            return None
        return PipelineSpec(
            name=top.get("name", DEFAULT_PIPELINE_NAME),
            tasks=tuple(self._task_spec(t, d) for t, d in zip(self.tasks, deps, strict=True)),
            job=job,
            path=path,
            max_parallel=top.get("max_parallel"),
            on_failure=top.get("on_failure", "stop"),
            locations=self._locations(),
        )

    def _top(self) -> dict[str, Any]:
        try:
            top = record(self.ck, (), self.ck.source.data, f.PIPELINE_KEYS, ignore_unknown=True)
        except Invalid as e:
            self.ck.report(e.path, e.message, "a pipeline file is a mapping with a 'tasks' list")
            return {}
        except Reported as e:
            top = e.partial
        self.raw_tasks = top.get("tasks", [])
        return top

    def _task(self, path: FieldPath, raw: Any) -> dict[str, Any]:
        try:
            return record(self.ck, path, raw, f.TASK_KEYS)
        except Invalid as e:
            self.ck.report_invalid(e)
            return {}
        except Reported as e:
            return e.partial

    def _path(self, i: int, field: str) -> FieldPath:
        return ("tasks", i, _written(self.raw_tasks[i], _KEYS[field]))

    def _names(self) -> None:
        for i, task in enumerate(self.tasks):
            name = task.get("name", _raw_name(self.raw_tasks[i]))  # an invalid name still counts as known
            if name is None:
                continue
            if name in self.index:
                first = self.ck.source.mark(self._path(self.index[name], "name"))[0]
                self.ck.report(self._path(i, "name"), f"duplicate task name {name!r} (first defined on line {first})")
            else:
                self.index[name] = i

    def _depends(self, i: int) -> tuple[str, ...]:
        """Explicit dependencies, then every task a reference names; each bad one reported."""
        task, names = self.tasks[i], []
        for up, path in task.get("depends", ()):
            if self._known_upstream(i, up, path, f"unknown task {up!r} in depends"):
                names.append(up)
        for field in REFERENCE_FIELDS:
            for path, text in _strings(self._path(i, field), task.get(field)):
                for ref in find_references(text):
                    if self._known_upstream(i, ref.task, path, f"reference {ref.text} names unknown task {ref.task!r}"):
                        names.append(ref.task)
        return tuple(dict.fromkeys(names))

    def _known_upstream(self, i: int, up: str, path: FieldPath, message: str) -> bool:
        own = self.tasks[i].get("name")
        if up == own:
            self.ck.report(path, f"task {own!r} depends on itself", "remove the dependency or the reference")
            return False
        if up not in self.index:
            known = list(self.index)
            hint = did_you_mean(up, known) or f"known tasks: {', '.join(known) or 'none'}"
            self.ck.report(path, message, hint)
            return False
        return True

    def _variables(self) -> None:
        for i, task in enumerate(self.tasks):
            for field in VARIABLE_FIELDS:
                for path, text in _strings(self._path(i, field), task.get(field)):
                    for message, hint in variable_problems(text):
                        self.ck.report(path, message, hint)

    def _mounts(self) -> None:
        """A mount without ``claim`` places a volume defined elsewhere: an ``ephem_volume`` of the same name."""
        for i, task in enumerate(self.tasks):
            ephemeral = {e.name for e in task.get("ephem_volumes", ())}
            path = self._path(i, "mounts")
            listed = isinstance(task.get("mounts"), tuple) and isinstance(self.raw_tasks[i].get(path[-1]), list)
            for j, mount in enumerate(task.get("mounts", ())):
                if mount.claim is None and mount.name not in ephemeral:
                    where = (*path, j) if listed else path
                    hint = f"add 'claim: <pvc>' or an ephem_volume named {mount.name!r}"
                    self.ck.report(where, f"mount {mount.name!r} has no claim and names no ephem_volume", hint)

    def _cycles(self, deps: list[tuple[str, ...]]) -> None:
        graph = {name: deps[i] for name, i in self.index.items()}  # first definitions only
        for cycle in find_cycles(graph):
            i = self.index[cycle[0]]
            where = self._path(i, "depends") if "depends" in self.tasks[i] else ("tasks", i)
            self.ck.report(where, f"dependency cycle: {format_cycle(cycle)}", "remove one of these dependencies")

    def _task_spec(self, task: dict[str, Any], deps: tuple[str, ...]) -> TaskSpec:
        values = {f.MODEL_NAMES.get(k, k): v for k, v in task.items()}
        values["depends"] = deps
        return TaskSpec(**values)

    def _locations(self) -> dict[str, Location]:
        file = self.ck.source.file
        return {format_path(p): Location(file, *m) for p, m in self.ck.source.marks.items() if p}


def _raw_name(raw: Any) -> str | None:
    name = raw.get(_written(raw, _KEYS["name"])) if isinstance(raw, dict) else None
    return name if isinstance(name, str) else None


def _strings(path: FieldPath, value: Any) -> Iterator[tuple[FieldPath, str]]:
    """Every string in a parsed value with the path it was written at."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _strings((*path, i), item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings((*path, key), item)
