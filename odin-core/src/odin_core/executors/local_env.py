"""The environment of a local task: documented basics, never the core's secrets (pure)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from .. import constants as C

RESERVED_PREFIX = "ODIN_"  # the core's own settings and secrets; tasks get only their ODIN_* task variables


def allowed(name: str, patterns: Iterable[str]) -> bool:
    """``name`` matches one of ``patterns`` (``NAME`` exactly, or ``PREFIX*``) and is not reserved."""
    if name.startswith(RESERVED_PREFIX):
        return False
    return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in patterns)


def inherited(core_env: Mapping[str, str], patterns: Iterable[str], python_bin: str | Path) -> dict[str, str]:
    """What every task inherits from the core: the allowed names, and ``PATH`` with Odin's bin dir first."""
    patterns = tuple(patterns)
    env = {k: v for k, v in core_env.items() if allowed(k, patterns)}
    env["PATH"] = f"{python_bin}{os.pathsep}{core_env.get('PATH', os.defpath)}"
    return env


def task_env(base: Mapping[str, str], launch_env: Mapping[str, str], outputs_file: str | Path) -> dict[str, str]:
    """A task's environment: the inherited basics, its ``ODIN_*`` variables and ``env``, ``$ODIN_OUTPUTS``."""
    env = dict(base)
    env.update({k: str(v) for k, v in launch_env.items()})
    env[C.ENV_OUTPUTS] = str(outputs_file)
    return env
