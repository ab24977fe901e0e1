"""The fields of a task and of the pipeline: which keys exist, their aliases, and how each is checked.

Adding a field is one :class:`~.checks.Key` here plus a model attribute; aliases (singular/plural, the HTTP
API's camelCase) come from the table, so the loader never special-cases a spelling.
"""

from __future__ import annotations

import re
from typing import Any

from . import checks as c
from .checks import Checker, Invalid, Key
from .kinds import canonical_kind, known_kinds
from .model import ConfigMapMount, EphemVolume, Mount, Resources, RetryPolicy, SecretMount, SecurityContext
from .source import FieldPath

MAX_NAME = 63
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_PIPELINE_NAME = re.compile(r"[a-z0-9-.]+")
_ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")
RESERVED_ENV_PREFIX = "ODIN_"
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
ON_FAILURE = ("stop", "continue")


def suggest_name(name: str) -> str:
    """The closest valid task name (``Train_Model`` -> ``train-model``)."""
    fixed = re.sub("-{2,}", "-", re.sub(r"[^a-z0-9-]", "-", name.lower())).strip("-")[:MAX_NAME].strip("-")
    return fixed or "task"


def task_name(ck: Checker, path: FieldPath, value: Any) -> str:
    name = c.string(ck, path, value)
    if len(name) <= MAX_NAME and _DNS_LABEL.fullmatch(name):
        return name
    why = "must not contain '.'" if "." in name else "'_' is not allowed" if "_" in name else ""
    why = why or ("at most 63 characters" if len(name) > MAX_NAME else "")
    rule = "a DNS-1123 label: lowercase letters, digits and '-', starting and ending with a letter or digit"
    raise Invalid(
        path, f"invalid task name {name!r} ({why + '; ' if why else ''}{rule})", f"use {suggest_name(name)!r}"
    )


def pipeline_name(ck: Checker, path: FieldPath, value: Any) -> str:
    name = c.string(ck, path, value)
    if not _PIPELINE_NAME.fullmatch(name):
        hint = f"use {re.sub(r'[^a-z0-9.-]+', '-', name.lower()).strip('-') or 'flow'!r}"
        raise Invalid(path, f"invalid pipeline name {name!r} (lowercase letters, digits, '-' and '.')", hint)
    return name


def command(ck: Checker, path: FieldPath, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (c.string(ck, path, value),)
    items = c.string_list(c.text)(ck, path, value)
    if not items:
        raise Invalid(path, "must not be empty", "give the program to run, e.g. command: python")
    return items


def depends(ck: Checker, path: FieldPath, value: Any) -> tuple[tuple[str, FieldPath], ...]:
    """Upstream names with where each was written (checked against the task list by the loader)."""
    if isinstance(value, str):
        return ((c.string(ck, path, value).strip().removeprefix("^"), path),)
    names = c.string_list(c.string)(ck, path, value)
    return tuple((n.strip().removeprefix("^"), (*path, i)) for i, n in enumerate(names))


def _build(cls: type, keys: list[Key]) -> c.Coerce:
    def check(ck: Checker, path: FieldPath, value: Any) -> Any:
        return cls(**c.record(ck, path, value, keys))

    return check


def _medium(ck: Checker, path: FieldPath, value: Any) -> str:
    if isinstance(value, str) and (value in ("", "Memory", "HugePages") or value.startswith("HugePages-")):
        return value
    raise Invalid(path, f"invalid medium {value!r}; expected Memory, HugePages or HugePages-<size>")


_NAME_PATH = [Key("name", c.string, required=True), Key("path", c.string, required=True)]
mount = _build(Mount, [*_NAME_PATH, Key("claim", c.string)])
ephem_volume = _build(  # no path of its own in the first Odin: a mount of the same name places it
    EphemVolume,
    [
        _NAME_PATH[0],
        Key("path", c.string),
        Key("type", c.choice(["emptyDir"])),
        Key("medium", _medium),
        Key("size_limit", c.quantity),
    ],
)
secret = _build(SecretMount, [*_NAME_PATH, Key("sub_path", c.string), Key("mode", c.integer(0, 0o777))])
config_map = _build(ConfigMapMount, [*_NAME_PATH, Key("sub_path", c.string)])
resources = _build(Resources, [Key("limits", c.quantity), Key("requests", c.quantity)])
security_context = _build(SecurityContext, [Key(n, c.integer(0)) for n in ("run_as_user", "run_as_group", "fs_group")])
_RETRY_KEYS = [
    Key("limit", c.integer(0)),
    Key("backoff", c.duration(positive=False)),
    Key("factor", c.number(1)),
    Key("max_backoff", c.duration(positive=True)),
]
_RETRY_ATTRS = {"backoff": "backoff_s", "max_backoff": "max_backoff_s"}


def retries(ck: Checker, path: FieldPath, value: Any) -> RetryPolicy:
    """``retries: 3`` or ``retries: {limit, backoff, factor, max_backoff}``."""
    if isinstance(value, dict):
        parsed = c.record(ck, path, value, _RETRY_KEYS)
        return RetryPolicy(**{_RETRY_ATTRS.get(k, k): v for k, v in parsed.items()})
    return RetryPolicy(limit=c.integer(0)(ck, path, value))


def resource_type(ck: Checker, path: FieldPath, value: Any) -> str:
    kind = canonical_kind(value) if isinstance(value, str) else None
    if kind is None:
        hint = c.did_you_mean(value, known_kinds()) if isinstance(value, str) else ""
        raise Invalid(path, f"unknown resource type {value!r}; known kinds: {', '.join(known_kinds())}", hint)
    return kind


def _string_map(key_check: c.Coerce | None, value_check: c.Coerce) -> c.Coerce:
    def check(ck: Checker, path: FieldPath, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise c.expect(path, value, "a mapping")
        keys_bad = False
        try:  # every bad key reported, then every bad value
            c.each(ck, [((*path, k), k) for k in value], _map_key(key_check))
        except c.Reported:
            keys_bad = True
        items = [((*path, k), v) for k, v in value.items()]
        values = c.each(ck, items, value_check)
        if keys_bad:
            raise c.Reported()
        return dict(zip(value, values, strict=True))

    return check


def _map_key(key_check: c.Coerce | None) -> c.Coerce:
    def check(ck: Checker, path: FieldPath, key: Any) -> None:
        if not isinstance(key, str):
            raise Invalid(path, f"keys must be strings, got {c.type_name(key)}", key=True)
        if key_check is not None:
            key_check(ck, path, key)

    return check


def _env_name(ck: Checker, path: FieldPath, key: str) -> None:
    if not _ENV_NAME.fullmatch(key):
        raise Invalid(
            path, f"invalid environment variable name {key!r}", "use letters, digits, '_', '-' and '.'", key=True
        )
    if key.startswith(RESERVED_ENV_PREFIX):
        raise Invalid(path, f"{key!r}: names starting with {RESERVED_ENV_PREFIX} are set by Odin", key=True)


def _output(ck: Checker, path: FieldPath, value: Any) -> str | tuple[str, ...]:
    if isinstance(value, list):
        return c.string_list(c.string)(ck, path, value)
    return c.string(ck, path, value)


TASK_KEYS = [
    Key("name", task_name, required=True),
    Key("image", c.string, required=True),
    Key("command", command, required=True),
    Key("args", c.string_list(c.text)),
    Key("depends", depends),
    Key("mounts", c.one_or_many(mount), aliases=("mount",)),
    Key("ephem_volumes", c.one_or_many(ephem_volume), aliases=("ephem_volume",)),
    Key("secrets", c.one_or_many(secret), aliases=("secret",)),
    Key("config_maps", c.one_or_many(config_map), aliases=("config_map",)),
    Key("cpu", resources),
    Key("memory", resources),
    Key("num_gpus", c.integer(0)),
    Key("security_context", security_context),
    Key("pull_policy", c.choice(PULL_POLICIES)),
    Key("node_selector", _string_map(None, c.text)),
    Key("resource_type", resource_type),
    Key("num_workers", c.integer(1)),
    Key("inputs", c.string_list(c.string)),
    Key("outputs", _string_map(None, _output)),
    Key("retries", retries),
    Key("timeout", c.duration(positive=True)),
    Key("env", _string_map(_env_name, c.text)),
    Key("request_early_exit", c.boolean),
]
MODEL_NAMES = {"timeout": "timeout_s"}  # key name -> TaskSpec attribute where they differ


def _tasks_list(ck: Checker, path: FieldPath, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise c.expect(path, value, "a list of tasks", "write one '- name: ...' entry per task")
    if not value:
        raise Invalid(path, "a pipeline needs at least one task")
    return value


PIPELINE_KEYS = [
    Key("name", pipeline_name),
    Key("tasks", _tasks_list, required=True),
    Key("max_parallel", c.integer(1)),
    Key("on_failure", c.choice(ON_FAILURE)),
]
