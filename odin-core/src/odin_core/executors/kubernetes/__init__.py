"""The Kubernetes executor (``pip install odin-core[kubernetes]``); see docs/kubernetes.md."""

from .executor import KubernetesExecutor
from .handlers import KindHandler, handler_for, handlers, register_handler
from .podspec import PodOptions, pod_spec, pod_template
from .status import Observation

__all__ = [
    "KindHandler",
    "KubernetesExecutor",
    "Observation",
    "PodOptions",
    "handler_for",
    "handlers",
    "pod_spec",
    "pod_template",
    "register_handler",
]
