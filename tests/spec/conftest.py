"""Factories that write pipeline directories into ``tmp_path`` (removed by pytest)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from odin_core.errors import Problem
from odin_core.spec import PipelineSpec, load_pipeline, validate_pipeline
from spec_support import one_task

WriteJob = Callable[..., Path]


@pytest.fixture
def write_job(tmp_path: Path) -> WriteJob:
    """``write_job(text, name="job")``: a job directory holding ``main.yml`` with the dedented text."""

    def write(text: str, name: str = "job") -> Path:
        job = tmp_path / name
        job.mkdir(parents=True, exist_ok=True)
        (job / "main.yml").write_text(textwrap.dedent(text).lstrip("\n"))
        return job

    return write


@pytest.fixture
def load_task(write_job: WriteJob) -> Callable[[str], PipelineSpec]:
    def load(extra: str) -> PipelineSpec:
        return load_pipeline(write_job(one_task(extra)))

    return load


@pytest.fixture
def problems_of(write_job: WriteJob, tmp_path: Path) -> Callable[[str], list[Problem]]:
    """Problems of a job ``job`` under the pipelines root ``tmp_path`` (so they name ``job/main.yml``)."""

    def check(text: str) -> list[Problem]:
        return validate_pipeline(write_job(text), root=tmp_path)

    return check
