"""The Node.js client (odin-client/js) against the real server: `node example.js <url> <job>`.

Without node/npm the tests skip, except under CI (env CI set), where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from odin_core.api import Odin
from odin_core.service import Service

pytestmark = pytest.mark.timeout(120)

JS = Path(__file__).resolve().parents[2] / "odin-client" / "js"


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        missing = "node" if node is None else "npm"
        if os.environ.get("CI"):
            pytest.fail(f"{missing} is required under CI to test odin-client/js")
        pytest.skip(f"{missing} is not installed")
    if not (JS / "node_modules" / "ws").is_dir():
        result = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=JS, capture_output=True, text=True)
        assert result.returncode == 0, f"npm ci failed:\n{result.stdout}\n{result.stderr}"
    return node


async def example(node: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        node, "example.js", *args, cwd=JS, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_example_runs_a_job_and_prints_events_and_logs(node: str, server: Service, odin: Odin) -> None:
    code, out, err = await example(node, server.url, "pair")
    assert code == 0, out + err
    run_id = re.search(r"^run (pair-\w+)$", out, re.M)
    assert run_id, out
    stored = await odin.store.events(run_id[1])
    printed = [int(m) for m in re.findall(r"^\S+ #(\d+) ", out, re.M)]
    assert printed == [e.seq for e in stored]  # every WATCH event, once, in order
    assert re.search(r"#\d+ task first SUCCEEDED$", out, re.M), out
    assert f"--- logs of {run_id[1]}--first (SUCCEEDED)\none\ntwo\n" in out
    assert "second here" in out
    assert out.rstrip().endswith(f"run {run_id[1]} ended DONE")


async def test_example_exits_1_when_the_run_fails_or_the_job_is_bad(node: str, server: Service) -> None:
    code, out, err = await example(node, server.url, "sad")
    assert code == 1, out + err
    assert "task boom FAILED" in out and "about to fail" in out and "ended TERMINATED" in out
    code, out, err = await example(node, server.url, "team/bad")
    assert code == 1 and "(invalid_pipeline)" in err, out + err
    code, _, err = await example(node)
    assert code == 2 and "usage" in err


async def test_example_with_a_token(node: str, make_server) -> None:
    server = await make_server(token="js-secret")
    code, out, err = await example(node, server.url, "hello", "js-secret")
    assert code == 0, out + err
    code, _, err = await example(node, server.url, "hello", "wrong")
    assert code == 1 and "(unauthorized)" in err, err
