"""Requests from the event loop: one aiohttp session per client, on the loop, with the kubeconfig's TLS and tokens.

Every async request of the executor (creates, deletes, log reads, lists) is an exchange on this
session: no thread hand-off, no model objects, the C HTTP parser of aiohttp, keep-alive connections
(``CONNECTIONS`` at most, so a burst of 1,000 requests is 1,000 requests on a few connections, not
1,000 TLS handshakes for the API server). The TLS settings (CA, client certificate, verification,
``tls-server-name``) come from the official client's ``Configuration`` as the kubeconfig loader left it.

Proxies: a kubeconfig's ``proxy-url`` (HTTP or HTTPS; ``no_proxy`` honoured) is used for every
request; SOCKS proxies are refused with a clear error (aiohttp has no SOCKS support of its own).

Tokens: a kubeconfig's (or the in-cluster) token may be refreshed by the configuration's hook, which
can read a file or run an exec plugin, so the hook runs in a thread, at most every ``AUTH_REFRESH_S``
(and at once after a 401); requests in between use the headers of the last refresh.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any

import aiohttp
from kubernetes import client as k8s_client
from kubernetes.client import rest as k8s_rest
from kubernetes.client.exceptions import ApiException

from ...errors import PermanentError

AUTH_REFRESH_S = 5.0
CONNECTIONS = 32  # keep-alive connections to the API server at most (HTTP/1.1: one request in flight on each)


def ssl_context(cfg: k8s_client.Configuration) -> ssl.SSLContext | bool:
    """The TLS context the official client would use (False: plain HTTP)."""
    if not cfg.host.startswith("https"):
        return False
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None, cadata=getattr(cfg, "ca_cert_data", None) or None)
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file or None)
    if not cfg.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif cfg.assert_hostname is False:
        ctx.check_hostname = False
    return ctx


class Session:
    """The loop's aiohttp session (made on first use on the running loop) and the current auth headers."""

    def __init__(self, api: k8s_client.ApiClient, base_headers: dict[str, str]) -> None:
        self.api = api
        self.cfg: k8s_client.Configuration = api.configuration
        self._base = base_headers
        self._headers: dict[str, str] | None = None
        self._refreshed = 0.0
        self._refreshing: asyncio.Lock | None = None
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ssl = ssl_context(self.cfg)
        self.server_hostname: str | None = getattr(self.cfg, "tls_server_name", None) or None
        self.proxy, self.proxy_headers = proxy_of(self.cfg)

    def _auth(self) -> dict[str, str]:
        headers = dict(self._base)
        try:
            self.api.update_params_for_auth(headers, [], ["BearerToken"], "", "GET", None)  # may run the refresh hook
        except ApiException as e:  # a token refresh that failed
            raise AuthRefreshFailed(e.status or 0, str(e.reason or e)) from e
        return headers

    async def headers(self, *, force: bool = False) -> dict[str, str]:
        """The headers of every request, tokens included; refreshed in a thread when a hook may change them."""
        hook = self.cfg.refresh_api_key_hook
        if self._headers is not None and hook is None and not force:
            return self._headers
        if self._headers is not None and not force and time.monotonic() - self._refreshed < AUTH_REFRESH_S:
            return self._headers
        self._refreshing = self._refreshing or asyncio.Lock()
        async with self._refreshing:
            if force or self._headers is None or time.monotonic() - self._refreshed >= AUTH_REFRESH_S:
                self._headers = await asyncio.to_thread(self._auth) if hook is not None else self._auth()
                self._refreshed = time.monotonic()
        return self._headers

    def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            self._loop = loop  # a session belongs to one loop (a client used from a later loop gets a new one)
            connector = aiohttp.TCPConnector(limit=CONNECTIONS, ssl=self._ssl, enable_cleanup_closed=True)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=True, skip_auto_headers=("Accept-Encoding",)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and self._loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None


class AuthRefreshFailed(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def proxy_of(cfg: k8s_client.Configuration) -> tuple[str | None, dict[str, str] | None]:
    """The HTTP(S) proxy to reach the API server through (None: direct), as the official client decides it."""
    proxy = getattr(cfg, "proxy", None)
    if not proxy:
        return None, None
    bypass = getattr(k8s_rest, "should_bypass_proxies", None)
    if bypass is not None and bypass(cfg.host, getattr(cfg, "no_proxy", None) or ""):
        return None, None
    if not proxy.lower().startswith(("http://", "https://")):
        raise PermanentError(
            f"the kubeconfig's proxy {proxy} is not an HTTP(S) proxy; the Kubernetes executor supports HTTP and "
            "HTTPS proxies only"
        )
    return proxy, dict(getattr(cfg, "proxy_headers", None) or {}) or None


def timeout(value: Any) -> aiohttp.ClientTimeout:
    if isinstance(value, tuple):
        return aiohttp.ClientTimeout(connect=value[0], sock_read=value[1])
    return aiohttp.ClientTimeout(total=value)
