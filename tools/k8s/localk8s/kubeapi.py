"""A deliberately tiny HTTPS/JSON client for bootstrapping the local control plane.

The launcher must run with the standard library (+ cryptography, PyYAML) only, so it cannot use
the official `kubernetes` client; it needs a handful of GET/POST calls and health probes.
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REQUEST_TIMEOUT_S = 5.0
APPLY_TIMEOUT_S = 60.0  # a 550 KB CRD on a busy 2-core machine
APPLY_PATCH = "application/apply-patch+yaml"  # JSON is YAML
POLL_INTERVAL_S = 0.2


class ApiError(Exception):
    """The API server answered with an error status."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status
        self.body = body


def insecure_context() -> ssl.SSLContext:
    """For health probes of components serving self-signed certificates on loopback."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def probe(url: str, ctx: ssl.SSLContext | None = None) -> tuple[bool, str]:
    """GET `url`; (True, body) on 200, (False, reason) otherwise. Never raises."""
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_S, context=ctx) as resp:
            return resp.status == 200, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return False, f"HTTP {e.code}: {e.read().decode(errors='replace')[:300]}"
    except (OSError, ssl.SSLError) as e:
        return False, str(e)


def wait_until(check: Callable[[], tuple[bool, str]], *, timeout_s: float) -> tuple[bool, str]:
    """Poll `check` until it succeeds or `timeout_s` passes; returns the last result."""
    deadline = time.monotonic() + timeout_s
    ok, detail = check()
    while not ok and time.monotonic() < deadline:
        time.sleep(POLL_INTERVAL_S)
        ok, detail = check()
    return ok, detail


@dataclass(frozen=True)
class KubeApi:
    server: str
    ctx: ssl.SSLContext

    @classmethod
    def with_client_cert(cls, server: str, *, ca: Path, cert: Path, key: Path) -> KubeApi:
        ctx = ssl.create_default_context(cafile=str(ca))
        ctx.load_cert_chain(str(cert), str(key))
        return cls(server, ctx)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, timeout=timeout_s, context=self.ctx) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raise ApiError(e.code, e.read().decode(errors="replace")) from e

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def create(self, path: str, obj: dict) -> Any:
        """POST `obj`; an object that already exists is left as it is."""
        try:
            return self.request("POST", path, obj)
        except ApiError as e:
            if e.status != 409:
                raise
            return None

    def apply(self, path: str, obj: dict, *, manager: str = "odin-local") -> Any:
        """Server-side apply of ``obj`` at ``path`` (its collection path + ``/<name>``): created or updated in
        place, with no last-applied annotation (the training operator's CRDs are too big for one)."""
        query = f"?fieldManager={manager}&force=true"
        return self.request("PATCH", path + query, obj, content_type=APPLY_PATCH, timeout_s=APPLY_TIMEOUT_S)

    def delete(self, path: str) -> None:
        """DELETE; an object that is already gone is fine."""
        try:
            self.request("DELETE", path)
        except ApiError as e:
            if e.status != 404:
                raise

    def probe(self, path: str) -> tuple[bool, str]:
        return probe(self.server + path, self.ctx)
