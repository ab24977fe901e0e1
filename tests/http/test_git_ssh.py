"""The pipelines remote over SSH: a real OpenSSH server on loopback serving a bare repository, reached with a
deploy key; an unknown host key is refused."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pygit2
import pytest
from odin_http.errors import Unavailable
from odin_http.gitstore.remote import Remote
from odin_http.gitstore.repo import Author, Change, Repository
from odin_http.settings import GitSettings

SSHD = Path("/usr/sbin/sshd")
MAIN = b"name: hello\ntasks:\n  - {name: greet, image: busybox, command: echo}\n"


def unavailable(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[tuple[int, Path, Path]]:
    """An sshd on a free loopback port that lets the test's key in: (port, client key, known_hosts)."""
    if not SSHD.exists() or shutil.which("git-upload-pack") is None:
        unavailable("no OpenSSH server: run `bash tools/http/setup.sh` (apt-get install openssh-server)")
    d = tmp_path / "sshd"
    d.mkdir(mode=0o700)
    keygen(d / "host_key")
    keygen(d / "client_key")
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    os.chmod(d / "authorized_keys", 0o600)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = d / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\nPidFile {d / 'pid'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nLogLevel ERROR\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None or time.monotonic() > deadline:
            unavailable(f"sshd did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.05)  # the port is bound within milliseconds of start: bounded by the deadline above
    host_pub = (d / "host_key.pub").read_text().split()
    known = d / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    yield port, d / "client_key", known
    proc.terminate()
    proc.wait(timeout=10)


def test_a_remote_over_ssh_with_a_deploy_key(
    sshd: tuple[int, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port, key, known = sshd
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))  # what the gateway leaves in the temp directory
    bare = tmp_path / "remote.git"
    pygit2.init_repository(str(bare), bare=True, initial_head="main")
    user = os.environ.get("USER") or "root"
    settings = GitSettings(
        root=tmp_path, remote_url=f"ssh://{user}@127.0.0.1:{port}{bare}", ssh_key_file=str(key),
        ssh_known_hosts_file=str(known),
    )  # fmt: skip
    repo = Repository(tmp_path / "local.git", settings, remote=Remote(settings))
    sha = repo.write(Change("hello", {"main.yml": MAIN}, "create", create=True), Author("Ann", "ann@x"))
    assert pygit2.Repository(str(bare)).references["refs/heads/main"].target == pygit2.Oid(hex=sha)
    other = Repository(tmp_path / "other.git", settings, remote=Remote(settings))
    other.remote.pull(other)
    assert other.files("hello")[1] == {"main.yml": MAIN}
    home = tmp_path / ".odin" / "ssh-home"
    assert pygit2.settings.homedir == str(home), "the host keys are checked from the gateway's own directory"
    assert (home / ".ssh" / "known_hosts").read_text() == known.read_text()
    assert sorted((home / ".ssh").iterdir()) == [home / ".ssh" / "known_hosts"], "two starts, one copy"
    assert list(scratch.iterdir()) == [], "nothing left in the temp directory"


def test_an_unknown_host_key_is_refused(sshd: tuple[int, Path, Path], tmp_path: Path) -> None:
    port, key, _known = sshd
    stranger = tmp_path / "stranger_key"
    keygen(stranger)
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{port} {' '.join((stranger.with_suffix('.pub')).read_text().split()[:2])}\n")
    bare = tmp_path / "remote.git"
    pygit2.init_repository(str(bare), bare=True, initial_head="main")
    settings = GitSettings(
        root=tmp_path, remote_url=f"ssh://root@127.0.0.1:{port}{bare}", ssh_key_file=str(key),
        ssh_known_hosts_file=str(wrong),
    )  # fmt: skip
    repo = Repository(tmp_path / "local.git", settings, remote=Remote(settings))
    with pytest.raises(Unavailable, match="hostkey"):
        repo.write(Change("hello", {"main.yml": MAIN}, "create", create=True), Author("Ann", "ann@x"))
    assert pygit2.Repository(str(bare)).references.get("refs/heads/main") is None
