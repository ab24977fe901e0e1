"""Access and refresh tokens (PyJWT): issued and verified with one pinned algorithm, issuer and audience.

Pure: no database here. ``verify`` checks signature, expiry, issuer, audience, type and the claims every token must
carry; whether the token was revoked is the user store's business (``jti`` and the user's token version ``ver``).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from . import constants as C
from .errors import AuthError
from .settings import AuthSettings

ALGORITHMS = ("HS256", "HS384", "HS512")
REQUIRED = ["exp", "iat", "nbf", "iss", "aud", "sub", "jti", C.CLAIM_TYPE, C.CLAIM_ROLE, C.CLAIM_VERSION]


@dataclass(frozen=True)
class Claims:
    """What a verified token says."""

    subject: str  # the user name
    role: str
    version: int
    token_id: str
    kind: str
    expires: float


@dataclass(frozen=True)
class Issued:
    token: str
    claims: Claims


class TokenIssuer:
    def __init__(self, settings: AuthSettings) -> None:
        if not settings.jwt_secret:
            raise ValueError("auth.jwt_secret is required: set ODIN_HTTP_AUTH_JWT_SECRET_FILE to a file with the key")
        if settings.jwt_algorithm not in ALGORITHMS:
            raise ValueError(f"auth.jwt_algorithm must be one of {', '.join(ALGORITHMS)}")
        if len(settings.jwt_secret.reveal()) < 32:
            raise ValueError("auth.jwt_secret must be at least 32 characters long")
        self._s = settings
        self._key = settings.jwt_secret.reveal()

    def issue(self, subject: str, role: str, version: int, *, kind: str, now: float | None = None) -> Issued:
        now = time.time() if now is None else now
        ttl = self._s.access_ttl_s if kind == C.TOKEN_ACCESS else self._s.refresh_ttl_s
        claims = Claims(subject, role, version, uuid.uuid4().hex, kind, float(int(now) + ttl))
        payload: dict[str, Any] = {
            "iss": self._s.issuer,
            "aud": self._s.audience,
            "sub": subject,
            "iat": int(now),
            "nbf": int(now),
            "exp": int(claims.expires),
            "jti": claims.token_id,
            C.CLAIM_TYPE: kind,
            C.CLAIM_ROLE: role,
            C.CLAIM_VERSION: version,
        }
        return Issued(jwt.encode(payload, self._key, algorithm=self._s.jwt_algorithm), claims)

    def verify(self, token: str, *, kind: str = C.TOKEN_ACCESS) -> Claims:
        """The claims of a valid token of ``kind``; AuthError (one reason, no token echoed) otherwise."""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != self._s.jwt_algorithm:
                raise AuthError(f"token refused: algorithm {header.get('alg')!r} is not accepted")
            payload = jwt.decode(
                token,
                self._key,
                algorithms=[self._s.jwt_algorithm],
                audience=self._s.audience,
                issuer=self._s.issuer,
                leeway=self._s.leeway_s,
                options={"require": REQUIRED},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired: log in again (or refresh it)") from None
        except jwt.InvalidAudienceError:
            raise AuthError("token refused: wrong audience") from None
        except jwt.InvalidIssuerError:
            raise AuthError("token refused: wrong issuer") from None
        except jwt.PyJWTError as e:
            raise AuthError(f"token refused: {e}") from None
        if payload.get(C.CLAIM_TYPE) != kind:
            raise AuthError(f"token refused: a {payload.get(C.CLAIM_TYPE)} token is not a {kind} token")
        if payload.get(C.CLAIM_ROLE) not in C.ROLES or not isinstance(payload.get(C.CLAIM_VERSION), int):
            raise AuthError("token refused: malformed claims")
        return Claims(
            str(payload["sub"]),
            str(payload[C.CLAIM_ROLE]),
            int(payload[C.CLAIM_VERSION]),
            str(payload["jti"]),
            kind,
            float(payload["exp"]),
        )


def core_token(secret: str, ttl_s: float, *, now: float | None = None) -> str:
    """The HS256 JWT the gateway presents to the core (``odin-core serve --jwt-secret``)."""
    now = time.time() if now is None else now
    payload = {"sub": "odin-http", "iat": int(now), "exp": int(now + ttl_s), "iss": "odin-http"}
    return jwt.encode(payload, secret, algorithm="HS256")


def bearer(header: str | None) -> str | None:
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    return None
