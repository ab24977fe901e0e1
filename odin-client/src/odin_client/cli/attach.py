"""Following a run from a command until it ends: the display, the signal policy, the summary and the exit code.

Shared by ``odin run``, ``odin resubmit``, ``odin stop`` and the background driver of ``--detach``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import click
from odin_core.model import RunStatus
from rich.console import Console

from .common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, CliState, is_remote, make_console
from .fmt import dump
from .follow import Outcome, Policy, follow, interactive
from .progress import RunProgress, make_display
from .render import failure_hints, result_lines, summary


async def preflight(cli_state: CliState) -> None:
    """Setup problems as one clear line before a run is created (today: the Kubernetes connection)."""
    settings = cli_state.settings()
    if settings.executor == "kubernetes":
        from odin_core.executors.kubernetes.preflight import check_kubernetes

        await asyncio.to_thread(check_kubernetes, settings.kubernetes)


def resubmitted_line(result: dict[str, Any]) -> str:
    reused, rerun = list(result.get("reused") or []), list(result.get("rerun") or [])
    return (
        f"resubmitted run {result.get('run_id')}: reusing {len(reused)} succeeded task(s), "
        f"running {len(rerun)} again ({', '.join(rerun)})"
    )


async def last_seq(odin: Any, run_id: str) -> int:
    store_seq = getattr(getattr(odin, "store", None), "last_seq", None)
    if store_seq is not None:
        return int(await store_seq(run_id))
    events = await odin.events(run_id)
    return events[-1].seq if events else 0


async def attach(
    odin: Any,
    cli_state: CliState,
    run_id: str,
    progress: RunProgress,
    signals: Any,
    *,
    after_seq: int,
    watch: bool,
    output: str,
    background: bool = False,
) -> int:
    """Follow the run until it ends (or this process detaches); print the summary; the exit code."""
    console = make_console(stderr=output != "table")
    display = make_display(progress, console, watch=watch)
    policy = Policy(
        remote=is_remote(odin),
        interactive=not background and interactive(console),
        background=background,
        hint=cli_state.server_hint(),
    )
    display.start()
    try:
        outcome = await follow(odin, run_id, display, policy, signals, after_seq=after_seq)
    finally:
        display.close()
    if outcome is Outcome.DETACHED:
        if output != "table":
            click.echo(dump(await odin.data(run_id), output))
        return EXIT_INTERRUPTED
    final = await odin.run(run_id)
    print_summary(console, final.run, final.tasks, hint=cli_state.server_hint())
    if output != "table":
        click.echo(dump(await odin.data(run_id), output))
    if outcome is Outcome.STOPPED:
        return EXIT_INTERRUPTED
    return EXIT_OK if final.run.status is RunStatus.DONE else EXIT_FAILED


def print_summary(console: Console, run: Any, tasks: Any, *, hint: str = "") -> None:
    """``run ID DONE in 5.9s`` and what it produced, or why it failed and where to look."""
    console.print(summary(run, tasks))
    if run.status is RunStatus.DONE:
        for line in result_lines(tasks, hint):
            console.print(line, markup=False, soft_wrap=True)
    for line in failure_hints(run, tasks, hint):
        console.print(line, markup=False)
