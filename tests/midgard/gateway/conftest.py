"""The whole gateway (odin-http with PostgreSQL and a real core) for the node module's end-to-end tests: the
fixtures of tests/http, loaded from their conftest by path (tests/ is not a package)."""

from __future__ import annotations

from pathlib import Path

from midgard_support import load_conftest

_http = load_conftest(Path(__file__).resolve().parents[2] / "http" / "conftest.py", "odin_http_test_fixtures")

root = _http.root
core_url = _http.core_url
gateway_dsn = _http.gateway_dsn
make_gateway = _http.make_gateway
