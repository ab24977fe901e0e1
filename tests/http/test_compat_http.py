"""The first Odin's client, ``odin-api==0.7.6`` (its `odin-*` commands), unchanged, with ``--scheme http`` against the
gateway: auth, ping, create, push, run, status, logs, data, events, cleanup, user.

The client lives in a side virtual environment (it pins old dependencies) under ~/.cache/odin, made on first use
from PyPI. Its dependency mead-baseline imports ``collections.MutableMapping``, which Python 3.10 removed: the
environment's ``sitecustomize`` puts the alias back (the client's own code is unchanged). ``show`` exists only
over WebSocket in that client (it talks to the core, see tests/compat).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import pytest
from http_support import ADMIN, ADMIN_PASSWORD, Running
from test_api import FLAKY, HELLO

CLIENT = "odin-api==0.7.6"
# every collections.abc name old code took from collections (mead-baseline: MutableMapping; odin-gpus: Sequence)
SHIM = (
    "import collections, collections.abc\n"
    "for _n in collections.abc.__all__:\n"
    "    setattr(collections, _n, getattr(collections, _n, None) or getattr(collections.abc, _n))\n"
)
VENV = Path(os.environ.get("ODIN_COMPAT_VENV", "~/.cache/odin/compat-http/venv")).expanduser()


@pytest.fixture(scope="session")
def legacy_bin() -> Path:
    bin_dir = VENV / "bin"
    if not (bin_dir / "odin-run").exists() or not list(VENV.glob("lib/python*/site-packages/sitecustomize.py")):
        venv.create(VENV, with_pip=True, clear=True)
        r = subprocess.run(
            [str(bin_dir / "python"), "-m", "pip", "install", "-q", CLIENT], capture_output=True, text=True, timeout=600
        )
        if r.returncode != 0:
            message = f"cannot install {CLIENT} into {VENV}: {r.stderr[-500:]}"
            if os.environ.get("CI"):
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
    for site in VENV.glob("lib/python*/site-packages"):  # rewritten each session: the shim may have grown
        (site / "sitecustomize.py").write_text(SHIM)
    return bin_dir


async def legacy(bin_dir: Path, gw: Running, tmp: Path, command: str, *args: str, ok: bool = True) -> str:
    host, port = gw.url.rsplit("//", 1)[1].split(":")
    argv = [str(bin_dir / command), *args, "--scheme", "http", "--host", host, "--port", port]
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp), "ODIN_LOG_LEVEL": "INFO"}
    r = await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, text=True, env=env, cwd=tmp, timeout=120, stdin=subprocess.DEVNULL
    )
    if ok:
        assert r.returncode == 0, (argv, r.stdout, r.stderr)
        assert "Traceback" not in r.stderr, r.stderr
    return r.stdout + r.stderr


def first_json(text: str) -> object:
    for line in text.splitlines():
        if line.startswith(("{", "[")):
            return json.loads(line)
    raise AssertionError(f"no JSON in {text!r}")


async def test_the_first_odin_client_over_http(gw: Running, legacy_bin: Path, tmp_path: Path) -> None:
    token = str(tmp_path / ".odin.token")
    await legacy(legacy_bin, gw, tmp_path, "odin-auth", "-u", ADMIN, "-p", ADMIN_PASSWORD, "--token", token)
    assert Path(token).read_text().count(".") == 2
    out = await legacy(legacy_bin, gw, tmp_path, "odin-ping")
    assert first_json(out)["coreStatus"] == "up"  # type: ignore[index]
    # odin-create 0.7.6 passes its token where the host goes (`HttpClient(url, jwt_token)`), so it sends
    # "Bearer None": the gateway refuses it (the first gateway never checked tokens). `odin-push --create` works.
    out = await legacy(legacy_bin, gw, tmp_path, "odin-create", "team/hello", "--token", token, ok=False)
    assert (await gw.call("GET", "/v1/jobs/team__hello"))[0] == 404
    assert not Path(token).exists()  # that client deletes the token it thinks is bad: log in again
    await legacy(legacy_bin, gw, tmp_path, "odin-auth", "-u", ADMIN, "-p", ADMIN_PASSWORD, "--token", token)
    (tmp_path / "main.yml").write_text(HELLO)
    out = await legacy(legacy_bin, gw, tmp_path, "odin-push", "team/hello", "main.yml", "--create", "--token", token)
    assert "team/hello/main.yml@" in first_json(out)["location"]  # type: ignore[index]
    out = await legacy(legacy_bin, gw, tmp_path, "odin-run", "team/hello", "--token", token)
    run_id = first_json(out)["pipeline"]["id"]  # type: ignore[index]
    await gw.gateway.core.wait(run_id)
    out = await legacy(legacy_bin, gw, tmp_path, "odin-status", run_id)
    assert f"{run_id}--greet" in out and "SUCCEEDED" in out
    out = await legacy(legacy_bin, gw, tmp_path, "odin-logs", f"{run_id}--greet")
    assert "hello\nworld" in out
    out = await legacy(legacy_bin, gw, tmp_path, "odin-data", run_id)
    assert first_json(out)["status"] == "DONE"  # type: ignore[index]
    out = await legacy(legacy_bin, gw, tmp_path, "odin-events", run_id)
    assert "Succeeded" in out and "odin" in out
    out = await legacy(legacy_bin, gw, tmp_path, "odin-cleanup", run_id, "--db", "--fs", "--token", token)
    assert f"{run_id}--greet" in out
    assert (await gw.call("GET", f"/v1/pipelines/{run_id}"))[0] == 404
    out = await legacy(legacy_bin, gw, tmp_path, "odin-user", "-u", "ann", "-p", "ann-password-1", "--token", token)
    assert "Created new user" in out
    out = await legacy(
        legacy_bin, gw, tmp_path, "odin-user", "-u", "ann", "-p", "ann-password-2", "-f", "Ann", "--token", token
    )
    assert "Found existing user" in out
    assert (await gw.call("POST", "/v1/auth", json={"username": "ann", "password": "ann-password-2"}))[0] == 200


async def test_a_failed_run_reads_back_in_the_first_clients_shapes(
    gw: Running, legacy_bin: Path, tmp_path: Path
) -> None:
    token = str(tmp_path / ".odin.token")
    await legacy(legacy_bin, gw, tmp_path, "odin-auth", "-u", ADMIN, "-p", ADMIN_PASSWORD, "--token", token)
    (tmp_path / "main.yml").write_text(FLAKY)
    await legacy(legacy_bin, gw, tmp_path, "odin-push", "flaky", "main.yml", "--token", token)
    out = await legacy(legacy_bin, gw, tmp_path, "odin-run", "flaky", "--token", token)
    run_id = first_json(out)["pipeline"]["id"]  # type: ignore[index]
    await gw.gateway.core.wait(run_id)
    out = await legacy(legacy_bin, gw, tmp_path, "odin-status", run_id)
    assert "TERMINATED" in out and "FAILED" in out
    out = await legacy(legacy_bin, gw, tmp_path, "odin-events", run_id)
    assert "Warning" in out and "Failed" in out
    assert sys.version_info >= (3, 11)


async def test_odin_gpus_lists_every_gpu_reported_by_the_node_agents(
    make_gateway: Any, legacy_bin: Path, tmp_path: Path
) -> None:
    """The first client's `odin-gpus` reads /v1/nodes (the node module, docs/midgard.md), whatever a board lacks:
    reports of every recorded board (read through the real pynvml) pushed as agents push them."""
    from midgard import report
    from midgard.nvml import NvmlReader
    from midgard.testing import fake_nvml
    from odin_http.nodes import NodesSettings

    tokens = tmp_path / "node-tokens"
    tokens.write_text("node-secret\n")
    gw = await make_gateway(modules={"nodes": NodesSettings(token_file=str(tokens), kube_api_url="none")})
    reports = []
    for i, name in enumerate(fake_nvml.board_names()):
        with fake_nvml.installed(fake_nvml.load_board(name)):
            reader = NvmlReader()
            raw = reader.read()
            reader.close()
        facts = {pid: report.ProcFacts("python") for pid in report.all_pids(raw)}
        ident = report.Identity(f"node-{i}", f"node-{i}", "", "a", 1.0, "test")
        reports.append(report.build_report(ident, raw, facts=facts, pods={}, system={}, seq=1, now=1e9))
    status, body = await gw.call("POST", "/v1/nodes/reports", json={"reports": reports},
                                 headers={"Authorization": "Bearer node-secret"})  # fmt: skip
    assert status == 202, body
    out = await legacy(legacy_bin, gw, tmp_path, "odin-gpus")
    rows = [line.split("|") for line in out.splitlines() if line.startswith("node-")]
    assert len(rows) == sum(len(r["gpus"]) for r in reports)
    assert any("RTX 3050" in r[2] and "0/115W" in r[4] for r in rows)  # no power reading: shown as 0, no crash
    assert any("A100-SXM4-80GB" in r[2] and "68/400W" in r[4] and "22374M" in r[6] for r in rows)
