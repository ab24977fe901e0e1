"""``odin-core serve`` as a user starts it: secrets from a file or the environment, never from argv."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from server_support import legacy
from websockets.asyncio.client import connect

SECRET = "file-secret-7f3a"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ODIN_TOKEN", "ODIN_JWT_SECRET")}
    return {**env, "ODIN_HOME": str(tmp_path / "home"), **extra}


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, root: Path, *args: str, **env: str) -> AsyncIterator[tuple[str, int]]:
    """A real ``odin-core serve`` process on a free port: (url, pid); stopped with SIGTERM."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "odin_core", "serve", "--port", "0", "--root-path", str(root), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=_env(tmp_path, **env),
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(60):
            while not (match := re.search(r"serving (ws://\S+)", (line := (await proc.stdout.readline()).decode()))):
                assert line, "odin-core serve exited before serving"
        yield match.group(1), proc.pid
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


async def run_cli(tmp_path: Path, *args: str, **env: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "odin_core", "serve", "--port", "0", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=_env(tmp_path, **env),
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


async def test_the_token_comes_from_a_file_and_never_shows_in_ps(tmp_path, root):
    token_file = tmp_path / "token"
    token_file.write_text(SECRET + "\n")
    token_file.chmod(0o600)
    async with serving(tmp_path, root, "--token-file", str(token_file)) as (url, pid):
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
        assert str(token_file) in cmdline and SECRET not in cmdline
        (denied,) = await legacy(url, "STATUS", "")
        assert denied["error"]["code"] == "unauthorized"
        async with connect(url, additional_headers={"Authorization": f"Bearer {SECRET}"}) as ws:
            await ws.send(json.dumps({"command": "STATUS", "request": "", "id": 1}))
            assert json.loads(await ws.recv())["status"] == "OK"


async def test_the_jwt_secret_comes_from_the_environment(tmp_path, root):
    import time

    import jwt

    key = "gateway-signing-key-of-32-bytes-or-more"
    async with serving(tmp_path, root, ODIN_JWT_SECRET=key) as (url, _pid):
        token = jwt.encode({"sub": "a", "exp": int(time.time()) + 60}, key, algorithm="HS256")
        async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
            await ws.send(json.dumps({"command": "STATUS", "request": "", "id": 1}))
            assert json.loads(await ws.recv())["status"] == "OK"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        pytest.param(["--token", SECRET], "--token-file FILE", id="token-in-argv"),
        pytest.param(["--jwt-secret", SECRET], "--jwt-secret-file FILE", id="jwt-secret-in-argv"),
        pytest.param(["--token-file", "/nonexistent/token"], "cannot read the token file", id="missing-file"),
        pytest.param(["--root-path", "/nonexistent/pipelines"], "is not a directory", id="missing-root"),
        pytest.param(["--host", "0.0.0.0"], "without authentication", id="open-without-auth"),
    ],
)
async def test_expected_errors_are_one_line(tmp_path, root, args, words):
    code, out = await run_cli(tmp_path, *(["--root-path", str(root)] if "--root-path" not in args else []), *args)
    assert code == 2, out
    assert words in out and "Traceback" not in out, out
    assert SECRET not in out


async def test_empty_token_file_is_refused(tmp_path, root):
    (tmp_path / "empty").write_text("\n")
    code, out = await run_cli(tmp_path, "--root-path", str(root), "--token-file", str(tmp_path / "empty"))
    assert code == 2 and "is empty" in out and "Traceback" not in out, out


async def test_a_port_in_use_is_one_line(tmp_path, root):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "odin_core", "serve", "--port", str(port), "--root-path", str(root),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=_env(tmp_path),
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert proc.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in text and "Traceback" not in text, text


async def test_serve_with_the_kubernetes_executor_and_no_usable_kubeconfig_is_one_line(tmp_path: Path) -> None:
    root = tmp_path / "pipelines"
    root.mkdir()
    missing = tmp_path / "nope.yaml"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "odin_core", "serve", "--port", "0", "--root-path", str(root),
        "--executor", "kubernetes", "--kubeconfig", str(missing),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(tmp_path),
    )  # fmt: skip
    _out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert lines == [
        f"error: kubeconfig {missing} does not exist; give one with --kubeconfig PATH (or ODIN_KUBECONFIG)"
    ]
