"""A small REST client over the official ``kubernetes`` client's configuration: plain dicts, counted and
rate limited.

The official ``ApiClient`` loads the kubeconfig (certificates, tokens, exec plugins) and owns the
connection pool; requests go straight to that pool (its ``call_api`` path serialises and wraps
every request and response in models Odin does not use). Every request goes through
:class:`KubeClient`, which counts it by verb (``api_requests``), takes a token from a client-side
token bucket (the Python client has no rate limiter), honours 429 ``Retry-After`` and retries 5xx
and connection errors. Async callers wait for tokens on the loop and run the blocking call on the
client's own threads (enough of them to keep ``burst`` requests in flight); watch and log threads
use the sync path. JSON is orjson's when installed (``odin-core[kubernetes]`` brings it).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, cast
from urllib.parse import urlencode

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from ...settings import KubernetesSettings

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
REQUEST_THREADS = 16  # requests in flight at once from the loop (the default executor has cpu + 4)

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
        k8s_config.load_kube_config(settings.kubeconfig, context=settings.context or None, client_configuration=cfg)
    else:
        try:
            k8s_config.load_incluster_config(client_configuration=cfg)
        except k8s_config.ConfigException:
            k8s_config.load_kube_config(context=settings.context or None, client_configuration=cfg)
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
        self._threads = ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="odin-k8s")

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
        """One request from the loop: tokens are awaited on the loop, the call runs on the client's threads."""
        return await self.call(self._once, verb, path, **kw)

    async def call(self, fn: Callable[..., Any], verb: str, path: str, **kw: Any) -> Any:
        """``fn(verb, path, **kw)`` (a request, perhaps with more work done in the same thread), rate limited
        and retried like ``request``."""
        kw.setdefault("timeout", self.settings.request_timeout_s)
        loop = asyncio.get_running_loop()
        for attempt in range(self.settings.max_retries + 1):
            delay = self.bucket.reserve()
            if delay:
                await asyncio.sleep(delay)
            try:
                return await loop.run_in_executor(self._threads, partial(fn, verb, path, **kw))
            except ApiError as e:
                if not e.retryable or attempt >= self.settings.max_retries:
                    raise
                await asyncio.sleep(_retry_delay(e, attempt))
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
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
    message, reason = raw.decode(errors="replace")[:2000], resp.reason or ""
    try:
        status = loads(raw)
        message, reason = status.get("message", message), status.get("reason", reason)
    except ValueError:
        pass
    retry_after = resp.headers.get("Retry-After")
    return ApiError(resp.status, reason, message, retry_after_s=_seconds(retry_after))


def _seconds(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None
