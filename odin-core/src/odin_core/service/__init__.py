"""The core's WebSocket service (``odin-core serve``): the Odin protocol over JSON messages."""

from .server import Service, ServiceSettings, serve_odin

__all__ = ["Service", "ServiceSettings", "serve_odin"]
