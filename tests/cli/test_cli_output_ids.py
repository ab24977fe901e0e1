"""Every command takes `-o json|yaml`; run ids given on the command line are DNS labels."""

from __future__ import annotations

import json

import pytest
import yaml

PAIR = """\
name: pair
tasks:
  - name: first
    image: busybox:1.36
    command: [sh, -c]
    args: ['echo one; echo two; echo "{\\"n\\": 3}" > "$$ODIN_OUTPUTS"']
  - {name: second, image: busybox:1.36, command: echo, args: ["got {^first.outputs.n}"]}
"""


@pytest.fixture
def done_run(odin, make_job) -> str:
    odin("run", str(make_job(PAIR)), "--run-id", "pair-out", "--no-watch")
    return "pair-out"


def test_validate_json_and_yaml(odin, make_job) -> None:
    good, bad = make_job(PAIR), make_job("tasks:\n  - {name: a, image: x}\n", name="bad")
    records = odin.json("validate", str(good), str(bad), code=1)
    assert [(r["job"], r["valid"], r["tasks"]) for r in records] == [(str(good), True, 2), (str(bad), False, 0)]
    problem = records[1]["problems"][0]
    assert problem["file"] == str(bad / "main.yml") and "command" in problem["message"]  # the path as given
    assert yaml.safe_load(odin("validate", str(good), "-o", "yaml").stdout)[0]["valid"] is True


def test_show_json_and_graph_json(odin, make_job) -> None:
    job = make_job(PAIR)
    spec = odin.json("show", str(job))
    assert spec["name"] == "pair" and [t["name"] for t in spec["tasks"]] == ["first", "second"]
    graph = odin.json("show", str(job), "--graph")
    assert graph == {
        "name": "pair",
        "tasks": [{"name": "first", "level": 1, "depends": []}, {"name": "second", "level": 2, "depends": ["first"]}],
    }
    assert yaml.safe_load(odin("show", str(job), "-o", "yaml").stdout)["name"] == "pair"


def test_logs_json_lines_and_yaml(odin, done_run) -> None:
    lines = [json.loads(line) for line in odin("logs", f"{done_run}--first", "-o", "json").stdout.splitlines()]
    assert lines == [
        {"task_id": "pair-out--first", "task": "first", "line": "one"},
        {"task_id": "pair-out--first", "task": "first", "line": "two"},
    ]
    every = yaml.safe_load(odin("logs", done_run, "-o", "yaml").stdout)
    assert [(e["task"], e["line"]) for e in every] == [("first", "one"), ("first", "two"), ("second", "got 3")]


def test_stop_json_prints_the_run_record(odin, done_run) -> None:
    result = odin("stop", done_run, "-o", "json")
    assert json.loads(result.stdout)["status"] == "DONE"
    assert "has already ended DONE" in result.stderr  # the words go to stderr, the record to stdout


@pytest.mark.parametrize(
    "args",
    [["status"], ["data", "pair-out"], ["events", "pair-out"], ["cleanup", "pair-out"]],
    ids=lambda a: a[0],
)
def test_the_other_commands_print_json_and_yaml(odin, done_run, args) -> None:
    as_json = odin.json(*args)
    as_yaml = yaml.safe_load(odin(*args, "-o", "yaml").stdout)
    assert as_json == as_yaml and as_json


@pytest.mark.parametrize(
    "bad",
    ["BAD_ID", "../escape", "/abs", "a--b", "-lead", "trail-", "x" * 64, "with space", "ünï"],
)
def test_run_refuses_a_run_id_that_is_not_a_dns_label(odin, make_job, bad) -> None:
    result = odin("run", str(make_job(PAIR)), "--run-id", bad, code=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --run-id: invalid run id "), lines
    assert "Traceback" not in result.output
    assert odin.json("status") == []  # nothing was created
    assert not (odin.home / "data").exists() or not any((odin.home / "data").iterdir())


def test_a_dns_label_run_id_is_accepted(odin, make_job) -> None:
    odin("run", str(make_job(PAIR)), "--run-id", "a" * 63, "--no-watch")
    odin("run", str(make_job(PAIR)), "--run-id", "0-pair-2", "--no-watch")
    assert {r["run"]["run_id"] for r in odin.json("status")} == {"a" * 63, "0-pair-2"}
