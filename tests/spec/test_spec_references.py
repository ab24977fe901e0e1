"""Run-time references: finding them, the edges they create, and resolving them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from odin_core.errors import OdinError
from odin_core.spec import Reference, ReferenceResolutionError, find_references, load_pipeline, resolve_references

WriteJob = Callable[..., Path]  # the write_job fixture of conftest.py

RECORDS: dict[str, dict[str, Any]] = {
    "a": {"outputs": {"model": "/m.pt", "score": 0.9, "which": "model", "paths": ["/x", "/y"], "meta": {"k": 1}}},
    "b": {"outputs": {"key": "score", "flag": True, "none": None}, "status": "SUCCEEDED"},
}


def lookup(task: str) -> Mapping[str, Any]:
    return RECORDS[task]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("^a.outputs.model", "/m.pt", id="whole-string"),
        pytest.param("^a.outputs.score", 0.9, id="whole-keeps-type"),
        pytest.param("^a.outputs.paths", ["/x", "/y"], id="whole-list"),
        pytest.param("^a.outputs.paths.1", "/y", id="list-index"),
        pytest.param("^a.outputs.meta", {"k": 1}, id="whole-dict"),
        pytest.param("--model={^a.outputs.model}", "--model=/m.pt", id="in-text"),
        pytest.param("{^a.outputs.score}/{^b.outputs.flag}", "0.9/true", id="in-text-json-scalars"),
        pytest.param("m={^a.outputs.meta} n={^b.outputs.none}", 'm={"k": 1} n=null', id="in-text-json"),
        pytest.param("{^a.outputs.{^b.outputs.key}}", "0.9", id="nested"),
        pytest.param("^a.outputs.{^a.outputs.which}", "/m.pt", id="nested-in-whole"),
        pytest.param("{^a.outputs.{^b.outputs.key}}!", "0.9!", id="nested-in-text"),
        pytest.param('{"json": {x}} ${y} {^} {^ a.b}', '{"json": {x}} ${y} {^} {^ a.b}', id="plain-braces"),
        pytest.param("{^a.outputs.model", "{^a.outputs.model", id="unclosed"),
        pytest.param("^a", "^a", id="caret-without-key"),
        pytest.param("^[a-z]+$", "^[a-z]+$", id="regex"),
        pytest.param("x^a.outputs.model", "x^a.outputs.model", id="caret-inside-text"),
        pytest.param(["^a.outputs.score", {"k": "{^b.status}"}, 3], [0.9, {"k": "SUCCEEDED"}, 3], id="containers"),
        pytest.param(("^b.outputs.flag",), (True,), id="tuple"),
    ],
)
def test_resolve(value: Any, expected: Any) -> None:
    assert resolve_references(value, lookup) == expected


def test_resolved_text_is_not_rescanned() -> None:
    records = {"a": {"outputs": {"evil": "{^b.status}"}}, "b": {"status": "secret"}}
    assert resolve_references("x {^a.outputs.evil}", records.__getitem__) == "x {^b.status}"


@pytest.mark.parametrize(
    ("value", "message", "details"),
    [
        pytest.param("^c.outputs.x", "reference ^c.outputs.x: no record of task 'c'", {"task": "c"}, id="no-task"),
        pytest.param(
            "{^a.outputs.mdl}",
            "reference {^a.outputs.mdl}: a.outputs has no key 'mdl' (available: meta, model, paths, score, which)",
            {"missing": "mdl", "available": ["meta", "model", "paths", "score", "which"]},
            id="missing-key",
        ),
        pytest.param(
            "^a.outputs.paths.5",
            "a.outputs.paths is a list of 2 item(s); '5' is not an index",
            {"missing": "5"},
            id="index",
        ),
        pytest.param("^a.outputs.model.x", 'a.outputs.model is "/m.pt", not an object', {"missing": "x"}, id="scalar"),
        pytest.param("^b.outputs.none.x", "b.outputs.none is null", {}, id="null"),
    ],
)
def test_resolution_errors(value: str, message: str, details: dict[str, Any]) -> None:
    with pytest.raises(ReferenceResolutionError) as info:
        resolve_references(value, lookup)
    error = info.value
    assert isinstance(error, OdinError)
    assert error.code == "invalid_reference"
    assert message in str(error)
    assert details.items() <= error.details.items()


def test_lookup_returning_none_is_a_missing_task() -> None:
    with pytest.raises(ReferenceResolutionError, match="no record of task 'a'"):
        resolve_references("^a.x", lambda _: None)  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("^a.outputs.x", [Reference("a", ("outputs", "x"), "^a.outputs.x")], id="whole"),
        pytest.param(
            "p={^a.outputs.x} q={^b.status}",
            [Reference("a", ("outputs", "x"), "{^a.outputs.x}"), Reference("b", ("status",), "{^b.status}")],
            id="text",
        ),
        pytest.param(
            "{^a.outputs.{^b.outputs.key}}",
            [
                Reference("a", ("outputs", "{^b.outputs.key}"), "{^a.outputs.{^b.outputs.key}}"),
                Reference("b", ("outputs", "key"), "{^b.outputs.key}"),
            ],
            id="nested",
        ),
        pytest.param(["x", {"k": "^c.y"}], [Reference("c", ("y",), "^c.y")], id="containers"),
        pytest.param("{x} ^a ${HOME}", [], id="none"),
        pytest.param(7, [], id="not-a-string"),
    ],
)
def test_find_references(value: Any, expected: list[Reference]) -> None:
    assert find_references(value) == expected


def test_references_create_dependency_edges(write_job: WriteJob) -> None:
    spec = load_pipeline(
        write_job(
            """
            tasks:
              - {name: a, image: i, command: c}
              - {name: b, image: i, command: c}
              - {name: c, image: i, command: c}
              - name: d
                image: i
                command: c
                depends: [c]
                args: ['^a.outputs.x', '{^b.outputs.{^c.outputs.k}}', '^a.id']
                env: {X: '{^b.status}'}
                inputs: ['^c.outputs.data']
            """
        )
    )
    assert spec.task("d").depends == ("c", "a", "b")
