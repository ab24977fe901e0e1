"""Midgard's magic strings and numbers in one place (Odin-wide ones live in ``odin_core.constants``)."""

from __future__ import annotations

from odin_core.constants import (
    ENV_TASK_ID,
    LABEL_RUN,
    LABEL_TASK,
    MIDGARD_PORT,
    NODE_REPORT_VERSION,
    NODE_REPORTS_PATH,
)

__all__ = [
    "ENV_TASK_ID",
    "LABEL_RUN",
    "LABEL_TASK",
    "MIDGARD_PORT",
    "NODE_REPORTS_PATH",
    "NODE_REPORT_VERSION",
]

ENV_PREFIX = "MIDGARD_"
ENV_TOKEN = "MIDGARD_TOKEN"  # the node token itself (environment only, never a flag: argv is world-readable)

# In-cluster Kubernetes API access (what the kubelet mounts into every pod).
ENV_K8S_HOST = "KUBERNETES_SERVICE_HOST"
ENV_K8S_PORT = "KUBERNETES_SERVICE_PORT"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

# Units of the report, as the original agent wrote them.
UNIT_MIB = "MiB"
UNIT_PERCENT = "%"
UNIT_WATT = "W"
UNIT_CELSIUS = "C"
UNIT_MHZ = "MHz"

MIB = 1024 * 1024

# NVML's "no instance" id for a process on a GPU without MIG.
NVML_NO_INSTANCE = 0xFFFFFFFF

# Reasons a whole node has no GPU readings.
REASON_NO_LIBRARY = (
    "no NVIDIA driver: libnvidia-ml.so.1 not found (no GPU on this node, or the NVIDIA runtime is not used)"
)

# HTTP paths served by the agent.
PATH_GPUS = "/v1/gpus"
PATH_REPORT = "/v1/report"
PATH_METRICS = "/metrics"
PATH_HEALTH = "/healthz"

# How many reports one push request carries at most (the rest of the buffer follows in later requests).
MAX_REPORTS_PER_PUSH = 20
