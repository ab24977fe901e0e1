"""What the core runs: a job exported at one commit into the core's pipelines root, as a git work tree.

The core records the commit of the work tree a job runs from (``git rev-parse HEAD``) as the run's ``version``. So
every run the gateway starts runs from ``<root>/.odin/commits/<sha>[-<context digest>]/<job>``: a folder that is a
git work tree detached at exactly that commit (its objects borrowed from the repository through ``alternates``), with
the job's files, and the rendered templates for a templated job. A snapshot never changes once made, so concurrent
writes cannot change what a run runs, and a run at an old commit is the same as any other. Made in a temporary folder
and renamed into place: replicas racing to make the same one both end up with one complete snapshot.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

import pygit2

from .. import constants as C
from .repo import SYMLINK, Repository, blobs


def commits_dir(root: Path) -> Path:
    return root / C.STATE_DIR / C.COMMITS_DIR


def snapshot_name(sha: str, rendered: dict[str, bytes] | None) -> str:
    if not rendered:
        return sha
    digest = hashlib.sha256()
    for name, data in sorted(rendered.items()):
        digest.update(name.encode() + b"\0" + data + b"\0")
    return f"{sha}-{digest.hexdigest()[:16]}"


def core_job(name: str, job: str) -> str:
    """The job path the core is given (relative to its root)."""
    return f"{C.STATE_DIR}/{C.COMMITS_DIR}/{name}/{job}"


def gateway_job(core_path: str) -> tuple[str, str]:
    """(job, commit) of a core job path made by :func:`core_job`; (path, "") for any other path."""
    prefix = f"{C.STATE_DIR}/{C.COMMITS_DIR}/"
    if not core_path.startswith(prefix):
        return core_path, ""
    name, _, job = core_path[len(prefix) :].partition("/")
    return job, name.split("-", 1)[0]


def export(repo: Repository, sha: str, job: str, root: Path, rendered: dict[str, bytes] | None, keep: int) -> str:
    """Make (or reuse) the snapshot of ``job`` at ``sha``; the job path to give the core."""
    name = snapshot_name(sha, rendered)
    dest = commits_dir(root) / name
    if (dest / ".git" / "odin-complete").exists():
        os.utime(dest)
        return core_job(name, job)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
    try:
        _write(repo, sha, job, tmp, rendered)
        try:
            tmp.rename(dest)
        except OSError:  # another gateway made it first
            if not (dest / ".git" / "odin-complete").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    prune(root, keep)
    return core_job(name, job)


def _write(repo: Repository, sha: str, job: str, tmp: Path, rendered: dict[str, bytes] | None) -> None:
    commit = repo.commit(sha)
    assert commit is not None
    _c, tree = repo.job_tree(job, sha)
    work = tmp / job
    work.mkdir(parents=True)
    for rel, mode, data in blobs(repo, tree):
        target = work / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == SYMLINK:
            link = data.decode(errors="replace")
            if not _inside(target, link, work):
                continue  # a link out of the job is never made
            target.symlink_to(link)
            continue
        target.write_bytes(data)
        if mode == 0o100755:
            target.chmod(0o755)
    for rel, data in (rendered or {}).items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(data)
    git = pygit2.init_repository(str(tmp), bare=False)
    objects = Path(repo.repo.path).resolve() / "objects"
    alternates = Path(git.path) / "objects" / "info" / "alternates"
    alternates.parent.mkdir(parents=True, exist_ok=True)
    alternates.write_text(os.path.relpath(objects, alternates.parent.parent) + "\n")
    (Path(git.path) / "HEAD").write_text(sha + "\n")  # detached at the commit
    (Path(git.path) / "odin-complete").write_text(sha + "\n")


def _inside(link_path: Path, target: str, work: Path) -> bool:
    if os.path.isabs(target):
        return False
    resolved = os.path.normpath(os.path.join(link_path.parent, target))
    return resolved == str(work) or resolved.startswith(str(work) + os.sep)


def prune(root: Path, keep: int) -> list[str]:
    """Remove the least recently used snapshots past ``keep``; the names removed."""
    base = commits_dir(root)
    snaps = [p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")] if base.exists() else []
    snaps.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for old in snaps[keep:]:
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old.name)
    return removed
