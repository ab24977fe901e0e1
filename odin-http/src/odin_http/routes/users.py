"""Users: admins manage everyone; a user reads and changes only their own account (never their role)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import constants as C
from ..access import current_user, require_self_or_admin, require_user
from ..errors import Conflict, Forbidden, InvalidRequest
from ..keys import GATEWAY
from ..openapi import PAGE_PARAMS, json_body, op, param, ref
from ..passwords import check_strength, hash_password
from ..users import check_name, check_role, check_username
from ..wire import body_object, page_params, reply

P = C.PREFIX


def _user_object(body: dict[str, Any]) -> dict[str, Any]:
    """``{"user": {...}}``, or the bare object (the first Odin's client PUTs it unwrapped)."""
    inner = body.get("user", body)
    if not isinstance(inner, dict):
        raise InvalidRequest('the body is {"user": {"username", "password", "firstname", "lastname"}}')
    return inner


async def list_users(request: web.Request) -> web.Response:
    await require_user(request, role=C.ROLE_ADMIN)
    limit, offset = page_params(request)
    users, total = await request.app[GATEWAY].users.find(request.query.get("q", ""), limit=limit, offset=offset)
    following = offset + limit if offset + limit < total else None
    page = {"limit": limit, "offset": offset, "total": total, "next": following}
    return reply({"users": [u.to_wire() for u in users], "page": page})


async def get_user(request: web.Request) -> web.Response:
    name = request.match_info["username"]
    gw = request.app[GATEWAY]
    me = await current_user(request)
    if me is not None and (me.role == C.ROLE_ADMIN or me.username == name):
        return reply({"user": (await gw.users.get(name)).to_wire()})
    if not gw.settings.server.public_reads:
        await require_self_or_admin(request, name)  # 401 without a token, 403 for another user's account
    return reply({"user": (await gw.users.get(name)).to_wire(full=False)})


async def create_user(request: web.Request) -> web.Response:
    await require_user(request, role=C.ROLE_ADMIN)
    gw = request.app[GATEWAY]
    data = _user_object(await body_object(request))
    name = check_username(data.get("username"))
    password = check_strength(data.get("password"), gw.settings.auth.min_password_length)
    user = await gw.users.create(
        name,
        await hash_password(password),
        role=check_role(data.get("role") or C.ROLE_USER),
        firstname=check_name(data.get("firstname"), "firstname"),
        lastname=check_name(data.get("lastname"), "lastname"),
    )
    return reply({"user": user.to_wire()})


async def update_user(request: web.Request) -> web.Response:
    name = request.match_info["username"]
    me = await require_self_or_admin(request, name)
    gw = request.app[GATEWAY]
    data = _user_object(await body_object(request))
    if data.get("username") not in (None, name):
        raise InvalidRequest("a user name cannot be changed")
    role = data.get("role")
    if role is not None:
        role = check_role(role)
        if me.role != C.ROLE_ADMIN and role != me.role:
            raise Forbidden("only an admin changes roles")
        if role != C.ROLE_ADMIN and me.username == name and await gw.users.count_admins() <= 1:
            raise Conflict("the last admin cannot give up the admin role")
    password = data.get("password")
    digest = None
    if password is not None:
        digest = await hash_password(check_strength(password, gw.settings.auth.min_password_length))
    user = await gw.users.update(
        name,
        firstname=check_name(data["firstname"], "firstname") if "firstname" in data else None,
        lastname=check_name(data["lastname"], "lastname") if "lastname" in data else None,
        role=role,
        password_hash=digest,
    )
    return reply({"user": user.to_wire()})


async def delete_user(request: web.Request) -> web.Response:
    me = await require_user(request, role=C.ROLE_ADMIN)
    name = request.match_info["username"]
    gw = request.app[GATEWAY]
    if name == me.username:
        raise Conflict("an admin cannot delete their own account; another admin can")
    return reply({"user": (await gw.users.delete(name)).to_wire()})


def setup_routes(app: web.Application, gateway: object) -> None:
    app.router.add_get(f"{P}/users", list_users)
    app.router.add_post(f"{P}/users", create_user)
    app.router.add_get(f"{P}/users/{{username}}", get_user)
    app.router.add_put(f"{P}/users/{{username}}", update_user)
    app.router.add_delete(f"{P}/users/{{username}}", delete_user)


_NAME = param("username", "path", doc="the user name")
_USER_IN = {
    "type": "object",
    "properties": {
        "username": {"type": "string"},
        "password": {"type": "string"},
        "firstname": {"type": "string"},
        "lastname": {"type": "string"},
        "role": {"enum": list(C.ROLES)},
    },
}
_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"oneOf": [{"type": "object", "required": ["user"], "properties": {"user": _USER_IN}}, _USER_IN]}
        }
    },
}
_ONE = json_body({"type": "object", "required": ["user"], "properties": {"user": ref("User")}})
OPENAPI = {
    "paths": {
        f"{P}/users": {
            "get": op(
                "Users (admins only); `q` matches names",
                tag="users",
                auth="admin",
                params=[param("q", doc="part of a user, first or last name"), *PAGE_PARAMS],
                ok=json_body(
                    {
                        "type": "object",
                        "required": ["users", "page"],
                        "properties": {"users": {"type": "array", "items": ref("User")}, "page": ref("Page")},
                    }
                ),
            ),
            "post": op(
                "Create a user (admins only)", tag="users", auth="admin", body=_BODY, ok=_ONE, errors=("400", "409")
            ),
        },
        f"{P}/users/{{username}}": {
            "get": op(
                "One user: the whole record for the user or an admin, names only for anonymous readers",
                tag="users",
                auth="read",
                params=[_NAME],
                ok=_ONE,
                errors=("403", "404"),
            ),
            "put": op(
                "Change a user: an admin anyone, a user their own names and password",
                tag="users",
                auth="user",
                params=[_NAME],
                body=_BODY,
                ok=_ONE,
                errors=("400", "404", "409"),
            ),
            "delete": op(
                "Delete a user (admins only)", tag="users", auth="admin", params=[_NAME], ok=_ONE, errors=("404", "409")
            ),
        },
    },
    "schemas": {
        "User": {
            "type": "object",
            "required": ["id", "username", "firstname", "lastname"],
            "properties": {
                "id": {"type": "string"},
                "username": {"type": "string"},
                "firstname": {"type": "string"},
                "lastname": {"type": "string"},
                "role": {"enum": list(C.ROLES)},
                "creationTime": {"type": "string", "format": "date-time"},
                "updateTime": {"type": "string", "format": "date-time"},
            },
        }
    },
}
