"""The route modules the gateway mounts, in order. A module is any module with:

- ``setup_routes(app: aiohttp.web.Application, gateway: odin_http.app.Gateway) -> None``: add its routes (under
  ``/v1``) and, if it needs them, ``app.on_startup`` / ``app.on_cleanup`` hooks;
- ``OPENAPI = {"paths": {...}, "schemas": {...}}``: its part of the OpenAPI document (``odin_http.openapi.op``);
- optionally ``SECTION = "name"`` and ``SETTINGS = <frozen dataclass of odin_http.settings.setting fields>``: its own
  settings group, built with the others (env ``ODIN_HTTP_<SECTION>_<FIELD>``, TOML table ``[name]``) and read
  with ``gateway.settings.module(SECTION)``.

To add one, append its import path to ``MODULES``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

MODULES: tuple[str, ...] = (
    "odin_http.routes.meta",
    "odin_http.routes.auth",
    "odin_http.routes.users",
    "odin_http.routes.pipelines",
    "odin_http.routes.resources",
    "odin_http.routes.jobs",
    "odin_http.nodes",  # midgard agents' reports: /v1/nodes, /v1/gpus, GPU timelines (docs/midgard.md)
)


def load() -> list[ModuleType]:
    return [importlib.import_module(name) for name in MODULES]


def setting_groups() -> list[tuple[str, type]]:
    return [(m.SECTION, m.SETTINGS) for m in load() if getattr(m, "SETTINGS", None) is not None]
