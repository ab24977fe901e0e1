"""``odin-core migrate`` and retention, on the real servers."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from odin_core.api import Odin
from odin_core.retention import purge_expired
from odin_core.settings import Settings

PY = sys.executable


def migrate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [PY, "-m", "odin_core", "migrate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_migrate_applies_the_schema_once(postgres: str) -> None:
    first = migrate("--store", postgres)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().endswith("schema version 1 (migrated from 0)")
    again = migrate("--store", postgres)
    assert again.returncode == 0 and again.stdout.strip().endswith(": schema version 1")


@pytest.mark.parametrize("scheme", ["postgresql", "mongodb"])
def test_an_unreachable_store_is_one_line_without_the_password(scheme: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = migrate("--store", f"{scheme}://odin:hunter2@127.0.0.1:{port}/odin", env={"ODIN_STORE_PASSWORD_FILE": ""})
    assert done.returncode == 2
    assert done.stderr.startswith("error: cannot open the ") and done.stderr.count("\n") == 1, done.stderr
    assert "hunter2" not in done.stderr + done.stdout and "Traceback" not in done.stderr


def test_a_missing_password_file_says_which(postgres: str, tmp_path: Path) -> None:
    done = migrate("--store", postgres, env={"ODIN_STORE_PASSWORD_FILE": str(tmp_path / "nope")})
    assert done.returncode == 2 and f"password file {tmp_path / 'nope'}" in done.stderr


def test_an_unknown_store_scheme_is_refused(tmp_path: Path) -> None:
    done = migrate("--store", "redis://127.0.0.1/0")
    assert done.returncode == 2 and "unsupported store URL" in done.stderr


@pytest.fixture
def pipelines(tmp_path: Path) -> Path:
    job = tmp_path / "pipelines" / "hello"
    job.mkdir(parents=True)
    (job / "main.yml").write_text(
        f"name: hello\ntasks:\n  - {{name: greet, image: busybox, command: {PY}, args: ['-c', 'print(1)']}}\n"
    )
    slow = tmp_path / "pipelines" / "slow"
    slow.mkdir()
    code = "import time; time.sleep(30)"
    (slow / "main.yml").write_text(
        f"name: slow\ntasks:\n  - {{name: wait, image: busybox, command: {PY}, args: ['-c', '{code}']}}\n"
    )
    return tmp_path / "pipelines"


async def test_retention_purges_ended_runs_fully(store_url: str, pipelines: Path, tmp_path: Path) -> None:
    settings = Settings.from_env({"ODIN_HOME": str(tmp_path / "home"), "ODIN_STORE": store_url})
    async with await Odin.open(settings, root=pipelines) as odin:
        ended = await odin.submit(pipelines / "hello")
        assert (await odin.wait(ended.run_id)).status.value == "DONE"
        active = await odin.submit(pipelines / "slow")
        assert (settings.data / ended.run_id).is_dir()
        assert await purge_expired(odin, 3600) == [], "nothing ended an hour ago"
        completed = (await odin.store.get_run(ended.run_id)).completed
        assert await purge_expired(odin, 60, now=completed + 61) == [ended.run_id]
        assert await odin.store.get_run(ended.run_id) is None and await odin.store.events(ended.run_id) == []
        assert not (settings.data / ended.run_id).exists()
        assert await odin.store.get_run(active.run_id) is not None, "an active run is never purged"
        await odin.stop(active.run_id, wait_s=20)
