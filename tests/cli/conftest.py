"""Fixtures for CliRunner-level tests of the `odin` command: a private ODIN_HOME and pipeline factories."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from odin_client.cli import cli

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "samples"


class Odin:
    """Invokes `odin` in-process against one ODIN_HOME."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.runner = CliRunner(env={"ODIN_HOME": str(home), "NO_COLOR": "1"})

    def __call__(self, *args: str, code: int | None = 0) -> Result:
        result = self.runner.invoke(cli, list(args), catch_exceptions=False)
        if code is not None:
            assert result.exit_code == code, f"odin {' '.join(args)} exited {result.exit_code}:\n{result.output}"
        return result

    def json(self, *args: str, code: int | None = 0) -> Any:
        return json.loads(self(*args, "-o", "json", code=code).stdout)

    def run_id(self, pattern: str = "") -> str:
        return self.json("status", pattern)[0]["run"]["run_id"]


@pytest.fixture
def samples() -> Path:
    return SAMPLES


@pytest.fixture
def odin(tmp_path: Path) -> Odin:
    return Odin(tmp_path / "home")


@pytest.fixture
def make_job(tmp_path: Path) -> Callable[..., Path]:
    """Write a pipeline directory from main.yml text (plus extra files); returns its path."""

    def make(main_yml: str, name: str = "job", **files: str) -> Path:
        job = tmp_path / "jobs" / name
        job.mkdir(parents=True, exist_ok=True)
        (job / "main.yml").write_text(textwrap.dedent(main_yml))
        for filename, text in files.items():
            (job / filename).write_text(textwrap.dedent(text))
        return job

    return make
