"""Expected errors of the real `odin` command: one line on stderr saying what to do next, an exit code, no traceback,
and nothing created."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "samples" / "hello"


def odin(*args: str, env: dict[str, str], cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ODIN_", "KUBE"))}
    return subprocess.run(
        [sys.executable, "-m", "odin_client", *args],
        env={**clean, "NO_COLOR": "1", **env},
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_error_line(done: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert done.returncode == code, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    return lines[0]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A user with no kubeconfig anywhere: an empty HOME, no KUBECONFIG, not inside a cluster."""
    (tmp_path / "user").mkdir()
    return {"HOME": str(tmp_path / "user"), "ODIN_HOME": str(tmp_path / "odin-home")}


def no_runs(env: dict[str, str], cwd: Path) -> bool:
    done = odin("status", "-o", "json", env=env, cwd=cwd)
    return done.returncode == 0 and done.stdout.strip() == "[]"


@pytest.mark.parametrize("detach", [False, True], ids=["attached", "detached"])
def test_no_kubeconfig(env, tmp_path, detach) -> None:
    extra = ["--detach"] if detach else []
    line = one_error_line(odin("--executor", "kubernetes", "run", str(HELLO), *extra, env=env, cwd=tmp_path))
    assert line.startswith("error: no kubeconfig found"), line
    assert "--kubeconfig PATH" in line and "ODIN_KUBECONFIG" in line
    assert no_runs(env, tmp_path)


def test_a_kubeconfig_that_does_not_exist(env, tmp_path) -> None:
    missing = tmp_path / "nope.yaml"
    line = one_error_line(odin("--executor", "kubernetes", "--kubeconfig", str(missing), "run", str(HELLO), env=env,
                               cwd=tmp_path))  # fmt: skip
    assert line == f"error: kubeconfig {missing} does not exist; give one with --kubeconfig PATH (or ODIN_KUBECONFIG)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_api_server(env, tmp_path) -> None:
    port = _free_port()  # nothing listens there
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        textwrap.dedent(f"""\
            apiVersion: v1
            kind: Config
            clusters: [{{name: c, cluster: {{server: "https://127.0.0.1:{port}", insecure-skip-tls-verify: true}}}}]
            users: [{{name: u, user: {{token: not-a-secret}}}}]
            contexts: [{{name: c, context: {{cluster: c, user: u}}}}]
            current-context: c
            """)
    )
    done = odin("--executor", "kubernetes", "--kubeconfig", str(kubeconfig), "run", str(HELLO), env=env, cwd=tmp_path)
    line = one_error_line(done)
    assert line.startswith(f"error: cannot reach the Kubernetes API server at https://127.0.0.1:{port} "), line
    assert "connection refused" in line and "is the cluster up?" in line and str(kubeconfig) in line
    assert "urllib3" not in line and "HTTPSConnectionPool" not in line
    assert no_runs(env, tmp_path)


def test_an_odin_home_that_cannot_be_created(env, tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    line = one_error_line(odin("status", env={**env, "ODIN_HOME": str(blocker / "home")}, cwd=tmp_path))
    assert line.startswith(f"error: cannot use ODIN_HOME {blocker / 'home'}: "), line
    assert "--home" in line


@pytest.mark.parametrize("detach", [False, True], ids=["run", "run-detach"])
def test_a_pipeline_directory_that_does_not_exist_is_an_invalid_pipeline(env, tmp_path, detach) -> None:
    done = odin("run", *(["--detach"] if detach else []), "nowhere", env=env, cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr and "Usage:" not in done.stderr, done.stderr
    assert done.stderr.splitlines() == [
        f"nowhere/main.yml:0:0: pipeline directory '{tmp_path / 'nowhere'}' does not exist or is not a directory "
        "(give the directory that holds the pipeline's main.yml)",
        "pipeline is invalid: 1 problem",
    ]
    assert no_runs(env, tmp_path)


@pytest.mark.parametrize("args", [["login"], ["login", "-u", "ann"], ["user", "delete", "ann"]])
def test_gateway_commands_ask_for_nothing_before_saying_a_server_is_needed(env, tmp_path, args) -> None:
    done = odin(*args, env=env, cwd=tmp_path, stdin="ann\nsecret\ny\n")  # what a prompt would read
    assert one_error_line(done) == (
        "error: this command talks to the HTTP gateway: give --server https://host:9003 (or ODIN_SERVER)"
    )
    assert done.stdout == ""  # no "Username:", "Password:" or "Delete this user?"
