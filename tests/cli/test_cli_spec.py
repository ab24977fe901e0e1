"""`odin validate` and `odin show`: valid and invalid pipelines, the expanded spec, the graph."""

from __future__ import annotations

import re

import pytest
import yaml

INVALID = """\
name: broken
tasks:
  - name: a
    image: busybox:1.36
    command: echo
    args: ["$NOPE"]
  - name: b
    image: busybox:1.36
    depends: missing
"""


def test_validate_every_sample(odin, samples) -> None:
    dirs = sorted(str(p) for p in samples.iterdir() if (p / "main.yml").is_file())
    result = odin("validate", *dirs)
    for d in dirs:
        assert f"{d}: valid (" in result.stdout
    assert "samples/ml-sweep: valid (7 tasks)" in result.stdout


def test_validate_lists_every_problem_with_its_place(odin, make_job) -> None:
    job = make_job(INVALID)
    result = odin("validate", str(job), code=1)
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"{job}/main.yml:")]  # as given
    assert len(lines) >= 3, result.stderr  # unknown variable, missing command, unknown dependency
    assert any(line.startswith(f"{job}/main.yml:6:") and "NOPE" in line for line in lines), lines
    assert any("missing" in line for line in lines), lines
    assert "Traceback" not in result.output


def test_validate_reports_a_missing_main_yml(odin, tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    result = odin("validate", str(tmp_path / "empty"), code=1)
    assert "no main.yml" in result.stderr


@pytest.mark.parametrize("kind", ["missing", "a-file"])
def test_validate_reports_a_dir_that_is_not_one_and_checks_the_others(odin, samples, tmp_path, kind) -> None:
    given = tmp_path / "nowhere" if kind == "missing" else samples / "hello" / "main.yml"
    result = odin("validate", str(given), str(samples / "hello"), code=1)
    assert "Usage:" not in result.output
    assert f"{samples / 'hello'}: valid (1 task)" in result.stdout
    problems = [line for line in result.stderr.splitlines() if line.startswith(f"{given}/main.yml:")]
    assert len(problems) == 1 and "does not exist or is not a directory" in problems[0], result.stderr
    records = odin.json("validate", str(given), str(samples / "hello"), code=1)
    assert [(r["job"], r["valid"]) for r in records] == [(str(given), False), (str(samples / "hello"), True)]
    assert "does not exist" in records[0]["problems"][0]["message"]


@pytest.mark.parametrize("command", ["show", "run"])
def test_a_missing_dir_is_an_invalid_pipeline_for_show_and_run(odin, tmp_path, command) -> None:
    result = odin(command, str(tmp_path / "nowhere"), code=2)
    assert "Usage:" not in result.output
    assert f"{tmp_path / 'nowhere'}/main.yml:0:0: pipeline directory " in result.stderr
    assert "pipeline is invalid: 1 problem" in result.stderr
    assert odin.json("status") == []


def test_show_prints_the_expanded_spec(odin, samples) -> None:
    data = yaml.safe_load(odin("show", str(samples / "retry")).stdout)
    tasks = {t["name"]: t for t in data["tasks"]}
    assert data["on_failure"] == "continue"
    assert tasks["flaky"]["retries"]["limit"] == 2
    assert tasks["flaky"]["retries"]["backoff"] == pytest.approx(0.2)  # spelled as in main.yml
    assert tasks["slow"]["timeout"] == 1.0
    assert tasks["after-flaky"]["depends"] == ["flaky"]  # from the {^flaky.attempt} reference


def test_show_graph_as_text(odin, samples) -> None:
    text = odin("show", str(samples / "ml-sweep"), "--graph").stdout
    assert text.startswith("ml-sweep: 7 task(s), 4 level(s)")
    assert re.search(r"3  evaluate +<- prepare, train-logreg", text), text


def test_show_graph_as_dot(odin, samples) -> None:
    dot = odin("show", str(samples / "ml-sweep"), "--graph", "--format", "dot").stdout
    assert dot.startswith('digraph "ml-sweep" {')
    assert '"prepare" -> "train-svm";' in dot
    assert '"evaluate" -> "report";' in dot
    assert dot.rstrip().endswith("}")


def test_show_invalid_pipeline_exits_2(odin, make_job) -> None:
    result = odin("show", str(make_job(INVALID)), code=2)
    assert "main.yml:6:" in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        *("run", "resubmit", "status", "logs", "data", "events", "cleanup", "show", "validate", "stop"),
        *("login", "logout", "push", "jobs", "history", "user"),  # the gateway's: `odin --server URL <command>`
    ],
)
def test_every_command_has_help_with_an_example(odin, command) -> None:
    text = odin(command, "--help").stdout
    assert "Example" in text
    assert re.search(rf"^ +odin (--server \S+ )?{command}\b", text, re.M), text
