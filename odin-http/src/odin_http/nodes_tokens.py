"""Node tokens: what lets a midgard agent report (not a user token). One per line in a file, re-read when it changes;
``TOKEN NODE`` binds a token to one node name."""

from __future__ import annotations

import hmac
from pathlib import Path

from .errors import AuthError, Forbidden


class NodeNotAllowed(Forbidden):
    """A node token bound to one node was used to report another."""


class NodeTokens:
    """The accepted node tokens, re-read when their file changes (rotation without a restart).

    One token per line; ``TOKEN NODE`` binds a token to one node name (that agent can then report only itself),
    a token alone may report any node. Lines starting with ``#`` are comments.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path) if path else None
        self._mtime: float | None = None
        self._tokens: tuple[tuple[bytes, str], ...] = ()

    def _load(self) -> tuple[tuple[bytes, str], ...]:
        if self.path is None:
            return ()
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return ()
        if mtime != self._mtime:
            lines = self.path.read_text(encoding="utf-8").splitlines()
            words = [line.split() for line in lines if line.strip() and not line.lstrip().startswith("#")]
            self._tokens = tuple((w[0].encode(), w[1] if len(w) > 1 else "") for w in words)
            self._mtime = mtime
        return self._tokens

    def check(self, header: str | None) -> str:
        """The node the token is bound to ("" for any node); ``AuthError`` when it is missing or wrong."""
        tokens = self._load()
        if not tokens:
            raise AuthError("node reports are disabled on this gateway: set ODIN_HTTP_NODES_TOKEN_FILE")
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise AuthError("missing node token: send Authorization: Bearer <node token>")
        presented, found, bound = given.strip().encode(), False, ""
        for token, node in tokens:  # no early exit: the time taken does not say which token matched
            if hmac.compare_digest(presented, token):
                found, bound = True, node
        if not found:
            raise AuthError("wrong node token")
        return bound
