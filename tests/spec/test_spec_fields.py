"""Every task field, alias and form loads into the model as documented."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from odin_core.spec import (
    ConfigMapMount,
    EphemVolume,
    Mount,
    PipelineSpec,
    Resources,
    RetryPolicy,
    SecretMount,
    SecurityContext,
    load_pipeline,
)

WriteJob = Callable[..., Path]  # the write_job fixture of conftest.py

Load = Callable[[str], PipelineSpec]

FIELDS = [
    pytest.param("", "args", (), id="args-default"),
    pytest.param(
        "args: [a, 1, 0.0010, true, 1e3]", "args", ("a", "1", "0.0010", "true", "1e3"), id="args-scalars-as-written"
    ),
    pytest.param("args:", "args", (), id="args-null"),
    pytest.param("command: [python, -m, x]", "command", ("python", "-m", "x"), id="command-list"),
    pytest.param("depends:", "depends", (), id="depends-null"),
    pytest.param("mount: {name: d, path: /d, claim: c}", "mounts", (Mount("d", "/d", "c"),), id="mount-dict"),
    pytest.param(
        "mounts: [{name: d, path: /d, claim: pvc}, {name: e, path: /e}]\nephem_volume: {name: e}",
        "mounts",
        (Mount("d", "/d", "pvc"), Mount("e", "/e")),
        id="mounts-list",
    ),
    pytest.param(
        "ephem_volume: {name: shm, path: /dev/shm, medium: Memory, size_limit: 1Gi}",
        "ephem_volumes",
        (EphemVolume("shm", "/dev/shm", "emptyDir", "Memory", "1Gi"),),
        id="ephem-volume",
    ),
    pytest.param(
        "ephemVolumes: [{name: s, path: /s, type: emptyDir, sizeLimit: 512Mi}]",
        "ephem_volumes",
        (EphemVolume("s", "/s", size_limit="512Mi"),),
        id="ephemVolumes-camel",
    ),
    pytest.param(
        "secret: {name: s, path: /s, sub_path: key, mode: 0400}",
        "secrets",
        (SecretMount("s", "/s", "key", 0o400),),
        id="secret",
    ),
    pytest.param("secrets: [{name: s, path: /s, subPath: k}]", "secrets", (SecretMount("s", "/s", "k"),), id="secrets"),
    pytest.param("config_map: {name: c, path: /c}", "config_maps", (ConfigMapMount("c", "/c"),), id="config-map"),
    pytest.param(
        "configMaps: [{name: c, path: /c, subPath: a.yml}]",
        "config_maps",
        (ConfigMapMount("c", "/c", "a.yml"),),
        id="configMaps-camel",
    ),
    pytest.param("cpu: {limits: 2, requests: 500m}", "cpu", Resources("500m", "2"), id="cpu"),
    pytest.param("cpu: {limits: 0.5}", "cpu", Resources(None, "0.5"), id="cpu-number"),
    pytest.param("memory: {limits: 4Gi, requests: 1G}", "memory", Resources("1G", "4Gi"), id="memory"),
    pytest.param("num_gpus: 2", "num_gpus", 2, id="num_gpus"),
    pytest.param("numGpus: 1", "num_gpus", 1, id="numGpus"),
    pytest.param(
        "security_context: {run_as_user: 1000, run_as_group: 100, fs_group: 10}",
        "security_context",
        SecurityContext(1000, 100, 10),
        id="security_context",
    ),
    pytest.param(
        "securityContext: {runAsUser: 1, runAsGroup: 2, fsGroup: 3}",
        "security_context",
        SecurityContext(1, 2, 3),
        id="securityContext",
    ),
    pytest.param("", "pull_policy", "IfNotPresent", id="pull_policy-default"),
    pytest.param("pull_policy: Always", "pull_policy", "Always", id="pull_policy"),
    pytest.param("pullPolicy: never", "pull_policy", "Never", id="pullPolicy-any-case"),
    pytest.param(
        "node_selector: {gpu: a100, fast: true}", "node_selector", {"gpu": "a100", "fast": "true"}, id="node_selector"
    ),
    pytest.param("nodeSelector: {zone: '1'}", "node_selector", {"zone": "1"}, id="nodeSelector"),
    pytest.param("", "resource_type", "Pod", id="resource_type-default"),
    pytest.param("resource_type: pytjob", "resource_type", "PyTorchJob", id="resource_type-alias"),
    pytest.param("resourceType: SVC", "resource_type", "Service", id="resourceType"),
    pytest.param("num_workers: 4", "num_workers", 4, id="num_workers"),
    pytest.param("numWorkers: 2", "num_workers", 2, id="numWorkers"),
    pytest.param("inputs: [/data/a, $WORK_PATH/b]", "inputs", ("/data/a", "$WORK_PATH/b"), id="inputs"),
    pytest.param(
        "outputs: {model: /m.pt, shards: [/a, /b]}", "outputs", {"model": "/m.pt", "shards": ("/a", "/b")}, id="outputs"
    ),
    pytest.param("", "retries", RetryPolicy(), id="retries-default"),
    pytest.param("retries: 3", "retries", RetryPolicy(limit=3), id="retries-int"),
    pytest.param(
        "retries: {limit: 2, backoff: 500ms, factor: 3, max_backoff: 2m}",
        "retries",
        RetryPolicy(2, 0.5, 3.0, 120.0),
        id="retries-dict",
    ),
    pytest.param(
        "retries: {limit: 1, backoff: 5, maxBackoff: 1h}",
        "retries",
        RetryPolicy(1, 5.0, 2.0, 3600.0),
        id="retries-camel",
    ),
    pytest.param("timeout: 90", "timeout_s", 90.0, id="timeout-seconds"),
    pytest.param("timeout: 1h30m", "timeout_s", 5400.0, id="timeout-compound"),
    pytest.param("timeout: '2.5'", "timeout_s", 2.5, id="timeout-numeric-string"),
    pytest.param("", "timeout_s", None, id="timeout-default"),
    pytest.param(
        "env: {A: x, B: 1, C: false, D.e-f: y}", "env", {"A": "x", "B": "1", "C": "false", "D.e-f": "y"}, id="env"
    ),
    pytest.param("request_early_exit: true", "request_early_exit", True, id="request_early_exit"),
    pytest.param("requestEarlyExit: false", "request_early_exit", False, id="requestEarlyExit"),
]


@pytest.mark.parametrize(("extra", "attr", "expected"), FIELDS)
def test_task_field(load_task: Load, extra: str, attr: str, expected: Any) -> None:
    assert getattr(load_task(extra).tasks[0], attr) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("run", ("run",), id="string"),
        pytest.param("'python train.py'", ("python train.py",), id="string-with-space"),
        pytest.param("[bash, -c, 'echo hi']", ("bash", "-c", "echo hi"), id="list"),
    ],
)
def test_command_forms(write_job: WriteJob, text: str, expected: tuple[str, ...]) -> None:
    spec = load_pipeline(write_job(f"tasks:\n  - name: t\n    image: i\n    command: {text}\n"))
    assert spec.tasks[0].command == expected


@pytest.mark.parametrize(
    ("depends", "expected"),
    [
        pytest.param("a", ("a",), id="string"),
        pytest.param("^a", ("a",), id="caret-string"),
        pytest.param("[a, ^b, a]", ("a", "b"), id="list-dedup"),
        pytest.param("", (), id="null"),
    ],
)
def test_depends_forms(write_job: WriteJob, depends: str, expected: tuple[str, ...]) -> None:
    text = """
    tasks:
      - {name: a, image: i, command: c}
      - {name: b, image: i, command: c}
      - name: c
        image: i
        command: c
        depends: DEPS
    """.replace("DEPS", depends)
    assert load_pipeline(write_job(text)).task("c").depends == expected


def test_pipeline_defaults_and_top_level(write_job: WriteJob, tmp_path: Path) -> None:
    job = write_job("tasks: [{name: t, image: i, command: c}]\n", name="team/job")
    spec = load_pipeline(job, root=tmp_path)
    assert (spec.name, spec.job, spec.path, spec.max_parallel, spec.on_failure) == (
        "flow",
        "team/job",
        job.resolve(),
        None,
        "stop",
    )
    assert load_pipeline(job).job == "job"


@pytest.mark.parametrize(
    ("top", "attr", "expected"),
    [
        pytest.param("name: my-flow.v2", "name", "my-flow.v2", id="name"),
        pytest.param("max_parallel: 3", "max_parallel", 3, id="max_parallel"),
        pytest.param("maxParallel: 2", "max_parallel", 2, id="maxParallel"),
        pytest.param("on_failure: continue", "on_failure", "continue", id="on_failure"),
        pytest.param("onFailure: stop", "on_failure", "stop", id="onFailure"),
        pytest.param("anchors: {a: 1}", "name", "flow", id="unknown-top-level-ignored"),
    ],
)
def test_pipeline_fields(write_job: WriteJob, top: str, attr: str, expected: Any) -> None:
    spec = load_pipeline(write_job(f"{top}\ntasks: [{{name: t, image: i, command: c}}]\n"))
    assert getattr(spec, attr) == expected


def test_anchors_aliases_and_merge_keys(write_job: WriteJob) -> None:
    spec = load_pipeline(
        write_job(
            """
            base: &base
              image: python:3.11
              command: python
              cpu: &cpu {limits: 2}
            extra: &extra
              num_gpus: 1
            tasks:
              - name: a
                <<: *base
              - name: b
                <<: [*base, *extra]
                image: override
                memory: *cpu
            """
        )
    )
    a, b = spec.tasks
    assert (a.image, a.command, a.cpu) == ("python:3.11", ("python",), Resources(limits="2"))
    assert (b.image, b.num_gpus, b.memory) == ("override", 1, Resources(limits="2"))


def test_locations_point_at_the_text(write_job: WriteJob) -> None:
    job = write_job("tasks:\n  - name: t\n    image: i\n    command: c\n    num_gpus: 2\n")
    spec = load_pipeline(job, root=job.parent)
    loc = spec.locations["tasks[0].num_gpus"]
    assert (loc.file, loc.line, loc.column) == ("job/main.yml", 5, 15)
    assert spec.locations["tasks[0]"].line == 2


def test_spec_is_immutable(load_task: Load) -> None:
    spec = load_task("")
    with pytest.raises(AttributeError):
        spec.name = "x"  # type: ignore[misc]


def test_the_documented_example_is_valid(write_job: WriteJob) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "pipelines.md").read_text()
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    spec = load_pipeline(write_job(example))
    assert [t.name for t in spec.tasks] == ["prep", "train", "evaluate", "report"]
    assert spec.task("train").depends == ("prep",)
    assert spec.task("evaluate").depends == ("train",)
    assert (spec.max_parallel, spec.on_failure) == (4, "continue")
