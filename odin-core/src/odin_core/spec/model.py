"""Typed, immutable objects of a validated pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

OnFailure = Literal["stop", "continue"]


@dataclass(frozen=True)
class Location:
    """Where a value was written: file (relative to the job directory), 1-based line and column."""

    file: str
    line: int
    column: int


@dataclass(frozen=True)
class Mount:
    name: str
    path: str
    claim: str | None = None


@dataclass(frozen=True)
class EphemVolume:
    """An emptyDir volume. Mounted at ``path`` when it has one, and wherever a ``mount`` without ``claim`` names
    it (the first Odin's way: ``ephem_volume: {name: dshm, medium: Memory}`` + ``mount: {name: dshm, path:
    /dev/shm}``)."""

    name: str
    path: str | None = None
    type: str = "emptyDir"
    medium: str | None = None
    size_limit: str | None = None


@dataclass(frozen=True)
class SecretMount:
    name: str
    path: str
    sub_path: str | None = None
    mode: int | None = None


@dataclass(frozen=True)
class ConfigMapMount:
    name: str
    path: str
    sub_path: str | None = None


@dataclass(frozen=True)
class Resources:
    """Kubernetes quantities, kept as strings ("500m", "2", "4Gi")."""

    requests: str | None = None
    limits: str | None = None


@dataclass(frozen=True)
class SecurityContext:
    run_as_user: int | None = None
    run_as_group: int | None = None
    fs_group: int | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """``limit`` extra attempts after the first; delay = min(backoff_s * factor**(n-1), max_backoff_s)."""

    limit: int = 0
    backoff_s: float = 1.0
    factor: float = 2.0
    max_backoff_s: float = 60.0

    def delay_s(self, failed_attempts: int) -> float:
        """Delay before the next attempt after ``failed_attempts`` failures (>= 1)."""
        return min(self.backoff_s * self.factor ** max(failed_attempts - 1, 0), self.max_backoff_s)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    image: str
    command: tuple[str, ...]
    args: tuple[Any, ...] = ()
    depends: tuple[str, ...] = ()  # explicit ``depends`` plus every task named by a reference
    mounts: tuple[Mount, ...] = ()
    ephem_volumes: tuple[EphemVolume, ...] = ()
    secrets: tuple[SecretMount, ...] = ()
    config_maps: tuple[ConfigMapMount, ...] = ()
    cpu: Resources | None = None
    memory: Resources | None = None
    num_gpus: int = 0
    security_context: SecurityContext | None = None
    pull_policy: str = "IfNotPresent"
    node_selector: dict[str, str] = field(default_factory=dict)
    resource_type: str = "Pod"  # canonical kind name, see spec.kinds
    num_workers: int = 1
    inputs: tuple[Any, ...] = ()
    outputs: dict[str, Any] = field(default_factory=dict)  # declared output paths (name -> path or list)
    retries: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: float | None = None
    env: dict[str, str] = field(default_factory=dict)
    request_early_exit: bool = False


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    tasks: tuple[TaskSpec, ...]
    job: str = ""  # job path relative to the pipelines root ("team/job"), or the directory name
    path: Path | None = None  # the job directory
    max_parallel: int | None = None
    on_failure: OnFailure = "stop"
    locations: dict[str, Location] = field(default_factory=dict, compare=False, repr=False)

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)
