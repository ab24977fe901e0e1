"""``odin run`` and ``odin stop``: the CLI process is the engine for the runs it starts."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import click
from odin_core.errors import Conflict
from odin_core.model import RunStatus
from rich.console import Console

from .common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    OUTPUT_TABLE,
    engine_command,
    make_console,
)
from .fmt import dump
from .progress import Display, RunProgress, make_display
from .render import failure_hints, summary


@click.command("run", short_help="Run a pipeline here and follow it.")
@click.argument("job_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--watch/--no-watch", default=True, show_default=True, help="Show task progress while it runs.")
@click.option("--run-id", default=None, help="Use this run id; running an existing id again follows that run.")
@OUTPUT_TABLE
@engine_command
async def run_cmd(odin: Any, job_dir: Path, watch: bool, run_id: str | None, output: str) -> int:
    """Validate and run the pipeline in DIR (a directory holding main.yml) in this process.

    Tasks run as local processes; the command ends when the run does. Ctrl-C stops the run
    (its running tasks are ended) and exits 130. Exit code: 0 when the run is DONE, 1 when
    it is TERMINATED, 2 when the pipeline is invalid.

    \b
    Examples:
      odin run samples/hello
      odin run samples/ml-sweep --no-watch -o json > run.json
    """
    console = make_console(stderr=output != "table")
    run = await odin.submit(job_dir, run_id=run_id)
    if run.owner != odin.engine.owner and not run.status.is_terminal:
        raise Conflict(f"run {run.run_id!r} is driven by another process; follow it with `odin status {run.run_id}`")
    view = await odin.run(run.run_id)
    display = make_display(RunProgress.fresh(view.run, view.tasks), console, watch=watch)
    display.start()
    try:
        interrupted = await follow(odin, run.run_id, display)
    finally:
        display.close()
    final = await odin.run(run.run_id)
    print_summary(console, final.run, final.tasks)
    if output != "table":
        click.echo(dump(await odin.data(run.run_id), output))
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_OK if final.run.status is RunStatus.DONE else EXIT_FAILED


def print_summary(console: Console, run: Any, tasks: Any) -> None:
    console.print(summary(run, tasks))
    for hint in failure_hints(tasks):
        console.print(hint, markup=False)


async def follow(odin: Any, run_id: str, display: Display) -> bool:
    """Show the run's events until it ends; the first Ctrl-C (or SIGTERM) stops it. True when interrupted."""
    interrupted = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = _handle_signals(loop, interrupted.set)

    async def stop_on_signal() -> None:
        await interrupted.wait()
        display.note(f"interrupted: stopping run {run_id} (its running tasks are being ended)")
        await odin.stop(run_id, "interrupted by the user")

    try:
        async with asyncio.TaskGroup() as group:
            stopper = group.create_task(stop_on_signal(), name=f"stop-on-signal:{run_id}")
            async for ev in odin.watch(run_id):
                display.event(ev)
            stopper.cancel()
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
    return interrupted.is_set()


def _handle_signals(loop: asyncio.AbstractEventLoop, callback: Any) -> list[signal.Signals]:
    handled = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, callback)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
            continue
        handled.append(sig)
    return handled


@click.command("stop", short_help="Stop a run.")
@click.argument("run_id", metavar="ID")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the run has ended.")
@click.option("--timeout", "timeout_s", type=float, default=60.0, show_default=True, help="Seconds to wait.")
@engine_command
async def stop_cmd(odin: Any, run_id: str, wait: bool, timeout_s: float) -> int:
    """Stop a run: running tasks are ended, waiting ones skipped; the run ends TERMINATED.

    The process that drives the run (an `odin run` elsewhere) notices within a few seconds.

    \b
    Example:
      odin stop hello-3k9x2m1q
    """
    console = make_console()
    view = await odin.run(run_id)
    if view.run.status.is_terminal:
        console.print(f"run {run_id} has already ended {view.run.status.value}", markup=False)
        return EXIT_OK
    console.print(f"stop requested for run {run_id}", markup=False)
    # waiting, the engine here takes the run over if the process driving it dies or goes quiet meanwhile
    run = await odin.stop(run_id, "stopped by user", wait_s=timeout_s if wait else None)
    if not wait:
        return EXIT_OK
    if not run.status.is_terminal:
        console.print(
            f"run {run_id} has not ended after {timeout_s:g}s; is the `odin run` that drives it still alive? "
            f"`odin status {run_id}` shows where it is",
            markup=False,
        )
        return EXIT_FAILED
    final = await odin.run(run_id)
    print_summary(console, final.run, final.tasks)
    return EXIT_OK
