"""The optional remote of the pipelines repository: fetched before reads and writes, pushed after each write.

The remote is the truth: a pull moves the local branch to the remote's head; a write that the remote refuses (it
moved) is undone locally and replayed by ``Repository.write`` on the new head. SSH remotes use a deploy key (host
keys are checked by libgit2 against ~/.ssh/known_hosts); HTTPS remotes a user name and password or token.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pygit2

from ..errors import Unavailable
from ..settings import GitSettings

log = logging.getLogger("odin.http.git")
REMOTE_NAME = "origin"


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

    def push(self, repo: Any, sha: str) -> bool:
        """Push the branch; False when the remote refused it because it moved (the caller replays the write)."""
        callbacks = Callbacks(self.settings)
        ref = f"refs/heads/{self.settings.branch}"
        try:
            self._remote(repo).push([f"{ref}:{ref}"], callbacks=callbacks)
        except pygit2.GitError as e:
            text = str(e).lower()
            if "non-fast" in text or "fastforward" in text or "fetch first" in text or "rejected" in text:
                log.info("push of %s refused (the remote moved); replaying", sha[:12])
                self.pull(repo)
                return False
            self._undo(repo)
            raise Unavailable(f"cannot push to the pipelines remote: {e}") from None
        if callbacks.rejected:
            log.info("push of %s refused: %s; replaying", sha[:12], "; ".join(callbacks.rejected))
            self.pull(repo)
            return False
        return True

    def _undo(self, repo: Any) -> None:
        ref = repo.repo.references.get(f"refs/remotes/{REMOTE_NAME}/{self.settings.branch}")
        if ref is not None:
            repo.set_head(str(ref.target))
