"""Bearer tokens: a shared secret, or a JWT (HS256) signed by the gateway."""

from __future__ import annotations

import hmac
import ipaddress
import socket

import jwt


def make_verifier(*, token: str | None, jwt_secret: str | None):  # type: ignore[no-untyped-def]
    """A function telling whether a presented token is valid (None when no authentication is set up)."""
    if token is None and jwt_secret is None:
        return None

    def verify(presented: str) -> bool:
        if token is not None and hmac.compare_digest(presented.encode(), token.encode()):
            return True
        if jwt_secret is not None:
            try:
                jwt.decode(presented, jwt_secret, algorithms=["HS256"], options={"require": ["exp"]})
            except jwt.PyJWTError:
                return False
            return True
        return False

    return verify


def bearer(header: str | None) -> str | None:
    if header and header.lower().startswith("bearer "):
        return header[7:].strip()
    return None


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
