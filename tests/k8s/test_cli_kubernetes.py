"""`odin --executor kubernetes …`: the CLI drives the engine in-process against the real control plane."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from kubernetes import client

ROOT = Path(__file__).resolve().parents[2]


def odin(kube, namespace: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ODIN_HOME": str(home)}
    cmd = [sys.executable, "-m", "odin_client", "--executor", "kubernetes", "--kubeconfig", kube.kubeconfig]
    return subprocess.run(
        [*cmd, "--namespace", namespace, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_run_status_logs_events_cleanup_on_a_cluster(kube, namespace, tmp_path):
    ran = odin(kube, namespace, tmp_path, "run", "samples/hello", "-o", "json")
    assert ran.returncode == 0, ran.stderr
    record = json.loads(ran.stdout)
    run_id = record["run_id"]
    assert record["executor"] == "kubernetes" and record["status"] == "DONE"
    (greet,) = record["tasks"]
    assert greet["resource_id"] and greet["status"] == "SUCCEEDED"

    status = odin(kube, namespace, tmp_path, "status", run_id, "--tasks")
    assert status.returncode == 0, status.stderr
    assert f"{run_id} --> DONE" in status.stdout and "greet" in status.stdout

    logs = odin(kube, namespace, tmp_path, "logs", f"{run_id}--greet")
    assert logs.returncode == 0 and logs.stdout.strip(), logs.stderr  # captured from the pod before deletion

    # the pod's Scheduled event, at least; kube-scheduler writes it in the background, late on a busy
    # control plane (after a benchmark's thousands of pods it works through a backlog of their events)
    deadline = time.monotonic() + 30
    while True:
        events = odin(kube, namespace, tmp_path, "events", run_id, "-o", "json")
        assert events.returncode == 0, events.stderr
        if "cluster_events" in json.loads(events.stdout) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert "cluster_events" in json.loads(events.stdout), events.stdout

    cleaned = odin(kube, namespace, tmp_path, "cleanup", run_id, "--db", "--fs", "-o", "json")
    assert cleaned.returncode == 0, cleaned.stderr
    pods = client.CoreV1Api(kube.api_client).list_namespaced_pod(namespace, label_selector=f"odin.ml/run={run_id}")
    assert pods.items == []
    gone = odin(kube, namespace, tmp_path, "status", run_id)
    assert f"no run matches {run_id!r}" in gone.stdout + gone.stderr
