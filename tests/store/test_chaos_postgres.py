"""The chaos harness of tests/chaos (kill -9 of the core at random moments) with the store on PostgreSQL."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[1] / "chaos" / "harness.py"
ITERATIONS = int(os.environ.get("ODIN_CHAOS_PG_ITERATIONS", "10"))


def _harness():
    spec = importlib.util.spec_from_file_location("odin_chaos_harness", HARNESS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_killing_a_core_on_postgres_changes_nothing(postgres: str, tmp_path: Path) -> None:
    harness = _harness()
    case = harness.Case(root=tmp_path / "pipelines", home=tmp_path / "home", store_url=postgres)
    reference, figures = await harness.chaos(case, ITERATIONS, seed=10)
    assert reference.status == "TERMINATED"
    assert not figures.problems, "\n".join(figures.problems)
    assert (figures.identical, figures.attempts_twice, figures.orphans) == (ITERATIONS, 0, 0)
