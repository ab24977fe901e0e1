"""Pod UID -> pod and Odin task, from the Kubernetes API, with the least privilege that does the job.

The agent lists pods only in the namespaces it is given (Odin's), only those on its own node (field selector
``spec.nodeName``), with a namespaced Role allowing ``list`` on ``pods`` and nothing else. The kubelet's own pod
list would need ``nodes/proxy``, which also opens exec into every pod of the node: far more than reading names.
A list happens only when a process's pod is not known yet, at most once per ``pod_relist_s``; the service-account
token is read at every list, so a rotated (projected) token is picked up.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from . import constants as C
from .report import PodFacts

log = logging.getLogger("midgard.pods")


def pod_facts(item: Mapping[str, Any]) -> PodFacts | None:
    """A pod object of the API as ``PodFacts``; None when it lacks a UID."""
    meta = item.get("metadata") or {}
    uid = meta.get("uid")
    if not isinstance(uid, str) or not uid:
        return None
    labels = meta.get("labels") or {}
    run, task = str(labels.get(C.LABEL_RUN, "")), str(labels.get(C.LABEL_TASK, ""))
    task_id = _env_task_id(item) or (f"{run}--{task}" if run and task else "")
    return PodFacts(uid=uid, namespace=str(meta.get("namespace", "")), name=str(meta.get("name", "")),
                    run_id=run, task=task, task_id=task_id)  # fmt: skip


def _env_task_id(item: Mapping[str, Any]) -> str:
    """The exact task id Odin put in the container's environment (labels may be shortened to 63 characters)."""
    for container in (item.get("spec") or {}).get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == C.ENV_TASK_ID and isinstance(env.get("value"), str):
                return env["value"]
    return ""


class PodResolver:
    """Caches the pods of this node; ``resolve`` lists again when it meets a UID it does not know."""

    def __init__(self, *, api_url: str, namespaces: Iterable[str], node: str, token_file: str, ca_file: str,
                 relist_s: float, timeout_s: float = 5.0) -> None:  # fmt: skip
        self.api_url = api_url.rstrip("/")
        self.namespaces = tuple(namespaces)
        self.node = node
        self.token_file = token_file
        self.ca_file = ca_file
        self.relist_s = relist_s
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.pods: dict[str, PodFacts] = {}
        self.listed_at = float("-inf")
        self.last_error = ""
        self.lists = 0
        self._session: aiohttp.ClientSession | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.api_url and self.namespaces)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def resolve(self, uids: Iterable[str]) -> dict[str, PodFacts]:
        wanted = {u for u in uids if u}
        if self.enabled and wanted - self.pods.keys() and time.monotonic() - self.listed_at >= self.relist_s:
            await self.relist()
        return {u: self.pods[u] for u in wanted if u in self.pods}

    async def relist(self) -> None:
        self.listed_at = time.monotonic()
        try:
            found: dict[str, PodFacts] = {}
            for ns in self.namespaces:
                for item in await self._list(ns):
                    facts = pod_facts(item)
                    if facts:
                        found[facts.uid] = facts
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
            self._failed(f"cannot list pods on {self.api_url}: {type(e).__name__}: {e}")
            return
        self.pods, self.last_error = found, ""
        self.lists += 1

    def _failed(self, message: str) -> None:
        if message != self.last_error:  # one line per new problem, not one per interval
            log.warning("%s (processes are reported without their pods)", message)
        self.last_error = message

    async def _list(self, namespace: str) -> list[dict[str, Any]]:
        url = f"{self.api_url}/api/v1/namespaces/{quote(namespace, safe='')}/pods"
        params = {"fieldSelector": f"spec.nodeName={self.node}"}
        session = await self._client()
        async with session.get(url, params=params, headers=self._headers()) as resp:
            if resp.status != 200:
                text = (await resp.text())[:200]
                raise ValueError(f"HTTP {resp.status} listing pods in {namespace}: {text}")
            body = await resp.json()
        return list(body.get("items") or [])

    def _headers(self) -> dict[str, str]:
        try:
            token = Path(self.token_file).read_text(encoding="utf-8").strip()
        except OSError:
            token = ""
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            ctx: ssl.SSLContext | bool = True
            if self.api_url.startswith("https") and Path(self.ca_file).is_file():
                ctx = ssl.create_default_context(cafile=self.ca_file)
            self._session = aiohttp.ClientSession(timeout=self.timeout, connector=aiohttp.TCPConnector(ssl=ctx))
        return self._session
