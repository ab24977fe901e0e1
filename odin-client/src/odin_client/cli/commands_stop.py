"""``odin stop``: ask a run to stop (whoever drives it) and wait for its end."""

from __future__ import annotations

from typing import Any

import click

from .attach import print_summary
from .common import EXIT_FAILED, EXIT_OK, OUTPUT_TEXT, engine_command, make_console, state
from .fmt import dump


@click.command("stop", short_help="Stop a run.")
@click.argument("run_id", metavar="ID")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the run has ended.")
@click.option("--timeout", "timeout_s", type=float, default=60.0, show_default=True, help="Seconds to wait.")
@OUTPUT_TEXT
@engine_command
async def stop_cmd(odin: Any, run_id: str, wait: bool, timeout_s: float, output: str) -> int:
    """Stop a run: running tasks are ended, waiting ones skipped; the run ends TERMINATED.

    The process that drives the run (an `odin run` elsewhere, a background driver, a server)
    notices within a few seconds; a run whose driver is gone is taken over and stopped here.
    -o json/yaml prints the run's record at the end.

    \b
    Examples:
      odin stop hello-3k9x2m1q
      odin stop ml-sweep-0a1b2c3d --no-wait -o json
    """
    console = make_console(stderr=output != "text")
    view = await odin.run(run_id)
    if view.run.status.is_terminal:
        console.print(f"run {run_id} has already ended {view.run.status.value}", markup=False)
        return _record(await odin.data(run_id), output, EXIT_OK)
    console.print(f"stop requested for run {run_id}", markup=False)
    run = await odin.stop(run_id, "stopped by user", wait_s=timeout_s if wait else None)
    if not wait:
        return _record(await odin.data(run_id), output, EXIT_OK)
    if not run.status.is_terminal:
        console.print(
            f"run {run_id} has not ended after {timeout_s:g}s; its running tasks may still be ending: "
            f"`odin {state().server_hint()}status {run_id} --tasks` shows where it is",
            markup=False,
            soft_wrap=True,
        )
        return _record(await odin.data(run_id), output, EXIT_FAILED)
    final = await odin.run(run_id)
    print_summary(console, final.run, final.tasks, hint=state().server_hint())
    return _record(await odin.data(run_id), output, EXIT_OK)


def _record(record: dict[str, Any], output: str, code: int) -> int:
    if output != "text":
        click.echo(dump(record, output))
    return code
