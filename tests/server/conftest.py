"""A real core server on a free loopback port, over a pipelines root of small local jobs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from server_support import JOBS


@pytest.fixture
def root(write_jobs: Callable[[dict[str, str]], Path]) -> Path:
    return write_jobs(JOBS)
