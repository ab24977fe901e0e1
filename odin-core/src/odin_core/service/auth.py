"""Bearer tokens: a shared secret, or a JWT (HS256) signed by the gateway; and what a connection holds.

A verified token becomes a :class:`Grant`; a JWT's grant ends at its ``exp``. A connection's authority is its
current grant: once that has expired, protected commands are refused until the client presents a new token.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import jwt

from ..errors import InvalidRequest


@dataclass(frozen=True)
class Grant:
    """A verified token: ``expires_at`` (epoch seconds) for a JWT, None for the shared secret."""

    expires_at: float | None = None

    def valid(self, now: float | None = None) -> bool:
        return self.expires_at is None or (time.time() if now is None else now) < self.expires_at


Verifier = Callable[[str], Grant | None]


def make_verifier(*, token: str | None, jwt_secret: str | None) -> Verifier | None:
    """A function giving the grant of a presented token, or None when it is not valid.

    None (no function) when no authentication is set up.
    """
    if token is None and jwt_secret is None:
        return None

    def verify(presented: str) -> Grant | None:
        if token is not None and hmac.compare_digest(presented.encode(), token.encode()):
            return Grant()
        if jwt_secret is not None:
            try:
                claims = jwt.decode(presented, jwt_secret, algorithms=["HS256"], options={"require": ["exp"]})
            except jwt.PyJWTError:
                return None
            return Grant(expires_at=float(claims["exp"]))
        return None

    return verify


def bearer(headers: list[str]) -> str | None:
    """The token of the one ``Authorization: Bearer`` header; InvalidRequest when there are several."""
    if len(headers) > 1:
        raise InvalidRequest("more than one Authorization header: send exactly one")
    header = headers[0] if headers else None
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


def read_secret(path: str, what: str) -> str:
    """A secret from a file (its first line, without the newline); InvalidRequest naming the file otherwise."""
    try:
        with open(path, encoding="utf-8") as f:
            secret = f.readline().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidRequest(f"cannot read the {what} file {path!r}: {e}") from e
    if not secret:
        raise InvalidRequest(f"the {what} file {path!r} is empty: write the secret on its first line")
    return secret


def is_loopback(host: str) -> bool:
    """True when ``host`` only listens on loopback (127.0.0.0/8, ::1, localhost)."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(ipaddress.ip_address(info[4][0]).is_loopback for info in socket.getaddrinfo(host, None))
        except OSError:
            return False
