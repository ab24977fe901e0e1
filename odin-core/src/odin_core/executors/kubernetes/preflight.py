"""Checks before a run is created, so a setup problem is one clear line instead of a run that fails.

``check_kubernetes``: the kubeconfig can be found and read, and the API server answers a request with
its credentials. Blocking (file reads, one HTTP request): call it from a thread in async code.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from ...errors import InvalidRequest, UpstreamError
from ...settings import KubernetesSettings

PREFLIGHT_TIMEOUT_S = 5.0
_ERRNO_TEXT = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")
KUBECONFIG_HINT = "give one with --kubeconfig PATH (or ODIN_KUBECONFIG)"


def check_kubernetes(settings: KubernetesSettings, *, timeout_s: float = PREFLIGHT_TIMEOUT_S) -> None:
    """Raise InvalidRequest (no usable kubeconfig) or UpstreamError (the API server cannot be used)."""
    from kubernetes.config import ConfigException

    from .client import ApiError, KubeClient, load_api_client

    given = settings.kubeconfig
    if given and not Path(given).expanduser().is_file():
        raise InvalidRequest(f"kubeconfig {given} does not exist; {KUBECONFIG_HINT}")
    try:
        api = load_api_client(settings)
    except (ConfigException, OSError, ValueError) as e:
        if not given:
            raise InvalidRequest(
                "no kubeconfig found (not inside a cluster, no $KUBECONFIG, no ~/.kube/config); "
                f"{KUBECONFIG_HINT}, or start a local cluster with `make cluster-up`"
            ) from None
        raise InvalidRequest(f"cannot read kubeconfig {given}: {_one_line(str(e))}") from None
    host = api.configuration.host
    source = f"kubeconfig {given}" if given else "the default kubeconfig"
    quick = dataclasses.replace(settings, max_retries=0, request_timeout_s=timeout_s)
    try:
        KubeClient(api, quick).request_sync("list", f"/api/v1/namespaces/{settings.namespace}/pods", query={"limit": 1})
    except ApiError as e:
        if e.status == 0:
            raise UpstreamError(
                f"cannot reach the Kubernetes API server at {host} ({_reason(e)}); is the cluster up? "
                f"(it comes from {source})"
            ) from None
        if e.status in (401, 403):
            raise UpstreamError(
                f"the Kubernetes API server at {host} refused the credentials of {source} "
                f"to list pods in namespace {settings.namespace!r} ({e.status} {_one_line(e.reason)})"
            ) from None
        raise UpstreamError(f"the Kubernetes API server at {host} answered {e.status} {_one_line(e.reason)}") from None
    finally:
        api.close()


def _reason(error: BaseException) -> str:
    """ "Connection refused", "timed out", … out of urllib3's nested messages."""
    text = " ".join(str(e) for e in _chain(error))
    found = _ERRNO_TEXT.search(text)
    if found:
        return found.group(1).strip().lower()
    if "timed out" in text.lower() or "timeout" in text.lower():
        return f"no answer within {PREFLIGHT_TIMEOUT_S:g}s"
    return _one_line(text)[:200]


def _chain(error: BaseException | None) -> list[BaseException]:
    out: list[BaseException] = []
    while error is not None and len(out) < 10:
        out.append(error)
        error = error.__cause__ or error.__context__
    return out


def _one_line(text: str) -> str:
    return " ".join(text.split())


__all__ = ["check_kubernetes"]
