"""The side environment holding the original Odin client, ``odin-api`` 0.7.6 from PyPI, with its console scripts.

Made once per Python version under ``~/.cache/odin/compat/`` (``$ODIN_CACHE`` overrides ``~/.cache/odin``),
with the versions pinned in ``odin-api-constraints.txt``. Its ``odin-run`` imports ``mead.utils``, which needs
``collections.MutableMapping`` and friends (removed from ``collections`` in Python 3.10): a ``sitecustomize.py``
in that environment only puts the aliases back. Built into a temporary directory and renamed into place, under
a file lock, so concurrent test runs neither race nor see half an environment.

Run as a script to build it ahead of the tests: ``python tests/compat/legacy_env.py``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

VERSION = "0.7.6"
CONSTRAINTS = Path(__file__).with_name("odin-api-constraints.txt")
SCRIPTS = ("odin-ping", "odin-run", "odin-status", "odin-logs", "odin-data", "odin-events", "odin-cleanup", "odin-show")
SITECUSTOMIZE = '''"""The original Odin client's side environment only: aliases Python 3.10 removed from collections."""
import collections
import collections.abc

for _name in collections.abc.__all__:
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))
'''


class LegacyEnvError(RuntimeError):
    """The side environment could not be made (no network to PyPI, a failed install)."""


def cache_root() -> Path:
    return Path(os.environ.get("ODIN_CACHE", "~/.cache/odin")).expanduser()


def env_dir() -> Path:
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    return cache_root() / "compat" / f"odin-api-{VERSION}-{py}"


def _stamp(path: Path) -> Path:
    return path / ".complete"


def _fingerprint() -> str:
    return CONSTRAINTS.read_text()


def ensure() -> Path:
    """The environment's ``bin`` directory, building the environment first if needed."""
    target = env_dir()
    if _ready(target):
        return target / "bin"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _ready(target):
            _build(target)
    return target / "bin"


def _ready(target: Path) -> bool:
    stamp = _stamp(target)
    return stamp.is_file() and stamp.read_text() == _fingerprint()


def _build(target: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        venv.EnvBuilder(with_pip=True).create(work)
        python = work / "bin" / "python"
        _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-c", str(CONSTRAINTS),
              f"odin-api=={VERSION}"])  # fmt: skip
        site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip())
        (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
        _check(work)
        # a venv's scripts name its interpreter by absolute path: build where it will live
        shutil.rmtree(target, ignore_errors=True)
        work.rename(target)
        _fix_shebangs(work, target)
        _check(target)
        _stamp(target).write_text(_fingerprint())
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _fix_shebangs(old: Path, new: Path) -> None:
    """Point the renamed environment's scripts and pyvenv.cfg at where it lives now."""
    for f in [*(new / "bin").iterdir(), new / "pyvenv.cfg"]:
        if f.is_file() and not f.is_symlink():
            try:
                text = f.read_text()
            except UnicodeDecodeError:
                continue
            if str(old) in text:
                f.write_text(text.replace(str(old), str(new)))


def _check(root: Path) -> None:
    missing = [s for s in SCRIPTS if not (root / "bin" / s).is_file()]
    if missing:
        raise LegacyEnvError(f"odin-api {VERSION} installed without {', '.join(missing)}")
    _run([str(root / "bin" / "python"), "-c", "import mead.utils, muninn.client.run"])  # the aliases work


def _run(cmd: list[str]) -> str:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    if out.returncode != 0:
        raise LegacyEnvError(f"{' '.join(cmd[:4])} ... failed ({out.returncode}): {out.stderr.strip()[-2000:]}")
    return out.stdout


if __name__ == "__main__":
    print(ensure())
