"""Passwords hashed with argon2id (argon2-cffi): every hash carries its own random salt and its parameters."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from .errors import InvalidRequest

_HASHER = PasswordHasher()  # argon2id, RFC 9106 low-memory profile; a 16-byte random salt per hash
MAX_PASSWORD_LENGTH = 1024
# Checked against when the user does not exist, so an unknown name costs the same time as a wrong password.
_DUMMY_HASH = _HASHER.hash("odin-no-such-user")


def check_strength(password: object, min_length: int) -> str:
    if not isinstance(password, str) or len(password) < min_length:
        raise InvalidRequest(f"a password needs at least {min_length} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidRequest(f"a password has at most {MAX_PASSWORD_LENGTH} characters")
    return password


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_HASHER.hash, password)


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored`` (None: no such user; costs a verification all the same)."""
    return await asyncio.to_thread(_verify, stored, password)


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)
