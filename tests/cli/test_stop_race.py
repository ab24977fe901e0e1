"""`odin stop` from a second process races with the run's end: it must never bring a finished run back.

The test hands the stopping engine the record it would have read just before the run finished.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from odin_core.api import Odin
from odin_core.model import RunStatus
from odin_core.settings import Settings

QUICK = """\
name: quick
tasks:
  - name: a
    image: busybox:1.36
    command: "true"
"""


def test_stop_from_a_second_process_does_not_resurrect_a_finished_run(tmp_path: Path) -> None:
    job = tmp_path / "quick"
    job.mkdir()
    (job / "main.yml").write_text(QUICK)
    settings = Settings.from_env({"ODIN_HOME": str(tmp_path / "home")})

    async def scenario() -> RunStatus:
        owner = await Odin.open(settings, root=tmp_path)
        other = await Odin.open(settings, root=tmp_path)  # stands for the `odin stop` process
        try:
            run = await owner.submit(job, run_id="quick-race")
            seen_active = await other.store.get_run(run.run_id)  # `odin stop` reads the run: still active
            assert seen_active is not None and not seen_active.status.is_terminal
            assert (await owner.wait(run.run_id)).status is RunStatus.DONE  # ... and then it finishes

            async def stale_read(run_id: str):  # the read `Engine.stop` did just before the run finished
                return seen_active

            other.store.get_run = stale_read  # type: ignore[method-assign]
            await other.stop(run.run_id)
            final = await owner.store.get_run(run.run_id)
            assert final is not None
            return final.status
        finally:
            await other.close()
            await owner.close()

    assert asyncio.run(scenario()) is RunStatus.DONE
