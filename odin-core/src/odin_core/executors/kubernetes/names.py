"""Valid Kubernetes names and label values for Odin's objects, and the keys Odin puts on them.

Task ids are ``<run id>--<task>`` and task names may hold characters Kubernetes refuses; names and
label values are therefore lowercased, cleaned and, when anything had to change or the result is
too long, shortened with a hash of the original so two different tasks never share a name.
"""

from __future__ import annotations

import hashlib
import re

from ... import constants as C

MAX_NAME = 63  # DNS-1123 label: Services, Jobs (their name becomes a label), CR names
MAX_LABEL_VALUE = 63
HASH_LEN = 8

# Annotations carrying the exact (unshortened) identity of an object.
ANNOTATION_RUN_ID = f"{C.LABEL_PREFIX}/run-id"
ANNOTATION_TASK_NAME = f"{C.LABEL_PREFIX}/task-name"
# Labels the training operators put on replica pods.
KUBEFLOW_JOB_NAME = "training.kubeflow.org/job-name"
KUBEFLOW_REPLICA_TYPE = "training.kubeflow.org/replica-type"
KUBEFLOW_REPLICA_INDEX = "training.kubeflow.org/replica-index"
GPU_RESOURCE = "nvidia.com/gpu"
# A task env variable a Service task reads its ports from ("8080" or "http:8080,grpc:9000").
ENV_SERVICE_PORTS = "ODIN_SERVICE_PORTS"
# Task env variables bounding an ElasticJob's workers (default: num_workers both).
ENV_ELASTIC_MIN = "ODIN_ELASTIC_MIN_REPLICAS"
ENV_ELASTIC_MAX = "ODIN_ELASTIC_MAX_REPLICAS"

_NOT_DNS = re.compile(r"[^a-z0-9-]+")
_NOT_LABEL = re.compile(r"[^A-Za-z0-9_.-]+")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LEN]


def _shorten(clean: str, original: str, limit: int) -> str:
    head = clean[: limit - HASH_LEN - 1].rstrip("-_.")
    return f"{head}-{_digest(original)}" if head else _digest(original)


def dns_name(text: str, *, limit: int = MAX_NAME) -> str:
    """``text`` as a DNS-1123 label of at most ``limit`` characters (unchanged when it already is one)."""
    if len(text) <= limit and _DNS_LABEL.match(text):
        return text
    clean = _NOT_DNS.sub("-", text.lower()).strip("-")
    clean = re.sub(r"-{3,}", "--", clean)
    return _shorten(clean, text, limit)


def label_value(text: str) -> str:
    """``text`` as a valid label value (unchanged when it already is one)."""
    if len(text) <= MAX_LABEL_VALUE and _LABEL_VALUE.match(text):
        return text
    clean = _NOT_LABEL.sub("-", text).strip("-_.")
    return _shorten(clean, text, MAX_LABEL_VALUE)


def object_name(task_id: str, attempt: int, *, limit: int = MAX_NAME) -> str:
    """The name of an attempt's objects: ``<task id>-<attempt>``, a fresh one per attempt."""
    suffix = f"-{attempt}"
    base = dns_name(task_id, limit=limit - len(suffix))
    return f"{base}{suffix}"


def identity_labels(run_id: str, task: str, attempt: int) -> dict[str, str]:
    """The labels tying an object to its run, task and attempt (what every watch selects on)."""
    return {C.LABEL_RUN: label_value(run_id), C.LABEL_TASK: label_value(task), C.LABEL_ATTEMPT: str(attempt)}


def selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in labels.items())


def run_selector(run_id: str) -> str:
    return f"{C.LABEL_RUN}={label_value(run_id)}"


def is_dns_label(text: str) -> bool:
    return len(text) <= MAX_NAME and bool(_DNS_LABEL.match(text))
