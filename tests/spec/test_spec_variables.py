"""Load-time variables and instantiate()."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from odin_core.spec import PipelineSpec, instantiate, load_pipeline
from odin_core.spec.variables import substitute, variable_problems

WriteJob = Callable[..., Path]  # the write_job fixture of conftest.py

VALUES = {"PIPE_ID": "p-1", "TASK_NAME": "t", "RUN_PATH": "/d/p-1"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("$PIPE_ID", "p-1", id="plain"),
        pytest.param("${PIPE_ID}", "p-1", id="braced"),
        pytest.param("${RUN_PATH}/x", "/d/p-1/x", id="braced-in-text"),
        pytest.param("$RUN_PATH/$TASK_NAME.log", "/d/p-1/t.log", id="several"),
        pytest.param("${TASK_NAME}s", "ts", id="braced-before-letters"),
        pytest.param("$$", "$", id="dollar-dollar"),
        pytest.param("$$PIPE_ID", "$PIPE_ID", id="escaped-variable"),
        pytest.param("$$$PIPE_ID", "$p-1", id="escape-then-variable"),
        pytest.param("cost: 5$", "cost: 5$", id="trailing-dollar"),
        pytest.param("echo $1 $? $@", "echo $1 $? $@", id="shell-positional"),
        pytest.param("$(date) $(ODIN_TASK_ID)", "$(date) $(ODIN_TASK_ID)", id="command-substitution-and-k8s"),
        pytest.param("a $ b", "a $ b", id="dollar-space"),
        pytest.param("no variables", "no variables", id="none"),
    ],
)
def test_substitute(text: str, expected: str) -> None:
    assert variable_problems(text) == []
    assert substitute(text, VALUES) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("$HOME", "unknown variable '$HOME'", id="unknown"),
        pytest.param("for i in 1; do echo $i; done", "unknown variable '$i'", id="shell-variable"),
        pytest.param("${HOME:-x}", "invalid variable '${HOME:-x}'", id="shell-default"),
        pytest.param("${}", "invalid variable '${}'", id="empty-braces"),
        pytest.param("${1}", "invalid variable '${1}'", id="braced-digit"),
        pytest.param("${PIPE_ID", "unterminated '${'", id="unterminated"),
    ],
)
def test_variable_problems(text: str, message: str) -> None:
    ((got, hint),) = variable_problems(text)
    assert message in got
    assert "$$" in hint


PIPELINE = """
name: flow
tasks:
  - name: prep
    image: i
    command: [run, $TASK_ID]
    args: [$ROOT_PATH, $WORK_PATH, $DATA_PATH, $RUN_PATH, $PIPE_ID, $TASK_ID, $TASK_NAME, $TASK_PATH, ids=$TASK_IDS]
    env: {OUT: '${TASK_PATH}/out', N: 3}
    inputs: [$WORK_PATH/data.csv]
    outputs: {model: $TASK_PATH/model.pt, all: [$RUN_PATH/a, $$literal]}
  - name: train
    image: i
    command: run
    args: [--ids, $TASK_IDS, '${TASK_IDS}', '$$TASK_IDS', '^prep.outputs.model', '{^prep.outputs.x}']
"""


@pytest.fixture
def inst(write_job: WriteJob) -> tuple[PipelineSpec, PipelineSpec]:
    spec = load_pipeline(write_job(PIPELINE))
    return spec, instantiate(spec, pipe_id="flow-abc", root_path="/root", data_path="/data")


def test_instantiate_every_variable(inst: tuple[PipelineSpec, PipelineSpec]) -> None:
    spec, run = inst
    prep = run.task("prep")
    assert prep.args == (
        "/root",
        str(spec.path),
        "/data",
        "/data/flow-abc",
        "flow-abc",
        "flow-abc--prep",
        "prep",
        "/data/flow-abc/prep",
        "ids=flow-abc--prep,flow-abc--train",
    )
    assert prep.env == {"OUT": "/data/flow-abc/prep/out", "N": "3"}
    assert prep.inputs == (f"{spec.path}/data.csv",)
    assert prep.outputs == {"model": "/data/flow-abc/prep/model.pt", "all": ("/data/flow-abc/a", "$literal")}
    assert prep.command == ("run", "$TASK_ID")  # command is passed as written


def test_task_ids_spread_as_whole_arg_and_references_stay(inst: tuple[PipelineSpec, PipelineSpec]) -> None:
    _, run = inst
    assert run.task("train").args == (
        "--ids",
        "flow-abc--prep",
        "flow-abc--train",
        "flow-abc--prep",
        "flow-abc--train",
        "$TASK_IDS",
        "^prep.outputs.model",
        "{^prep.outputs.x}",
    )


def test_instantiate_keeps_the_rest(inst: tuple[PipelineSpec, PipelineSpec]) -> None:
    spec, run = inst
    assert (run.name, run.job, run.path, run.task("train").depends) == (spec.name, spec.job, spec.path, ("prep",))
    assert spec.task("prep").args[0] == "$ROOT_PATH"  # the loaded spec is unchanged
