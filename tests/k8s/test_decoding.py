"""Watch events and lists decoded into the fields Odin reads (executors/kubernetes/decoding.py).

The pure cases decode JSON as the API server writes it; the last case reads a real pod through a real
watch and list of the local control plane and compares with what a full GET returns."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import orjson
import pytest
from odin_core.executors.kubernetes.client import KubeClient, load_api_client
from odin_core.executors.kubernetes.decoding import event_decoder, list_decoder
from odin_core.executors.kubernetes.informer import Gone, Informer
from odin_core.executors.kubernetes.resources import EVENTS, JOBS, PODS, PYTORCHJOBS
from odin_core.settings import KubernetesSettings

MANAGED = [{"manager": "kube-scheduler", "operation": "Update", "fieldsV1": {"f:status": {"f:conditions": {}}}}]
META = {
    "name": "r1--step-1",
    "generateName": "r1-",
    "namespace": "ns",
    "uid": "u-1",
    "resourceVersion": "42",
    "generation": 1,
    "creationTimestamp": "2026-12-02T14:48:37Z",
    "deletionTimestamp": "2026-12-02T14:48:41Z",
    "deletionGracePeriodSeconds": 0,
    "labels": {"odin.ml/run": "r1"},
    "annotations": {"a": "b"},
    "ownerReferences": [{"kind": "Job", "name": "j"}],
    "finalizers": ["f"],
    "managedFields": MANAGED,
}
STATUS = {
    "phase": "Succeeded",
    "conditions": [{"type": "PodScheduled", "status": "True", "lastProbeTime": None}],
    "containerStatuses": [{"name": "main", "state": {"terminated": {"exitCode": 0, "message": '{"a": 1}'}}}],
}
SPEC = {"nodeName": "kwok-gpu-0", "containers": [{"name": "main", "image": "img"}], "restartPolicy": "Never"}


def pod() -> dict[str, Any]:
    return {"kind": "Pod", "apiVersion": "v1", "metadata": dict(META), "spec": dict(SPEC), "status": dict(STATUS)}


def without_managed(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k != "managedFields"}


def test_a_pod_event_keeps_what_odin_reads_and_skips_the_rest() -> None:
    event = event_decoder(PODS)(orjson.dumps({"type": "MODIFIED", "object": pod()}))
    assert event["type"] == "MODIFIED"
    obj = event["object"]
    assert obj["metadata"] == without_managed(META)  # every other metadata field, unchanged
    assert obj["spec"] == {"nodeName": "kwok-gpu-0"}
    assert obj["status"] == STATUS and obj["kind"] == "Pod" and obj["apiVersion"] == "v1"


def test_other_kinds_keep_their_whole_spec_and_status() -> None:
    job = {"kind": "PyTorchJob", "metadata": dict(META), "spec": {"pytorchReplicaSpecs": {"Master": {}}}, "status": {}}
    for resource in (PYTORCHJOBS, JOBS):
        obj = event_decoder(resource)(orjson.dumps({"type": "ADDED", "object": job}))["object"]
        assert obj["spec"] == job["spec"] and obj["status"] == {} and "managedFields" not in obj["metadata"]


def test_events_are_decoded_whole() -> None:
    ev = {"kind": "Event", "metadata": dict(META), "involvedObject": {"name": "r1--step-1"}, "reason": "Scheduled"}
    assert event_decoder(EVENTS)(orjson.dumps({"type": "ADDED", "object": ev}))["object"] == ev


def test_a_watch_error_keeps_its_code_reason_and_message() -> None:
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "too old",
              "reason": "Expired", "code": 410}  # fmt: skip
    event = event_decoder(PODS)(orjson.dumps({"type": "ERROR", "object": status}))
    assert event["object"]["code"] == 410 and event["object"]["reason"] == "Expired"
    informer = Informer(None, PODS, "ns", None, lambda _k, _o: None)  # type: ignore[arg-type]
    with pytest.raises(Gone):
        informer._handle(informer.decode(orjson.dumps({"type": "ERROR", "object": status})), "1", [])
    other = {**status, "code": 500, "reason": "InternalError"}
    other_event = event_decoder(JOBS)(orjson.dumps({"type": "ERROR", "object": other}))
    assert other_event["object"]["code"] == 500 and other_event["object"]["message"] == "too old"


def test_what_the_schema_does_not_expect_is_decoded_whole() -> None:
    odd = {"type": "MODIFIED", "object": ["not", "an", "object"]}
    assert event_decoder(PODS)(orjson.dumps(odd)) == odd
    with pytest.raises(orjson.JSONDecodeError):
        event_decoder(PODS)(b"{not json")


def test_a_list_page_keeps_its_metadata_and_partial_items() -> None:
    page = {"kind": "PodList", "metadata": {"resourceVersion": "7", "continue": "t"}, "items": [pod(), pod()]}
    decoded = list_decoder(PODS)(orjson.dumps(page))
    assert decoded["metadata"] == page["metadata"] and len(decoded["items"]) == 2
    for item in decoded["items"]:
        assert item["spec"] == {"nodeName": "kwok-gpu-0"} and "managedFields" not in item["metadata"]


def test_a_real_watch_and_list_cache_the_partial_pod(kube: Any, namespace: str) -> None:
    async def main() -> None:
        settings = KubernetesSettings(kubeconfig=kube.kubeconfig, namespace=namespace)
        client = KubeClient(load_api_client(settings), settings)
        name = f"p-{uuid.uuid4().hex[:6]}"
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "labels": {"odin.ml/run": "decoding"}},
            "spec": {"containers": [{"name": "main", "image": "img"}]},
        }
        seen: list[dict[str, Any]] = []
        watch = Informer(client, PODS, namespace, "odin.ml/run", lambda _k, o: seen.append(o))
        try:
            watch.start()
            await asyncio.wait_for(watch.synced.wait(), 30)
            await client.request("create", PODS.path(namespace), body=body)
            for _ in range(300):  # until the scheduler has bound it (a MODIFIED event with spec.nodeName)
                if (watch.cache.get(name) or {}).get("spec", {}).get("nodeName"):
                    break
                await asyncio.sleep(0.1)
            for _ in range(100):  # a GET and the watch's copy of the same version (kwok moves the pod on)
                full = await client.request("get", PODS.path(namespace, name))
                cached = watch.cache[name]
                if cached["metadata"]["resourceVersion"] == full["metadata"]["resourceVersion"]:
                    break
                await asyncio.sleep(0.1)
            assert full["metadata"].get("managedFields"), "the API server sends managedFields"
            assert cached["metadata"] == without_managed(full["metadata"])
            assert cached["status"] == full["status"]
            assert cached["spec"] == {"nodeName": full["spec"]["nodeName"]}
            assert cached["metadata"]["labels"] == {"odin.ml/run": "decoding"}
            watch.rv = None  # a relist reads the same partial objects
            watch.break_stream()
            relists = watch.relists
            for _ in range(100):
                if watch.relists > relists:
                    break
                await asyncio.sleep(0.1)
            assert watch.relists > relists and "managedFields" not in watch.cache[name]["metadata"]
            assert set(watch.cache[name]["spec"]) == {"nodeName"}
        finally:
            await watch.aclose()
            await client.aclose()

    asyncio.run(main())
