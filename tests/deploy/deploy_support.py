"""Helpers of the deployment tests: the image tooling (tools/images) loaded as modules, conditions waited on with
a deadline, free loopback ports, and podman containers and pods that are removed again."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tools" / "images"


def load_module(name: str, path: Path) -> ModuleType:
    """Load a file as a module of its own name (tools/images and tests/ are not packages), its folder importable
    while it loads."""
    sys.path.insert(0, str(path.parent))
    try:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(path.parent))


imgbuild = load_module("odin_images_build", TOOLS / "build.py")
engine_mod = sys.modules["container_engine"]
gen_secrets = load_module("odin_images_gen_secrets", TOOLS / "gen_secrets.py")


TUTORIAL = REPO / "docs" / "tutorial-microk8s.md"
BLOCK = re.compile(r"<!-- (.*?) -->\n```(\w+)\n(.*?)```", re.S)


def tutorial_blocks() -> list[tuple[str, str, str]]:
    """(mark, language, text) of every marked code block of docs/tutorial-microk8s.md."""
    return [(m.group(1), m.group(2), m.group(3)) for m in BLOCK.finditer(TUTORIAL.read_text())]


def tutorial_block(mark: str) -> str:
    """The text of the blocks with exactly this mark, joined (the tests that run them name their mark)."""
    found = [text for m, _lang, text in tutorial_blocks() if m == mark]
    assert found, f"docs/tutorial-microk8s.md has no block marked {mark!r}"
    return "".join(found)


def require(ok: bool, message: str) -> None:
    """A missing component fails in CI (env CI set) and skips on a developer's machine."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], Any], *, timeout_s: float, what: str, interval_s: float = 0.25) -> Any:
    """Poll ``check`` until it returns something truthy (returned) or the deadline passes (TimeoutError naming
    ``what`` and the last error ``check`` raised)."""
    deadline = time.monotonic() + timeout_s
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as e:
            last = e
        time.sleep(interval_s)
    raise TimeoutError(f"{what} not within {timeout_s:.0f}s" + (f" (last error: {last})" if last else ""))


def http_get(url: str, *, timeout_s: float = 5.0, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def http_post(url: str, body: dict[str, Any], *, headers: dict[str, str] | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


# The official postgres image's settings, which docker/postgres.Dockerfile takes too.
POSTGRES_ENV = {
    "POSTGRES_USER": "odin",
    "POSTGRES_DB": "odin",
    "POSTGRES_PASSWORD_FILE": "/run/secrets/odin/db_password",
}


def env_options(env: dict[str, str]) -> tuple[str, ...]:
    return tuple(a for k, v in env.items() for a in ("-e", f"{k}={v}"))


def secret_mounts(folder: Path, *names: str, at: str = "/run/secrets/odin") -> tuple[str, ...]:
    """``-v`` options mounting each secret file read-only (the folder itself is 0700: files go in one by one,
    as compose and the kubelet mount them)."""
    return tuple(a for n in names for a in ("-v", f"{folder / n}:{at}/{n}:ro"))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Podman:
    """The engine of tools/images (podman with the project's settings), with what the tests do to containers."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def __call__(self, *args: str, check: bool = True, timeout_s: float = 120) -> Any:
        return self.engine.run(list(args), check=check, timeout_s=timeout_s)

    def inspect(self, kind: str, ref: str) -> dict[str, Any]:
        found = json.loads(self(kind, "inspect", ref).stdout)
        return found[0] if isinstance(found, list) else found  # podman 4.3 answers a pod as one object

    def logs(self, name: str) -> str:
        proc = self("logs", name, check=False)
        return (proc.stdout or "") + (proc.stderr or "")

    def state(self, name: str) -> dict[str, Any]:
        return self.inspect("container", name)["State"]

    def healthy(self, name: str) -> bool:
        """Run the container's own health check once (what a systemd timer does where podman has systemd)."""
        return self("healthcheck", "run", name, check=False).returncode == 0

    @contextmanager
    def container(self, image: str, *args: str, options: tuple[str, ...] = (), name: str = "") -> Iterator[str]:
        """``podman run -d`` a container; removed (with its anonymous volumes) afterwards, its log printed when
        the test failed."""
        name = name or unique("odin-test")
        self("run", "-d", "--name", name, *options, image, *args)
        try:
            yield name
        finally:
            print(f"--- log of {name} ---\n{self.logs(name)[-4000:]}")
            self("rm", "-f", "-v", "-t", "5", name, check=False)

    def run_in(self, pod: str, name: str, image: str, *args: str, options: tuple[str, ...] | list[str] = ()) -> None:
        """Start a container in ``pod`` (removed with the pod)."""
        self("run", "-d", "--pod", pod, "--name", name, *options, image, *args)

    @contextmanager
    def pod(self, *options: str) -> Iterator[str]:
        name = unique("odin-pod")
        self("pod", "create", "--name", name, *options)
        try:
            yield name
        finally:
            for c in self.inspect("pod", name).get("Containers", []):
                if not c["Name"].endswith("-infra"):
                    print(f"--- log of {c['Name']} ---\n{self.logs(c['Name'])[-4000:]}")
            self("pod", "rm", "-f", "-t", "5", name, check=False)
