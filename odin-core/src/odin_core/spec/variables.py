"""Load-time variables (``$VAR``, ``${VAR}``, ``$$``) in task args, env values, inputs and outputs.

Rules, chosen so shell snippets and Kubernetes' own ``$(VAR)`` syntax keep working:

* ``$NAME`` and ``${NAME}`` (NAME an identifier) name a variable; an unknown name is a validation error.
* ``$$`` is a literal ``$`` (write ``$$HOME`` to pass ``$HOME`` to a shell).
* A ``$`` followed by anything else (``$1``, ``$(date)``, ``$?``, a trailing ``$``) can never be a variable
  and is left alone.
* ``${`` must hold an identifier and a closing ``}``; ``${1}`` or ``${HOME:-x}`` is an error (write ``$${``).
"""

from __future__ import annotations

import dataclasses
import difflib
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Any

from .ids import task_id
from .model import PipelineSpec, TaskSpec

VARIABLES = (
    "ROOT_PATH",
    "WORK_PATH",
    "DATA_PATH",
    "RUN_PATH",
    "PIPE_ID",
    "TASK_ID",
    "TASK_NAME",
    "TASK_PATH",
    "TASK_IDS",
)
LIST_VARIABLE = "TASK_IDS"  # a whole arg ``$TASK_IDS`` spreads into one arg per task id

_TOKEN = re.compile(
    r"\$(?:(?P<dollar>\$)|\{(?P<braced>[^}]*)(?P<close>\}?)|(?P<named>[A-Za-z_][A-Za-z0-9_]*))",
)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def variable_problems(text: str) -> list[tuple[str, str]]:
    """``(message, hint)`` for every bad variable in ``text``; empty when every ``$`` is fine."""
    problems = []
    for m in _TOKEN.finditer(text):
        if m.group("dollar"):
            continue
        name = m.group("named") or m.group("braced")
        if m.group("named") is None and not m.group("close"):
            problems.append((f"unterminated '${{' in {text!r}", "close it with '}' or write '$$' for a literal '$'"))
        elif not _IDENT.fullmatch(name):
            problems.append((f"invalid variable '{m.group(0)}'", "write '$$' for a literal '$'"))
        elif name not in VARIABLES:
            problems.append((f"unknown variable '${name}'", _unknown_hint(name)))
    return problems


def _unknown_hint(name: str) -> str:
    close = difflib.get_close_matches(name.upper(), VARIABLES, n=1)
    guess = f"did you mean '${close[0]}'? " if close else ""
    return f"{guess}known variables: {', '.join(VARIABLES)}; write '$$' for a literal '$'"


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace every variable of a validated string; ``$`` forms that are not variables stay as written."""

    def one(m: re.Match[str]) -> str:
        if m.group("dollar"):
            return "$"
        name = m.group("named") or m.group("braced")
        if name in values:
            return values[name]
        return m.group(0)  # not validated (cannot happen after load_pipeline): leave it visible

    return _TOKEN.sub(one, text)


def substitute_value(value: Any, values: Mapping[str, str]) -> Any:
    """Substitute inside every string of a JSON-like value (lists, tuples, dict values)."""
    if isinstance(value, str):
        return substitute(value, values)
    if isinstance(value, (list, tuple)):
        return type(value)(substitute_value(v, values) for v in value)
    if isinstance(value, dict):
        return {k: substitute_value(v, values) for k, v in value.items()}
    return value


def substitute_args(args: Sequence[Any], values: Mapping[str, str], task_ids: Sequence[str]) -> tuple[Any, ...]:
    """Args after substitution; an arg that is exactly ``$TASK_IDS`` becomes one arg per task id."""
    out: list[Any] = []
    for arg in args:
        if arg in (f"${LIST_VARIABLE}", f"${{{LIST_VARIABLE}}}"):
            out.extend(task_ids)
        else:
            out.append(substitute_value(arg, values))
    return tuple(out)


def instantiate(spec: PipelineSpec, *, pipe_id: str, root_path: str, data_path: str) -> PipelineSpec:
    """The spec of one run: every load-time variable replaced (references stay for run time)."""
    run_path = posixpath.join(data_path, pipe_id)
    ids = [task_id(pipe_id, t.name) for t in spec.tasks]
    common = {
        "ROOT_PATH": root_path,
        "WORK_PATH": str(spec.path) if spec.path is not None else "",
        "DATA_PATH": data_path,
        "RUN_PATH": run_path,
        "PIPE_ID": pipe_id,
        "TASK_IDS": ",".join(ids),
    }
    tasks = tuple(_instantiate_task(t, common, ids) for t in spec.tasks)
    return dataclasses.replace(spec, tasks=tasks)


def _instantiate_task(task: TaskSpec, common: Mapping[str, str], ids: Sequence[str]) -> TaskSpec:
    values = {
        **common,
        "TASK_ID": task_id(common["PIPE_ID"], task.name),
        "TASK_NAME": task.name,
        "TASK_PATH": posixpath.join(common["RUN_PATH"], task.name),
    }
    return dataclasses.replace(
        task,
        args=substitute_args(task.args, values, ids),
        env={k: substitute(v, values) for k, v in task.env.items()},
        inputs=substitute_value(task.inputs, values),
        outputs=substitute_value(task.outputs, values),
    )
