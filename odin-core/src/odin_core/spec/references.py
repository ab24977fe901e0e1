"""Run-time references to upstream task records: ``^task.key.sub`` and ``{^task.key.sub}``.

* A whole string ``^task.key.sub`` becomes that field of the task's record, whatever its JSON type.
* Inside text, ``{^task.key.sub}`` becomes its text (JSON for anything but a string).
* Nesting: a key may itself be (or contain) a text reference, resolved first:
  ``{^a.outputs.{^b.outputs.key}}`` reads ``b.outputs.key`` and uses its value as the key under ``a.outputs``.
  The task name must be written literally, so the dependency edge is known before the run.
* A numeric key indexes a list (``^a.outputs.paths.0``).
* Braces that do not form a reference (``{"a": 1}``, ``${x}``, ``{^ nope}``) stay as they are.

Resolution is a single left-to-right pass: text substituted from an upstream value is never scanned again,
so an upstream output cannot inject references.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Union

from ..errors import OdinError

_TASK = re.compile(r"[A-Za-z0-9_-]+")  # wider than a valid name, so a bad name is reported, not ignored
_KEY = re.compile(r"[A-Za-z0-9_-]*")  # a key piece; a part needs a piece or a nested reference


@dataclass(frozen=True)
class Reference:
    """One reference: the task it reads, the key path below the record, and the text as written."""

    task: str
    path: tuple[str, ...]
    text: str


class ReferenceResolutionError(OdinError):
    """A reference names a task without a record, or a key the record does not have."""

    code = "invalid_reference"


Segment = Union[str, "_Ref"]


@dataclass(frozen=True)
class _Ref:
    parts: tuple[tuple[Segment, ...], ...]  # the body split at top-level dots; parts[0] is the task
    text: str

    @property
    def task(self) -> str:
        return str(self.parts[0][0])


def _make_ref(body: list[Segment], text: str) -> _Ref | None:
    parts: list[list[Segment]] = [[]]
    for seg in body:
        if isinstance(seg, _Ref):
            parts[-1].append(seg)
            continue
        first, *rest = seg.split(".")
        parts[-1].append(first)
        parts.extend([piece] for piece in rest)
    cleaned = [tuple(s for s in part if s != "") for part in parts]
    task = cleaned[0]
    if len(cleaned) < 2 or len(task) != 1 or not isinstance(task[0], str) or not _TASK.fullmatch(task[0]):
        return None
    for part in cleaned[1:]:
        if not part or any(isinstance(s, str) and not _KEY.fullmatch(s) for s in part):
            return None
    return _Ref(tuple(cleaned), text)


_BRACE = re.compile(r"[{}]")


def _parse(text: str) -> list[Segment]:
    """Split text into literal pieces and ``{^...}`` references (innermost first, single pass)."""
    stack: list[tuple[int, list[Segment]]] = [(0, [])]
    i = 0
    while i < len(text):
        if text.startswith("{^", i):
            stack.append((i, []))
            i += 2
        elif text[i] == "}" and len(stack) > 1:
            start, body = stack.pop()
            ref = _make_ref(body, text[start : i + 1])
            _append(stack[-1][1], [ref] if ref else ["{^", *body, "}"])
            i += 1
        else:  # literal text, up to the next brace (one piece, not a character at a time: long args stay linear)
            brace = _BRACE.search(text, i + 1)
            end = brace.start() if brace else len(text)
            _append(stack[-1][1], [text[i:end]])
            i = end
    while len(stack) > 1:  # unclosed "{^": literal text
        _, body = stack.pop()
        _append(stack[-1][1], ["{^", *body])
    return stack[0][1]


def _append(out: list[Segment], items: list[Segment]) -> None:
    for item in items:
        if isinstance(item, str) and out and isinstance(out[-1], str):
            out[-1] += item
        else:
            out.append(item)


def _whole(text: str) -> _Ref | None:
    """The reference a whole value ``^task.key`` stands for, if it is one."""
    if not text.startswith("^") or text.startswith("^{"):
        return None
    return _make_ref(_parse(text[1:]), text)


def _part_text(part: tuple[Segment, ...]) -> str:
    return "".join(s if isinstance(s, str) else s.text for s in part)


def _refs_in(ref: _Ref) -> Iterator[_Ref]:
    yield ref
    for part in ref.parts[1:]:
        for seg in part:
            if isinstance(seg, _Ref):
                yield from _refs_in(seg)


def find_references(value: Any) -> list[Reference]:
    """Every reference in a JSON-like value (strings, lists, dict values), outer before nested, in order."""
    found: list[Reference] = []
    for text in _strings(value):
        whole = _whole(text)
        tops = [whole] if whole else [s for s in _parse(text) if isinstance(s, _Ref)]
        for top in tops:
            for ref in _refs_in(top):
                found.append(Reference(ref.task, tuple(_part_text(p) for p in ref.parts[1:]), ref.text))
    return found


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)


Lookup = Callable[[str], Mapping[str, Any]]


def resolve_references(value: Any, lookup: Lookup) -> Any:
    """``value`` with every reference replaced from ``lookup(task)`` (the upstream task's record)."""
    if isinstance(value, str):
        whole = _whole(value)
        return _resolve(whole, lookup) if whole else _render(_parse(value), lookup)
    if isinstance(value, list):
        return [resolve_references(v, lookup) for v in value]
    if isinstance(value, tuple):
        return tuple(resolve_references(v, lookup) for v in value)
    if isinstance(value, Mapping):
        return {k: resolve_references(v, lookup) for k, v in value.items()}
    return value


def _render(segments: tuple[Segment, ...] | list[Segment], lookup: Lookup) -> str:
    return "".join(s if isinstance(s, str) else as_text(_resolve(s, lookup)) for s in segments)


def as_text(value: Any) -> str:
    """How a referenced value reads inside text: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _resolve(ref: _Ref, lookup: Lookup) -> Any:
    keys = [_render(part, lookup) for part in ref.parts[1:]]
    try:
        current: Any = lookup(ref.task)
    except KeyError:
        current = None
    if current is None:
        raise ReferenceResolutionError(
            f"reference {ref.text}: no record of task {ref.task!r}", reference=ref.text, task=ref.task
        )
    for depth, key in enumerate(keys):
        current = _step(ref, current, key, keys[:depth])
    return current


def _step(ref: _Ref, current: Any, key: str, above: list[str]) -> Any:
    where = ".".join([ref.task, *above])
    if isinstance(current, Mapping) and key in current:
        return current[key]
    if isinstance(current, (list, tuple)) and key.isdigit() and int(key) < len(current):
        return current[int(key)]
    if isinstance(current, Mapping):
        available = ", ".join(sorted(map(str, current))) or "none"
        detail = f"{where} has no key {key!r} (available: {available})"
    elif isinstance(current, (list, tuple)):
        detail = f"{where} is a list of {len(current)} item(s); {key!r} is not an index in it"
    else:
        detail = f"{where} is {json.dumps(current)}, not an object; cannot read {key!r} from it"
    raise ReferenceResolutionError(
        f"reference {ref.text}: {detail}",
        reference=ref.text,
        task=ref.task,
        missing=key,
        available=sorted(map(str, current)) if isinstance(current, Mapping) else [],
    )
