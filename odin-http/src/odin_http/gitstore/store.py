"""The async face of the pipelines repository: every libgit2 call runs in a thread, never on the event loop.

libgit2 does not let one repository object be used by several threads at once: calls are serialised by a lock
(writes from other processes are serialised by the repository's file lock, see ``repo.py``).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..settings import Settings
from . import snapshots, templates
from .remote import Remote
from .repo import Author, Change, Repository, describe


@dataclass(frozen=True)
class Prepared:
    """A run ready to start: the job path to give the core and the commit it runs."""

    core_job: str
    commit: str
    templated: bool


class Pipelines:
    def __init__(self, settings: Settings) -> None:
        git = settings.git
        self.settings = git
        self.root = git.root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.remote = Remote(git) if git.remote_url else None
        self.repo = Repository(settings.repository.resolve(), git, remote=self.remote)
        self._lock = threading.Lock()

    def _serial(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return fn(*args, **kwargs)

    async def _thread(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(self._serial, fn, *args, **kwargs)

    async def sync(self) -> None:
        """Pull the remote (when there is one and the last pull is old enough): a push from outside is seen."""
        if self.remote is not None:
            await self._thread(self._pull)

    def _pull(self) -> None:
        assert self.remote is not None
        with self.repo.locked():
            self.remote.pull(self.repo, if_older_than_s=self.settings.pull_interval_s)

    async def _read(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        await self.sync()
        return await self._thread(fn, *args, **kwargs)

    async def head(self) -> str | None:
        return await self._read(self.repo.head)  # type: ignore[no-any-return]

    async def jobs(self, rev: str | None = None) -> list[str]:
        return await self._read(self.repo.jobs, rev)  # type: ignore[no-any-return]

    async def files(self, job: str, rev: str | None = None) -> tuple[str, dict[str, bytes]]:
        return await self._read(self.repo.files, job, rev)  # type: ignore[no-any-return]

    async def read(self, job: str, name: str, rev: str | None = None) -> tuple[str, bytes]:
        return await self._read(self.repo.read, job, name, rev)  # type: ignore[no-any-return]

    async def history(self, job: str, *, limit: int, offset: int) -> list[dict[str, Any]]:
        return await self._read(self.repo.history, job, limit=limit, offset=offset)  # type: ignore[no-any-return]

    async def commit_info(self, sha: str) -> dict[str, Any]:
        return await self._thread(describe, self.repo, sha)  # type: ignore[no-any-return]

    async def write(self, change: Change, author: Author) -> str:
        sha: str = await self._thread(self.repo.write, change, author)
        return sha

    async def prepare(self, job: str, rev: str | None, context: dict[str, Any]) -> Prepared:
        """Export ``job`` at ``rev`` (default: the head), its templates rendered with ``context``, for the core."""
        sha, files = await self.files(job, rev)
        templated = templates.is_templated(files)
        rendered = templates.render(files, context) if templated else None
        path = await self._thread(
            snapshots.export, self.repo, sha, job, self.root, rendered, self.settings.keep_commits
        )
        return Prepared(path, sha, templated)

    @property
    def repository_path(self) -> Path:
        return self.repo.path
