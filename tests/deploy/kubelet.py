"""What a kubelet does with a pod template of k8s/, done with podman so the real images run it here.

kwok's nodes run no containers, so tests/deploy/test_k8s.py takes the pod templates exactly as the API server
stored them and starts their containers in one podman pod: the environment (values, the downward API, ConfigMap
and Secret references), the volumes (Secrets and ConfigMaps read back from the API, emptyDirs, claims as host
folders owned as fsGroup says), the ServiceAccount token from the TokenRequest API with the namespace's
kube-root-ca.crt, and the security context (user, read-only root, dropped capabilities, no new privileges).
What differs from a cluster is said where it happens: the pod shares one network namespace (Services resolve to
127.0.0.1), and a relay plays kube-proxy for the API server.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
NAMED_FIELDS = {"metadata.namespace", "metadata.name", "spec.nodeName", "status.hostIP", "status.podIP"}


@dataclass
class Node:
    """What a kubelet knows about its pod that the API does not hand a container otherwise."""

    namespace: str
    pod_name: str
    node_name: str
    host_ip: str = "127.0.0.1"
    secrets: dict[str, dict[str, bytes]] = field(default_factory=dict)  # name -> key -> value
    configmaps: dict[str, dict[str, str]] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)  # service account -> token
    ca: str = ""
    claims: dict[str, Path] = field(default_factory=dict)  # claim name -> host folder

    def field_value(self, path: str) -> str:
        values = {
            "metadata.namespace": self.namespace,
            "metadata.name": self.pod_name,
            "spec.nodeName": self.node_name,
            "status.hostIP": self.host_ip,
            "status.podIP": "127.0.0.1",
        }
        return values[path]


def container_options(pod: dict[str, Any], container: dict[str, Any], node: Node, files: Path) -> list[str]:
    """``podman run`` options for one container of ``pod`` (a pod spec), its files written under ``files``."""
    options = [*_env(container, node), *_security(pod, container)]
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        options += _mount(volumes[mount["name"]], mount, node, files / mount["name"], pod)
    if _automount(pod, node):
        options += _service_account(pod, node, files / "serviceaccount")
    if container.get("command"):
        options += ["--entrypoint", json.dumps(container["command"])]
    return options


def _env(container: dict[str, Any], node: Node) -> list[str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(node.configmaps[source["configMapRef"]["name"]])
        if "secretRef" in source:
            env.update({k: v.decode() for k, v in node.secrets[source["secretRef"]["name"]].items()})
    for item in container.get("env", []):
        env[item["name"]] = _env_value(item, node)
    return [a for k, v in env.items() for a in ("-e", f"{k}={v}")]


def _env_value(item: dict[str, Any], node: Node) -> str:
    if "value" in item:
        return str(item["value"])
    ref = item["valueFrom"]
    if "fieldRef" in ref:
        path = ref["fieldRef"]["fieldPath"]
        assert path in NAMED_FIELDS, f"downward API field {path} is not handled here"
        return node.field_value(path)
    if "secretKeyRef" in ref:
        return node.secrets[ref["secretKeyRef"]["name"]][ref["secretKeyRef"]["key"]].decode()
    return node.configmaps[ref["configMapKeyRef"]["name"]][ref["configMapKeyRef"]["key"]]


def _security(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    psc, csc = pod.get("securityContext", {}), container.get("securityContext", {})
    user, group = csc.get("runAsUser", psc.get("runAsUser")), csc.get("runAsGroup", psc.get("runAsGroup"))
    options = []
    if user is not None:
        options += ["--user", f"{user}:{group if group is not None else user}"]
    if psc.get("fsGroup") is not None:
        options += ["--group-add", str(psc["fsGroup"])]
    if csc.get("readOnlyRootFilesystem"):
        options.append("--read-only")
    if "ALL" in csc.get("capabilities", {}).get("drop", []):
        options.append("--cap-drop=ALL")
    if csc.get("allowPrivilegeEscalation") is False:
        options += ["--security-opt", "no-new-privileges"]
    return options


def _mount(volume: dict[str, Any], mount: dict[str, Any], node: Node, folder: Path, pod: dict[str, Any]) -> list[str]:
    target = mount["mountPath"]
    if "emptyDir" in volume:  # a fresh folder every container may write, as the kubelet makes it on the node
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o1777)
        return ["-v", f"{folder}:{target}"]
    if "persistentVolumeClaim" in volume:
        return ["-v", f"{_claim(node, volume['persistentVolumeClaim']['claimName'], pod)}:{target}"]
    files: dict[str, bytes] = {}
    mode = 0o644
    if "secret" in volume:
        files = _items(volume["secret"], node.secrets.get(volume["secret"]["secretName"]))
        mode = volume["secret"].get("defaultMode", mode)
    elif "configMap" in volume:
        data = node.configmaps.get(volume["configMap"]["name"])
        files = _items(volume["configMap"], {k: v.encode() for k, v in (data or {}).items()})
    elif "projected" in volume:
        for source in volume["projected"]["sources"]:
            if "secret" in source:
                files.update(_items(source["secret"], node.secrets[source["secret"]["name"]]))
            if "configMap" in source:
                data = node.configmaps[source["configMap"]["name"]]
                files.update(_items(source["configMap"], {k: v.encode() for k, v in data.items()}))
    else:
        raise AssertionError(f"volume kind of {volume} is not handled here")
    _write(folder, files, mode, pod)
    return ["-v", f"{folder}:{target}:ro"]


def _items(source: dict[str, Any], data: dict[str, bytes] | None) -> dict[str, bytes]:
    if data is None:
        assert source.get("optional"), f"{source} names an object that does not exist"
        return {}
    if "items" not in source:
        return dict(data)
    return {i["path"]: data[i["key"]] for i in source["items"]}


def _write(folder: Path, files: dict[str, bytes], mode: int, pod: dict[str, Any]) -> None:
    """Files as the kubelet writes them: owned by root, group fsGroup when set, the volume's mode."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    group = pod.get("securityContext", {}).get("fsGroup")
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data)
        path.chmod(mode)
        if group is not None:
            os.chown(path, 0, group)


def _claim(node: Node, name: str, pod: dict[str, Any]) -> Path:
    """A claim's folder, shared by every container that mounts it; fsGroup owns it, as the kubelet arranges."""
    folder = node.claims[name]
    folder.mkdir(parents=True, exist_ok=True)
    sc = pod.get("securityContext", {})
    if sc.get("fsGroup") is not None:
        os.chown(folder, sc.get("runAsUser", 0), sc["fsGroup"])
        folder.chmod(0o2775)
    return folder


def _automount(pod: dict[str, Any], node: Node) -> bool:
    return pod.get("automountServiceAccountToken", True) and pod.get("serviceAccountName", "default") in node.tokens


def _service_account(pod: dict[str, Any], node: Node, folder: Path) -> list[str]:
    token = node.tokens[pod["serviceAccountName"]]
    _write(
        folder, {"token": token.encode(), "ca.crt": node.ca.encode(), "namespace": node.namespace.encode()}, 0o644, pod
    )
    return ["-v", f"{folder}:{SA_DIR}:ro"]


def decode_secret(obj: dict[str, Any]) -> dict[str, bytes]:
    return {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
