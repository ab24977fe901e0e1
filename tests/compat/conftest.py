"""The original Odin client (``odin-api`` 0.7.6 from PyPI, its own console scripts) against our core.

``legacy_cli`` runs one of its scripts as a subprocess against an ``Endpoint`` (scheme, host, port): here the
WebSocket service (``ws_endpoint``); the HTTP gateway's tests can hand it ``Endpoint("http", host, port)`` to
drive the same scripts over ``--scheme http``. The side environment is built once by ``legacy_env.ensure``;
in CI a failure to build it fails the suite, on a developer machine it skips it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import legacy_env
import pytest
from legacy_support import Endpoint, LegacyCli, Result

PIPELINES = Path(__file__).parent / "pipelines"
JOBS = {
    "hello": """
        name: hello
        tasks:
          - {name: greet, image: busybox, command: sh, args: [-c, "echo hello from $$ODIN_TASK_ID"]}
        """,
    "pair": """
        name: pair
        tasks:
          - {name: first, image: busybox, command: sh, args: [-c, "echo one"]}
          - {name: second, image: busybox, command: [sh, -c, "echo two; exit 4"], depends: first}
        """,
    "team/bad": """
        name: bad
        tasks:
          - {name: a_b, image: x}
        """,
}


@pytest.fixture(scope="session")
def legacy_bin() -> Path:
    try:
        return legacy_env.ensure()
    except (legacy_env.LegacyEnvError, OSError) as e:
        message = f"the original client's side environment could not be made: {e}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def legacy_cli(legacy_bin: Path, tmp_path: Path) -> LegacyCli:
    """``await legacy_cli("odin-status", "hello", endpoint=ep)``: run one of the original console scripts."""
    home = tmp_path / "legacy-home"
    home.mkdir()
    env = {"PATH": f"{legacy_bin}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", "ODIN_LOG_LEVEL": "INFO"}

    async def run(script: str, *args: str, endpoint: Endpoint, timeout: float = 120) -> Result:
        proc = await asyncio.create_subprocess_exec(
            str(legacy_bin / script), *args, *endpoint.args(),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=env, cwd=home,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        return Result(proc.returncode or 0, out.decode(), err.decode())

    return run


@pytest.fixture
def root(write_jobs: Callable[[dict[str, str]], Path]) -> Path:
    base = write_jobs(JOBS)
    shutil.copytree(PIPELINES / "ner-original", base / "ner-original")
    return base


@pytest.fixture
def ws_endpoint(server: Any) -> Endpoint:
    host, port = server.url.removeprefix("ws://").rsplit(":", 1)
    return Endpoint("ws", host, int(port))
