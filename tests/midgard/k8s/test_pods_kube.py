"""Pod UIDs resolved to Odin tasks through a real kube-apiserver, with a least-privilege service account; node
capacity for the gateway the same way."""

from __future__ import annotations

import json

from kubernetes import client
from midgard.agent import Agent
from midgard.pods import PodResolver
from midgard.report import PodFacts
from midgard_support import report_for, settings
from odin_http.nodes_kube import NodeCapacity
from odin_http.nodes_model import NodeLimits, NodeRegistry

POD_RULES = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}]
NODE_RULES = [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]}]
TIMEOUT_S = 30


def pod(name: str, node: str, labels: dict[str, str], task_id: str | None = None) -> dict:
    env = [{"name": "ODIN_TASK_ID", "value": task_id}] if task_id else []
    return {"metadata": {"name": name, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "main", "image": "busybox", "env": env}],
                     "tolerations": [{"operator": "Exists"}]}}  # fmt: skip


def make_pods(kube, ns: str) -> dict[str, str]:
    core = client.CoreV1Api(kube.api_client)
    labels = {"odin.ml/run": "sweep-ab12", "odin.ml/task": "train"}
    uids = {}
    for name, node, lab, tid in [
        ("train-1", "kwok-gpu-0", labels, "sweep-ab12--train"),
        ("labels-only", "kwok-gpu-0", {"odin.ml/run": "sweep-ab12", "odin.ml/task": "eval"}, None),
        ("not-odin", "kwok-gpu-0", {}, None),
        ("elsewhere", "kwok-gpu-1", labels, "sweep-ab12--train"),
    ]:
        uids[name] = core.create_namespaced_pod(ns, pod(name, node, lab, tid)).metadata.uid
    return uids


def resolver(kube, token: str, ca: str, namespaces: list[str], node: str = "kwok-gpu-0") -> PodResolver:
    return PodResolver(api_url=kube.api_client.configuration.host, namespaces=namespaces, node=node,
                       token_file=token, ca_file=ca, relist_s=0.0)  # fmt: skip


async def test_uids_become_tasks_with_a_namespaced_list_only(kube, namespace, service_account_token):
    uids = make_pods(kube, namespace)
    token, ca = service_account_token(namespace, "midgard", POD_RULES)
    res = resolver(kube, token, ca, [namespace])
    try:
        found = await res.resolve(uids.values())
    finally:
        await res.close()
    assert res.last_error == ""
    assert found == {
        uids["train-1"]: PodFacts(uids["train-1"], namespace, "train-1", "sweep-ab12", "train", "sweep-ab12--train"),
        uids["labels-only"]: PodFacts(uids["labels-only"], namespace, "labels-only", "sweep-ab12", "eval",
                                      "sweep-ab12--eval"),
        uids["not-odin"]: PodFacts(uids["not-odin"], namespace, "not-odin"),
    }  # fmt: skip
    assert uids["elsewhere"] not in found  # another node's pod is not even listed


async def test_a_namespace_the_role_does_not_cover_is_refused_and_the_cache_kept(kube, namespace,
                                                                                 service_account_token):  # fmt: skip
    uids = make_pods(kube, namespace)
    token, ca = service_account_token(namespace, "midgard", POD_RULES)
    res = resolver(kube, token, ca, [namespace])
    try:
        assert uids["train-1"] in await res.resolve([uids["train-1"]])
        res.namespaces = (namespace, "kube-system")
        still = await res.resolve([uids["train-1"], "00000000-0000-4000-8000-000000000000"])
    finally:
        await res.close()
    assert "HTTP 403" in res.last_error and "kube-system" in res.last_error
    assert uids["train-1"] in still  # what was known stays known


async def test_a_wrong_token_is_one_logged_problem(kube, namespace, service_account_token, tmp_path):
    _, ca = service_account_token(namespace, "midgard", POD_RULES)
    bad = tmp_path / "bad-token"
    bad.write_text("not-a-token")
    res = resolver(kube, str(bad), ca, [namespace])
    try:
        assert await res.resolve(["0f0f0f0f-0000-4000-8000-000000000000"]) == {}
    finally:
        await res.close()
    assert "HTTP 401" in res.last_error


async def test_the_agent_reports_which_task_holds_which_gpu(kube, namespace, service_account_token, board, replay,
                                                            tmp_path):  # fmt: skip
    uids = make_pods(kube, namespace)
    token, ca = service_account_token(namespace, "midgard", POD_RULES)
    table = board("t4")
    replay(table)
    proc = tmp_path / "proc" / "25384"  # the pid the T4 table's process has
    proc.mkdir(parents=True)
    uid = uids["train-1"].replace("-", "_")
    (proc / "cgroup").write_text(f"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{uid}.slice/"
                                 f"cri-containerd-{'ab' * 32}.scope\n")  # fmt: skip
    (proc / "cmdline").write_bytes(b"python\x00train.py\x00")
    api = kube.api_client.configuration.host
    agent = Agent(settings(node_name="kwok-gpu-0", proc_root=str(tmp_path / "proc"), pod_namespaces=(namespace,),
                           kube_api_url=api, kube_token_file=token, kube_ca_file=ca))  # fmt: skip
    try:
        rep = await agent.collect()
    finally:
        await agent.close()
    (held,) = rep["tasks"]
    assert (held["taskId"], held["pod"], held["namespace"], held["gpuIndex"], held["usedMemory"]) == (
        "sweep-ab12--train",
        "train-1",
        namespace,
        0,
        26,
    )
    (p,) = rep["gpus"][0]["processes"]
    assert (p["process_name"], p["podUid"], p["containerId"]) == ("python", uids["train-1"], "ab" * 32)


async def test_gateway_node_capacity_from_kubernetes(kube, namespace, service_account_token):
    token, ca = service_account_token(namespace, "gateway", NODE_RULES, cluster=True)
    registry = NodeRegistry(NodeLimits())
    registry.ingest([report_for("kwok-gpu-0", ts=1, seq=1)], now=1)
    cap = NodeCapacity(registry, url=kube.api_client.configuration.host, token_file=token, ca_file=ca, refresh_s=60)
    try:
        await cap.refresh()
    finally:
        await cap.close()
    assert cap.last_error == ""
    nodes = {n["name"]: n for n in json.loads(registry.listing(2))["nodes"]}
    assert nodes["kwok-gpu-0"]["capacity"]["nvidia.com/gpu"] == "8"
    assert nodes["kwok-gpu-0"]["capacitySource"] == "kubernetes"
    assert nodes["kwok-gpu-0"]["gpus"][0]["productName"] == "Tesla T4"  # the agent's GPUs with Kubernetes' capacity
    assert any(n["gpus"] == [] and "no report" in n.get("agent", "") for n in nodes.values())  # nodes without agent


async def test_gateway_without_node_rights_keeps_the_agents_capacity(kube, namespace, service_account_token):
    token, ca = service_account_token(namespace, "nobody", [])
    registry = NodeRegistry(NodeLimits())
    registry.ingest([report_for("kwok-gpu-0", ts=1, seq=1)], now=1)
    cap = NodeCapacity(registry, url=kube.api_client.configuration.host, token_file=token, ca_file=ca, refresh_s=60)
    try:
        await cap.refresh()
    finally:
        await cap.close()
    assert "HTTP 403" in cap.last_error
    (node,) = json.loads(registry.listing(2))["nodes"]
    assert node["capacitySource"] == "agent"
