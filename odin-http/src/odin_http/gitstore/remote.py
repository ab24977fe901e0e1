"""The optional remote of the pipelines repository: fetched before reads and writes, pushed after each write.

The remote is the truth: a pull moves the local branch to the remote's head; a write that the remote refuses (it
moved) is undone locally and replayed by ``Repository.write`` on the new head. SSH remotes use a deploy key (host
keys are checked by libgit2 against ``git.ssh_known_hosts_file`` or ~/.ssh/known_hosts); HTTPS remotes a user
name and a password or token.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import pygit2

from .. import constants as C
from ..errors import Unavailable
from ..settings import GitSettings

log = logging.getLogger("odin.http.git")
REMOTE_NAME = "origin"


def use_known_hosts(path: Path, home: Path) -> None:
    """libgit2 checks SSH host keys against ``<home>/.ssh/known_hosts``: make ``home`` one holding ``path``'s keys.

    ``home`` is the gateway's own (``<root>/.odin/ssh-home``), the same on every start: nothing is left behind
    in the temp directory (a directory made there per start stayed after the process)."""
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, copy = tempfile.mkstemp(dir=ssh, prefix="known_hosts.")  # unique, even for gateways in other pid namespaces
    try:
        with os.fdopen(fd, "wb") as out, open(path, "rb") as known:
            shutil.copyfileobj(known, out)
        os.replace(copy, ssh / "known_hosts")  # a gateway starting beside a running one never shows it half a file
    except BaseException:
        Path(copy).unlink(missing_ok=True)
        raise
    pygit2.settings.homedir = str(home)


class Callbacks(pygit2.RemoteCallbacks):
    def __init__(self, settings: GitSettings) -> None:
        super().__init__()
        self._s = settings
        self.rejected: list[str] = []

    def credentials(self, url: str, username_from_url: str | None, allowed_types: Any) -> Any:
        s = self._s
        if allowed_types & pygit2.enums.CredentialType.SSH_KEY and s.ssh_key_file:
            return pygit2.Keypair(
                username_from_url or "git", s.ssh_key_file + ".pub", s.ssh_key_file, s.ssh_key_passphrase.reveal()
            )
        if allowed_types & pygit2.enums.CredentialType.USERPASS_PLAINTEXT and s.https_username:
            return pygit2.UserPass(s.https_username, s.https_password.reveal())
        raise Unavailable(f"the git remote asks for credentials the settings do not have ({allowed_types!r})")

    def certificate_check(self, certificate: Any, valid: bool, host: bytes) -> bool:
        return bool(valid)  # never accept an unknown TLS certificate or SSH host key

    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message:
            self.rejected.append(f"{refname}: {message}")


class Remote:
    def __init__(self, settings: GitSettings) -> None:
        self.settings = settings
        self.url = settings.remote_url
        self._last_pull = 0.0
        if settings.ssh_known_hosts_file:
            use_known_hosts(Path(settings.ssh_known_hosts_file), settings.root.resolve() / C.STATE_DIR / C.SSH_HOME_DIR)

    def _remote(self, repo: Any) -> pygit2.Remote:
        r: pygit2.Repository = repo.repo
        try:
            remote = r.remotes[REMOTE_NAME]
        except KeyError:
            return r.remotes.create(REMOTE_NAME, self.url, f"+refs/heads/*:refs/remotes/{REMOTE_NAME}/*")
        if remote.url != self.url:
            r.remotes.set_url(REMOTE_NAME, self.url)
            remote = r.remotes[REMOTE_NAME]
        return remote

    def pull(self, repo: Any, *, if_older_than_s: float = 0.0) -> None:
        """Fetch the branch and move the local branch to the remote's head (an empty remote changes nothing)."""
        now = time.monotonic()
        if if_older_than_s and now - self._last_pull < if_older_than_s:
            return
        try:
            self._remote(repo).fetch(callbacks=Callbacks(self.settings))
        except pygit2.GitError as e:
            raise Unavailable(f"cannot fetch the pipelines remote: {e}") from None
        self._last_pull = now
        ref = repo.repo.references.get(f"refs/remotes/{REMOTE_NAME}/{self.settings.branch}")
        if ref is not None and str(ref.target) != repo.head():
            repo.set_head(str(ref.target))

    def local_path(self) -> Path | None:
        """The folder of a remote on this file system (a path or file:// URL), None for ssh/https."""
        url = self.url
        if url.startswith("file://"):
            return Path(url[7:])
        if "://" in url or re.match(r"^[\w.-]+@[\w.-]+:", url):
            return None
        return Path(url)

    def push(self, repo: Any, sha: str) -> bool:
        """Push the branch; False when the remote refused it because it moved (the caller replays the write).

        git's receive-pack updates the remote's branch only from the value the pusher saw; libgit2's transport to
        a local folder does not, so pushes to a folder hold that repository's write lock and check its head first.
        """
        path = self.local_path()
        if path is None:
            return self._push(repo, sha)
        with open(path / C.WRITE_LOCK_FILE, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                theirs = pygit2.Repository(str(path)).references.get(f"refs/heads/{self.settings.branch}")
                parents = [str(p) for p in repo.repo[sha].parent_ids]
                if theirs is not None and str(theirs.target) not in parents and str(theirs.target) != sha:
                    log.info("push of %s: the remote moved; replaying", sha[:12])
                    self.pull(repo)
                    return False
                return self._push(repo, sha)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _push(self, repo: Any, sha: str) -> bool:
        callbacks = Callbacks(self.settings)
        ref = f"refs/heads/{self.settings.branch}"
        try:
            self._remote(repo).push([f"{ref}:{ref}"], callbacks=callbacks)
        except pygit2.GitError as e:
            # Refused because the remote moved (libgit2 words it several ways), or the remote is unreachable:
            # a fetch tells which. A remote that moved gets the write replayed on its new head.
            try:
                self.pull(repo)
            except Unavailable:
                raise Unavailable(f"cannot push to the pipelines remote: {e}") from None
            if repo.head() != sha:
                log.info("push of %s refused (the remote moved: %s); replaying", sha[:12], e)
                return False
            raise Unavailable(f"cannot push to the pipelines remote: {e}") from None
        if callbacks.rejected:
            log.info("push of %s refused: %s; replaying", sha[:12], "; ".join(callbacks.rejected))
            self.pull(repo)
            return False
        return True
