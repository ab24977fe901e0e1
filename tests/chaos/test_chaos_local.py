"""``kill -9`` of a core on the local executor at random moments: every run ends as an uninterrupted one."""

from __future__ import annotations

import os
from pathlib import Path

from harness import Case, chaos

ITERATIONS = int(os.environ.get("ODIN_CHAOS_ITERATIONS", "30"))


async def test_killing_the_core_at_random_moments_changes_nothing(tmp_path: Path) -> None:
    case = Case(root=tmp_path / "pipelines", home=tmp_path / "home")
    reference, figures = await chaos(case, ITERATIONS, seed=8)
    assert reference.status == "TERMINATED"  # the broken branch fails; the rest succeeds
    assert reference.tasks["join"] == ("SUCCEEDED", 1, {"sum": 10})
    assert reference.tasks["right"][1] == 2 and reference.tasks["after-broken"][0] == "SKIPPED"
    assert not figures.problems, "\n".join(figures.problems)
    assert (figures.identical, figures.attempts_twice, figures.orphans) == (ITERATIONS, 0, 0)
