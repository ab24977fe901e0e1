"""The first Odin's pipelines load unchanged and mean the same; what ``odin show`` prints loads back; problems
point at the right line of the file as the user named it; links out of the pipelines root are not read."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from odin_core.executors.base import Launch
from odin_core.executors.kubernetes.handlers.registry import handler_for
from odin_core.executors.kubernetes.podspec import PodOptions, pod_spec
from odin_core.spec import (
    EphemVolume,
    Mount,
    PipelineSpec,
    RetryPolicy,
    TaskSpec,
    instantiate,
    load_pipeline,
    spec_to_dict,
    validate_pipeline,
)

WriteJob = Callable[..., Path]
ORIGINAL = Path(__file__).parents[1] / "compat" / "pipelines" / "ner-original"

# Every task field set to something other than its default, in the spellings a user writes.
EVERY_FIELD = """
name: every.field
max_parallel: 3
on_failure: continue
tasks:
  - name: up
    image: img:1
    command: sh
    outputs: {x: /out/x}
  - name: all
    image: registry.example/img:2
    command: [python, -m, train]
    args: [--lr, "0.0010", --ids, $TASK_IDS, "{^up.outputs.x}", "$$HOME"]
    depends: ^up
    mounts: [{name: data, path: /data, claim: pvc}, {name: shm, path: /dev/shm}]
    ephem_volumes: [{name: shm, medium: Memory, size_limit: 1Gi}, {name: scratch, path: /scratch}]
    secrets: {name: creds, path: /etc/creds, sub_path: token, mode: 0400}
    config_maps: {name: cfg, path: /etc/cfg, sub_path: cfg.yml}
    cpu: {limits: 4.5, requests: 500m}
    memory: {limits: 4Gi, requests: 1Gi}
    num_gpus: 2
    security_context: {run_as_user: 1000, run_as_group: 1000, fs_group: 1152}
    pull_policy: Always
    node_selector: {gpu: "true"}
    resource_type: pytjob
    num_workers: 3
    inputs: [$WORK_PATH/data.csv, ^up.outputs.x]
    outputs: {model: $TASK_PATH/model.pt, shards: [a, b]}
    retries: {limit: 2, backoff: 1.5s, factor: 3, max_backoff: 2m}
    timeout: 1h30m
    env: {LOG_LEVEL: debug, N: 3}
    request_early_exit: true
"""


def _saved_as_main_yml(spec: PipelineSpec, write_job: WriteJob, name: str) -> PipelineSpec:
    """What `odin show` prints (spec_to_dict without locations, as YAML), saved as main.yml and loaded."""
    data = spec_to_dict(spec)
    data.pop("locations")
    return load_pipeline(write_job(yaml.safe_dump(data, sort_keys=False), name=name))


def test_every_field_is_covered_by_the_round_trip_pipeline(write_job: WriteJob) -> None:
    task = load_pipeline(write_job(EVERY_FIELD)).task("all")
    defaults = TaskSpec("n", "i", ("c",))
    same = [f.name for f in dataclasses.fields(TaskSpec) if getattr(task, f.name) == getattr(defaults, f.name)]
    assert same == [], f"fields left at their default, so not round-tripped: {same}"
    assert dataclasses.fields(RetryPolicy) and all(
        getattr(task.retries, f.name) != f.default for f in dataclasses.fields(RetryPolicy)
    )


def test_what_show_prints_validates_and_loads_back_to_the_same_spec(write_job: WriteJob) -> None:
    spec = load_pipeline(write_job(EVERY_FIELD))
    back = _saved_as_main_yml(spec, write_job, "shown")
    assert back.tasks == spec.tasks
    assert (back.name, back.max_parallel, back.on_failure) == (spec.name, spec.max_parallel, spec.on_failure)
    task = spec_to_dict(spec)["tasks"][1]
    assert task["timeout"] == 5400.0 and "timeout_s" not in task
    assert task["retries"] == {"limit": 2, "backoff": 1.5, "factor": 3.0, "max_backoff": 120.0}


def test_records_written_with_the_old_attribute_names_still_load() -> None:
    from odin_core.spec import spec_from_dict

    old = {
        "name": "x",
        "tasks": [
            {
                "name": "t",
                "image": "i",
                "command": ["c"],
                "timeout_s": 5.0,
                "retries": {"limit": 1, "backoff_s": 2.0, "factor": 2.0, "max_backoff_s": 9.0},
            }
        ],
    }
    task = spec_from_dict(old).tasks[0]
    assert task.timeout_s == 5.0 and task.retries == RetryPolicy(1, 2.0, 2.0, 9.0)


# -- the first Odin's format --------------------------------------------------------------------------------


def test_the_original_pipeline_loads_and_means_the_same() -> None:
    spec = load_pipeline(ORIGINAL)
    assert spec.name == "bert.ner"
    prepare, train, evaluate = spec.tasks
    assert prepare.depends == () and prepare.mounts == (Mount("data", "/data", "data-rw"),)
    assert train.depends == ("prepare",) and evaluate.depends == ("train",)
    assert train.mounts == (Mount("data", "/data", "data-rw"), Mount("dshm", "/dev/shm"))
    assert train.ephem_volumes == (EphemVolume("dshm", None, "emptyDir", "Memory"),)
    assert (train.cpu.limits, train.cpu.requests) == ("4.5", "1.0")  # type: ignore[union-attr]
    assert (train.resource_type, train.num_workers, train.num_gpus) == ("PyTorchJob", 2, 1)
    assert train.secrets[0].sub_path == "odin-cred.yml" and train.config_maps[0].name == "ssh-config"


def _launch(spec: PipelineSpec, name: str) -> Launch:
    run = instantiate(spec, pipe_id="bert-ner-abcd1234", root_path="/pipelines", data_path="/data/runs")
    task = run.task(name)
    return Launch("bert-ner-abcd1234", task, 1, "/pipelines/ner", "/data/runs/bert-ner-abcd1234")


def test_the_original_pipeline_builds_the_pods_the_original_did() -> None:
    """On a cluster: the claimless mount places the emptyDir at /dev/shm, the claim becomes a PVC volume."""
    spec = load_pipeline(ORIGINAL)
    pod = pod_spec(_launch(spec, "train"), PodOptions(labels={}))
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["dshm"] == {"name": "dshm", "emptyDir": {"medium": "Memory"}}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "data-rw"}
    mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["/dev/shm"] == "dshm" and mounts["/data"] == "data"
    assert mounts["/etc/odind/odin-cred.yml"].startswith("secret-") and "/etc/ssh/ssh_config" in mounts
    assert pod["securityContext"] == {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1152}
    assert pod["nodeSelector"] == {"gpu": "true"}
    resources = pod["containers"][0]["resources"]
    assert resources == {"requests": {"cpu": "1.0"}, "limits": {"cpu": "4.5", "nvidia.com/gpu": "1"}}
    handler = handler_for("pytjob")
    assert handler is not None
    (job,) = handler.manifests(_launch(spec, "train"), "bert-ner-abcd1234-train-1", PodOptions(labels={}))
    replicas = job["spec"]["pytorchReplicaSpecs"]
    assert replicas["Worker"]["replicas"] == 2
    worker = replicas["Worker"]["template"]["spec"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in worker["volumes"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param("mount: {name: shm, path: /dev/shm}", "names no ephem_volume", id="single"),
        pytest.param("mounts: [{name: d, path: /d, claim: c}, {name: x, path: /x}]", "mount 'x'", id="list"),
    ],
)
def test_a_claimless_mount_must_name_an_ephem_volume(write_job: WriteJob, fields: str, message: str) -> None:
    (problem,) = validate_pipeline(write_job(f"tasks:\n  - name: t\n    image: i\n    command: c\n    {fields}\n"))
    assert message in problem.message and problem.line == 5


# -- where problems point -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        pytest.param(
            "tasks:\n  - name: a\n    image: x\n    command: c\n    env: {A: '1'}\n    args: [--lr, 0.1\n"
            "  - name: b\n    image: y\n",
            6,
            11,
            "'[' is not closed",
            id="unclosed-bracket-on-line-6",
        ),
        pytest.param(
            "name: x\ntasks:\n  - {name: a, image: x\n  - name: b\n", 3, 5, "'{' is not closed", id="unclosed-brace"
        ),
        pytest.param("tasks:\n  - name: 'a\n    image: x\n", 2, 11, "quote is not closed", id="unclosed-quote"),
        pytest.param("tasks:\n  - name: a\n   image: x\n", 3, 4, "expected <block end>", id="indentation"),
        pytest.param("tasks:\n  - name: a: b\n", 2, 12, "mapping values are not allowed", id="colon"),
    ],
)
def test_yaml_errors_point_at_the_line_to_fix(
    write_job: WriteJob, text: str, line: int, column: int, words: str
) -> None:
    (problem,) = validate_pipeline(write_job(text))
    assert (problem.line, problem.column) == (line, column), problem
    assert words in problem.message


def test_problems_name_the_file_by_the_path_the_user_gave(
    write_job: WriteJob, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = write_job("tasks:\n  - {name: a, image: x}\n", name="team/job")
    monkeypatch.chdir(tmp_path)
    assert {p.file for p in validate_pipeline(Path("team/job"))} == {"team/job/main.yml"}
    assert {p.file for p in validate_pipeline(job)} == {f"{job}/main.yml"}
    assert {p.file for p in validate_pipeline(job, root=tmp_path)} == {"team/job/main.yml"}
    assert str(validate_pipeline(Path("team/job"))[0]).startswith("team/job/main.yml:2:5: ")


def test_the_loader_does_not_read_a_main_yml_linked_out_of_the_root(write_job: WriteJob, tmp_path: Path) -> None:
    outside = write_job("name: stolen\ntasks:\n  - {name: a, image: x, command: c}\n", name="outside/job")
    root = tmp_path / "root"
    (root / "linked").mkdir(parents=True)
    (root / "linked" / "main.yml").symlink_to(outside / "main.yml")
    (problem,) = validate_pipeline(root / "linked", root=root)
    assert "outside the pipelines root" in problem.message
    (root / "inside").mkdir()
    (root / "inside" / "main.yml").symlink_to(Path("..") / "linked-target.yml")
    (root / "linked-target.yml").write_text("tasks:\n  - {name: a, image: x, command: c}\n")
    assert validate_pipeline(root / "inside", root=root) == []
    assert validate_pipeline(root / "linked") == []  # without a root (a local directory) links are followed
