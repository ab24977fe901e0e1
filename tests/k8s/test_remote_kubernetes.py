"""A core server started with the Kubernetes executor serves remote clients: the same samples, on the cluster."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client
from odin_client.remote import RemoteOdin
from odin_core.api import Odin
from odin_core.model import RunStatus, TaskStatus
from odin_core.service import ServiceSettings, serve_odin
from odin_core.settings import Settings

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


async def test_a_remote_client_runs_a_sample_on_the_cluster(kube, namespace, tmp_path):
    env = {
        "ODIN_HOME": str(tmp_path / "home"),
        "ODIN_EXECUTOR": "kubernetes",
        "ODIN_KUBECONFIG": kube.kubeconfig,
        "ODIN_NAMESPACE": namespace,
    }
    odin = await Odin.open(Settings.from_env(env), root=SAMPLES)
    try:
        service = ServiceSettings(host="127.0.0.1", port=0, root_path=SAMPLES)
        async with serve_odin(odin, service) as server, RemoteOdin(server.url) as remote:
            run = await remote.submit("hello")
            final = await remote.wait(run.run_id)
            view = await remote.run(run.run_id)
            logs = [line async for line in remote.logs(f"{run.run_id}--greet")]
            cleaned = await remote.cleanup(run.run_id)
    finally:
        await odin.close()
    assert (final.status, final.executor) == (RunStatus.DONE, "kubernetes"), final.message
    assert view.tasks[0].status is TaskStatus.SUCCEEDED and view.tasks[0].resource_id
    assert logs  # captured from the pod through the API server
    assert cleaned[0].cleaned_from_k8s
    pods = client.CoreV1Api(kube.api_client).list_namespaced_pod(namespace, label_selector=f"odin.ml/run={run.run_id}")
    assert all(p.metadata.deletion_timestamp for p in pods.items)  # gone, or going (kwok deletes them)
