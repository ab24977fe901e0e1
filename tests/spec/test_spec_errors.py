"""Every kind of problem, with the exact file, line, column and field it is reported at."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from odin_core.errors import Problem, SpecError
from odin_core.spec import load_pipeline, validate_pipeline
from spec_support import one_task

WriteJob = Callable[..., Path]  # the write_job fixture of conftest.py

Check = Callable[[str], list[Problem]]


T = "  - {name: t, image: i, command: c}\n"  # a valid task line

CASES = [
    pytest.param("tasks: [\n", [(2, 1, "", "invalid YAML")], id="yaml-syntax"),
    pytest.param("tasks:\n  - name: a\n   image: x\n", [(3, 4, "", "invalid YAML")], id="yaml-indentation"),
    pytest.param("", [(1, 1, "", "expected a mapping with keys name, tasks")], id="empty-file"),
    pytest.param("- a\n", [(1, 1, "", "expected a mapping")], id="top-level-list"),
    pytest.param("name: x\n", [(1, 1, "tasks", "missing required field 'tasks'")], id="missing-tasks"),
    pytest.param("tasks: []\n", [(1, 8, "tasks", "at least one task")], id="empty-tasks"),
    pytest.param(
        "tasks: {name: a}\n", [(1, 8, "tasks", "expected a list of tasks, got a mapping")], id="tasks-not-list"
    ),
    pytest.param(
        "name: My_Flow\ntasks:\n" + T, [(1, 7, "name", "invalid pipeline name 'My_Flow'")], id="pipeline-name"
    ),
    pytest.param("max_parallel: 0\ntasks:\n" + T, [(1, 15, "max_parallel", "must be >= 1, got 0")], id="max-parallel"),
    pytest.param(
        "on_failure: ignore\ntasks:\n" + T,
        [(1, 13, "on_failure", "invalid value 'ignore'; expected one of stop, continue")],
        id="on-failure",
    ),
    pytest.param("tasks:\n  - just-a-string\n", [(2, 5, "tasks[0]", "expected a mapping")], id="task-not-mapping"),
    pytest.param(
        "tasks:\n  - name: a\n",
        [(2, 5, "tasks[0].image", "missing required field 'image'"), (2, 5, "tasks[0].command", "'command'")],
        id="missing-required",
    ),
    pytest.param(
        one_task("num_gpus: two"),
        [(5, 15, "tasks[0].num_gpus", "expected an integer, got a string ('two')")],
        id="wrong-type",
    ),
    pytest.param(
        one_task("num_gpus: true"),
        [(5, 15, "tasks[0].num_gpus", "expected an integer, got a boolean")],
        id="bool-not-int",
    ),
    pytest.param(one_task("num_gpus: -1"), [(5, 15, "tasks[0].num_gpus", "must be >= 0, got -1")], id="negative-gpus"),
    pytest.param(
        one_task("num_workers: 0"), [(5, 18, "tasks[0].num_workers", "must be >= 1, got 0")], id="zero-workers"
    ),
    pytest.param(
        one_task("args: a b"), [(5, 11, "tasks[0].args", "expected a list, got a string")], id="args-not-list"
    ),
    pytest.param(
        one_task("args: [a, {b: c}]"),
        [(5, 15, "tasks[0].args[1]", "expected a string, number or boolean")],
        id="args-item",
    ),
    pytest.param(
        one_task("image: 3"), [(5, 12, "tasks[0].image", "expected a string, got an integer (3)")], id="image-int"
    ),
    pytest.param(one_task("image: ''"), [(5, 12, "tasks[0].image", "must not be empty")], id="image-empty"),
    pytest.param(one_task("command: []"), [(5, 14, "tasks[0].command", "must not be empty")], id="command-empty"),
    pytest.param(one_task("num_gpu: 1"), [(5, 5, "tasks[0].num_gpu", "unknown field 'num_gpu'")], id="unknown-field"),
    pytest.param(
        one_task("mount: {name: a, path: /a, claim: c}\nmounts: []"),
        [(6, 5, "tasks[0].mounts", "both 'mount' and 'mounts' given")],
        id="singular-and-plural",
    ),
    pytest.param(
        one_task("numGpus: 1\nnum_gpus: 1"),
        [(6, 5, "tasks[0].num_gpus", "both 'numGpus' and 'num_gpus'")],
        id="camel-and-snake",
    ),
    pytest.param(
        one_task("mount: {name: a}"),
        [(5, 12, "tasks[0].mount.path", "missing required field 'path'")],
        id="mount-missing-path",
    ),
    pytest.param(
        one_task("mounts: [{name: a, path: /a, clam: c}]"),
        [(5, 34, "tasks[0].mounts[0].clam", "unknown field 'clam'")],
        id="mount-unknown-key",
    ),
    pytest.param(
        one_task("mounts: 3"),
        [(5, 13, "tasks[0].mounts", "expected a mapping or a list of mappings")],
        id="mounts-type",
    ),
    pytest.param(
        one_task("ephem_volume: {name: a, path: /a, type: hostPath}"),
        [(5, 45, "tasks[0].ephem_volume.type", "invalid value 'hostPath'")],
        id="ephem-type",
    ),
    pytest.param(
        one_task("ephem_volume: {name: a, path: /a, medium: Disk}"),
        [(5, 47, "tasks[0].ephem_volume.medium", "invalid medium 'Disk'")],
        id="ephem-medium",
    ),
    pytest.param(
        one_task("secret: {name: a, path: /a, mode: 1000}"),
        [(5, 39, "tasks[0].secret.mode", "must be between 0 and 511")],
        id="secret-mode",
    ),
    pytest.param(
        one_task("cpu: {limits: lots}"), [(5, 19, "tasks[0].cpu.limits", "invalid quantity 'lots'")], id="cpu-quantity"
    ),
    pytest.param(
        one_task("cpu: 2"), [(5, 10, "tasks[0].cpu", "expected a mapping with keys limits, requests")], id="cpu-scalar"
    ),
    pytest.param(
        one_task("memory: {limit: 1Gi}"), [(5, 14, "tasks[0].memory.limit", "unknown field 'limit'")], id="memory-typo"
    ),
    pytest.param(
        one_task("security_context: {run_as_user: root}"),
        [(5, 37, "tasks[0].security_context.run_as_user", "expected an integer")],
        id="security-context",
    ),
    pytest.param(
        one_task("pull_policy: Sometimes"),
        [(5, 18, "tasks[0].pull_policy", "expected one of Always, IfNotPresent, Never")],
        id="pull-policy",
    ),
    pytest.param(
        one_task("node_selector: [a]"),
        [(5, 20, "tasks[0].node_selector", "expected a mapping, got a list")],
        id="node-selector",
    ),
    pytest.param(
        one_task("resource_type: pytorchjb"),
        [(5, 20, "tasks[0].resource_type", "known kinds: Pod, Job, Deployment")],
        id="resource-type",
    ),
    pytest.param(one_task("outputs: [a]"), [(5, 14, "tasks[0].outputs", "expected a mapping")], id="outputs-type"),
    pytest.param(one_task("retries: -1"), [(5, 14, "tasks[0].retries", "must be >= 0, got -1")], id="retries-negative"),
    pytest.param(
        one_task("retries: {limit: 1, backoff: soon}"),
        [(5, 34, "tasks[0].retries.backoff", "invalid duration 'soon'")],
        id="retries-backoff",
    ),
    pytest.param(
        one_task("retries: {factor: 0.5}"), [(5, 23, "tasks[0].retries.factor", "must be >= 1")], id="retries-factor"
    ),
    pytest.param(one_task("timeout: 0"), [(5, 14, "tasks[0].timeout", "must be > 0")], id="timeout-zero"),
    pytest.param(
        one_task("timeout: 5 minutes"), [(5, 14, "tasks[0].timeout", "invalid duration '5 minutes'")], id="timeout-text"
    ),
    pytest.param(
        one_task("env: {1A: x}"), [(5, 11, "tasks[0].env.1A", "invalid environment variable name '1A'")], id="env-name"
    ),
    pytest.param(one_task("env: {ODIN_X: x}"), [(5, 11, "tasks[0].env.ODIN_X", "set by Odin")], id="env-reserved"),
    pytest.param(
        one_task("env: {A: [1]}"), [(5, 14, "tasks[0].env.A", "expected a string, number or boolean")], id="env-value"
    ),
    pytest.param(
        one_task("request_early_exit: yes please"),
        [(5, 25, "tasks[0].request_early_exit", "expected true or false")],
        id="early-exit",
    ),
    pytest.param(one_task(name="prep_data"), [(2, 11, "tasks[0].name", "'_' is not allowed")], id="name-underscore"),
    pytest.param(one_task(name="a.b"), [(2, 11, "tasks[0].name", "must not contain '.'")], id="name-dot"),
    pytest.param(one_task(name="Train"), [(2, 11, "tasks[0].name", "invalid task name 'Train'")], id="name-upper"),
    pytest.param(one_task(name="a" * 64), [(2, 11, "tasks[0].name", "at most 63 characters")], id="name-long"),
    pytest.param(
        "tasks:\n" + T + T,
        [(3, 12, "tasks[1].name", "duplicate task name 't' (first defined on line 2)")],
        id="duplicate-name",
    ),
    pytest.param(
        "tasks:\n  - {name: prep, image: i, command: c}\n  - {name: b, image: i, command: c, depends: [prpe]}\n",
        [(3, 47, "tasks[1].depends[0]", "unknown task 'prpe' in depends")],
        id="unknown-dependency",
    ),
    pytest.param(
        one_task("depends: t"), [(5, 14, "tasks[0].depends", "task 't' depends on itself")], id="self-dependency"
    ),
    pytest.param(
        one_task("args: ['^t.outputs.x']"),
        [(5, 12, "tasks[0].args[0]", "task 't' depends on itself")],
        id="self-reference",
    ),
    pytest.param(
        one_task("env: {X: '{^nope.outputs.x}'}"),
        [(5, 14, "tasks[0].env.X", "reference {^nope.outputs.x} names unknown task 'nope'")],
        id="unknown-reference",
    ),
    pytest.param(
        one_task("args: [$DATA, ok]"), [(5, 12, "tasks[0].args[0]", "unknown variable '$DATA'")], id="unknown-variable"
    ),
    pytest.param(
        one_task("outputs: {m: '${TASK_PAHT}/m'}"),
        [(5, 18, "tasks[0].outputs.m", "unknown variable '$TASK_PAHT'")],
        id="variable-in-outputs",
    ),
    pytest.param(
        one_task("inputs: ['${WORK_PATH']"),
        [(5, 14, "tasks[0].inputs[0]", "unterminated '${'")],
        id="unterminated-brace",
    ),
    pytest.param(
        one_task("args: ['${HOME:-x}']"),
        [(5, 12, "tasks[0].args[0]", "invalid variable '${HOME:-x}'")],
        id="invalid-braced",
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_problem_location(problems_of: Check, text: str, expected: list[tuple[int, int, str, str]]) -> None:
    problems = problems_of(text)
    assert [(p.file, p.line, p.column, p.field) for p in problems] == [("job/main.yml", *e[:3]) for e in expected]
    for problem, (*_, message) in zip(problems, expected, strict=True):
        assert message in problem.message


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        pytest.param(one_task("num_gpu: 1"), "did you mean 'num_gpus'?", id="field"),
        pytest.param(one_task("numGpu: 1"), "did you mean 'numGpus'?", id="camel-field"),
        pytest.param(one_task(name="prep_data"), "use 'prep-data'", id="name"),
        pytest.param(one_task("resource_type: pytorchjb"), "did you mean 'PyTorchJob'?", id="kind"),
        pytest.param(one_task("pull_policy: IfNotPresnt"), "did you mean 'IfNotPresent'?", id="enum"),
        pytest.param(one_task("args: [$TASK_NAM]"), "did you mean '$TASK_NAME'?", id="variable"),
        pytest.param(one_task("args: [$HOME]"), "write '$$' for a literal '$'", id="variable-dollar"),
        pytest.param(one_task("image: 3"), "quote the value", id="quote"),
        pytest.param(
            "tasks:\n  - {name: prepare, image: i, command: c}\n  - {name: b, image: i, command: c, depends: prepar}\n",
            "did you mean 'prepare'?",
            id="dependency",
        ),
        pytest.param(
            "tasks:\n  - {name: prepare, image: i, command: c}\n"
            "  - {name: b, image: i, command: c, args: ['^prepre.outputs.x']}\n",
            "did you mean 'prepare'?",
            id="reference",
        ),
    ],
)
def test_hints(problems_of: Check, text: str, hint: str) -> None:
    (problem,) = problems_of(text)
    assert hint in problem.hint


CYCLE = """
tasks:
  - {name: a, image: i, command: c, depends: c}
  - {name: b, image: i, command: c, depends: a}
  - {name: c, image: i, command: c, args: ['{^b.outputs.x}']}
  - {name: d, image: i, command: c, depends: [e]}
  - {name: e, image: i, command: c, depends: [d]}
"""


def test_cycles_are_named(problems_of: Check) -> None:
    problems = problems_of(CYCLE)
    assert [(p.line, p.field, p.message) for p in problems] == [
        (2, "tasks[0].depends", "dependency cycle: a -> b -> c -> a"),
        (5, "tasks[3].depends", "dependency cycle: d -> e -> d"),
    ]


MANY = """
name: Bad
tasks:
  - name: prep_data
    image: x
    command: [python]
    num_gpu: 1
  - name: train
    image: 3
    command: python
    depends: [prpe]
    args: [$FOO, '{^nope.outputs.x}']
    resource_type: pytorchjb
  - name: train
    command: python
"""


def test_every_problem_at_once(problems_of: Check) -> None:
    problems = problems_of(MANY)
    assert [(p.line, p.field) for p in problems] == [
        (1, "name"),
        (3, "tasks[0].name"),
        (6, "tasks[0].num_gpu"),
        (8, "tasks[1].image"),
        (10, "tasks[1].depends[0]"),
        (11, "tasks[1].args[0]"),
        (11, "tasks[1].args[1]"),
        (12, "tasks[1].resource_type"),
        (13, "tasks[2].image"),
        (13, "tasks[2].name"),
    ]


def test_invalid_name_does_not_cascade(problems_of: Check) -> None:
    text = "tasks:\n  - {name: my_task, image: i, command: c}\n  - {name: b, image: i, command: c, depends: my_task}\n"
    assert [p.field for p in problems_of(text)] == ["tasks[0].name"]


def test_load_raises_spec_error_with_every_problem(write_job: WriteJob) -> None:
    with pytest.raises(SpecError) as info:
        load_pipeline(write_job(MANY))
    error = info.value
    assert error.code == "invalid_pipeline"
    assert len(error.problems) == 10
    assert "main.yml:8:12: tasks[1].image: expected a string" in str(error)
    assert error.details["problems"][0]["field"] == "name"


def test_missing_main_yml(tmp_path: Path) -> None:
    (problem,) = validate_pipeline(tmp_path)
    assert problem.file == f"{tmp_path}/main.yml"
    assert f"no main.yml in pipeline directory {str(tmp_path.resolve())!r}" == problem.message


def test_missing_directory(tmp_path: Path) -> None:
    (problem,) = validate_pipeline(tmp_path / "nope")
    assert "does not exist" in problem.message


def test_job_outside_root(write_job: WriteJob, tmp_path: Path) -> None:
    job = write_job(one_task())
    (problem,) = validate_pipeline(job, root=tmp_path / "elsewhere")
    assert "is not inside the pipelines root" in problem.message


def test_recursive_alias(problems_of: Check) -> None:
    (problem,) = problems_of("a: &a [*a]\ntasks: []\n")
    assert "alias" in problem.message or "YAML" in problem.message


def _laughs(levels: int) -> str:
    """Nested aliases, ten uses a level ("billion laughs"): 10**levels values from a few hundred bytes."""
    lines = ["x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\ntasks:\n" + T


def test_an_alias_bomb_is_refused_at_once(problems_of: Check) -> None:
    """Before the budget, this took gigabytes and never finished (the server's VALIDATE of it among them)."""
    started = time.monotonic()
    (problem,) = problems_of(_laughs(9))
    assert (problem.line, problem.column, problem.field) == (5, 1, "x4")  # where the budget ran out
    assert "YAML aliases repeat more than 100,000 values" in problem.message
    assert time.monotonic() - started < 5


def test_aliases_within_the_budget_still_load(write_job: WriteJob) -> None:
    """Merges that nest (PyYAML merges each key once) and an anchor used by every task are not bombs."""
    merges = [f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: 1}}" for i in range(1, 40)]
    assert validate_pipeline(write_job("m0: &m0 {k0: 1}\n" + "\n".join(merges) + "\ntasks:\n" + T)) == []
    tasks = "".join(f"  - {{<<: *base, name: t{i}}}\n" for i in range(2000))
    spec = load_pipeline(write_job(f"base: &base {{image: img, command: run, args: [a, b, c]}}\ntasks:\n{tasks}"))
    assert len(spec.tasks) == 2000 and spec.tasks[-1].args == ("a", "b", "c")


def test_a_key_written_twice_is_a_problem_at_the_second(problems_of: Check) -> None:
    """Before, the last one won in silence: a second ``tasks:`` dropped every task above it."""
    text = "tasks:\n  - name: prep\n    image: a\n    image: b\n    command: c\ntasks:\n" + T
    problems = problems_of(text)
    assert [(p.line, p.column, p.field) for p in problems] == [(4, 5, "tasks[0].image"), (6, 1, "tasks")]
    assert problems[0].message == "'image' is written twice in this mapping (first at line 3)"


def test_a_key_given_by_a_merge_and_written_again_is_no_duplicate(problems_of: Check) -> None:
    assert problems_of("base: &b {image: a, command: c}\ntasks:\n  - {<<: *b, image: override, name: t}\n") == []


def test_yaml_nested_past_the_reader_s_depth_is_one_problem_not_a_traceback(problems_of: Check) -> None:
    (problem,) = problems_of("tasks: " + "[" * 5000 + "]" * 5000 + "\n")
    assert problem.message == "the YAML nests too deeply to be read"


def test_nul_characters_are_problems_where_they_are_written(problems_of: Check) -> None:
    """Before, they passed: the task then failed with "exit code 127" and an empty log."""
    text = 'tasks:\n  - name: a\n    image: x\n    command: "ec\\0ho"\n    args: ["a\\0b", ok]\n    env: {E: "x\\0y"}\n'
    problems = problems_of(text)
    assert [p.field for p in problems] == ["tasks[0].command", "tasks[0].args[0]", "tasks[0].env.E"]
    assert all("NUL character" in p.message for p in problems)


def test_a_long_argument_is_read_in_linear_time(problems_of: Check) -> None:
    """Before, each character was appended to a copy of the text read so far: 3 MB took minutes."""
    started = time.monotonic()
    assert problems_of(one_task(f"args: [{'a' * 3_000_000}]")) == []
    assert time.monotonic() - started < 10


def test_every_bad_key_of_a_mapping_is_reported_with_its_bad_values(problems_of: Check) -> None:
    """Before, the first bad key stopped the mapping's checks."""
    problems = problems_of(one_task('env: {"": x, "1X": y, "A=B": z, OK: [1]}'))
    assert [p.field for p in problems] == ["tasks[0].env.", "tasks[0].env.1X", "tasks[0].env.A=B", "tasks[0].env.OK"]


def test_a_long_wrong_value_is_quoted_short(problems_of: Check) -> None:
    """Before, the whole value was: a main.yml linked to /etc/passwd printed the file on one line."""
    (problem,) = problems_of("x" * 5000 + "\n")
    assert len(problem.message) < 200 and "of 5,000 characters" in problem.message
