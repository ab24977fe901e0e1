"""Users in PostgreSQL: accounts, roles, sessions (token versions and revoked token ids) and run authorship."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from . import constants as C
from .errors import Conflict, InvalidRequest, NotFound
from .wire import iso

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
NAME_MAX = 200


@dataclass(frozen=True)
class User:
    username: str
    firstname: str
    lastname: str
    role: str
    token_version: int
    created: float
    updated: float

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> User:
        return cls(
            row["username"],
            row["firstname"],
            row["lastname"],
            row["role"],
            row["token_version"],
            row["created"].timestamp(),
            row["updated"].timestamp(),
        )

    def to_wire(self, *, full: bool = True) -> dict[str, Any]:
        """The user as the API shows it (never the password hash); ``full=False`` for anonymous readers."""
        out: dict[str, Any] = {
            "id": self.username,
            "username": self.username,
            "firstname": self.firstname,
            "lastname": self.lastname,
        }
        if full:
            out.update(role=self.role, creationTime=iso(self.created), updateTime=iso(self.updated))
        return out


def check_username(name: object) -> str:
    if not isinstance(name, str) or not USERNAME.match(name):
        raise InvalidRequest("a user name is 1-64 letters, digits, '_', '.', '@' or '-', starting with a letter/digit")
    return name


def check_role(role: object) -> str:
    if role not in C.ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(C.ROLES)}")
    return str(role)


def check_name(value: object, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > NAME_MAX:
        raise InvalidRequest(f'"{field}" must be a string of at most {NAME_MAX} characters')
    return value


_COLUMNS = "username, firstname, lastname, role, token_version, created, updated"


class UserStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def count(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM users"))

    async def create(self, username: str, password_hash: str, *, role: str, firstname: str, lastname: str) -> User:
        try:
            row = await self.pool.fetchrow(
                f"INSERT INTO users (username, firstname, lastname, role, password_hash) "
                f"VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}",
                username,
                firstname,
                lastname,
                role,
                password_hash,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict(f"user {username!r} already exists; change it with PUT /v1/users/{username}") from None
        return User.from_row(row)

    async def create_first_admin(self, username: str, password_hash: str) -> bool:
        """Create the root admin when there is no user at all (one replica wins; True when it was this one)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
            if await conn.fetchval("SELECT count(*) FROM users"):
                return False
            await conn.execute(
                "INSERT INTO users (username, role, password_hash) VALUES ($1, 'admin', $2)", username, password_hash
            )
            return True

    async def get(self, username: str) -> User:
        row = await self.pool.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE username = $1", username)
        if row is None:
            raise NotFound(f"no user {username!r}")
        return User.from_row(row)

    async def password_hash(self, username: str) -> tuple[User, str] | None:
        row = await self.pool.fetchrow(f"SELECT {_COLUMNS}, password_hash FROM users WHERE username = $1", username)
        return None if row is None else (User.from_row(row), row["password_hash"])

    async def find(self, query: str, *, limit: int, offset: int) -> tuple[list[User], int]:
        """Users whose name (user, first or last) contains ``query``, by user name; and how many match in all."""
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where = "WHERE username ILIKE $1 OR firstname ILIKE $1 OR lastname ILIKE $1"
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM users {where} ORDER BY username LIMIT $2 OFFSET $3", pattern, limit, offset
        )
        total = await self.pool.fetchval(f"SELECT count(*) FROM users {where}", pattern)
        return [User.from_row(r) for r in rows], int(total)

    async def update(
        self,
        username: str,
        *,
        firstname: str | None = None,
        lastname: str | None = None,
        role: str | None = None,
        password_hash: str | None = None,
    ) -> User:
        """Change what is given. A new password or role bumps the token version: every token issued before is void."""
        row = await self.pool.fetchrow(
            f"""
            UPDATE users SET
              firstname = COALESCE($2, firstname),
              lastname = COALESCE($3, lastname),
              token_version = token_version + CASE WHEN $5::text IS NOT NULL OR ($4::text IS NOT NULL AND $4 <> role)
                                                   THEN 1 ELSE 0 END,
              role = COALESCE($4, role),
              password_hash = COALESCE($5, password_hash),
              updated = now()
            WHERE username = $1 RETURNING {_COLUMNS}
            """,
            username,
            firstname,
            lastname,
            role,
            password_hash,
        )
        if row is None:
            raise NotFound(f"no user {username!r}")
        return User.from_row(row)

    async def delete(self, username: str) -> User:
        row = await self.pool.fetchrow(f"DELETE FROM users WHERE username = $1 RETURNING {_COLUMNS}", username)
        if row is None:
            raise NotFound(f"no user {username!r}")
        return User.from_row(row)

    async def count_admins(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM users WHERE role = 'admin'"))

    # -- sessions -----------------------------------------------------------------------------------------------

    async def session(self, username: str, version: int, token_id: str) -> User | None:
        """The user a token speaks for, when that token is still good: the user exists, its token version is the
        token's, and the token id was not revoked. None otherwise."""
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMNS}, EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $2) AS revoked "
            "FROM users WHERE username = $1",
            username,
            token_id,
        )
        if row is None or row["revoked"] or row["token_version"] != version:
            return None
        return User.from_row(row)

    async def revoke(self, token_id: str, expires: float) -> bool:
        """Revoke a token id until it expires; False when it already was (a refresh token used twice)."""
        await self.pool.execute("DELETE FROM revoked_tokens WHERE expires < now()")
        status = await self.pool.execute(
            "INSERT INTO revoked_tokens (jti, expires) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            token_id,
            datetime.fromtimestamp(expires, UTC),
        )
        return status.endswith(" 1")

    async def revoke_all(self, username: str) -> None:
        await self.pool.execute(
            "UPDATE users SET token_version = token_version + 1, updated = now() WHERE username = $1", username
        )

    # -- runs started through the gateway -----------------------------------------------------------------------

    async def record_run(self, run_id: str, job: str, commit: str, username: str, context: dict[str, Any]) -> None:
        await self.pool.execute(
            "INSERT INTO gateway_runs (run_id, job, commit, username, context) VALUES ($1, $2, $3, $4, $5) "
            "ON CONFLICT (run_id) DO NOTHING",
            run_id,
            job,
            commit,
            username,
            json.dumps(context),
        )

    async def runs(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        rows = await self.pool.fetch(
            "SELECT run_id, job, commit, username FROM gateway_runs WHERE run_id = ANY($1::text[])", run_ids
        )
        return {r["run_id"]: dict(r) for r in rows}

    async def forget_run(self, run_id: str) -> None:
        await self.pool.execute("DELETE FROM gateway_runs WHERE run_id = $1", run_id)
