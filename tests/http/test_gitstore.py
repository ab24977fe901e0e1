"""The pipelines repository on real git repositories: writes, history, conflicts, a bare remote, snapshots."""

from __future__ import annotations

import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import pygit2
import pytest
from odin_http.errors import Conflict, InvalidRequest, NotFound, Unavailable
from odin_http.gitstore import snapshots
from odin_http.gitstore.remote import Remote
from odin_http.gitstore.repo import Author, Change, Repository
from odin_http.settings import GitSettings

ANN = Author("Ann", "ann@users.odin")
BOB = Author("Bob", "bob@users.odin")
MAIN = b"name: hello\ntasks:\n  - {name: greet, image: busybox, command: echo}\n"


def make(tmp_path: Path, name: str = "repo.git", **settings: object) -> Repository:
    return Repository(tmp_path / name, replace(GitSettings(root=tmp_path), **settings))  # type: ignore[arg-type]


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def test_each_write_is_one_commit_by_its_author(tmp_path: Path) -> None:
    repo = make(tmp_path)
    first = repo.write(Change("team/hello", {"main.yml": MAIN}, "create", create=True), ANN)
    second = repo.write(Change("team/hello", {"conf/a.yml": b"a: 1\n"}, "add a"), BOB)
    assert repo.jobs() == ["team/hello"]
    sha, files = repo.files("team/hello")
    assert sha == second and files == {"main.yml": MAIN, "conf/a.yml": b"a: 1\n"}
    history = repo.history("team/hello", limit=10, offset=0)
    assert [(h["commit"], h["author"], h["message"]) for h in history] == [
        (second, "Bob", "add a"),
        (first, "Ann", "create"),
    ]
    assert repo.files("team/hello", first)[1] == {"main.yml": MAIN}  # read at an older commit
    with pytest.raises(Conflict):
        repo.write(Change("team/hello", {"main.yml": MAIN}, "again", create=True), ANN)


def test_unknown_jobs_commits_and_files(tmp_path: Path) -> None:
    repo = make(tmp_path)
    with pytest.raises(NotFound):
        repo.files("nope")
    repo.write(Change("hello", {"main.yml": MAIN}, "create", create=True), ANN)
    with pytest.raises(NotFound):
        repo.read("hello", "missing.txt")
    with pytest.raises(NotFound):
        repo.files("hello", "0" * 40)
    with pytest.raises(InvalidRequest):
        repo.files("hello", "HEAD~1")  # only commit ids: no revision syntax from outside
    with pytest.raises(NotFound):
        repo.write(Change("other", {"x.txt": b"x"}, "no job"), ANN)


def test_concurrent_writers_lose_no_update(tmp_path: Path) -> None:
    """Eight writers on two Repository objects (as two gateways sharing a volume) each add files at once."""
    a, b = make(tmp_path), make(tmp_path)
    a.write(Change("hello", {"main.yml": MAIN}, "create", create=True), ANN)
    errors: list[BaseException] = []

    def writer(repo: Repository, n: int) -> None:
        try:
            for i in range(5):
                repo.write(Change("hello", {f"w{n}/{i}.txt": f"{n}-{i}".encode()}, f"w{n} {i}"), ANN)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(a if n % 2 else b, n)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    _sha, files = a.files("hello")
    assert {f"w{n}/{i}.txt" for n in range(8) for i in range(5)} <= set(files)
    assert len(a.history("hello", limit=100, offset=0)) == 41


def test_a_stale_base_is_a_conflict_unless_other_files_changed(tmp_path: Path) -> None:
    repo = make(tmp_path)
    base = repo.write(Change("hello", {"main.yml": MAIN, "a.txt": b"1"}, "create", create=True), ANN)
    repo.write(Change("hello", {"a.txt": b"2"}, "bob edits a", base=base), BOB)
    with pytest.raises(Conflict, match=r"a\.txt changed since"):
        repo.write(Change("hello", {"a.txt": b"3"}, "ann edits a too", base=base), ANN)
    repo.write(Change("hello", {"b.txt": b"b"}, "ann adds b", base=base), ANN)  # untouched by bob: applied on head
    assert repo.files("hello")[1] == {"main.yml": MAIN, "a.txt": b"2", "b.txt": b"b"}


def test_links_are_never_followed(tmp_path: Path) -> None:
    """A symbolic link pushed from outside: not served, not entered, and not made in a snapshot when it leaves."""
    work = tmp_path / "work"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    (work / "hello").mkdir()
    (work / "hello" / "main.yml").write_bytes(MAIN)
    (work / "hello" / "passwd").symlink_to("/etc/passwd")
    (work / "hello" / "up").symlink_to("../..")
    (work / "hello" / "inside").symlink_to("main.yml")
    git("add", "-A", cwd=work)
    git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", "links", cwd=work)
    bare = tmp_path / "repo.git"
    git("clone", "-q", "--bare", str(work), str(bare), cwd=tmp_path)
    repo = make(tmp_path)
    with pytest.raises(InvalidRequest, match="symbolic link"):
        repo.read("hello", "passwd")
    with pytest.raises(NotFound):
        repo.read("hello", "up/etc/passwd")
    assert set(repo.files("hello")[1]) == {"main.yml"}
    root = tmp_path / "root"
    path = snapshots.export(repo, repo.head() or "", "hello", root, None, keep=8)
    made = root / path
    assert (made / "main.yml").read_bytes() == MAIN
    assert (made / "inside").is_symlink() and not (made / "passwd").exists() and not (made / "up").exists()


def test_a_snapshot_is_a_work_tree_at_its_commit(tmp_path: Path) -> None:
    repo = make(tmp_path, "root/.odin/repo.git")
    sha = repo.write(Change("team/hello", {"main.yml": MAIN}, "create", create=True), ANN)
    root = tmp_path / "root"
    path = snapshots.export(repo, sha, "team/hello", root, {"extra.yml": b"x: 1\n"}, keep=8)
    assert path.startswith(".odin/commits/") and path.endswith("/team/hello")
    assert git("rev-parse", "HEAD", cwd=root / path) == sha  # what the core records as the run's version
    assert git("log", "-1", "--format=%s", cwd=root / path) == "create"  # objects reachable via alternates
    assert snapshots.gateway_job(path) == ("team/hello", sha)
    assert snapshots.export(repo, sha, "team/hello", root, {"extra.yml": b"x: 1\n"}, keep=8) == path  # reused
    for i in range(5):
        repo.write(Change("team/hello", {"n.txt": str(i).encode()}, f"n {i}"), ANN)
        snapshots.export(repo, repo.head() or "", "team/hello", root, None, keep=3)
    assert len(list(snapshots.commits_dir(root).iterdir())) == 3


def test_a_bare_remote_is_pulled_and_pushed(tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    pygit2.init_repository(str(remote), bare=True, initial_head="main")
    settings = GitSettings(root=tmp_path, remote_url=str(remote))
    one = Repository(tmp_path / "one.git", settings, remote=Remote(settings))
    two = Repository(tmp_path / "two.git", settings, remote=Remote(settings))
    sha = one.write(Change("hello", {"main.yml": MAIN}, "create", create=True), ANN)
    assert git("rev-parse", "main", cwd=remote) == sha
    # a push from outside (CI): a clone commits and pushes; the gateways see it on their next read
    clone = tmp_path / "clone"
    git("clone", "-q", str(remote), str(clone), cwd=tmp_path)
    (clone / "hello" / "ci.txt").write_text("from ci\n")
    git("add", "-A", cwd=clone)
    git("-c", "user.name=ci", "-c", "user.email=ci@x", "commit", "-qm", "ci", cwd=clone)
    git("push", "-q", "origin", "HEAD:main", cwd=clone)
    two.remote.pull(two)
    assert two.files("hello")[1]["ci.txt"] == b"from ci\n"
    # one is behind the remote: its write is replayed on the remote's head, nothing is lost
    one_sha = one.write(Change("hello", {"one.txt": b"1"}, "one"), ANN)
    assert git("rev-parse", "main", cwd=remote) == one_sha
    two.remote.pull(two)
    assert {"ci.txt", "one.txt", "main.yml"} <= set(two.files("hello")[1])


def test_racing_pushes_from_two_gateways_both_land(tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    pygit2.init_repository(str(remote), bare=True, initial_head="main")
    settings = GitSettings(root=tmp_path, remote_url=str(remote), write_retries=20)
    gws = [Repository(tmp_path / f"g{i}.git", settings, remote=Remote(settings)) for i in range(3)]
    gws[0].write(Change("hello", {"main.yml": MAIN}, "create", create=True), ANN)
    errors: list[BaseException] = []

    def writer(repo: Repository, n: int) -> None:
        try:
            for i in range(4):
                repo.write(Change("hello", {f"g{n}-{i}.txt": b"x"}, f"g{n} {i}"), ANN)
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(g, n)) for n, g in enumerate(gws)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    gws[0].remote.pull(gws[0])
    assert {f"g{n}-{i}.txt" for n in range(3) for i in range(4)} <= set(gws[0].files("hello")[1])


def test_an_unreachable_remote_is_a_clear_error(tmp_path: Path) -> None:
    settings = GitSettings(root=tmp_path, remote_url=str(tmp_path / "missing.git"))
    repo = Repository(tmp_path / "r.git", settings, remote=Remote(settings))
    with pytest.raises(Unavailable, match="cannot fetch"):
        repo.write(Change("hello", {"main.yml": MAIN}, "create", create=True), ANN)
