"""The real Engine (SQLite store) driving the Kubernetes executor on the local control plane."""

from __future__ import annotations

import asyncio
import dataclasses
import textwrap
from pathlib import Path

import pytest
from executor_support import Annotator, fails, lasts, outputs, referenced_outputs, wait_no_objects
from kubernetes import client
from odin_core.engine import Engine
from odin_core.executors.kubernetes import KubernetesExecutor
from odin_core.model import RunStatus, TaskStatus
from odin_core.settings import KubernetesSettings
from odin_core.spec import load_pipeline
from odin_core.store.sqlite import SqliteStore

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted(p.parent for p in (REPO / "samples").glob("*/main.yml"))
RUN_TIMEOUT_S = 60


class Odin:
    def __init__(self, engine: Engine, executor: KubernetesExecutor, annotator: Annotator, root: Path) -> None:
        self.engine, self.executor, self.annotator, self.root = engine, executor, annotator, root

    def write(self, job: str, yaml_text: str) -> Path:
        job_dir = self.root / job
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / "main.yml").write_text(textwrap.dedent(yaml_text))
        return job_dir

    async def start(self, job_dir: Path) -> str:
        await self.engine.start(adopt=False)
        spec = load_pipeline(job_dir, root=job_dir.parent)
        return (await self.engine.submit(spec)).run_id

    async def run(self, job_dir: Path):
        run_id = await self.start(job_dir)
        final = await asyncio.wait_for(self.engine.wait(run_id), RUN_TIMEOUT_S)
        return final, {t.name: t for t in await self.engine.store.get_tasks(run_id)}


@pytest.fixture
async def odin(kube, namespace, tmp_path: Path):
    store = SqliteStore(tmp_path / "odin.db")
    await store.open()
    annotator = Annotator()
    settings = KubernetesSettings(kubeconfig=kube.kubeconfig, namespace=namespace, pending_timeout_s=60)
    executor = KubernetesExecutor(tmp_path / "data", settings, decorate=annotator)
    engine = Engine(store, executor, root_path=tmp_path / "jobs", data_path=tmp_path / "data")
    yield Odin(engine, executor, annotator, tmp_path / "jobs")
    await engine.close()
    await executor.close()
    await store.close()


async def test_mixed_kinds_pass_outputs_through_references(odin, kube, namespace):
    job = odin.write(
        "mixed",
        """
        name: mixed
        tasks:
          - name: prep
            image: odin/prep:1
            command: python
            args: [prep.py]
          - name: train
            image: odin/train:1
            command: [torchrun, train.py]
            args: ["--data", "^prep.outputs.path"]
            resource_type: pytjob
            num_workers: 2
            num_gpus: 1
          - name: serve
            image: odin/serve:1
            command: serve
            args: ["--model={^train.outputs.model}"]
            resource_type: deploy
          - name: report
            image: odin/report:1
            command: report
            args: ["^serve.resource_id", "^train.outputs.model"]
            resource_type: Job
        """,
    )
    odin.annotator.per_task.update(prep=outputs(path="/data/set-7"), train=outputs(model="s3://models/7"))
    final, tasks = await odin.run(job)
    assert final.status is RunStatus.DONE, final.message
    assert all(t.status is TaskStatus.SUCCEEDED for t in tasks.values())
    assert tasks["train"].args == ("--data", "/data/set-7")
    assert tasks["serve"].args == ("--model=s3://models/7",)
    assert tasks["report"].args == (tasks["serve"].resource_id, "s3://models/7")
    assert tasks["train"].resource_type == "PyTorchJob"
    job_obj = client.CustomObjectsApi(kube.api_client).get_namespaced_custom_object(
        "kubeflow.org", "v1", namespace, "pytorchjobs", tasks["train"].resource_id
    )
    assert job_obj["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 2
    records = list(tasks.values())
    removed = await odin.executor.cleanup(final.run_id, records)
    assert removed == {name: True for name in tasks}
    assert await wait_no_objects(kube.api_client, namespace, final.run_id) == []


async def test_retries_get_a_fresh_object_per_attempt(odin, kube, namespace):
    job = odin.write(
        "flaky",
        """
        tasks:
          - {name: flaky, image: odin/x:1, command: run, retries: {limit: 1, backoff: 0.1}}
        """,
    )
    odin.annotator.per_task["flaky"] = fails(2, "flaky failure")
    final, tasks = await odin.run(job)
    assert final.status is RunStatus.TERMINATED
    assert tasks["flaky"].status is TaskStatus.FAILED and tasks["flaky"].attempt == 2
    pods = client.CoreV1Api(kube.api_client).list_namespaced_pod(namespace, label_selector="odin.ml/task=flaky")
    assert sorted(p.metadata.name for p in pods.items) == [f"{final.run_id}--flaky-1", f"{final.run_id}--flaky-2"]
    log = (odin.engine.data_path / final.run_id / ".odin" / "logs" / "flaky.log").read_text()
    assert "----- attempt 2 -----" in log


async def test_timeout_kills_the_attempt(odin, kube, namespace):
    job = odin.write("slow", "tasks: [{name: slow, image: odin/x:1, command: run, timeout: 2}]\n")
    odin.annotator.per_task["slow"] = lasts(60)
    final, tasks = await odin.run(job)
    assert tasks["slow"].status is TaskStatus.FAILED and "timed out" in tasks["slow"].message
    assert await wait_no_objects(kube.api_client, namespace, final.run_id) == []


async def test_stop_in_the_middle_cancels_and_removes_objects(odin, kube, namespace):
    job = odin.write(
        "stoppable",
        """
        tasks:
          - {name: long, image: odin/x:1, command: run, resource_type: tfjob}
          - {name: after, image: odin/x:1, command: run, depends: long}
        """,
    )
    odin.annotator.per_task["long"] = lasts(60)
    run_id = await odin.start(job)
    async for ev in odin.engine.watch(run_id):
        if ev.kind == "task" and ev.task == "long" and ev.status == "RUNNING":
            break
    await odin.engine.stop(run_id, "enough")
    final = await asyncio.wait_for(odin.engine.wait(run_id), RUN_TIMEOUT_S)
    tasks = {t.name: t for t in await odin.engine.store.get_tasks(run_id)}
    assert final.status is RunStatus.TERMINATED
    assert tasks["long"].status is TaskStatus.CANCELLED and tasks["after"].status is TaskStatus.SKIPPED
    assert await wait_no_objects(kube.api_client, namespace, run_id) == []


def _fails_first_attempt(launch) -> dict[str, str]:
    return fails(3, "failing on purpose") if launch.attempt < 2 else {}


# How each sample behaves when its code really runs, played through kwok's annotations, and how it ends.
SCENARIOS: dict[str, tuple[dict, RunStatus, dict[str, TaskStatus]]] = {
    "retry": (
        {"flaky": _fails_first_attempt, "slow": lasts(30)},
        RunStatus.TERMINATED,
        {"flaky": TaskStatus.SUCCEEDED, "after-flaky": TaskStatus.SUCCEEDED, "slow": TaskStatus.FAILED},
    ),
}


@pytest.mark.skipif(not SAMPLES, reason="no samples/*/main.yml yet")
@pytest.mark.parametrize("sample", SAMPLES, ids=[p.name for p in SAMPLES])
async def test_every_sample_runs_on_the_cluster_unchanged(odin, kube, namespace, sample: Path):
    spec = load_pipeline(sample, root=sample.parent)
    texts = [str(a) for t in spec.tasks for a in t.args]
    odin.annotator.per_task.update(referenced_outputs(texts))
    plays, expected_run, expected_tasks = SCENARIOS.get(sample.name, ({}, RunStatus.DONE, {}))
    odin.annotator.per_task.update(plays)
    run_id = await odin.start(sample)
    final = await asyncio.wait_for(odin.engine.wait(run_id), RUN_TIMEOUT_S)
    tasks = {t.name: t for t in await odin.engine.store.get_tasks(run_id)}
    assert final.status is expected_run, final.message
    for name, task in tasks.items():
        assert task.status is expected_tasks.get(name, TaskStatus.SUCCEEDED), (name, task.message)
    await odin.executor.cleanup(run_id, list(tasks.values()))
    assert await wait_no_objects(kube.api_client, namespace, run_id) == []


async def test_a_run_is_removed_ttl_after_it_ends(odin, kube, namespace):
    """With ttl_after_finished_s, even a Deployment (which stays up while the run lives) goes after the run."""
    odin.executor.settings = dataclasses.replace(odin.executor.settings, ttl_after_finished_s=1.0)
    job = odin.write(
        "ttl",
        """
        name: ttl
        tasks:
          - {name: step, image: odin/step:1, command: step}
          - {name: serve, image: odin/serve:1, command: serve, resource_type: deploy, depends: step}
        """,
    )
    final, tasks = await odin.run(job)
    assert final.status is RunStatus.DONE, final.message
    apps = client.AppsV1Api(kube.api_client)
    assert apps.read_namespaced_deployment(tasks["serve"].resource_id, namespace)  # still there at the end
    assert await wait_no_objects(kube.api_client, namespace, final.run_id) == []
