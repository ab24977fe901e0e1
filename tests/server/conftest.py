"""A real core server on a free loopback port, over a pipelines root of small local jobs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from server_support import JOBS


@pytest.fixture
def root(tmp_path: Path) -> Path:
    base = tmp_path / "pipelines"
    for job, text in JOBS.items():
        (base / job).mkdir(parents=True)
        (base / job / "main.yml").write_text(textwrap.dedent(text))
    return base
