"""The agent's settings: one frozen dataclass, built once from flags and the environment, then passed down.

Every field names its environment variable and its flag in ``metadata``; the parser, ``midgard --settings`` and the
configuration reference in the docs are all generated from these fields, so they cannot drift apart. Secrets (the
node token) have an environment variable or a file, never a flag.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import constants as C


def _setting(default: Any, env: str, help: str, *, flag: bool = True) -> Any:
    return field(default=default, metadata={"env": C.ENV_PREFIX + env, "help": help, "flag": flag})


@dataclass(frozen=True)
class AgentSettings:
    node_name: str = _setting("", "NODE_NAME", "Kubernetes node name (downward API spec.nodeName); default: hostname")
    host: str = _setting("", "HOST", "host name put in reports; default: this machine's hostname")
    internal_ip: str = _setting("", "INTERNAL_IP", "the node's internal IP (downward API status.hostIP)")
    interval_s: float = _setting(5.0, "INTERVAL_S", "seconds between two readings (and pushes)")
    listen_host: str = _setting("0.0.0.0", "LISTEN_HOST", "address the agent's HTTP server binds")
    port: int = _setting(C.MIDGARD_PORT, "PORT", "port of GET /v1/gpus, /v1/report, /metrics, /healthz (0: any)")
    gateway_url: str = _setting("", "GATEWAY_URL", "gateway base URL (http://odin-http:9003); empty: do not push")
    token_file: str = _setting("", "TOKEN_FILE", "file holding the node token (else $MIDGARD_TOKEN)")
    push_timeout_s: float = _setting(5.0, "PUSH_TIMEOUT_S", "timeout of one push request")
    backoff_max_s: float = _setting(60.0, "BACKOFF_MAX_S", "longest wait between two pushes while the gateway is away")
    buffer_reports: int = _setting(120, "BUFFER_REPORTS", "reports kept while the gateway is away (oldest dropped)")
    proc_root: str = _setting("/proc", "PROC_ROOT", "the host's /proc (hostPID, or a read-only mount of it)")
    pod_namespaces: tuple[str, ...] = _setting(
        (), "POD_NAMESPACES", "comma list of namespaces whose pods are resolved to Odin tasks; empty: no resolving"
    )
    kube_api_url: str = _setting("", "KUBE_API_URL", "Kubernetes API URL; default: in-cluster service address")
    kube_token_file: str = _setting(f"{C.SA_DIR}/token", "KUBE_TOKEN_FILE", "service-account token for the API")
    kube_ca_file: str = _setting(f"{C.SA_DIR}/ca.crt", "KUBE_CA_FILE", "CA bundle of the API server")
    pod_relist_s: float = _setting(10.0, "POD_RELIST_S", "shortest time between two pod lists (on an unknown pod)")
    disk_paths: tuple[str, ...] = _setting(("/",), "DISK_PATHS", "comma list of mount points whose usage is reported")
    log_level: str = _setting("info", "LOG_LEVEL", "debug, info, warning or error")

    @property
    def node(self) -> str:
        return self.node_name or self.hostname

    @property
    def hostname(self) -> str:
        return self.host or socket.gethostname()

    def token(self, env: Mapping[str, str] | None = None) -> str:
        """The node token, read now (a rotated file is picked up at the next push); "" when none is set."""
        if self.token_file:
            return Path(self.token_file).read_text(encoding="utf-8").strip()
        return (os.environ if env is None else env).get(C.ENV_TOKEN, "").strip()

    def kube_url(self, env: Mapping[str, str] | None = None) -> str:
        if self.kube_api_url:
            return self.kube_api_url.rstrip("/")
        env = os.environ if env is None else env
        host, port = env.get(C.ENV_K8S_HOST, ""), env.get(C.ENV_K8S_PORT, "443")
        if not host:
            return ""
        return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"

    def public(self) -> dict[str, Any]:
        """The settings as shown to people and in /v1/report (no secrets are fields, so all of them)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message says which and what is expected."""


def _convert(f: dataclasses.Field[Any], raw: str) -> Any:
    kind: Any = type(f.default)
    try:
        if kind is tuple:
            return tuple(p.strip() for p in raw.split(",") if p.strip())
        if kind is bool:
            return raw.strip().lower() in ("1", "true", "yes", "on")
        return kind(raw)
    except ValueError as e:
        flag = f"--{f.name.replace('_', '-')} / " if f.metadata["flag"] else ""
        raise SettingsError(f"{flag}{f.metadata['env']} = {raw!r}: expected {kind.__name__}") from e


def _check(s: AgentSettings) -> AgentSettings:
    if s.interval_s <= 0:
        raise SettingsError(f"interval_s must be > 0 (got {s.interval_s})")
    if s.buffer_reports < 1:
        raise SettingsError(f"buffer_reports must be >= 1 (got {s.buffer_reports})")
    if not 0 <= s.port <= 65535:
        raise SettingsError(f"port must be 0..65535 (got {s.port})")
    if s.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise SettingsError(f"log_level must be debug, info, warning or error (got {s.log_level!r})")
    return s


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="midgard",
        allow_abbrev=False,  # "--token x" must be an error, not an abbreviation of --token-file
        description="Odin's node agent: reads every GPU (NVML) and the node, serves them on its own port and "
        "pushes one report per interval to the gateway. Every flag also has an environment variable.",
        epilog="The node token is read from --token-file or $MIDGARD_TOKEN, never from a flag. "
        "Example: MIDGARD_TOKEN_FILE=/etc/midgard/token midgard --gateway-url http://odin-http:9003",
    )
    for f in dataclasses.fields(AgentSettings):
        if f.metadata["flag"]:
            p.add_argument(f"--{f.name.replace('_', '-')}", dest=f.name, default=None, help=_flag_help(f))
    p.add_argument("--once", action="store_true", help="take one reading, print the report as JSON and exit")
    p.add_argument("--settings", action="store_true", help="print the effective settings and exit")
    return p


def _flag_help(f: dataclasses.Field[Any]) -> str:
    default = ",".join(f.default) if isinstance(f.default, tuple) else f.default
    return f"{f.metadata['help']} [${f.metadata['env']}, default {default!r}]"


def build(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> tuple[AgentSettings, Any]:
    """Settings from defaults < environment < flags; returns them and the parsed flags (for --once etc.)."""
    env = os.environ if env is None else env
    args = parser().parse_args(argv)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(AgentSettings):
        raw = getattr(args, f.name)
        if raw is None:
            raw = env.get(f.metadata["env"])
        if raw is not None:
            values[f.name] = _convert(f, raw)
    return _check(AgentSettings(**values)), args


def reference_rows() -> list[tuple[str, str, str, str]]:
    """(environment variable, flag, default, meaning) of every setting: the documented configuration reference."""
    rows = []
    for f in dataclasses.fields(AgentSettings):
        default = ",".join(f.default) if isinstance(f.default, tuple) else str(f.default)
        flag = f"--{f.name.replace('_', '-')}" if f.metadata["flag"] else ""
        rows.append((f.metadata["env"], flag, default, f.metadata["help"]))
    rows.append((C.ENV_TOKEN, "", "", "the node token (when no token file is set); never a flag"))
    return rows


def reference_markdown() -> str:
    """The configuration reference as the Markdown table in docs/midgard.md (a test keeps the two equal)."""
    lines = ["| environment | flag | default | meaning |", "|---|---|---|---|"]
    for env, flag, default, help in reference_rows():
        lines.append(f"| `{env}` | {f'`{flag}`' if flag else ''} | `{default}` | {help} |")
    return "\n".join(lines)
