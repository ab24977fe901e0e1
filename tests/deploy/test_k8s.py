"""k8s/overlays/microk8s on the project's control plane (tests/k8s' `kube` fixture: a real kube-apiserver,
controller manager and scheduler, kwok's simulated nodes), in a namespace of this test's own:

- every object is accepted by a server-side dry run, then applied for real;
- the Deployments and the StatefulSet become Available / ready, the DaemonSet runs on exactly the GPU nodes;
- `kubectl auth can-i --as=system:serviceaccount:…` proves each ServiceAccount may do what it needs (for the
  core: every verb of the executor's documented rules) and is refused the rest;
- a pipeline submitted through the gateway runs its pods in the cluster. kwok's pods run no code, so the pods of
  the gateway, the core, PostgreSQL and midgard are started from their stored pod templates with podman
  (tests/deploy/kubelet.py: env, Secrets, ConfigMaps, claims, security context, the ServiceAccount tokens from
  the TokenRequest API), the core with in-cluster config. What this does not prove: that the Service's cluster IP
  routes to the gateway (no kube-proxy here; requests go to the gateway pod's published port) and that the
  NetworkPolicies are enforced (no network plugin; their selection is checked in test_k8s_manifests.py).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from deploy_support import REPO, free_port, http_get, load_module, tutorial_block, wait_until
from kubelet import Node, container_options, decode_secret
from manifests import Rendered, documented_rules, pod_specs, render

_k8s = load_module("odin_k8s_fixtures_for_deploy", REPO / "tests" / "k8s" / "conftest.py")
kube = _k8s.kube

AVAILABLE_TIMEOUT_S = 120
GPU_LABEL = "nvidia.com/gpu.present"
READY_TIMEOUT_S = 120


def kubectl(kube: Any, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        ["kubectl", f"--kubeconfig={kube.kubeconfig}", *args], capture_output=True, text=True, input=input, timeout=180
    )
    if check:
        assert proc.returncode == 0, f"kubectl {' '.join(args)}: {proc.stderr}{proc.stdout}"
    return proc


@dataclass
class Deployed:
    namespace: str
    rendered: Rendered
    dry_run: str
    applied: str


def _claims(rendered: Rendered) -> list[tuple[str, dict[str, Any]]]:
    """Every claim the deployment makes (PVCs, and the StatefulSet's per-pod claims), with its spec."""
    claims = [(c["metadata"]["name"], c["spec"]) for c in rendered.of("PersistentVolumeClaim")]
    for sts in rendered.of("StatefulSet"):
        for template in sts["spec"]["volumeClaimTemplates"]:
            claims.append((f"{template['metadata']['name']}-{sts['metadata']['name']}-0", template["spec"]))
    return claims


def _volumes_for(kube: Any, namespace: str, rendered: Rendered) -> list[str]:
    """What microk8s' hostpath provisioner does for each claim: a volume of its class, bound to that claim."""
    names = []
    for claim, spec in _claims(rendered):
        name = f"{namespace}-{claim}"
        pv = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name, "labels": {"odin.ml/test": namespace}},
            "spec": {
                "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                "accessModes": spec["accessModes"],
                "storageClassName": spec["storageClassName"],
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": f"/tmp/odin-test-volumes/{name}"},
                "claimRef": {"namespace": namespace, "name": claim},
            },
        }
        kubectl(kube, "apply", "-f", "-", input=json.dumps(pv))
        names.append(name)
    return names


@pytest.fixture(scope="module")
def deployed(kube: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    suffix = uuid.uuid4().hex[:6]
    namespace = f"odin-deploy-{suffix}"
    rendered = render(tmp_path_factory.mktemp("k8s"), "microk8s", namespace=namespace, suffix=suffix)
    made_runtime_class = kubectl(kube, "get", "runtimeclass", "nvidia", check=False).returncode != 0
    if made_runtime_class:  # what microk8s' gpu addon (the GPU operator) provides
        kubectl(
            kube,
            "create",
            "-f",
            "-",
            input=json.dumps(
                {
                    "apiVersion": "node.k8s.io/v1",
                    "kind": "RuntimeClass",
                    "metadata": {"name": "nvidia"},
                    "handler": "nvidia",
                }
            ),
        )
    try:
        # The namespace first: a dry run creates nothing, so the namespaced objects need it to exist.
        kubectl(kube, "apply", "--server-side", "-f", "-", input=json.dumps(rendered.one("Namespace", namespace)))
        dry = kubectl(kube, "apply", "--server-side", "--dry-run=server", "-f", str(rendered.yaml_file)).stdout
        applied = kubectl(kube, "apply", "--server-side", "-f", str(rendered.yaml_file)).stdout
        _volumes_for(kube, namespace, rendered)
        yield Deployed(namespace, rendered, dry, applied)
    finally:
        kubectl(kube, "delete", "namespace", namespace, "--wait=false", check=False)
        for o in rendered.objects:
            if o["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                kubectl(kube, "delete", o["kind"].lower(), o["metadata"]["name"], check=False)
        kubectl(kube, "delete", "pv", "-l", f"odin.ml/test={namespace}", "--wait=false", check=False)
        if made_runtime_class:
            kubectl(kube, "delete", "runtimeclass", "nvidia", check=False)


def test_every_object_is_accepted_by_dry_run_and_applied(deployed: Deployed) -> None:
    objects = deployed.rendered.objects
    for o in objects:
        ref = f"{o['kind'].lower()}/{o['metadata']['name']}"
        assert any(
            line.startswith(f"{ref.split('/')[0]}") and o["metadata"]["name"] in line and "(server dry run)" in line
            for line in deployed.dry_run.splitlines()
        ), f"{ref} not in the dry run"
        assert o["metadata"]["name"] in deployed.applied, f"{ref} not applied"
    assert len(deployed.applied.strip().splitlines()) == len(objects)


def test_workloads_become_available_and_midgard_runs_on_every_gpu_node(kube: Any, deployed: Deployed) -> None:
    ns = deployed.namespace
    kubectl(
        kube,
        "-n",
        ns,
        "wait",
        "--for=condition=Available",
        "deployment/odin-core",
        "deployment/odin-http",
        f"--timeout={AVAILABLE_TIMEOUT_S}s",
    )
    kubectl(kube, "-n", ns, "rollout", "status", "statefulset/odin-postgres", f"--timeout={AVAILABLE_TIMEOUT_S}s")
    kubectl(kube, "-n", ns, "rollout", "status", "daemonset/midgard", f"--timeout={AVAILABLE_TIMEOUT_S}s")
    nodes = json.loads(kubectl(kube, "get", "nodes", "-o", "json").stdout)["items"]
    gpu_nodes = {n["metadata"]["name"] for n in nodes if n["metadata"]["labels"].get(GPU_LABEL) == "true"}
    assert gpu_nodes and len(gpu_nodes) < len(nodes), "the control plane should have GPU and CPU-only nodes"
    pods = json.loads(
        kubectl(kube, "-n", ns, "get", "pods", "-l", "app.kubernetes.io/name=midgard", "-o", "json").stdout
    )["items"]
    assert {p["spec"]["nodeName"] for p in pods} == gpu_nodes
    assert all(p["spec"]["runtimeClassName"] == "nvidia" and p["spec"]["hostPID"] for p in pods)
    claims = json.loads(kubectl(kube, "-n", ns, "get", "pvc", "-o", "json").stdout)["items"]
    assert {c["status"]["phase"] for c in claims} == {"Bound"}


# --- RBAC ----------------------------------------------------------------------------------------------------------

# Beyond the documented rules: what a compromised core must not be able to do.
CORE_REFUSED = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("get", "configmaps"),
    ("create", "pods/exec"),
    ("list", "nodes"),
    ("create", "namespaces"),
    ("create", "roles.rbac.authorization.k8s.io"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("create", "serviceaccounts/token"),
    ("list", "persistentvolumes"),
    ("delete", "persistentvolumeclaims"),
    ("update", "deployments.apps"),
    ("patch", "pods"),
    ("update", "pods/status"),
    ("deletecollection", "pods"),
    ("create", "pods/eviction"),
]


def _resource(group: str, resource: str) -> str:
    return resource if not group else f"{resource}.{group}"


def can_i(kube: Any, ns: str, account: str, verb: str, resource: str, *, namespace: str | None = None) -> bool:
    base, _, sub = resource.partition("/")
    args = ["auth", "can-i", verb, base, f"--as=system:serviceaccount:{ns}:{account}", "-n", namespace or ns]
    if sub:  # pods/log: `can-i get pods --subresource=log`
        args.append(f"--subresource={sub}")
    answer = kubectl(kube, *args, check=False).stdout.strip()
    assert answer in ("yes", "no"), answer
    return answer == "yes"


def test_core_may_do_what_the_executor_needs_and_nothing_more(kube: Any, deployed: Deployed) -> None:
    ns = deployed.namespace
    allowed = sorted(documented_rules())
    granted = {(v, _resource(g, r)): can_i(kube, ns, "odin-core", v, _resource(g, r)) for g, r, v in allowed}
    assert all(granted.values()), [k for k, ok in granted.items() if not ok]
    elsewhere = {
        (v, _resource(g, r))
        for g, r, v in allowed
        if can_i(kube, ns, "odin-core", v, _resource(g, r), namespace="default")
    }
    assert not elsewhere, f"the core may act outside its namespace: {sorted(elsewhere)}"
    refused = [(v, r) for v, r in CORE_REFUSED if can_i(kube, ns, "odin-core", v, r)]
    unused = {(v, _resource(g, r)) for g, r, _ in allowed for v in ("update", "patch")}
    refused += [k for k in sorted(unused) if can_i(kube, ns, "odin-core", *k)]
    assert not refused, f"the core may {refused}"


def test_midgard_and_the_gateway_have_only_their_own_rights(kube: Any, deployed: Deployed) -> None:
    ns = deployed.namespace
    assert can_i(kube, ns, "midgard", "list", "pods")
    for verb, resource in [
        ("get", "pods"),
        ("watch", "pods"),
        ("list", "secrets"),
        ("create", "pods"),
        ("list", "nodes"),
    ]:
        assert not can_i(kube, ns, "midgard", verb, resource), f"midgard may {verb} {resource}"
    assert not can_i(kube, ns, "midgard", "list", "pods", namespace="default")
    assert can_i(kube, ns, "odin-http", "list", "nodes") and can_i(kube, ns, "odin-http", "get", "nodes")
    for verb, resource in [("create", "pods"), ("list", "pods"), ("get", "secrets"), ("patch", "nodes")]:
        assert not can_i(kube, ns, "odin-http", verb, resource), f"the gateway may {verb} {resource}"
    assert not can_i(kube, ns, "odin-postgres", "list", "pods")


# --- a pipeline through the deployed gateway -----------------------------------------------------------------------


def _node(kube: Any, deployed: Deployed, tmp: Path) -> Node:
    """What the kubelet would hand the pods: the applied Secrets and ConfigMaps (read back from the API), a
    token per ServiceAccount from the TokenRequest API, the namespace's kube-root-ca.crt."""
    ns = deployed.namespace
    get = lambda kind: json.loads(kubectl(kube, "-n", ns, "get", kind, "-o", "json").stdout)["items"]  # noqa: E731
    node = Node(namespace=ns, pod_name="", node_name="kwok-gpu-0")
    node.secrets = {s["metadata"]["name"]: decode_secret(s) for s in get("secrets")}
    node.configmaps = {c["metadata"]["name"]: c.get("data", {}) for c in get("configmaps")}
    node.ca = node.configmaps["kube-root-ca.crt"]["ca.crt"]
    for account in ("odin-core", "odin-http", "midgard"):
        node.tokens[account] = kubectl(kube, "-n", ns, "create", "token", account, "--duration=1h").stdout.strip()
    node.claims = {name: tmp / "claims" / name for name, _ in _claims(deployed.rendered)}
    return node


def _stored_templates(kube: Any, ns: str) -> dict[str, dict[str, Any]]:
    """The pod templates as the API server stored them (defaults applied), by workload name; a StatefulSet's
    claim templates become the volumes of its pod 0, as its controller makes them."""
    items = []
    for kind in ("deployments", "statefulsets", "daemonsets"):
        items += json.loads(kubectl(kube, "-n", ns, "get", kind, "-o", "json").stdout)["items"]
    templates = pod_specs(items)
    for sts in (o for o in items if o["kind"] == "StatefulSet"):
        name = sts["metadata"]["name"]
        for claim in sts["spec"].get("volumeClaimTemplates", []):
            volume = {
                "name": claim["metadata"]["name"],
                "persistentVolumeClaim": {"claimName": f"{claim['metadata']['name']}-{name}-0"},
            }
            templates[name]["spec"].setdefault("volumes", []).append(volume)
    return templates


def _start(podman: Any, pod: str, workload: str, template: dict[str, Any], node: Node, files: Path) -> None:
    spec = template["spec"]
    node.pod_name = f"{workload}-0"
    for container in spec["containers"]:
        options = container_options(spec, container, node, files / workload / container["name"])
        podman.run_in(pod, f"{pod}-{workload}", container["image"], *container.get("args", []), options=options)


def test_a_pipeline_through_the_gateway_runs_its_pods_in_the_cluster(
    kube: Any, deployed: Deployed, podman: Any, images: Any, tmp_path: Path
) -> None:
    ns = deployed.namespace
    templates = _stored_templates(kube, ns)
    for template in templates.values():  # the postgres image of the manifests is the official one: swap ours in
        for c in template["spec"]["containers"]:
            c["image"] = images["postgres"] if "postgres" in c["image"] else c["image"]
    node = _node(kube, deployed, tmp_path)
    api_port = int(kube.api_client.configuration.host.rsplit(":", 1)[1])
    port = free_port()
    services = [s["metadata"]["name"] for s in deployed.rendered.of("Service")]
    hosts = [a for s in services for a in ("--add-host", f"{s}:127.0.0.1")]
    with podman.pod("--network", "slirp4netns:allow_host_loopback=true", "-p", f"127.0.0.1:{port}:9003", *hosts) as pod:
        relay = REPO / "tests" / "deploy" / "relay.py"
        proxy = ("-v", f"{relay}:/relay.py:ro", "--entrypoint", "python3")
        relay_args = ("/relay.py", "127.0.0.1", str(api_port), "10.0.2.2", str(api_port))
        podman.run_in(pod, f"{pod}-kube-proxy", images["core"], *relay_args, options=proxy)
        _start_all(podman, pod, templates, node, tmp_path / "pods", api_port)
        ready = templates["odin-http"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"]
        wait_until(
            lambda: http_get(f"http://127.0.0.1:{port}{ready}")[0] == 200,
            timeout_s=READY_TIMEOUT_S,
            what="the gateway's readiness probe",
        )
        # docs/operations.md's upgrade step, in the core's pod: its settings (ODIN_STORE, the password file) suffice.
        assert "schema version" in podman("exec", f"{pod}-odin-core", "odin-core", "migrate").stdout
        _drive(kube, ns, f"http://127.0.0.1:{port}", node, deployed.rendered.yaml_file.parent)


def _start_all(podman: Any, pod: str, templates: dict[str, Any], node: Node, files: Path, api_port: int) -> None:
    """PostgreSQL first (the StatefulSet's pod 0), then the core, the gateway and one midgard (on kwok-gpu-0).
    The kubelet puts the `kubernetes` Service's address into every container; here that is the relay."""
    service = [
        {"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
        {"name": "KUBERNETES_SERVICE_PORT", "value": str(api_port)},
    ]
    for c in (c for t in templates.values() for c in t["spec"]["containers"]):
        c["env"] = [*c.get("env", []), *service]
    _start(podman, pod, "odin-postgres", templates["odin-postgres"], node, files)
    wait_until(lambda: podman.healthy(f"{pod}-odin-postgres"), timeout_s=READY_TIMEOUT_S, what="PostgreSQL")
    for workload in ("odin-core", "odin-http", "midgard"):
        _start(podman, pod, workload, templates[workload], node, files)


def _drive(kube: Any, ns: str, url: str, node: Node, workdir: Path) -> None:
    """docs/tutorial-microk8s.md's first login, push, run, logs, `odin gpus` and `odin nodes`, as written, run in
    a folder laid out like the repository (the overlay's secrets where the page reads them), with its pipeline."""
    import sys

    env = {
        "ODIN_SERVER": url,
        "ODIN_TOKEN_FILE": str(workdir / "tokens.json"),
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
    }

    def odin(*args: str) -> str:
        proc = subprocess.run(["odin", *args], env=env, capture_output=True, text=True, timeout=180, cwd=workdir)
        assert proc.returncode == 0, f"odin {' '.join(args)}: {proc.stdout}{proc.stderr}"
        return proc.stdout

    job = workdir / "gpu-hello" / "main.yml"
    job.parent.mkdir()
    job.write_text(tutorial_block("file: gpu-hello/main.yml"))
    script = tutorial_block("runs in tests/deploy/test_k8s.py")
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], env=env, cwd=workdir, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"the tutorial's first run failed:\n{proc.stdout}\n{proc.stderr}"
    assert " DONE" in proc.stdout, proc.stdout
    (run,) = json.loads(odin("status", "gpu-hello", "-o", "json"))
    assert run["run"]["status"] == "DONE"
    pods = json.loads(kubectl(kube, "-n", ns, "get", "pods", "-l", "odin.ml/run", "-o", "json").stdout)["items"]
    ours = {
        p["metadata"]["annotations"]["odin.ml/task-name"]: p
        for p in pods
        if p["metadata"]["annotations"].get("odin.ml/run-id") == run["run"]["run_id"]
    }
    assert set(ours) == {"prepare", "train"}, f"the run's pods: {sorted(ours)}"
    train = ours["train"]
    assert train["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert train["spec"]["nodeName"].startswith("kwok-gpu-"), "a GPU task landed on a node without GPUs"
    assert train["status"]["phase"] == "Succeeded"

    def reported() -> dict[str, Any] | None:
        listed = {n["name"]: n for n in json.loads(odin("nodes", "-o", "json"))["nodes"]}
        return listed.get(node.node_name)

    agent = wait_until(reported, timeout_s=READY_TIMEOUT_S, what="midgard's report at the gateway")
    assert agent["gpus"] == [] and agent["nvml"]["available"] is False
    assert json.loads(odin("gpus", "-o", "json"))["gpus"] == []
