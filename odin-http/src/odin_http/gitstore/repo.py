"""The pipelines repository (pygit2, bare): jobs read at any commit, each write one commit, history per job.

Blocking (libgit2): the async facade (``store.py``) calls this through ``asyncio.to_thread``. A write happens under a
file lock on the repository, so gateways sharing the repository (threads, processes, replicas on one volume) never
lose an update: each write is replayed on the head it finds under the lock. With a remote (``remote.py``) the write is
pushed before it counts; a push refused because the remote moved is replayed on the new head, up to
``write_retries`` times, then answered 409.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2
from pygit2.enums import FileMode, SortMode

from .. import constants as C
from ..errors import Conflict, InvalidRequest, NotFound, TooLarge, Unavailable
from ..settings import GitSettings
from .names import job_id

SYMLINK = 0o120000
TREE = 0o040000
COMMIT_LIMIT_SCAN = 10_000  # history walks stop after this many commits


@dataclass(frozen=True)
class Author:
    name: str
    email: str

    def signature(self) -> pygit2.Signature:
        return pygit2.Signature(self.name, self.email, int(time.time()), 0)


@dataclass(frozen=True)
class Change:
    """What one write does to a job: files to write (bytes) or remove (None); ``create`` refuses an existing job."""

    job: str
    files: Mapping[str, bytes | None]
    message: str
    create: bool = False
    base: str | None = None  # the commit the writer saw: a file changed since then is a conflict


class Repository:
    def __init__(self, path: Path, settings: GitSettings, *, remote: Any = None) -> None:
        self.path = path
        self.settings = settings
        self.ref = f"refs/heads/{settings.branch}"
        self.remote = remote  # a remote.Remote, or None for a local repository
        if not (path / "HEAD").exists():
            path.mkdir(parents=True, exist_ok=True)
            pygit2.init_repository(str(path), bare=True, initial_head=settings.branch)
        self.repo = pygit2.Repository(str(path))

    # -- reading -----------------------------------------------------------------------------------------------

    def head(self) -> str | None:
        ref = self.repo.references.get(self.ref)
        return str(ref.target) if ref is not None else None

    def commit(self, rev: str | None = None) -> pygit2.Commit | None:
        """The commit ``rev`` names (a full or abbreviated sha; None: the head); None for an empty repository."""
        if rev is None:
            head = self.head()
            return self.repo[head].peel(pygit2.Commit) if head else None
        if not isinstance(rev, str) or not 4 <= len(rev) <= 40 or any(c not in "0123456789abcdef" for c in rev):
            raise InvalidRequest(f"{rev!r} is not a commit id (4 to 40 lowercase hex digits)")
        try:
            obj = self.repo.revparse_single(rev)
        except (KeyError, ValueError, pygit2.GitError):
            raise NotFound(f"no commit {rev!r} in the pipelines repository") from None
        if not isinstance(obj, pygit2.Commit):
            raise NotFound(f"{rev!r} is not a commit")
        return obj

    def jobs(self, rev: str | None = None) -> list[str]:
        """Every job (a folder with main.yml or main.yml.jinja2) at ``rev``, sorted; hidden folders are skipped."""
        commit = self.commit(rev)
        return sorted(_find_jobs(commit.tree, "")) if commit else []

    def job_tree(self, job: str, rev: str | None = None) -> tuple[pygit2.Commit, pygit2.Tree]:
        commit = self.commit(rev)
        tree = _subtree(commit.tree, job) if commit else None
        if commit is None or tree is None or not _is_job(tree):
            raise NotFound(f"no job {job_id(job)!r}" + (f" at {rev}" if rev else ""))
        return commit, tree

    def files(self, job: str, rev: str | None = None) -> tuple[str, dict[str, bytes]]:
        """(commit sha, {file name: content}) of a job; symbolic links are left out (never followed)."""
        commit, tree = self.job_tree(job, rev)
        out: dict[str, bytes] = {}
        for name, blob in _blobs(self.repo, tree, ""):
            out[name] = blob
        return str(commit.id), out

    def read(self, job: str, name: str, rev: str | None = None) -> tuple[str, bytes]:
        commit, tree = self.job_tree(job, rev)
        entry = _entry(tree, name)
        if entry is None or entry.filemode == TREE:
            raise NotFound(f"job {job_id(job)!r} has no file {name!r}")
        if entry.filemode == SYMLINK:
            raise InvalidRequest(f"{name!r} is a symbolic link: links are never followed")
        return str(commit.id), self.repo[entry.id].read_raw()

    def history(self, job: str, *, limit: int, offset: int) -> list[dict[str, Any]]:
        """The commits that changed ``job``, newest first."""
        head = self.commit()
        if head is None:
            raise NotFound(f"no job {job_id(job)!r}")
        found: list[dict[str, Any]] = []
        for scanned, commit in enumerate(self.repo.walk(head.id, SortMode.TOPOLOGICAL | SortMode.TIME)):
            if scanned >= COMMIT_LIMIT_SCAN or len(found) >= offset + limit:
                break
            mine = _tree_id(commit.tree, job)
            parent = _tree_id(commit.parents[0].tree, job) if commit.parents else None
            if mine is not None and mine != parent:
                found.append(_describe(commit))
        if not found:
            raise NotFound(f"no job {job_id(job)!r}")
        return found[offset : offset + limit]

    # -- writing -----------------------------------------------------------------------------------------------

    def write(self, change: Change, author: Author) -> str:
        """Commit ``change`` on the head found under the lock (and push it); the new commit's sha."""
        self._check_sizes(change)
        with self._locked():
            for _attempt in range(max(1, self.settings.write_retries)):
                if self.remote is not None:
                    self.remote.pull(self)
                before = self.head()
                sha = self._commit(change, author)
                if self.remote is None:
                    return sha
                try:
                    if self.remote.push(self, sha):
                        return sha
                except Unavailable:
                    if before is not None and self.head() == sha:
                        self.set_head(before)  # never pushed: the write did not happen
                    raise
        raise Conflict(f"job {job_id(change.job)!r}: the remote kept moving; try the write again")

    def _commit(self, change: Change, author: Author) -> str:
        head = self.commit()
        tree = head.tree if head else None
        existing = _subtree(tree, change.job) if tree is not None else None
        if change.create and existing is not None:
            raise Conflict(f"job {job_id(change.job)!r} already exists")
        makes_job = any(n in change.files for n in (C.MAIN_FILE, C.MAIN_FILE + C.TEMPLATE_SUFFIX))
        if not change.create and (existing is None or not _is_job(existing)) and not makes_job:
            raise NotFound(f"no job {job_id(change.job)!r}; create it first (POST /v1/jobs)")
        if change.base is not None and head is not None and str(head.id) != change.base:
            self._check_base(change, head)
        new_tree: Any = tree
        for name, content in change.files.items():
            blob = self.repo.create_blob(content) if content is not None else None
            current = self.repo[new_tree].peel(pygit2.Tree) if isinstance(new_tree, pygit2.Oid) else new_tree
            new_tree = _put(self.repo, current, f"{change.job}/{name}".split("/"), blob)
        if new_tree is None or (tree is not None and new_tree == tree.id):
            if head is None:
                raise InvalidRequest("nothing to write")
            return str(head.id)
        sig = author.signature()
        parents = [head.id] if head else []
        oid = self.repo.create_commit(
            None, sig, sig, change.message, new_tree if isinstance(new_tree, pygit2.Oid) else new_tree.id, parents
        )
        self.repo.references.create(self.ref, oid, force=True)
        return str(oid)

    def _check_base(self, change: Change, head: pygit2.Commit) -> None:
        base = self.commit(change.base)
        assert base is not None and change.base is not None
        for name in change.files:
            path = f"{change.job}/{name}"
            if _blob_id(base.tree, path) != _blob_id(head.tree, path):
                raise Conflict(
                    f"{job_id(change.job)}/{name} changed since {change.base[:12]} (now at {str(head.id)[:12]}): "
                    "read it again and reapply your change",
                    head=str(head.id),
                )

    def _check_sizes(self, change: Change) -> None:
        s = self.settings
        for name, content in change.files.items():
            if content is not None and len(content) > s.max_file_bytes:
                raise TooLarge(f"{name}: {len(content)} bytes is more than the {s.max_file_bytes} a file may have")
        if len(change.files) > s.max_job_files:
            raise TooLarge(f"a job has at most {s.max_job_files} files")

    def check_job_size(self, job: str) -> None:
        """After a write: the whole job within its limits (files count and bytes)."""
        _sha, files = self.files(job)
        total = sum(len(b) for b in files.values())
        if total > self.settings.max_job_bytes or len(files) > self.settings.max_job_files:
            raise TooLarge(f"job {job_id(job)!r} would exceed {self.settings.max_job_bytes} bytes or files limit")

    def set_head(self, sha: str) -> None:
        self.repo.references.create(self.ref, pygit2.Oid(hex=sha), force=True)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.path / C.WRITE_LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The write lock (pulls take it too, so a pull never moves the head under a write)."""
        with self._locked():
            yield


# -- trees ---------------------------------------------------------------------------------------------------


def _describe(commit: pygit2.Commit) -> dict[str, Any]:
    return {
        "commit": str(commit.id),
        "author": commit.author.name,
        "email": commit.author.email,
        "time": float(commit.commit_time),
        "message": commit.message.strip(),
    }


def describe(repo: Repository, sha: str) -> dict[str, Any]:
    commit = repo.commit(sha)
    assert commit is not None
    return _describe(commit)


def _entry(tree: pygit2.Tree, path: str) -> pygit2.Object | None:
    """The entry at ``path`` under ``tree``, walking one folder at a time; a link on the way is never entered."""
    node: Any = tree
    parts = path.split("/")
    for i, part in enumerate(parts):
        if not isinstance(node, pygit2.Tree) or part not in node:
            return None
        entry = node[part]
        if i < len(parts) - 1 and entry.filemode != TREE:
            return None
        node = entry
    return node  # type: ignore[no-any-return]


def _subtree(tree: pygit2.Tree | None, path: str) -> pygit2.Tree | None:
    entry = _entry(tree, path) if tree is not None else None
    return entry if isinstance(entry, pygit2.Tree) else None


def _tree_id(tree: pygit2.Tree, path: str) -> pygit2.Oid | None:
    sub = _subtree(tree, path)
    return sub.id if sub is not None else None


def _blob_id(tree: pygit2.Tree, path: str) -> pygit2.Oid | None:
    entry = _entry(tree, path)
    return entry.id if entry is not None else None


def _is_job(tree: pygit2.Tree) -> bool:
    return any(name in tree for name in (C.MAIN_FILE, C.MAIN_FILE + C.TEMPLATE_SUFFIX))


def _find_jobs(tree: pygit2.Tree, prefix: str) -> Iterator[str]:
    if prefix and _is_job(tree):
        yield prefix.rstrip("/")
    for entry in tree:
        if entry.filemode == TREE and not str(entry.name).startswith("."):
            yield from _find_jobs(entry, f"{prefix}{entry.name}/")  # type: ignore[arg-type]


def _blobs(repo: pygit2.Repository, tree: pygit2.Tree, prefix: str) -> Iterator[tuple[str, bytes]]:
    for entry in tree:
        name = f"{prefix}{entry.name}"
        if entry.filemode == TREE:
            yield from _blobs(repo, entry, f"{name}/")  # type: ignore[arg-type]
        elif entry.filemode in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE):
            yield name, repo[entry.id].read_raw()


def blobs(repo: Repository, tree: pygit2.Tree) -> Iterator[tuple[str, int, bytes]]:
    """(path, mode, content) of every file and link under ``tree`` (for snapshots; links as their target)."""
    for entry in tree:
        if entry.filemode == TREE:
            for name, mode, data in blobs(repo, entry):  # type: ignore[arg-type]
                yield f"{entry.name}/{name}", mode, data
        elif entry.filemode in (FileMode.BLOB, FileMode.BLOB_EXECUTABLE, SYMLINK):
            yield str(entry.name), int(entry.filemode), repo.repo[entry.id].read_raw()


def _put(repo: pygit2.Repository, tree: pygit2.Tree | None, parts: list[str], blob: pygit2.Oid | None) -> Any:
    """The id of ``tree`` with ``parts`` set to ``blob`` (None removes it); None when the tree ends up empty."""
    builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    head, rest = parts[0], parts[1:]
    current = tree[head] if tree is not None and head in tree else None
    if rest:
        if current is not None and current.filemode != TREE:
            raise Conflict(f"{head!r} is a file (or a link), not a folder")
        sub = _put(repo, current if isinstance(current, pygit2.Tree) else None, rest, blob)
        if sub is None:
            if current is not None:
                builder.remove(head)
        else:
            builder.insert(head, sub, FileMode.TREE)
    elif blob is None:
        if current is not None:
            builder.remove(head)
    else:
        if current is not None and current.filemode == TREE:
            raise Conflict(f"{head!r} is a folder, not a file")
        builder.insert(head, blob, FileMode.BLOB)
    if len(builder) == 0:
        return None
    return builder.write()
