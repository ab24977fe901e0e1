"""A real core server (``odin_core.service``) on a free loopback port, over a pipelines root of small local jobs."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

PY = sys.executable


def task(name: str, code: str, *, depends: str | None = None) -> str:
    after = f", depends: {depends}" if depends else ""
    return f'  - {{name: {name}, image: busybox, command: {PY}, args: ["-c", "{code}"]{after}}}\n'


JOBS = {
    "hello": "name: hello\ntasks:\n" + task("greet", "print('hello'); print('from odin')"),
    "pair": "name: pair\ntasks:\n"
    + task("first", "print('one'); print('two')")
    + task("second", "print('second here')", depends="first"),
    # a run whose events come over ~1.5 s: room to drop the connection mid-stream
    "chain": "name: chain\ntasks:\n"
    + "".join(
        task(f"t{i}", f"import time; time.sleep(0.15); print({i})", depends=f"t{i - 1}" if i else None)
        for i in range(6)
    ),
    "sad": "name: sad\ntasks:\n"
    + task("boom", "import sys; print('about to fail'); sys.exit(4)")
    + task("never", "pass", depends="boom"),
    "slow": "name: slow\ntasks:\n" + task("wait", "import time; time.sleep(60)"),
    "team/bad": "name: bad\ntasks:\n  - {name: a_b, image: x}\n",
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "pipelines"
    for job, text in JOBS.items():
        (base / job).mkdir(parents=True)
        (base / job / "main.yml").write_text(textwrap.dedent(text))
    return base
