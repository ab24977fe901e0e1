"""The whole gateway (odin-http with PostgreSQL and a real core) for the node module's end-to-end tests: the
fixtures of tests/http, loaded from their conftest by path (tests/ is not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "http" / "conftest.py"
_spec = importlib.util.spec_from_file_location("odin_http_test_fixtures", _PATH)
assert _spec is not None and _spec.loader is not None
_http = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _http
_spec.loader.exec_module(_http)

root = _http.root
core_url = _http.core_url
gateway_dsn = _http.gateway_dsn
make_gateway = _http.make_gateway
