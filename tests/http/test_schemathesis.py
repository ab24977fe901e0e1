"""A property-based fuzzer (schemathesis) against the live gateway and its own OpenAPI document: no 5xx, every
status and body conforms to the document, with and without an admin token."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from http_support import Running
from test_api import HELLO, push

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
EXAMPLES = os.environ.get("ODIN_FUZZ_EXAMPLES", "8")


async def fuzz(gw: Running, tmp_path: Path, *headers: str) -> subprocess.CompletedProcess[str]:
    argv = [
        str(SCHEMATHESIS), "run", f"{gw.url}/v1/openapi.json", "--url", gw.url, "--checks", CHECKS,
        "--max-examples", EXAMPLES, "--workers", "1", "--generation-deterministic", "--phases", "examples,fuzzing",
        "--exclude-path-regex", "/events/live$", "--max-response-time", "20",
        *[arg for h in headers for arg in ("-H", h)],
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "HOME": str(tmp_path)}
    return await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900
    )


@pytest.mark.timeout(900)
async def test_the_fuzzer_finds_no_5xx_and_no_undocumented_answer(gw: Running, tmp_path: Path) -> None:
    if not SCHEMATHESIS.exists():
        message = "schemathesis is not installed (make venv installs requirements-dev.txt)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    h = await gw.token()
    await push(gw, h, "hello", HELLO)
    anonymous = await fuzz(gw, tmp_path)
    assert anonymous.returncode == 0, anonymous.stdout[-6000:]
    assert "Tested: " in anonymous.stdout and " generated, " in anonymous.stdout, anonymous.stdout[-3000:]
    admin = await fuzz(gw, tmp_path, f"Authorization: {h['Authorization']}")
    assert admin.returncode == 0, admin.stdout[-6000:]
