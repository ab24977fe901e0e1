"""A small REST client over the official ``kubernetes`` client's configuration: plain dicts, counted and
rate limited.

The official ``ApiClient`` loads the kubeconfig (certificates, tokens, exec plugins); Odin uses none
of its request machinery (``call_api`` serialises and wraps every request and response in models
Odin does not use). Every request goes through :class:`KubeClient`, which counts it by verb
(``api_requests``), takes a token from a client-side token bucket (the Python client has no rate
limiter), honours 429 ``Retry-After`` and retries 5xx and connection errors.

Two transports: everything the executor does from the loop (creates, deletes, log reads, lists,
watches) is an aiohttp exchange on the loop (``transport``: no thread hand-off per request); blocking
callers (preflight, the log-follow threads) use the official client's urllib3 pool (``request_sync``,
``stream_sync``). JSON is orjson's when installed (``odin-core[kubernetes]`` brings it).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, cast
from urllib.parse import urlencode

import aiohttp
import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from ...settings import KubernetesSettings
from . import transport
from .kubeconfig import load_kube_config

WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
_METHOD = {
    "get": "GET",
    "list": "GET",
    "watch": "GET",
    "create": "POST",
    "update": "PUT",
    "patch": "PATCH",
    "delete": "DELETE",
    "deletecollection": "DELETE",
}
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})

try:  # about 3x faster than json for watch events, the bulk of what a busy executor decodes
    import orjson

    loads: Callable[[bytes], Any] = orjson.loads
    dumps: Callable[[Any], bytes] = orjson.dumps
except ImportError:  # pragma: no cover - orjson comes with odin-core[kubernetes]
    loads = json.loads

    def dumps(obj: Any) -> bytes:
        return json.dumps(obj).encode()


_BACKOFF_S = 0.2
_MAX_BACKOFF_S = 5.0


class ApiError(Exception):
    """An answer of the API server that is not a success (status 0: no answer at all)."""

    def __init__(self, status: int, reason: str, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(f"{status} {reason}: {message}" if status else message)
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after_s = retry_after_s

    @property
    def retryable(self) -> bool:
        return self.status == 0 or self.status in _RETRY_STATUS


class TokenBucket:
    """``qps`` tokens a second, at most ``burst`` saved; ``reserve`` says how long to wait for one."""

    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.qps = qps
        self.burst = max(burst, 1)
        self._clock = clock
        self._tokens = float(self.burst)
        self._last = clock()
        self._lock = threading.Lock()

    def reserve(self) -> float:
        if self.qps <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1
            return 0.0 if self._tokens >= 0 else -self._tokens / self.qps


def load_api_client(settings: KubernetesSettings) -> k8s_client.ApiClient:
    """An ApiClient for the kubeconfig of ``settings`` (or the in-cluster config when it names none)."""
    cfg = k8s_client.Configuration()
    if settings.kubeconfig:
        load_kube_config(settings.kubeconfig, settings.context or None, cfg)
    else:
        try:
            k8s_config.load_incluster_config(client_configuration=cfg)
        except k8s_config.ConfigException:
            load_kube_config(None, settings.context or None, cfg)
    cfg.connection_pool_maxsize = max(64, settings.burst)
    return k8s_client.ApiClient(cfg)


class KubeClient:
    def __init__(self, api_client: k8s_client.ApiClient, settings: KubernetesSettings) -> None:
        self.api = api_client
        self.settings = settings
        self.bucket = TokenBucket(settings.qps, settings.burst)
        self.api_requests: dict[str, int] = {}
        self._count_lock = threading.Lock()
        self._host = api_client.configuration.host.rstrip("/")
        self._pool: urllib3.PoolManager = api_client.rest_client.pool_manager
        self._headers = {"Accept": "application/json", "User-Agent": api_client.user_agent}
        self._aio = transport.Session(api_client, self._headers)

    @property
    def writes(self) -> int:
        return sum(n for verb, n in self.api_requests.items() if verb in WRITE_VERBS)

    def _count(self, verb: str) -> None:
        with self._count_lock:
            self.api_requests[verb] = self.api_requests.get(verb, 0) + 1

    # -- one HTTP exchange --------------------------------------------------------------------

    def _open(
        self,
        verb: str,
        path: str,
        query: dict[str, Any] | None,
        body: Any,
        content_type: str | None,
        timeout: float | tuple[float, float] | None,
    ) -> urllib3.HTTPResponse:
        method = _METHOD[verb]
        headers = dict(self._headers)
        data = None
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
            data = body if isinstance(body, bytes) else dumps(body)
        self.api.update_params_for_auth(headers, [], ["BearerToken"], path, method, None)  # tokens, refreshed
        params = {k: v for k, v in (query or {}).items() if v is not None}
        url = f"{self._host}{path}?{urlencode(params)}" if params else f"{self._host}{path}"
        self._count(verb)
        try:
            resp = cast(
                urllib3.HTTPResponse,
                self._pool.request(
                    method,
                    url,
                    body=data,
                    headers=headers,
                    timeout=_timeout(timeout),
                    preload_content=False,
                    retries=False,
                ),
            )
        except ApiException as e:  # a kubeconfig token refresh that failed
            raise ApiError(e.status or 0, str(e.reason or "error"), str(e.reason or e)) from e
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise ApiError(0, "Unreachable", f"cannot reach the API server: {e}") from e
        if resp.status >= 400:
            raise _error_from(resp)
        return resp

    def _once(self, verb: str, path: str, **kw: Any) -> Any:
        resp = self._open(verb, path, kw.get("query"), kw.get("body"), kw.get("content_type"), kw.get("timeout"))
        try:
            data = resp.read()
        finally:
            resp.release_conn()
        if kw.get("raw"):
            return data
        return loads(data) if data else {}

    # -- sync (threads) -----------------------------------------------------------------------

    def request_sync(self, verb: str, path: str, **kw: Any) -> Any:
        kw.setdefault("timeout", self.settings.request_timeout_s)
        for attempt in range(self.settings.max_retries + 1):
            time.sleep(self.bucket.reserve())
            try:
                return self._once(verb, path, **kw)
            except ApiError as e:
                if not e.retryable or attempt >= self.settings.max_retries:
                    raise
                time.sleep(_retry_delay(e, attempt))
        raise AssertionError("unreachable")

    def stream_sync(self, verb: str, path: str, query: dict[str, Any], timeout: float | None) -> urllib3.HTTPResponse:
        """Open a long response (watch, followed log); the caller reads and releases it."""
        time.sleep(self.bucket.reserve())
        read_timeout = (self.settings.request_timeout_s, timeout) if timeout else None
        return self._open(verb, path, query, None, None, read_timeout)

    # -- async --------------------------------------------------------------------------------

    async def request(self, verb: str, path: str, **kw: Any) -> Any:
        """One request from the loop (tokens awaited on the loop, the exchange on the loop's session), retried."""
        kw.setdefault("timeout", self.settings.request_timeout_s)
        return await self._retried(partial(self._exchange, verb, path, **kw))

    async def stream(
        self, verb: str, path: str, query: dict[str, Any], read_timeout: float | None
    ) -> aiohttp.ClientResponse:
        """Open a long response (a watch) on the loop; the caller reads it and releases it. Not retried."""
        delay = self.bucket.reserve()
        if delay:
            await asyncio.sleep(delay)
        connect = self.settings.request_timeout_s
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read_timeout)
        return await self._send(verb, path, query=query, timeout=timeout)

    async def _retried(self, once: Callable[[], Awaitable[Any]]) -> Any:
        for attempt in range(self.settings.max_retries + 1):
            delay = self.bucket.reserve()
            if delay:
                await asyncio.sleep(delay)
            try:
                return await once()
            except ApiError as e:
                if e.status == 401 and attempt == 0:
                    await self._aio.headers(force=True)  # a token that expired meanwhile: refresh, try again
                    continue
                if not e.retryable or attempt >= self.settings.max_retries:
                    raise
                await asyncio.sleep(_retry_delay(e, attempt))
        raise AssertionError("unreachable")

    async def _exchange(self, verb: str, path: str, *, raw: bool = False, **kw: Any) -> Any:
        resp = await self._send(verb, path, timeout=transport.timeout(kw.pop("timeout", None)), **kw)
        try:
            payload = await resp.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise ApiError(0, "Unreachable", f"cannot reach the API server: {e!r}") from e
        finally:
            resp.release()
        if raw:
            return payload
        return loads(payload) if payload else {}

    async def _send(
        self,
        verb: str,
        path: str,
        *,
        timeout: aiohttp.ClientTimeout,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> aiohttp.ClientResponse:
        """Send one request; an answer of 400 or more is read and raised as an ApiError."""
        try:
            headers = await self._aio.headers()
        except transport.AuthRefreshFailed as e:
            why = f"could not refresh the kubeconfig's token: {e.reason}"
            raise ApiError(e.status, "AuthRefreshFailed", why) from e
        data = None
        if body is not None:
            headers = {**headers, "Content-Type": content_type or "application/json"}
            data = body if isinstance(body, bytes) else dumps(body)
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        self._count(verb)
        aio = self._aio
        try:
            resp = await aio.session().request(
                _METHOD[verb],
                f"{self._host}{path}",
                params=params or None,
                data=data,
                headers=headers,
                timeout=timeout,
                server_hostname=aio.server_hostname,
                proxy=aio.proxy,
                proxy_headers=aio.proxy_headers,
                allow_redirects=False,
            )
            if resp.status >= 400:
                try:
                    payload = await resp.read()
                finally:
                    resp.release()
                raise _error(resp.status, resp.reason or "", payload, resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            raise ApiError(0, "Unreachable", f"cannot reach the API server: {e!r}") from e
        return resp

    async def aclose(self) -> None:
        """Close the loop's session (on the loop), then the urllib3 pool."""
        await self._aio.close()
        await asyncio.to_thread(self.api.close)

    def close(self) -> None:
        """Close the urllib3 pool (blocking callers; async users call ``aclose``)."""
        self.api.close()


def _timeout(value: float | tuple[float, float] | None) -> urllib3.Timeout | None:
    if value is None:
        return None
    if isinstance(value, tuple):
        return urllib3.Timeout(connect=value[0], read=value[1])
    return urllib3.Timeout(total=value)


def _retry_delay(e: ApiError, attempt: int) -> float:
    if e.retry_after_s is not None:
        return e.retry_after_s
    return min(_BACKOFF_S * 2**attempt, _MAX_BACKOFF_S)


def _error_from(resp: urllib3.HTTPResponse) -> ApiError:
    try:
        raw = resp.read()
    finally:
        resp.release_conn()
    return _error(resp.status, resp.reason or "", raw, resp.headers.get("Retry-After"))


def _error(status: int, reason: str, raw: bytes, retry_after: str | None) -> ApiError:
    """An error answer as an ApiError: the API server's Status object (message, reason) when it sent one."""
    message = raw.decode(errors="replace")[:2000]
    try:
        answer = loads(raw)
        message, reason = answer.get("message", message), answer.get("reason", reason)
    except (ValueError, AttributeError):
        pass
    return ApiError(status, reason, message, retry_after_s=_seconds(retry_after))


def _seconds(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None
