"""Users and tokens against real PostgreSQL: login, every protected route refusing bad tokens, roles, revocation,
refresh rotation, slowed-down failed logins, the root admin's bootstrap."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import replace
from typing import Any

import jwt
import pytest
from http_support import ADMIN, ADMIN_PASSWORD, USER_SECRET, Running
from odin_http.app import open_gateway
from odin_http.settings import AuthSettings, Secret, ServerSettings

SAMPLE = {"id": "hello", "username": ADMIN, "filename": "main.yml"}


def protected_routes(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(method, path) of every route the OpenAPI document says needs a token, path parameters filled in."""
    out = []
    for path, ops in doc["paths"].items():
        for method, spec in ops.items():
            if spec.get("x-odin-role") in ("user", "admin"):
                out.append((method.upper(), path.format(**SAMPLE)))
    return out


def _part(d: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=").decode()


def bad_tokens(good: str) -> dict[str, str]:
    claims = jwt.decode(good, options={"verify_signature": False})
    now = int(time.time())
    head, _body, sig = good.split(".")
    return {
        "expired": jwt.encode({**claims, "exp": now - 3600, "iat": now - 7200, "nbf": now - 7200}, USER_SECRET),
        "forged": jwt.encode(claims, "f" * 64),
        "wrong-issuer": jwt.encode({**claims, "iss": "evil"}, USER_SECRET),
        "wrong-audience": jwt.encode({**claims, "aud": "other"}, USER_SECRET),
        "alg-none": f"{_part({'alg': 'none', 'typ': 'JWT'})}.{_part(claims)}.",
        "role-tampered": f"{head}.{_part({**claims, 'role': 'admin', 'sub': ADMIN})}.{sig}",
        "garbage": "Bearer-nonsense",
    }


async def test_login_with_a_form_or_json_gives_tokens(gw: Running) -> None:
    async with gw.session.post(gw.u("/v1/auth"), data={"username": ADMIN, "password": ADMIN_PASSWORD}) as r:
        assert r.status == 200
        body = await r.json()
    assert body["message"] == body["accessToken"] and body["tokenType"] == "Bearer"
    assert body["user"] == {**body["user"], "username": ADMIN, "role": "admin"} and "password" not in str(body["user"])
    status, body = await gw.call("POST", "/v1/auth", json={"username": ADMIN, "password": "wrong-password"})
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = await gw.call("POST", "/v1/auth", json={"username": "nobody", "password": "whatever-pw"})
    assert status == 401 and body["error"]["message"] == "wrong user name or password"


async def test_every_protected_route_refuses_missing_and_bad_tokens(gw: Running) -> None:
    routes = protected_routes(gw.gateway.openapi)
    assert len(routes) >= 15, routes
    user = await gw.add_user("ann")
    bad = bad_tokens(user["Authorization"].split(" ", 1)[1])
    for method, path in routes:
        status, body = await gw.call(method, path, json={})
        assert status == 401, (method, path, status, body)
        for name, token in bad.items():
            status, body = await gw.call(method, path, json={}, headers={"Authorization": f"Bearer {token}"})
            assert status == 401, (name, method, path, status, body)
            assert body["error"]["code"] == "unauthorized"


async def test_a_user_cannot_touch_another_account(gw: Running) -> None:
    ann = await gw.add_user("ann")
    await gw.add_user("bob")
    for method, path, body in [
        ("PUT", "/v1/users/bob", {"user": {"password": "taken-over-1"}}),
        ("DELETE", "/v1/users/bob", None),
        ("POST", "/v1/users", {"user": {"username": "eve", "password": "password-1"}}),
        ("GET", "/v1/users", None),
        ("PUT", "/v1/users/ann", {"user": {"role": "admin"}}),  # not even their own role
    ]:
        status, reply = await gw.call(method, path, json=body, headers=ann)
        assert status == 403, (method, path, reply)
    status, reply = await gw.call("PUT", "/v1/users/ann", json={"user": {"firstname": "Ann"}}, headers=ann)
    assert status == 200 and reply["user"]["firstname"] == "Ann"
    status, reply = await gw.call("GET", "/v1/users/bob", headers=ann)
    assert status == 200 and "role" not in reply["user"]  # public names only (public reads are on)


async def test_without_public_reads_other_accounts_are_refused(make_gateway: Any) -> None:
    gw = await make_gateway(server=ServerSettings(host="127.0.0.1", port=0, public_reads=False))
    ann = await gw.add_user("ann")
    await gw.add_user("bob")
    assert (await gw.call("GET", "/v1/users/bob", headers=ann))[0] == 403
    assert (await gw.call("GET", "/v1/users/bob"))[0] == 401
    assert (await gw.call("GET", "/v1/pipelines"))[0] == 401
    assert (await gw.call("GET", "/v1/jobs"))[0] == 401
    assert (await gw.call("GET", "/v1/ping"))[0] == 200


async def test_logout_and_password_change_revoke_tokens(gw: Running) -> None:
    tokens = await gw.login()
    h = {"Authorization": f"Bearer {tokens['accessToken']}"}
    assert (await gw.call("GET", "/v1/users", headers=h))[0] == 200
    status, _ = await gw.call("POST", "/v1/auth/logout", json={"refreshToken": tokens["refreshToken"]}, headers=h)
    assert status == 200
    assert (await gw.call("GET", "/v1/users", headers=h))[0] == 401
    assert (await gw.call("POST", "/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]}))[0] == 401
    ann = await gw.add_user("ann", "first-password")
    other_session = await gw.token("ann", "first-password")
    status, _ = await gw.call("PUT", "/v1/users/ann", json={"user": {"password": "second-password"}}, headers=ann)
    assert status == 200
    for old in (ann, other_session):
        assert (await gw.call("GET", "/v1/users/ann", headers=old))[0] == 401
    assert (await gw.call("POST", "/v1/auth", json={"username": "ann", "password": "first-password"}))[0] == 401
    await gw.token("ann", "second-password")


async def test_a_refresh_token_works_once(gw: Running) -> None:
    tokens = await gw.login()
    status, fresh = await gw.call("POST", "/v1/auth/refresh", json={"refresh_token": tokens["refreshToken"]})
    assert status == 200 and fresh["accessToken"] != tokens["accessToken"]
    status, body = await gw.call("POST", "/v1/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
    assert status == 401 and body["error"]["message"].startswith("refresh token")
    status, _ = await gw.call("POST", "/v1/auth/refresh", json={"refreshToken": tokens["accessToken"]})
    assert status == 401  # an access token is not a refresh token
    h = {"Authorization": f"Bearer {fresh['accessToken']}"}
    assert (await gw.call("GET", "/v1/users", headers=h))[0] == 200


async def test_a_demoted_admin_loses_admin_rights_at_once(gw: Running) -> None:
    carl = await gw.add_user("carl", role="admin")
    assert (await gw.call("GET", "/v1/users", headers=carl))[0] == 200
    admin = await gw.token()
    assert (await gw.call("PUT", "/v1/users/carl", json={"role": "user"}, headers=admin))[0] == 200
    assert (await gw.call("GET", "/v1/users", headers=carl))[0] == 401  # the role change revoked the token


async def test_failed_logins_are_slowed_down_per_user_and_per_address(gw: Running) -> None:
    await gw.add_user("dave", "dave-password")
    for _ in range(5):
        assert (await gw.call("POST", "/v1/auth", json={"username": "dave", "password": "nope-nope"}))[0] == 401
    async with gw.session.post(gw.u("/v1/auth"), json={"username": "dave", "password": "dave-password"}) as r:
        assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
        assert (await r.json())["error"]["code"] == "throttled"
    # the address made five failures too: another name from it is slowed down as well
    status, _ = await gw.call("POST", "/v1/auth", json={"username": ADMIN, "password": ADMIN_PASSWORD})
    assert status == 429
    await asyncio.sleep(0.6)  # the first delay (base_delay_s=0.5 in these tests) has passed: this is the wait itself
    assert (await gw.call("POST", "/v1/auth", json={"username": "dave", "password": "dave-password"}))[0] == 200


async def test_the_root_admin_comes_only_from_a_secret(gw: Running, gateway_dsn: str, root: Any, core_url: str) -> None:
    from http_support import gateway_settings

    settings = gateway_settings(root, gateway_dsn, core_url)
    no_secret = replace(settings, auth=replace(settings.auth, root_password=Secret("")))
    async with open_gateway(no_secret) as g:  # users exist already: nothing happens, nothing breaks
        assert await g.users.count() == 1
    weak = replace(settings, auth=AuthSettings(jwt_secret=Secret(USER_SECRET), root_password=Secret("short")))
    with pytest.raises(ValueError, match="at least"):
        async with open_gateway(weak):
            pass


async def test_passwords_are_argon2id_with_a_salt_each(gw: Running) -> None:
    await gw.add_user("erin", "same-password")
    await gw.add_user("fred", "same-password")
    rows = await gw.gateway.users.pool.fetch("SELECT password_hash FROM users WHERE username IN ('erin', 'fred')")
    hashes = [r["password_hash"] for r in rows]
    assert all(h.startswith("$argon2id$") for h in hashes) and hashes[0] != hashes[1]
