"""Build Odin's container images (docker/*.Dockerfile) with podman, or docker where podman is absent.

    python tools/images/build.py                         # core, gateway, midgard on the Dockerfiles' public base
    python tools/images/build.py --base local            # on a Debian base made here with mmdebstrap (no registry)
    python tools/images/build.py --base local postgres   # one or more images by name
    python tools/images/build.py --save DIR              # also write DIR/<image>.tar (for `microk8s images import`)
    python tools/images/build.py lock                    # re-pin docker/requirements/*.txt from PyPI

Images are tagged ``<prefix><name>:<version>`` (prefix ``localhost/`` by default, ``--prefix REGISTRY/`` to push),
the version being the package's. Layers are cached by the engine, and the local base under ~/.cache/odin/images
(keyed by its package list and apt sources), so a second build reuses everything that did not change.
Only the standard library is used.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from container_engine import Engine, EngineError, cache_dir, find_engine

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
BASE_SUITE = "bookworm"
BASE_NAME = "localhost/odin-debian-base"
BASE_KEY_LABEL = "org.odin.base-key"
APT_SOURCES = Path("/etc/apt/sources.list.d")


@dataclass(frozen=True)
class Image:
    """One image: its Dockerfile, the package whose version tags it, and (for Python images) its pinned
    requirements: the distributions that ``packages`` need, resolved from their pyproject files."""

    name: str
    dockerfile: str
    version_from: str
    packages: tuple[str, ...] = ()
    lock: str = ""


IMAGES = {
    "core": Image("odin-core", "core.Dockerfile", "odin-core", ("odin-core[kubernetes,postgres,mongo]",), "core.txt"),
    "gateway": Image(
        "odin-http", "gateway.Dockerfile", "odin-http", ("odin-core", "odin-client", "odin-http"), "gateway.txt"
    ),
    "midgard": Image("midgard", "midgard.Dockerfile", "midgard", ("odin-core", "midgard"), "midgard.txt"),
    "postgres": Image("odin-postgres", "postgres.Dockerfile", ""),
}
DEFAULT_IMAGES = ("core", "gateway", "midgard")
LOCAL_PACKAGES = {"odin-core", "odin-client", "odin-http", "midgard"}


def log(message: str) -> None:
    print(f"[images] {message}", file=sys.stderr, flush=True)


def available(name: str) -> bool:
    """Whether every package the image installs is in this tree (midgard/ may be absent from a checkout)."""
    return all((ROOT / p.split("[")[0] / "pyproject.toml").is_file() for p in IMAGES[name].packages)


def package_version(package: str) -> str:
    with (ROOT / package / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


def image_version(image: Image) -> str:
    return package_version(image.version_from) if image.version_from else "15"


def tag(image: Image, prefix: str = "localhost/") -> str:
    return f"{prefix}{image.name}:{image_version(image)}"


def _git(*args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def provenance() -> dict[str, str]:
    """The OCI labels' revision, source and creation time: the commit (``-dirty`` with uncommitted changes), the
    remote it came from (or the commit when there is none) and now, in UTC."""
    revision = _git("rev-parse", "HEAD") or "unknown"
    if revision != "unknown" and _git("status", "--porcelain", "--untracked-files=no"):
        revision += "-dirty"
    source = _git("remote", "get-url", "origin") or f"git:{revision}"
    created = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"REVISION": revision, "SOURCE": source, "CREATED": created}


# --- the local base (no registry here): mmdebstrap + import, cached ---------------------------------------------


def base_key() -> str:
    """What the base is made of: the packages, the suite and the apt sources (a change makes a new base)."""
    h = hashlib.sha256(f"{BASE_SUITE} {' '.join(BASE_PACKAGES)}".encode())
    for source in sorted(APT_SOURCES.glob("*.sources")) + sorted(APT_SOURCES.glob("*.list")):
        h.update(source.read_bytes())
    return h.hexdigest()[:16]


def ensure_base(engine: Engine) -> str:
    """The local Debian base image, made once with mmdebstrap from this machine's apt sources and cached: the
    rootfs tarball under the cache and the image in the engine's storage (re-imported from the tarball when the
    storage was wiped)."""
    key = base_key()
    ref = f"{BASE_NAME}:{BASE_SUITE}-{key}"
    if engine.image_exists(ref):
        return ref
    tarball = cache_dir() / "base" / f"debian-{BASE_SUITE}-{key}.tar"
    if not tarball.is_file():
        _make_rootfs(tarball)
    log(f"importing {tarball.name} as {ref}")
    engine.run(
        ["import", "--change", 'CMD ["/bin/bash"]', "--change", f"LABEL {BASE_KEY_LABEL}={key}", str(tarball), ref]
    )
    return ref


def _make_rootfs(tarball: Path) -> None:
    tarball.parent.mkdir(parents=True, exist_ok=True)
    log(f"making the Debian {BASE_SUITE} base with mmdebstrap ({', '.join(BASE_PACKAGES)}); once, then cached")
    partial = tarball.with_suffix(".partial")
    argv = [
        "mmdebstrap",
        "--variant=apt",
        "--quiet",
        f"--include={','.join(BASE_PACKAGES)}",
        f'--aptopt=Dir::Etc::SourceParts "{APT_SOURCES}"',
        "--format=tar",
        BASE_SUITE,
        str(partial),
    ]
    proc = subprocess.run(["nice", *argv], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        raise EngineError(f"mmdebstrap failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    partial.rename(tarball)


# --- builds -------------------------------------------------------------------------------------------------------


def build_args(engine: Engine, image: Image, base: str, prefix: str = "localhost/") -> list[str]:
    args = ["build", "-f", str(DOCKER / image.dockerfile), "-t", tag(image, prefix)]
    if engine.is_podman:
        args += ["--format", "docker"]  # HEALTHCHECK is a Docker-format field; OCI images drop it
    if base:
        args += ["--build-arg", f"BASE={base}"]
    args += ["--build-arg", f"VERSION={image_version(image)}"]
    for key, value in provenance().items():
        # Also as --label: buildah's layer cache keeps a LABEL step whose build-args changed.
        args += ["--build-arg", f"{key}={value}", "--label", f"org.opencontainers.image.{key.lower()}={value}"]
    if engine.is_podman and CA_BUNDLE.is_file() and os.environ.get("PIP_CERT"):
        # TLS here is verified with the machine's CA bundle: mount it into the build's RUN steps, never copy it in.
        args += ["-v", f"{CA_BUNDLE}:{CA_BUNDLE}:ro", "--build-arg", f"PIP_CERT={CA_BUNDLE}"]
    return [*args, str(ROOT)]


def build(engine: Engine, names: Sequence[str], base: str = "", prefix: str = "localhost/") -> list[str]:
    """Build the named images (keys of IMAGES); ``base`` "local" means the mmdebstrap base, "" the Dockerfiles'
    default; ``prefix`` starts every tag (a registry to push to). Returns the tags built."""
    if base == "local":
        base = ensure_base(engine)
    built = []
    for name in names:
        image = IMAGES[name]
        log(f"building {tag(image, prefix)} ({image.dockerfile}{', base ' + base if base else ''})")
        proc = engine.run(build_args(engine, image, base, prefix), check=False, capture=True)
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
            raise EngineError(f"building {image.name} failed ({proc.returncode}):\n{tail}")
        built.append(tag(image, prefix))
    return built


def save(engine: Engine, refs: Sequence[str], out_dir: Path) -> list[Path]:
    """Write each image as a docker-archive tarball (what `microk8s images import` and `docker load` read)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ref in refs:
        path = out_dir / (ref.rsplit("/", 1)[-1].split(":")[0] + ".tar")
        path.unlink(missing_ok=True)
        fmt = ["--format", "docker-archive"] if engine.is_podman else []
        engine.run(["save", *fmt, "-o", str(path), ref])
        paths.append(path)
    return paths


# --- pinned requirements ------------------------------------------------------------------------------------------


def resolve(packages: Sequence[str]) -> list[str]:
    """``name==version`` of every third-party distribution the local ``packages`` need, as pip resolves them now
    from PyPI (the machine's local wheel folder is ignored so the pins are public versions)."""
    specs = [str(ROOT / p.split("[")[0]) + (p[p.index("[") :] if "[" in p else "") for p in packages]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        argv = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            str(report),
            *specs,
        ]
        env = {k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"}
        subprocess.run(argv, env=env, check=True)
        items = json.loads(report.read_text())["install"]
    pins = {i["metadata"]["name"]: i["metadata"]["version"] for i in items}
    return sorted((f"{n}=={v}" for n, v in pins.items() if _normal(n) not in LOCAL_PACKAGES), key=str.lower)


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def write_locks(names: Sequence[str]) -> None:
    for name in names:
        image = IMAGES[name]
        if not image.lock:
            continue
        pins = resolve(image.packages)
        path = DOCKER / "requirements" / image.lock
        header = (
            f"# Pinned third-party requirements of the {image.name} image ({', '.join(image.packages)}).\n"
            "# Generated by `python tools/images/build.py lock`; tests/deploy/test_images.py checks that every\n"
            "# dependency the packages declare is pinned here.\n"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + "".join(f"{p}\n" for p in pins))
        log(f"wrote {path.relative_to(ROOT)} ({len(pins)} pins)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "images", nargs="*", help=f"lock, or images to build: {', '.join(IMAGES)} (default: core, gateway, midgard)"
    )
    p.add_argument(
        "--base",
        default=os.environ.get("ODIN_IMAGE_BASE", ""),
        help="base image; 'local' makes a Debian base here (default: the Dockerfiles' own)",
    )
    p.add_argument("--engine", default="", help="podman or docker (default: podman when present)")
    p.add_argument("--prefix", default="localhost/", help="start of every tag, e.g. a registry: ghcr.io/team/")
    p.add_argument("--save", type=Path, help="also save each image as DIR/<name>.tar")
    args = p.parse_args(argv)
    names = args.images or [n for n in DEFAULT_IMAGES if available(n)]
    if names == ["lock"]:
        write_locks([n for n in IMAGES if IMAGES[n].lock])
        return 0
    unknown = [n for n in names if n not in IMAGES]
    if unknown:
        p.error(f"unknown image {', '.join(unknown)}: choose from {', '.join(IMAGES)}")
    try:
        engine = find_engine(args.engine)
        refs = build(engine, names, args.base, args.prefix)
        if args.save:
            for path in save(engine, refs, args.save):
                log(f"saved {path}")
    except EngineError as e:
        log(f"error: {e}")
        return 1
    for ref in refs:
        print(ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())
