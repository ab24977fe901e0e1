"""Node capacity from the Kubernetes API (``status.capacity`` of every node), refreshed in the background.

Least privilege: a ClusterRole with ``get``/``list`` on ``nodes`` and nothing else. A failed list keeps the last
capacity and is logged once per new problem; nodes are then listed with the capacity their agent reports.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from odin_core.tasks import TaskSet

if TYPE_CHECKING:
    from .nodes_model import NodeRegistry

log = logging.getLogger("odin_http.nodes")


def capacities(node_list: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> status.capacity of a NodeList."""
    out = {}
    for item in node_list.get("items") or []:
        name = (item.get("metadata") or {}).get("name")
        cap = (item.get("status") or {}).get("capacity") or {}
        if isinstance(name, str) and isinstance(cap, dict):
            out[name] = {str(k): str(v) for k, v in cap.items()}
    return out


class NodeCapacity:
    def __init__(self, registry: NodeRegistry, *, url: str, token_file: str, ca_file: str, refresh_s: float) -> None:
        self.registry = registry
        self.url = "" if url == "none" else url.rstrip("/")
        self.token_file = token_file
        self.ca_file = ca_file
        self.refresh_s = refresh_s
        self.last_error = ""
        self.refreshed = asyncio.Event()
        self._tasks = TaskSet("odin-nodes")
        self._session: aiohttp.ClientSession | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.url) and Path(self.token_file).is_file()

    def start(self) -> None:
        if self.enabled:
            self._tasks.spawn(self._loop(), "capacity")

    async def close(self) -> None:
        await self._tasks.close()
        if self._session is not None:
            await self._session.close()

    async def _loop(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.refresh_s)

    async def refresh(self) -> None:
        try:
            self.registry.set_capacity(capacities(await self._list()))
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as e:
            message = f"cannot list Kubernetes nodes on {self.url}: {type(e).__name__}: {e}"
            if message != self.last_error:
                log.warning("%s (node capacity comes from the agents)", message)
            self.last_error = message
        else:
            self.last_error = ""
        self.refreshed.set()

    async def _list(self) -> dict[str, Any]:
        if self._session is None:
            ctx: ssl.SSLContext | bool = True
            if Path(self.ca_file).is_file():
                ctx = ssl.create_default_context(cafile=self.ca_file)
            timeout = aiohttp.ClientTimeout(total=10)
            self._session = aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(ssl=ctx))
        token = Path(self.token_file).read_text(encoding="utf-8").strip()
        async with self._session.get(f"{self.url}/api/v1/nodes", headers={"Authorization": f"Bearer {token}"}) as r:
            if r.status != 200:
                raise ValueError(f"HTTP {r.status}: {(await r.text())[:200]}")
            body = await r.json()
        return body if isinstance(body, dict) else {}
