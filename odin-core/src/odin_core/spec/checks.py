"""Small value checkers shared by the field parsers.

A checker either returns the converted value or raises :class:`Invalid` naming the path, what was expected
and what was found. :class:`Record` parses a mapping against a table of keys, reporting every unknown key,
conflicting alias and missing key before giving up, so one pass reports every problem of a file.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import Problem
from .source import FieldPath, Source

Coerce = Callable[["Checker", FieldPath, Any], Any]

_QUANTITY = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class Invalid(Exception):
    """A value is wrong; carries what the problem needs."""

    def __init__(self, path: FieldPath, message: str, hint: str = "", *, key: bool = False) -> None:
        super().__init__(message)
        self.path, self.message, self.hint, self.key = path, message, hint, key


class Reported(Exception):
    """Problems were already recorded; the value is unusable (``partial`` holds what did parse)."""

    def __init__(self, partial: dict[str, Any] | None = None) -> None:
        super().__init__("reported")
        self.partial = partial or {}


@dataclass
class Checker:
    """Collects problems for one file."""

    source: Source
    problems: list[Problem] = field(default_factory=list)

    def report(self, path: FieldPath, message: str, hint: str = "", *, key: bool = False) -> None:
        self.problems.append(self.source.problem(path, message, hint, key=key))

    def report_invalid(self, e: Invalid) -> None:
        self.report(e.path, e.message, e.hint, key=e.key)

    def raw(self, path: FieldPath, value: Any) -> str:
        """A scalar as the user wrote it (``1.50`` stays ``1.50``); JSON-style text without a source."""
        if path in self.source.raw and not isinstance(value, str):
            return self.source.raw[path]
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)


def type_name(value: Any) -> str:
    names = {type(None): "null", bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    if type(value) in names:
        return names[type(value)]
    if isinstance(value, (list, dict)):
        return "a list" if isinstance(value, list) else "a mapping"
    return f"a {type(value).__name__}"


SHOWN_CHARS = 80
"""A wrong value is quoted in its problem up to this long (a file linked to /etc/passwd is not printed whole)."""


def _shown(value: Any) -> str:
    if not isinstance(value, (str, int, float)):
        return type_name(value)
    text = repr(value)
    if len(text) > SHOWN_CHARS:
        text = f"{text[: SHOWN_CHARS - 20]}… of {len(str(value)):,} characters"
    return f"{type_name(value)} ({text})"


def expect(path: FieldPath, value: Any, what: str, hint: str = "") -> Invalid:
    return Invalid(path, f"expected {what}, got {_shown(value)}", hint)


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        close = [c for c in choices if c.lower() == word.lower()]
    return f"did you mean {close[0]!r}?" if close else ""


# -- scalar checkers --------------------------------------------------------------------------------------


def string(ck: Checker, path: FieldPath, value: Any) -> str:
    if not isinstance(value, str):
        raise expect(path, value, "a string", "quote the value" if isinstance(value, (int, float)) else "")
    if not value.strip():
        raise Invalid(path, "must not be empty")
    return _no_nul(path, value)


def text(ck: Checker, path: FieldPath, value: Any) -> str:
    """A string, number or boolean, kept as written (args, env values, labels)."""
    if isinstance(value, str):
        return _no_nul(path, value)
    if isinstance(value, (int, float)):  # bool included
        return ck.raw(path, value)
    raise expect(path, value, "a string, number or boolean")


def _no_nul(path: FieldPath, value: str) -> str:
    """No NUL character: no program can be given one (in its arguments, environment or name), so a task with one
    could only fail, with no log to say why."""
    if "\x00" in value:
        raise Invalid(path, "contains a NUL character (\\0), which no program can be given", "remove it")
    return value


def integer(minimum: int, maximum: int | None = None) -> Coerce:
    def check(ck: Checker, path: FieldPath, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise expect(path, value, "an integer")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
            raise Invalid(path, f"must be {bound}, got {value}")
        return value

    return check


def boolean(ck: Checker, path: FieldPath, value: Any) -> bool:
    if not isinstance(value, bool):
        raise expect(path, value, "true or false")
    return value


def number(minimum: float, *, exclusive: bool = False) -> Coerce:
    def check(ck: Checker, path: FieldPath, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise expect(path, value, "a number")
        if value < minimum or (exclusive and value == minimum):
            raise Invalid(path, f"must be {'>' if exclusive else '>='} {minimum:g}, got {value}")
        return float(value)

    return check


def quantity(ck: Checker, path: FieldPath, value: Any) -> str:
    """A Kubernetes quantity (``500m``, ``2``, ``4Gi``), kept as a string."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise expect(path, value, "a quantity such as 2, 500m or 4Gi")
    written = ck.raw(path, value).strip()
    if not _QUANTITY.fullmatch(written):
        raise Invalid(path, f"invalid quantity {written!r}", "write a number with an optional unit: 2, 500m, 4Gi, 1G")
    return written


def duration(positive: bool) -> Coerce:
    """Seconds as a number, or a duration string: ``500ms``, ``5s``, ``2m``, ``1h``, ``1h30m``."""

    def check(ck: Checker, path: FieldPath, value: Any) -> float:
        seconds = _seconds(path, value)
        if seconds < 0 or (positive and seconds == 0):
            raise Invalid(path, f"must be {'> 0' if positive else '>= 0'}, got {value!r}")
        return seconds

    return check


def _seconds(path: FieldPath, value: Any) -> float:
    hint = "a number of seconds or a duration like 500ms, 5s, 2m, 1h"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise expect(path, value, hint)
    if not isinstance(value, str):
        return float(value)
    written = value.strip().lower()
    try:
        return float(written)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(written)
    if not written or "".join(n + u for n, u in parts) != written:
        raise Invalid(path, f"invalid duration {value!r}", f"write {hint}")
    return sum(float(n) * _UNIT_S[u] for n, u in parts)


def choice(options: Sequence[str]) -> Coerce:
    """One of ``options``, matched case-insensitively and returned as spelled in ``options``."""

    def check(ck: Checker, path: FieldPath, value: Any) -> str:
        if isinstance(value, str):
            for option in options:
                if option.lower() == value.strip().lower():
                    return option
        hint = did_you_mean(str(value), options) if isinstance(value, str) else ""
        raise Invalid(path, f"invalid value {value!r}; expected one of {', '.join(options)}", hint)

    return check


def string_list(item: Coerce) -> Coerce:
    """A list checked item by item (every bad item reported); null is an empty list."""

    def check(ck: Checker, path: FieldPath, value: Any) -> tuple[Any, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise expect(path, value, "a list", "write a YAML list: [a, b] or one '- item' per line")
        return tuple(each(ck, [((*path, i), v) for i, v in enumerate(value)], item))

    return check


def each(ck: Checker, items: list[tuple[FieldPath, Any]], coerce: Coerce) -> list[Any]:
    """Apply ``coerce`` to every item, reporting every failure; raise Reported if any failed."""
    out, failed = [], False
    for path, value in items:
        try:
            out.append(coerce(ck, path, value))
        except Invalid as e:
            ck.report_invalid(e)
            failed = True
        except Reported:
            failed = True
    if failed:
        raise Reported()
    return out


# -- mappings with known keys ---------------------------------------------------------------------------


def camel(name: str) -> str:
    """``num_gpus`` -> ``numGpus``: the HTTP API's spelling of a field."""
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


@dataclass(frozen=True)
class Key:
    """One accepted key of a mapping: canonical snake_case name, its checker, and other spellings."""

    name: str
    coerce: Coerce
    required: bool = False
    aliases: tuple[str, ...] = ()  # more snake_case spellings (e.g. the singular ``mount`` of ``mounts``)

    def spellings(self) -> list[str]:
        names = [self.name, *self.aliases]
        return list(dict.fromkeys([*names, *(camel(n) for n in names)]))


def record(
    ck: Checker, path: FieldPath, value: Any, keys: Sequence[Key], *, ignore_unknown: bool = False
) -> dict[str, Any]:
    """Parse a mapping by ``keys`` into ``{canonical name: value}``, reporting every problem in it."""
    if not isinstance(value, dict):
        raise expect(path, value, f"a mapping with keys {', '.join(k.name for k in keys)}")
    table = {spelling: k for k in keys for spelling in k.spellings()}
    used: dict[str, str] = {}
    out: dict[str, Any] = {}
    failed = False
    for written, item in value.items():
        key = table.get(written) if isinstance(written, str) else None
        if key is None:
            failed |= not ignore_unknown and _unknown_key(ck, (*path, written), table)
        elif key.name in used:
            ck.report((*path, written), f"both {used[key.name]!r} and {written!r} given", "keep one", key=True)
            failed = True
        else:
            used[key.name] = written
            failed |= not _parse_into(ck, (*path, written), item, key, out)
    for key in keys:
        if key.required and key.name not in used:
            ck.report((*path, key.name), f"missing required field {key.name!r}")
            failed = True
    if failed:
        raise Reported(out)
    return out


def _unknown_key(ck: Checker, path: FieldPath, table: dict[str, Key]) -> bool:
    written = path[-1]
    hint = did_you_mean(written, list(table)) if isinstance(written, str) else ""
    known = sorted({k.name for k in table.values()})
    ck.report(path, f"unknown field {written!r}", hint or f"known fields: {', '.join(known)}", key=True)
    return True


def _parse_into(ck: Checker, path: FieldPath, value: Any, key: Key, out: dict[str, Any]) -> bool:
    if value is None and not key.required:
        return True  # an empty optional field (``depends:``) means its default
    try:
        out[key.name] = key.coerce(ck, path, value)
    except Invalid as e:
        ck.report_invalid(e)
        return False
    except Reported:
        return False
    return True


def one_or_many(item: Coerce) -> Coerce:
    """A single mapping or a list of them (wherever a plural alias exists); null is none."""

    def check(ck: Checker, path: FieldPath, value: Any) -> tuple[Any, ...]:
        if value is None:
            return ()
        if isinstance(value, dict):
            return (item(ck, path, value),)
        if not isinstance(value, list):
            raise expect(path, value, "a mapping or a list of mappings")
        return tuple(each(ck, [((*path, i), v) for i, v in enumerate(value)], item))

    return check
