"""Topological order, cycles and the DOT / text renderings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from odin_core.spec import PipelineSpec, find_cycle, load_pipeline, to_dot, to_text, topological_order
from odin_core.spec.graph import find_cycles, levels

WriteJob = Callable[..., Path]  # the write_job fixture of conftest.py

DIAMOND = """
name: demo
tasks:
  - {name: report, image: i, command: c, depends: [train, eval]}
  - {name: prep, image: i, command: c}
  - {name: train, image: i, command: c, depends: prep, resource_type: pytjob, num_workers: 4}
  - {name: eval, image: i, command: c, args: ['{^train.outputs.model}']}
  - {name: lint, image: i, command: c}
"""


@pytest.fixture
def diamond(write_job: WriteJob) -> PipelineSpec:
    return load_pipeline(write_job(DIAMOND))


def test_topological_order_prefers_file_order(diamond: PipelineSpec) -> None:
    assert topological_order(diamond) == ["prep", "train", "eval", "report", "lint"]


def test_levels(diamond: PipelineSpec) -> None:
    assert levels(diamond) == {"prep": 1, "lint": 1, "train": 2, "eval": 3, "report": 4}


def test_to_text(diamond: PipelineSpec) -> None:
    assert to_text(diamond) == (
        "demo: 5 task(s), 4 level(s)\n"
        "   1  prep\n"
        "   1  lint\n"
        "   2  train  [PyTorchJob] <- prep\n"
        "   3  eval   <- train\n"
        "   4  report <- train, eval\n"
    )


def test_to_dot(diamond: PipelineSpec) -> None:
    assert to_dot(diamond) == (
        'digraph "demo" {\n'
        "  rankdir=LR;\n"
        "  node [shape=box];\n"
        '  "report" [label="report"];\n'
        '  "prep" [label="prep"];\n'
        '  "train" [label="train\\nPyTorchJob x4"];\n'
        '  "eval" [label="eval"];\n'
        '  "lint" [label="lint"];\n'
        '  "train" -> "report";\n'
        '  "eval" -> "report";\n'
        '  "prep" -> "train";\n'
        '  "train" -> "eval";\n'
        "}\n"
    )


@pytest.mark.parametrize(
    ("graph", "cycle"),
    [
        pytest.param({"a": [], "b": ["a"]}, None, id="acyclic"),
        pytest.param({"a": ["a"]}, ["a", "a"], id="self-loop"),
        pytest.param({"a": ["c"], "b": ["a"], "c": ["b"]}, ["a", "b", "c", "a"], id="three"),
        pytest.param({"x": [], "c": ["b"], "b": ["c"]}, ["c", "b", "c"], id="starts-at-first-written"),
        pytest.param({"a": ["missing"]}, None, id="unknown-dependency-ignored"),
    ],
)
def test_find_cycle(graph: dict[str, list[str]], cycle: list[str] | None) -> None:
    assert find_cycle(graph) == cycle


def test_find_cycles_reports_each() -> None:
    graph = {"a": ["b"], "b": ["a"], "c": ["d"], "d": ["c"], "e": []}
    assert find_cycles(graph) == [["a", "b", "a"], ["c", "d", "c"]]


def test_topological_order_raises_on_cycle() -> None:
    with pytest.raises(ValueError, match="dependency cycle: a -> b -> a"):
        topological_order({"a": ["b"], "b": ["a"]})


def test_long_chain_does_not_recurse() -> None:
    chain = {f"t{i}": [f"t{i - 1}"] if i else [] for i in range(5000)}
    assert topological_order(chain)[-1] == "t4999"
    assert find_cycle(chain) is None
