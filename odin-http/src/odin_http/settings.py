"""The gateway's settings: frozen dataclass groups, built once from the environment and an optional TOML file.

Every setting is declared with :func:`setting`, which records its environment variable and its documentation, so the
configuration reference (``odin-http settings --markdown``, docs/gateway.md) is generated from this code and cannot
drift. Precedence: environment variable, then the file given by ``ODIN_HTTP_CONFIG`` (a TOML table per group, e.g.
``[auth] access_ttl_s = 600``), then the default. Secrets are read from files (``*_FILE`` variables) or the
environment, and are held in :class:`Secret`, which never prints its value.

Route modules may declare a group of their own (``SETTINGS`` and ``SECTION``, see :mod:`odin_http.modules`); it is
built here with the others and reaches the module through ``Settings.module(SECTION)``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import constants as C


class Secret:
    """A secret value: ``str()``/``repr()`` never show it; ``reveal()`` does."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('***')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def setting(default: Any, doc: str, *, env: str = "", secret: bool = False) -> Any:
    """Declare one setting: its default, its documentation and (optionally) its environment variable name."""
    meta = {"doc": doc, "env": env, "secret": secret}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class ServerSettings:
    host: str = setting("127.0.0.1", "Address to listen on (0.0.0.0 for every interface).")
    port: int = setting(C.DEFAULT_PORT, "Port to listen on (0 picks a free one).")
    public_reads: bool = setting(
        True,
        "Let requests without a token read pipelines, runs, jobs and single users, as the first Odin did (its "
        "client reads without a token). Set false to require a token on every route but ping, app, health, "
        "metrics and the API documents.",
    )
    max_body_bytes: int = setting(1 << 20, "Largest request body accepted (413 above it).")
    shutdown_grace_s: float = setting(5.0, "How long requests in flight may take to finish at shutdown.")
    log_level: str = setting("INFO", "Log level of the gateway's own loggers.")


@dataclass(frozen=True)
class CoreSettings:
    url: str = setting("ws://127.0.0.1:30000", "WebSocket URL of the core (`odin-core serve`).")
    token: Secret = setting(
        Secret(""), "Static bearer token the core accepts (`odin-core serve --token`).", secret=True
    )
    jwt_secret: Secret = setting(
        Secret(""),
        "Key of the HS256 JWTs the core accepts (`odin-core serve --jwt-secret`); the gateway signs its own "
        "short-lived token with it. Must differ from the users' token key.",
        secret=True,
    )
    token_ttl_s: float = setting(3600.0, "Lifetime of the JWT the gateway presents to the core.")
    open_timeout_s: float = setting(10.0, "Timeout of one connection attempt to the core.")
    reconnect_timeout_s: float = setting(30.0, "How long a live stream keeps trying to resume after the core drops.")
    request_timeout_s: float = setting(30.0, "Timeout of one request to the core (503 after it).")


@dataclass(frozen=True)
class DatabaseSettings:
    dsn: Secret = setting(
        Secret(""), "PostgreSQL DSN of the users database, e.g. postgresql://odin@db/odin.", secret=True
    )
    pool_min: int = setting(1, "Connections kept open.")
    pool_max: int = setting(10, "Most connections open at once.")
    connect_timeout_s: float = setting(10.0, "Timeout of one connection attempt to PostgreSQL.")


@dataclass(frozen=True)
class AuthSettings:
    jwt_secret: Secret = setting(Secret(""), "Key of the users' access and refresh tokens (required).", secret=True)
    jwt_algorithm: str = setting("HS256", "The one algorithm tokens are signed and verified with (HS256/384/512).")
    issuer: str = setting("odin-http", "`iss` of every token; tokens of another issuer are refused.")
    audience: str = setting("odin", "`aud` of every token; tokens for another audience are refused.")
    access_ttl_s: int = setting(900, "Lifetime of an access token.")
    refresh_ttl_s: int = setting(7 * 86400, "Lifetime of a refresh token.")
    leeway_s: int = setting(10, "Clock skew allowed when checking expiry.")
    root_username: str = setting("admin", "The admin created at first start when no user exists.")
    root_password: Secret = setting(
        Secret(""),
        "Password of that admin (use the _FILE variable in deployments); without one no admin is created.",
        secret=True,
    )
    max_failures: int = setting(5, "Failed logins (per user, and per address) before logins are slowed down.")
    failure_window_s: int = setting(900, "Failures older than this are forgotten.")
    base_delay_s: float = setting(1.0, "First delay once the limit is reached; it doubles with each failure.")
    max_delay_s: float = setting(900.0, "Longest delay between two login attempts.")
    min_password_length: int = setting(8, "Shortest password accepted.")


@dataclass(frozen=True)
class GitSettings:
    root: Path = setting(
        Path("pipelines"),
        "The pipelines root: the core's --root-path as mounted here. The repository and the commits the core runs "
        "live under its .odin/ folder.",
    )
    repository: str = setting("", "The pipelines repository (bare); default <root>/.odin/repo.git.")
    branch: str = setting("main", "The branch that holds the definitions.")
    remote_url: str = setting("", "Optional remote (ssh://, git@host:path, https:// or a path) pulled and pushed.")
    ssh_key_file: str = setting("", "Private deploy key for an SSH remote (its .pub beside it).")
    ssh_known_hosts_file: str = setting(
        "", "known_hosts holding the SSH remote's host key (default ~/.ssh/known_hosts); an unknown key is refused."
    )
    ssh_key_passphrase: Secret = setting(Secret(""), "Passphrase of the deploy key, if it has one.", secret=True)
    https_username: str = setting("", "User name for an HTTPS remote.")
    https_password: Secret = setting(Secret(""), "Password or token for an HTTPS remote.", secret=True)
    pull_interval_s: float = setting(
        0.0, "A read pulls the remote when the last pull is older than this (0: every read sees a push at once)."
    )
    write_retries: int = setting(5, "Times a write is replayed on a newer head before answering 409.")
    keep_commits: int = setting(64, "Snapshots of commits kept for the core (the oldest unused are removed).")
    max_file_bytes: int = setting(1 << 20, "Largest file of a job.")
    max_job_bytes: int = setting(8 << 20, "Largest job (all its files).")
    max_job_files: int = setting(200, "Most files in one job.")


@dataclass(frozen=True)
class ListSettings:
    default_limit: int = setting(100, "Items per page when a list request gives no limit.")
    max_limit: int = setting(1000, "Largest limit a list request may ask for.")


GROUPS: dict[str, type] = {
    "server": ServerSettings,
    "core": CoreSettings,
    "database": DatabaseSettings,
    "auth": AuthSettings,
    "git": GitSettings,
    "lists": ListSettings,
}


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    core: CoreSettings = field(default_factory=CoreSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    git: GitSettings = field(default_factory=GitSettings)
    lists: ListSettings = field(default_factory=ListSettings)
    modules: Mapping[str, Any] = field(default_factory=dict)
    """The groups of route modules, by section (``module(section)``)."""

    def module(self, section: str) -> Any:
        return self.modules[section]

    @property
    def repository(self) -> Path:
        return Path(self.git.repository) if self.git.repository else self.git.root / C.STATE_DIR / C.REPO_DIR

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **groups: Any) -> Settings:
        """Build every group from ``env`` (default ``os.environ``) and the TOML file it names; ``groups`` override."""
        env = os.environ if env is None else env
        path = env.get(C.ENV_CONFIG_FILE, "")
        table = tomllib.loads(Path(path).read_text()) if path else {}
        built = {name: build_group(kind, name, env, table.get(name, {})) for name, kind in GROUPS.items()}
        mods = {section: build_group(kind, section, env, table.get(section, {})) for section, kind in module_groups()}
        built.update(groups)
        return cls(**built, modules=mods)


def module_groups() -> list[tuple[str, type]]:
    from .modules import setting_groups  # the route modules' own groups

    return setting_groups()


def env_name(section: str, name: str, declared: str = "") -> str:
    return declared or f"{C.ENV_PREFIX}{section}_{name}".upper()


def build_group(kind: type, section: str, env: Mapping[str, str], table: Mapping[str, Any]) -> Any:
    """One group: each field from its variable, its ``_FILE`` variable (secrets), the file's table, or the default."""
    hints = typing.get_type_hints(kind)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(kind):
        name = env_name(section, f.name, f.metadata.get("env", ""))
        raw = _raw_value(name, env, table.get(f.name))
        if raw is not None:
            values[f.name] = _convert(raw, hints[f.name], name)
    unknown = set(table) - {f.name for f in dataclasses.fields(kind)}
    if unknown:
        raise ValueError(f"unknown setting(s) in [{section}] of the config file: {', '.join(sorted(unknown))}")
    return kind(**values)


def _raw_value(name: str, env: Mapping[str, str], from_file: Any) -> Any:
    if name in env:
        return env[name]
    secret_file = env.get(f"{name}_FILE")
    if secret_file:
        try:
            return Path(secret_file).read_text().strip()
        except OSError as e:
            raise ValueError(f"{name}_FILE: cannot read {secret_file}: {e.strerror}") from None
    return from_file


def _convert(raw: Any, kind: Any, name: str) -> Any:
    if isinstance(kind, types.UnionType):
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    try:
        if kind is bool:
            return raw if isinstance(raw, bool) else _boolean(str(raw))
        if kind is Secret:
            return Secret(str(raw))
        if kind is Path:
            return Path(str(raw)).expanduser()
        if kind in (int, float, str):
            return kind(raw)
    except ValueError:
        raise ValueError(f"{name}: {raw!r} is not a valid {kind.__name__}") from None
    raise TypeError(f"{name}: settings of type {kind} are not supported")


def _boolean(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(text)


# -- the configuration reference --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingDoc:
    section: str
    name: str
    env: str
    default: str
    doc: str
    secret: bool


def describe() -> Iterator[SettingDoc]:
    """Every setting of every group (the route modules' included), for the generated reference."""
    for section, kind in [*GROUPS.items(), *module_groups()]:
        for f in dataclasses.fields(kind):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc,operator]
            shown = "(secret)" if isinstance(default, Secret) else _show(default)
            env = env_name(section, f.name, f.metadata.get("env", ""))
            yield SettingDoc(section, f.name, env, shown, f.metadata.get("doc", ""), bool(f.metadata.get("secret")))


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"`{value}`" if value not in ("", None) else '""'


def markdown() -> str:
    """The configuration reference as a Markdown table per group."""
    lines: list[str] = []
    section = ""
    for d in describe():
        if d.section != section:
            section = d.section
            lines += ["", f"### [{section}]", "", "| setting | variable | default | meaning |", "|---|---|---|---|"]
        env = f"`{d.env}` / `{d.env}_FILE`" if d.secret else f"`{d.env}`"
        lines.append(f"| `{d.name}` | {env} | {d.default} | {d.doc} |")
    return "\n".join(lines).strip() + "\n"
