"""Odin's HTTP gateway (``odin-http``): users, JWT, git-backed pipelines and a REST API in front of the core."""

__version__ = "0.1.0"
