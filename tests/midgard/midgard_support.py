"""Helpers shared by the midgard tests (imported by name: tests/ is not a package)."""

from __future__ import annotations

from typing import Any

from midgard.settings import AgentSettings
from midgard.testing import fake_nvml

BOARDS = fake_nvml.board_names()


def settings(**overrides: Any) -> AgentSettings:
    """Agent settings for tests: loopback, any port, a fast interval; ``overrides`` win."""
    base: dict[str, Any] = {"node_name": "gpu-node-1", "host": "gpu-node-1", "listen_host": "127.0.0.1", "port": 0,
                            "interval_s": 0.05, "internal_ip": "10.0.0.7"}  # fmt: skip
    base.update(overrides)
    return AgentSettings(**base)
