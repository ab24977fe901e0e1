"""Bearer tokens: a shared secret, or an HS256 JWT signed by the gateway (signature and expiry verified).

Tokens are compared in constant time and never logged; errors say what is wrong without echoing them.
"""

from __future__ import annotations

import hmac

import jwt

from ..errors import AuthError
from .settings import ServerSettings

JWT_ALGORITHMS = ["HS256"]
BEARER = "bearer "


class Authenticator:
    def __init__(self, *, token: str = "", jwt_secret: str = "") -> None:
        self._token = token.encode()
        self._jwt_secret = jwt_secret

    @classmethod
    def from_settings(cls, settings: ServerSettings) -> Authenticator:
        return cls(token=settings.token, jwt_secret=settings.jwt_secret)

    @property
    def required(self) -> bool:
        return bool(self._token or self._jwt_secret)

    def verify(self, token: str | None) -> str:
        """The principal (``token`` for the shared secret, the JWT ``sub`` otherwise); raises AuthError."""
        if not token:
            raise AuthError("authentication required: send a bearer token (Authorization header, AUTH or 'token')")
        if self._token and hmac.compare_digest(token.encode(), self._token):
            return "token"
        if self._jwt_secret:
            return self._verify_jwt(token)
        raise AuthError("invalid token")

    def _verify_jwt(self, token: str) -> str:
        try:
            claims = jwt.decode(token, self._jwt_secret, algorithms=JWT_ALGORITHMS, options={"require": ["exp"]})
        except jwt.ExpiredSignatureError as e:
            raise AuthError("token expired: log in again") from e
        except jwt.InvalidTokenError as e:
            raise AuthError(f"invalid token ({type(e).__name__})") from e
        return str(claims.get("sub") or claims.get("username") or "jwt")


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (None when absent or another scheme)."""
    if header and header[: len(BEARER)].lower() == BEARER:
        return header[len(BEARER) :].strip() or None
    return None
