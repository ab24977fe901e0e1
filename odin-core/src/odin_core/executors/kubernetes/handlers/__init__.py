"""Kind handlers of the Kubernetes executor (one module per kind family)."""

from .base import KindHandler, Obj
from .registry import handler_for, handlers, register_handler

__all__ = ["KindHandler", "Obj", "handler_for", "handlers", "register_handler"]
