"""Fixtures of the deployment tests: the container engine (podman with the project's settings, tools/images), the
images built once per session on the local Debian base (cached layers make a second session quick), and the
host's clean-up at the end (what podman leaves outside its own folders)."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy_support import Podman, engine_mod, imgbuild, require

# Images every test session here may use; midgard only once its package is in the tree.
WANTED = ("core", "gateway", "postgres", "midgard")


@dataclass(frozen=True)
class Images:
    tags: dict[str, str]
    base: str
    build_s: float

    def __getitem__(self, name: str) -> str:
        require(name in self.tags, f"the {name} image is not built here (its package is missing from the tree)")
        return self.tags[name]


def _have_tools() -> str:
    missing = [t for t in ("podman", "buildah", "mmdebstrap", "runc") if not shutil.which(t)]
    if missing:
        return f"{', '.join(missing)} missing: run `bash tools/images/setup.sh` (or `make images-setup`)"
    conf = engine_mod.podman_env(engine_mod.cache_dir())
    if not all(Path(p).is_file() for p in conf.values()):
        return "podman's settings files are missing: run `bash tools/images/setup.sh`"
    return ""


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    problem = _have_tools()
    require(not problem, problem)
    engine = engine_mod.find_engine("podman")
    yield Podman(engine)
    engine_mod.cleanup_host(engine)


@pytest.fixture(scope="session")
def images(podman: Podman) -> Images:
    """The images, built with tools/images/build.py on the mmdebstrap base (layers cached between sessions)."""
    names = [n for n in WANTED if imgbuild.available(n)]
    started = time.monotonic()
    base = imgbuild.ensure_base(podman.engine)
    built = imgbuild.build(podman.engine, names, base)
    elapsed = time.monotonic() - started
    print(f"[images] {', '.join(built)} ready in {elapsed:.1f}s (base {base})")
    return Images(dict(zip(names, built, strict=True)), base, elapsed)


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    """A fresh set of deployment secrets (tools/images/gen_secrets.py), as a user makes them."""
    from deploy_support import gen_secrets

    folder = tmp_path / "secrets"
    gen_secrets.write(folder)
    return folder


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Building images takes minutes the first time: the timeout of these tests allows for it."""
    for item in items:
        if "tests/deploy" in str(item.fspath) and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(int(os.environ.get("ODIN_DEPLOY_TIMEOUT_S", "1800"))))
