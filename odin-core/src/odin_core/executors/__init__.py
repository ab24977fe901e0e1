"""Executors turn task attempts into running things (local processes, Kubernetes objects)."""

from .base import Executor, Launch, ReportFn

__all__ = ["Executor", "Launch", "ReportFn"]
