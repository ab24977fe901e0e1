"""docker-compose.yml: valid against the Compose specification, safe by its shape (the core unpublished, secrets
only as files, health checks and restarts everywhere), and brought up with podman-compose from the images of this
tree: a user logs in through the gateway, pushes a pipeline, runs it, reads its logs, and after `down` and `up`
the runs, the user and the pipelines are all still there (PostgreSQL's and the pipelines' volumes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import REPO, free_port, http_get, http_post, require, unique, wait_until

COMPOSE_FILE = REPO / "docker-compose.yml"
BIN = Path(sys.executable).parent
READY_TIMEOUT_S = 120
SECRET_WORDS = ("SECRET", "PASSWORD", "DSN", "TOKEN")

# samples/hello, and a task that prints its environment (the deployment's secrets must not be in it).
JOB = """\
name: hello
tasks:
  - name: greet
    image: busybox:1.36
    command: echo
    args: ["hello from $TASK_ID"]
  - name: env
    image: busybox:1.36
    command: sh
    args: ["-c", "env; echo done"]
    depends: [greet]
"""


def _compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_compose_file_follows_the_compose_specification(tmp_path: Path) -> None:
    tool = BIN / "check-jsonschema"
    require(tool.is_file(), "check-jsonschema is missing: `make venv` installs it (requirements-dev.txt)")
    proc = subprocess.run(
        [str(tool), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    broken = tmp_path / "compose.yml"
    broken.write_text("services:\n  core:\n    image: odin-core\n    ports: 9003\n    healthcheck: yes\n")
    proc = subprocess.run([str(tool), "--builtin-schema", "vendor.compose-spec", str(broken)], capture_output=True)
    assert proc.returncode != 0, "the schema check accepts anything"


def test_compose_shape_is_safe_by_default() -> None:
    services = _compose()["services"]
    assert set(services) == {"odin-postgres", "odin-core", "odin-http"}
    assert "ports" not in services["odin-core"], "only the gateway may reach the core"
    assert "ports" not in services["odin-postgres"]
    assert services["odin-http"]["ports"] == ["${ODIN_HTTP_BIND:-127.0.0.1}:${ODIN_HTTP_PORT:-9003}:9003"]
    for name, service in services.items():
        assert service["healthcheck"]["test"], name
        assert service["restart"] == "unless-stopped", name
        for key, value in service.get("environment", {}).items():
            if any(w in key for w in SECRET_WORDS):
                assert key.endswith("_FILE") and value.startswith("/run/secrets/"), f"{name}: {key} holds a secret"
    assert services["odin-http"]["depends_on"]["odin-core"]["condition"] == "service_healthy"
    assert services["odin-core"]["depends_on"]["odin-postgres"]["condition"] == "service_healthy"
    assert all("file" in s for s in _compose()["secrets"].values())
    assert "--jwt-secret-file=/run/secrets/core_jwt" in services["odin-core"]["command"]
    for name in ("odin-core", "odin-http"):  # the order holds where depends_on's conditions are ignored
        assert services[name]["entrypoint"][:4] == ["tini", "--", "odin-wait-for", "odin-postgres:5432"], name


@dataclass
class Stack:
    """One compose project of this file, its gateway on a free loopback port."""

    project: str
    env: dict[str, str]
    url: str
    tokens: Path

    def compose(self, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
        argv = [str(BIN / "podman-compose"), "-p", self.project, "-f", str(COMPOSE_FILE), *args]
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout_s, cwd=REPO)
        assert proc.returncode == 0, f"{' '.join(args)}: {proc.stderr[-3000:]}"
        return proc

    def odin(self, *args: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "ODIN_SERVER": self.url, "ODIN_TOKEN_FILE": str(self.tokens)}
        proc = subprocess.run(
            [str(BIN / "odin"), *args], env=env, input=stdin, capture_output=True, text=True, timeout=180
        )
        if check:
            assert proc.returncode == 0, f"odin {' '.join(args)}: {proc.stdout}{proc.stderr}"
        return proc

    def up(self) -> None:
        self.compose("up", "-d", "--no-build")
        wait_until(self.ready, timeout_s=READY_TIMEOUT_S, what="the gateway ready (PostgreSQL and the core answer)")

    def ready(self) -> bool:
        status, body = http_get(f"{self.url}/v1/ready")
        return status == 200 and json.loads(body)["checks"] == {"database": True, "core": True}

    def container(self, service: str) -> str:
        return f"{self.project}_{service}_1"


@pytest.fixture
def stack(podman, images, secrets_dir: Path, tmp_path: Path) -> Iterator[Stack]:
    require((BIN / "podman-compose").is_file(), "podman-compose is missing: `make venv` installs it")
    prefix, _, version = images["core"].rpartition("odin-core:")
    port = free_port()
    env = {
        **os.environ,
        **podman.engine.env,
        "ODIN_IMAGE_PREFIX": prefix,
        "ODIN_VERSION": version,
        "ODIN_POSTGRES_IMAGE": images["postgres"],
        "ODIN_HTTP_PORT": str(port),
        "ODIN_SECRETS": str(secrets_dir),
    }
    s = Stack(unique("odin-compose"), env, f"http://127.0.0.1:{port}", tmp_path / "tokens.json")
    try:
        yield s
    finally:
        for service in _compose()["services"]:
            state = podman("inspect", "--format", "{{json .State}}", s.container(service), check=False).stdout
            print(f"--- {service}: {state.strip()[:600]}\n{podman.logs(s.container(service))[-3000:]}")
            print(podman("top", s.container(service), check=False).stdout)
            print(
                podman(
                    "inspect", "--format", "{{json .NetworkSettings.Networks}}", s.container(service), check=False
                ).stdout[:400]
            )
        subprocess.run(
            [str(BIN / "podman-compose"), "-p", s.project, "-f", str(COMPOSE_FILE), "down", "-v"],
            env=env,
            capture_output=True,
            timeout=300,
            cwd=REPO,
        )


def test_compose_stack_runs_a_pipeline_and_keeps_everything_across_down_and_up(
    stack: Stack, podman, secrets_dir: Path, tmp_path: Path
) -> None:
    stack.up()
    for service in ("odin-postgres", "odin-core", "odin-http"):
        assert podman.healthy(stack.container(service)), f"{service}'s health check fails in a working stack"
    assert podman("port", stack.container("odin-core")).stdout.strip() == "", "the core is published"

    password = (secrets_dir / "root_password").read_text()
    assert http_post(f"{stack.url}/v1/auth", {"username": "admin", "password": "not-the-password"})[0] == 401
    assert http_get(f"{stack.url}/v1/pipelines")[0] == 401, "public reads are off in this deployment"
    stack.odin("login", "-u", "admin", "--password-stdin", stdin=password)
    job = tmp_path / "main.yml"
    job.write_text(JOB)
    stack.odin("push", "--create", "hello", str(job))
    first = _run(stack, "hello")
    assert f"hello from {first}--greet" in stack.odin("logs", f"{first}--greet").stdout
    env_log = stack.odin("logs", f"{first}--env").stdout
    assert "done" in env_log
    for name in ("core_jwt", "user_jwt", "db_password", "root_password"):
        assert (secrets_dir / name).read_text() not in env_log, f"{name} reached a task's environment"

    stack.compose("down")
    stack.up()
    runs = json.loads(stack.odin("status", "-o", "json").stdout)
    assert {r["run"]["run_id"]: r["run"]["status"] for r in runs}.get(first) == "DONE"
    assert f"hello from {first}--greet" in stack.odin("logs", f"{first}--greet").stdout
    stack.odin("login", "-u", "admin", "--password-stdin", stdin=password)  # the user is in PostgreSQL's volume
    assert json.loads(stack.odin("jobs", "-o", "json").stdout), "the pipelines repository is gone"
    second = _run(stack, "hello")
    assert second != first


def _run(stack: Stack, job: str) -> str:
    """Run a job through the gateway to its end; its run id (the CLI exits 0 only when the run is DONE)."""
    out = stack.odin("run", job).stdout
    done = [line for line in out.splitlines() if line.startswith("run ") and " DONE" in line]
    assert done, out
    return done[-1].split()[1]


# The commands of docs/operations.md ("Backups"), as a user runs them with compose.
BACKUP = {
    "odin.sql": ("odin-postgres", ["pg_dump", "-U", "odin", "--clean", "--if-exists", "odin"]),
    "pipelines.bundle": ("odin-core", ["git", "-C", "/srv/pipelines/.odin/repo.git", "bundle", "create", "-", "--all"]),
    "run-data.tar": ("odin-core", ["tar", "-C", "/var/lib/odin", "-cf", "-", "data"]),
}
RESTORE = {
    "pipelines.bundle": ("odin-core", ["sh", "-c", "cat > /tmp/p.bundle && git -C /srv/pipelines/.odin/repo.git "
                                       "fetch -q /tmp/p.bundle '+refs/*:refs/*' && rm /tmp/p.bundle"]),
    "run-data.tar": ("odin-core", ["tar", "-C", "/var/lib/odin", "-xf", "-"]),
    "odin.sql": ("odin-postgres", ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-U", "odin", "-d", "odin"]),
}  # fmt: skip


def test_compose_backup_restores_runs_users_pipelines_and_logs_into_new_volumes(
    stack: Stack, secrets_dir: Path, tmp_path: Path
) -> None:
    stack.up()
    migrated = stack.compose("exec", "-T", "odin-core", "odin-core", "migrate",
                             "--store=postgresql://odin@odin-postgres:5432/odin").stdout  # fmt: skip
    assert "schema version" in migrated, migrated
    stack.odin("login", "-u", "admin", "--password-stdin", stdin=(secrets_dir / "root_password").read_text())
    stack.odin("user", "create", "ann", "--password-stdin", stdin="ann-secret-123")
    job = tmp_path / "main.yml"
    job.write_text(JOB)
    stack.odin("push", "--create", "hello", str(job))
    run_id = _run(stack, "hello")
    backups = tmp_path / "backup"
    backups.mkdir()
    for name, (service, command) in BACKUP.items():
        with (backups / name).open("wb") as out:
            _exec(stack, service, command, stdout=out)
        assert (backups / name).stat().st_size > 0, name

    stack.compose("down", "-v")  # every volume lost
    stack.up()
    for name, (service, command) in RESTORE.items():
        if name == "odin.sql":
            stack.compose("stop", "odin-http", "odin-core")
        with (backups / name).open("rb") as data:
            _exec(stack, service, command, stdin=data)
    stack.up()  # starts the stopped services (podman 4.3 cannot `start` a service with dependencies)

    stack.tokens.unlink()
    stack.odin("login", "-u", "ann", "--password-stdin", stdin="ann-secret-123")
    runs = {r["run"]["run_id"]: r["run"]["status"] for r in json.loads(stack.odin("status", "-o", "json").stdout)}
    assert runs.get(run_id) == "DONE"
    assert f"hello from {run_id}--greet" in stack.odin("logs", f"{run_id}--greet").stdout
    assert [j["id"] for j in json.loads(stack.odin("jobs", "-o", "json").stdout)] == ["hello"]
    assert _run(stack, "hello") != run_id


def _exec(stack: Stack, service: str, command: list[str], **streams: Any) -> None:
    argv = [str(BIN / "podman-compose"), "-p", stack.project, "-f", str(COMPOSE_FILE), "exec", "-T", service, *command]
    proc = subprocess.run(argv, env=stack.env, stderr=subprocess.PIPE, timeout=300, cwd=REPO, **streams)
    assert proc.returncode == 0, f"{service}: {' '.join(command)}: {proc.stderr.decode()[-2000:]}"
