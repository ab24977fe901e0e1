"""The Python HTTP client (same API as the WebSocket client) and the `odin` CLI over the gateway."""

from __future__ import annotations

import asyncio
import inspect
import os
import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from http_support import ADMIN, ADMIN_PASSWORD, Running
from odin_client.http import HttpOdin, TokenCache
from odin_client.remote import RemoteOdin
from odin_core.model import RunStatus
from test_api import FLAKY, HELLO, SLOW

ODIN = str(Path(sys.executable).with_name("odin"))


def public_api(cls: type) -> set[str]:
    return {n for n, v in vars(cls).items() if not n.startswith("_") and inspect.isfunction(v)}


def test_the_http_client_has_the_websocket_clients_api() -> None:
    shared = public_api(RemoteOdin) - {"request", "stream", "connection"}
    assert shared <= public_api(HttpOdin), shared - public_api(HttpOdin)
    for name in shared:
        remote = inspect.signature(getattr(RemoteOdin, name))
        mine = inspect.signature(getattr(HttpOdin, name))
        assert list(remote.parameters)[: len(remote.parameters)] == list(mine.parameters)[: len(remote.parameters)], (
            name
        )


async def test_the_python_client_drives_runs(gw: Running, tmp_path: Path) -> None:
    cache = TokenCache(tmp_path / "tokens.json")
    async with HttpOdin(gw.url, cache=cache) as odin:
        await odin.login(ADMIN, ADMIN_PASSWORD)
        assert stat.S_IMODE(os.stat(cache.path).st_mode) == 0o600
        await odin.push("hello", "main.yml", HELLO.encode())
        run = await odin.submit("hello")
        seen = [e async for e in odin.watch(run.run_id)]
        assert seen[-1].status == "DONE" and [e.seq for e in seen] == list(range(1, len(seen) + 1))
        view = await odin.run(run.run_id)
        assert view.run.status is RunStatus.DONE and view.tasks[0].exit_code == 0
        assert [line async for line in odin.logs(f"{run.run_id}--greet")] == ["hello", "world"]
        assert [line async for line in odin.logs(f"{run.run_id}--greet", follow=True)] == ["hello", "world"]
        assert (await odin.task(f"{run.run_id}--greet")).name == "greet"
        assert [v.run.run_id for v in await odin.status("hello")] == [run.run_id]
        assert (await odin.events(run.run_id))[-1].status == "DONE"
        assert (await odin.validate("hello"))["valid"] is True
        assert "main.yml" in await odin.show("hello")
        assert len(await odin.history("hello")) == 1
        await odin.push("flaky", "main.yml", FLAKY.encode())
        flaky = await odin.wait((await odin.submit("flaky")).run_id)
        assert flaky.status is RunStatus.TERMINATED
        cleaned = await odin.cleanup(flaky.run_id, db=True)
        assert all(c.purged_from_db for c in cleaned)
    async with HttpOdin(gw.url, cache=cache) as again:  # the cached token is used
        assert (await again.users())[0]["username"] == ADMIN
        await again.logout()
    assert cache.get(gw.url) == {}


async def test_an_expired_access_token_is_refreshed(make_gateway: Any, tmp_path: Path) -> None:
    from http_support import gateway_settings  # noqa: F401 - the settings of make_gateway

    gw = await make_gateway()
    gw.gateway.issuer._s = replace(gw.gateway.issuer._s, access_ttl_s=1, leeway_s=0)
    cache = TokenCache(tmp_path / "tokens.json")
    async with HttpOdin(gw.url, cache=cache) as odin:
        await odin.login(ADMIN, ADMIN_PASSWORD)
        first = cache.get(gw.url)["accessToken"]
        await asyncio.sleep(2.1)  # the access token's lifetime (1 s) passes: this is what the test waits for
        assert (await odin.users())[0]["username"] == ADMIN
        assert cache.get(gw.url)["accessToken"] != first


async def cli(gw: Running, env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [ODIN, "--server", gw.url, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


async def test_the_cli_over_the_gateway(gw: Running, tmp_path: Path) -> None:
    env = {**os.environ, "ODIN_TOKEN_FILE": str(tmp_path / "tokens.json"), "NO_COLOR": "1"}
    env.pop("ODIN_SERVER", None)
    r = await cli(gw, env, "login", "-u", ADMIN, "--password-stdin", stdin=ADMIN_PASSWORD + "\n")
    assert r.returncode == 0 and "logged in" in r.stdout, r.stderr
    (tmp_path / "main.yml").write_text(HELLO)
    r = await cli(gw, env, "push", "team/hello", str(tmp_path / "main.yml"))
    assert r.returncode == 0 and "team/hello/main.yml@" in r.stdout, r.stderr
    r = await cli(gw, env, "run", "team/hello", "--no-watch")
    assert r.returncode == 0, r.stdout + r.stderr
    r = await cli(gw, env, "status", "hello", "-o", "json")
    assert r.returncode == 0 and '"DONE"' in r.stdout, r.stderr
    r = await cli(gw, env, "jobs")
    assert "team/hello" in r.stdout
    r = await cli(gw, env, "history", "team/hello")
    assert r.returncode == 0 and "push team/hello/main.yml" not in r.stderr and "post team/hello" in r.stdout
    r = await cli(gw, env, "user", "create", "ann", "--password-stdin", stdin="ann-password-1\n")
    assert r.returncode == 0, r.stderr
    r = await cli(gw, env, "user", "list")
    assert "ann" in r.stdout and "admin" in r.stdout
    (tmp_path / "slow.yml").write_text(SLOW)
    await cli(gw, env, "push", "slow", str(tmp_path / "slow.yml"), "--name", "main.yml")
    r = await cli(gw, env, "logout")
    assert r.returncode == 0
    r = await cli(gw, env, "user", "list")
    assert r.returncode == 1 and "needs a bearer token" in r.stderr and "Traceback" not in r.stderr


async def test_cli_gateway_commands_need_an_http_server(tmp_path: Path) -> None:
    r = await asyncio.to_thread(subprocess.run, [ODIN, "jobs"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "--server https://" in r.stderr
