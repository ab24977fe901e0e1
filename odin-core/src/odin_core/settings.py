"""Settings, grouped and built once at start-up (``Settings.from_env``), then passed down."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import constants as C


@dataclass(frozen=True)
class EngineSettings:
    max_parallel_total: int | None = None
    """Tasks active at once across all runs of this engine (None: unbounded)."""
    heartbeat_s: float = 2.0
    """How often the engine proves it still drives its runs, and looks for stop requests from other processes."""
    takeover_after_s: float = 10.0
    """A run whose owner sent no heartbeat for this long is taken over by another engine."""
    lease_grace: float = 0.7
    """An engine that could not renew its leases for this fraction of ``takeover_after_s`` stops driving
    its runs (before another engine may take them over), and picks them up again once it can."""
    submit_retry_for_s: float = 600.0
    """A submit that keeps failing temporarily (429, 5xx, a reset connection) is retried this long."""
    adopt_batch: int = 100
    """Runs taken over per heartbeat at most (a restarted server adopts a large backlog in batches)."""
    cleanup_wait_s: float = 20.0
    """How long a clean-up of an active run waits for it to stop before refusing."""
    stop_wait_s: float = 30.0
    """How long a stop that took over a run waits for it to wind down (its tasks to be killed)."""


# What a local task inherits from the core's environment: harmless basics only, never the core's
# secrets (ODIN_TOKEN, ODIN_JWT_SECRET, a store URL with a password, cloud credentials).
LOCAL_TASK_ENV = (
    "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR", "TERM",
    "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH", "VIRTUAL_ENV", "CONDA_PREFIX",
)  # fmt: skip


@dataclass(frozen=True)
class LocalSettings:
    kill_grace_s: float = 5.0
    """SIGTERM, then SIGKILL after this long."""
    gpu_policy: str = "warn"
    """What to do when a task asks for more GPUs than this machine has: "warn" (run on CPU) or "fail"."""
    task_env: tuple[str, ...] = LOCAL_TASK_ENV
    """Variables of the core's environment a task inherits (``NAME`` or a ``PREFIX*``); nothing else is passed.

    A task gets these, ``PATH`` (the bin directory of Odin's interpreter first), the ``ODIN_*`` task
    variables and its own ``env``. Names starting with ``ODIN_`` are never inherited, even when listed.
    """
    pass_env: tuple[str, ...] = ()
    """More names (or ``PREFIX*``) to inherit, from ``ODIN_LOCAL_PASS_ENV`` (comma-separated), e.g.
    ``WANDB_API_KEY,HF_*``: how a secret the tasks need reaches them without being written in a pipeline."""


@dataclass(frozen=True)
class KubernetesSettings:
    """How the Kubernetes executor reaches and uses a cluster (see docs/kubernetes.md)."""

    kubeconfig: str = ""
    """Path of a kubeconfig file; "" means in-cluster config, else ``$KUBECONFIG`` / ``~/.kube/config``."""
    context: str = ""
    """Kubeconfig context to use ("" for the current one)."""
    namespace: str = "default"
    """Where every object of every run is created."""
    qps: float = 50.0
    """Client-side rate limit (requests per second, token bucket) shared by every request."""
    burst: int = 100
    """Requests allowed at once above ``qps`` (the bucket size)."""
    request_timeout_s: float = 30.0
    """Timeout of one non-watch API request."""
    watch_timeout_s: int = 300
    """Server-side timeout of one watch request; the watch then resumes from its last resourceVersion."""
    max_retries: int = 5
    """Retries of one request after 429 (honouring Retry-After), 5xx or a connection error."""
    pending_timeout_s: float = 600.0
    """An attempt that has not started running after this long fails with the reason it waits for."""
    no_controller_after_s: float = 60.0
    """A training job (PyTorchJob, ...) that no controller has acted on after this long says so (status, events)."""
    image_pull_secrets: tuple[str, ...] = ()
    """Secret names added to every pod's ``imagePullSecrets``."""
    ttl_after_finished_s: float | None = None
    """Delete the objects of a finished attempt after this long (None: keep them until the run is cleaned up)."""
    capture_logs: bool = True
    """Copy a pod's logs under the run's data dir when its attempt ends, so they outlive the pod."""
    delete_propagation: str = "Background"
    """propagationPolicy of deletes: "Background" (return at once) or "Foreground" (dependents first)."""
    pod_annotations: dict[str, str] = field(default_factory=dict)
    """Annotations put on every task pod (a testing aid: kwok reads ``odin.ml/simulate-*``)."""
    pod_labels: dict[str, str] = field(default_factory=dict)
    """Labels put on every task pod, next to Odin's own."""


@dataclass(frozen=True)
class StoreSettings:
    """How a server-backed store connects, and how long it waits out an outage."""

    password_file: str = ""
    """A file holding the database password (kept out of the URL, argv and logs); "" for none."""
    connect_timeout_s: float = 10.0
    """How long opening the store waits for the server before failing with one clear error."""
    write_retry_for_s: float = 3.0
    """How long a write is retried while the server is unreachable before it fails with
    ``TemporaryError``; the engine then waits and tries again (a run pauses, it does not fail), and its
    heartbeat gives up its leases in time if the outage lasts."""
    read_retry_for_s: float = 3.0
    """The same for reads (a user's STATUS gets a clear error instead of hanging)."""
    pool_size: int = 10
    """Connections per core process (PostgreSQL pool size, MongoDB maxPoolSize)."""
    retention_s: float | None = None
    """A server purges ended runs (records, files, cluster objects) this long after they ended (None: never)."""


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: Path(C.DEFAULT_HOME).expanduser())
    """``$ODIN_HOME``: the embedded store and the run data live here."""
    store_url: str = ""
    """Job store URL; default: SQLite at ``<home>/odin.db``."""
    data_path: str = ""
    """DATA_PATH: where runs write their data; default ``<home>/data``."""
    executor: str = "local"
    engine: EngineSettings = field(default_factory=EngineSettings)
    local: LocalSettings = field(default_factory=LocalSettings)
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    store_settings: StoreSettings = field(default_factory=StoreSettings)

    @property
    def store(self) -> str:
        return self.store_url or f"sqlite:///{self.home / 'odin.db'}"

    @property
    def data(self) -> Path:
        return Path(self.data_path).expanduser() if self.data_path else self.home / "data"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if env is None else env
        home = Path(env.get(C.ENV_HOME) or C.DEFAULT_HOME).expanduser()
        values: dict[str, object] = {
            "home": home,
            "store_url": env.get("ODIN_STORE", ""),
            "data_path": env.get("ODIN_DATA", ""),
            "executor": env.get("ODIN_EXECUTOR", "local"),
            "engine": engine_from_env(env),
            "kubernetes": kubernetes_from_env(env),
            "local": LocalSettings(pass_env=_names(env.get("ODIN_LOCAL_PASS_ENV", ""))),
            "store_settings": store_from_env(env),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def engine_from_env(env: Mapping[str, str]) -> EngineSettings:
    """``ODIN_MAX_PARALLEL_TOTAL``, ``ODIN_HEARTBEAT_S``, ``ODIN_TAKEOVER_AFTER_S``, ``ODIN_CLEANUP_WAIT_S``,
    ``ODIN_ADOPT_BATCH`` (how cores sharing a store hand runs over)."""
    d = EngineSettings()
    total = env.get("ODIN_MAX_PARALLEL_TOTAL", "")
    return dataclasses.replace(
        d,
        max_parallel_total=int(total) if total else d.max_parallel_total,
        heartbeat_s=float(env.get("ODIN_HEARTBEAT_S", d.heartbeat_s)),
        takeover_after_s=float(env.get("ODIN_TAKEOVER_AFTER_S", d.takeover_after_s)),
        cleanup_wait_s=float(env.get("ODIN_CLEANUP_WAIT_S", d.cleanup_wait_s)),
        adopt_batch=int(env.get("ODIN_ADOPT_BATCH", d.adopt_batch)),
    )


def store_from_env(env: Mapping[str, str]) -> StoreSettings:
    """``ODIN_STORE_PASSWORD_FILE``, ``ODIN_STORE_POOL_SIZE``, ``ODIN_STORE_RETENTION_DAYS`` (unset: defaults)."""
    d = StoreSettings()
    days = env.get("ODIN_STORE_RETENTION_DAYS", "")
    return StoreSettings(
        password_file=env.get("ODIN_STORE_PASSWORD_FILE", d.password_file),
        pool_size=int(env.get("ODIN_STORE_POOL_SIZE", d.pool_size)),
        retention_s=float(days) * 86400 if days else None,
    )


def kubernetes_from_env(env: Mapping[str, str]) -> KubernetesSettings:
    """``ODIN_KUBECONFIG``, ``ODIN_NAMESPACE`` and ``ODIN_K8S_*`` (unset ones keep their defaults)."""
    d = KubernetesSettings()
    ttl = env.get("ODIN_K8S_TTL_AFTER_FINISHED_S", "")
    secrets = env.get("ODIN_K8S_IMAGE_PULL_SECRETS", "")
    return KubernetesSettings(
        kubeconfig=env.get("ODIN_KUBECONFIG", d.kubeconfig),
        context=env.get("ODIN_K8S_CONTEXT", d.context),
        namespace=env.get("ODIN_NAMESPACE", d.namespace),
        qps=float(env.get("ODIN_K8S_QPS", d.qps)),
        burst=int(env.get("ODIN_K8S_BURST", d.burst)),
        pending_timeout_s=float(env.get("ODIN_K8S_PENDING_TIMEOUT_S", d.pending_timeout_s)),
        image_pull_secrets=tuple(s.strip() for s in secrets.split(",") if s.strip()),
        ttl_after_finished_s=float(ttl) if ttl else None,
        capture_logs=env.get("ODIN_K8S_CAPTURE_LOGS", "1").lower() not in ("0", "false", "no"),
    )
