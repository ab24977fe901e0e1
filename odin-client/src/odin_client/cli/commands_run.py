"""``odin run`` and ``odin resubmit``: start a run (or run an ended one again) and follow it, or detach.

Embedded, this process is the engine of the runs it starts (``--detach`` hands that job to a background
driver, ``_drive``). With ``--server`` the server drives them and this process only follows.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
from odin_core.errors import Conflict, InvalidRequest, OdinError
from odin_core.model import RunStatus
from odin_core.spec.ids import check_run_id
from rich.console import Console

from .common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    OUTPUT_TABLE,
    CliState,
    fail,
    is_remote,
    make_console,
    open_backend,
    open_odin,
    run_async,
    state,
)
from .detach import DRIVER_COMMAND, DriverFailed, ReadyPipe, start_driver
from .fmt import dump
from .follow import Outcome, Policy, catching_signals, follow, interactive
from .progress import RunProgress, make_display
from .render import failure_hints, result_lines, summary


def _run_id_option(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return check_run_id(value)
    except InvalidRequest as e:
        fail(f"--run-id: {e}", EXIT_INVALID)
    return None


DETACH = click.option(
    "--detach",
    "-d",
    is_flag=True,
    help="Print the run id and return at once; the run goes on in the background (with --server, on the server).",
)
WATCH = click.option("--watch/--no-watch", default=True, show_default=True, help="Show task progress while it runs.")


@click.command("run", short_help="Run a pipeline and follow it (or --detach).")
@click.argument("job_dir", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@WATCH
@DETACH
@click.option(
    "--run-id",
    default=None,
    callback=_run_id_option,
    help="Use this run id (a DNS label: a-z, 0-9, '-'); running an existing id again follows that run.",
)
@OUTPUT_TABLE
def run_cmd(job_dir: Path, watch: bool, detach: bool, run_id: str | None, output: str) -> None:
    """Validate and run the pipeline in DIR (a directory holding main.yml), following its tasks.

    This process drives the run: Ctrl-C asks whether to stop it (without a terminal, Ctrl-C and
    SIGTERM stop it). With --detach a background driver runs it instead and the command returns at
    once; the run then outlives the terminal (`odin stop ID` ends it). Exit code: 0 when the run is
    DONE, 1 when it is TERMINATED, 2 when the pipeline is invalid, 130 when interrupted.

    \b
    Examples:
      odin run samples/hello
      odin run samples/ml-sweep --no-watch -o json > run.json
      odin run samples/ml-sweep --detach        # prints the run id; `odin status` follows it
    """
    cli_state = state()
    if detach and not cli_state.server:
        _detach_embedded(cli_state, output, job_dir=job_dir, run_id=run_id)
        return
    code = run_async(_run(cli_state, job_dir, run_id, watch=watch, detach=detach, output=output), cli_state=cli_state)
    if code:
        raise SystemExit(code)


async def _run(
    cli_state: CliState, job_dir: Path, run_id: str | None, *, watch: bool, detach: bool, output: str
) -> int:
    async with open_backend(cli_state) as odin:
        if not is_remote(odin):
            await preflight(cli_state)
        with catching_signals() as signals:
            run = await odin.submit(job_dir, run_id=run_id)
            return await _follow_new(odin, cli_state, run, signals, watch=watch, detach=detach, output=output)


async def _follow_new(
    odin: Any, cli_state: CliState, run: Any, signals: Any, *, watch: bool, detach: bool, output: str
) -> int:
    if detach:
        _print_detached(cli_state, run.run_id, run.status.value, output)
        return EXIT_OK
    if not is_remote(odin) and run.owner != odin.engine.owner and not run.status.is_terminal:
        raise Conflict(f"run {run.run_id!r} is driven by another process; follow it with `odin status {run.run_id}`")
    view = await odin.run(run.run_id)
    progress = RunProgress.fresh(view.run, view.tasks)
    return await attach(odin, cli_state, run.run_id, progress, signals, after_seq=0, watch=watch, output=output)


async def preflight(cli_state: CliState) -> None:
    """Setup problems as one clear line before a run is created (today: the Kubernetes connection)."""
    settings = cli_state.settings()
    if settings.executor == "kubernetes":
        from .preflight import check_kubernetes

        await asyncio.to_thread(check_kubernetes, settings.kubernetes)


@click.command("resubmit", short_help="Run an ended run again, reusing its succeeded tasks.")
@click.argument("run_id", metavar="ID")
@WATCH
@DETACH
@OUTPUT_TABLE
def resubmit_cmd(run_id: str, watch: bool, detach: bool, output: str) -> None:
    """Run an ended run again in place: every task that succeeded is kept (with its outputs), the
    others start over with a fresh retry budget. The run keeps its id, data and event log.

    Follows the run like `odin run` (same exit codes); --detach returns at once.

    \b
    Examples:
      odin resubmit retry-5hd8w0zq
      odin resubmit ml-sweep-q2w8e4r1 --detach
    """
    cli_state = state()
    if detach and not cli_state.server:
        _detach_embedded(cli_state, output, run_id=run_id, resubmit=True)
        return
    code = run_async(_resubmit(cli_state, run_id, watch=watch, detach=detach, output=output), cli_state=cli_state)
    if code:
        raise SystemExit(code)


async def _resubmit(cli_state: CliState, run_id: str, *, watch: bool, detach: bool, output: str) -> int:
    async with open_backend(cli_state) as odin:
        before = await odin.run(run_id)
        seq = await last_seq(odin, run_id)
        with catching_signals() as signals:
            result = await odin.resubmit(run_id)
            console = make_console(stderr=output != "table")
            console.print(resubmitted_line(result), markup=False)
            if detach:
                _print_detached(cli_state, run_id, RunStatus.BUILDING.value, output)
                return EXIT_OK
            progress = RunProgress(before.run, before.tasks)
            return await attach(odin, cli_state, run_id, progress, signals, after_seq=seq, watch=watch, output=output)


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
    for line in failure_hints(tasks, hint):
        console.print(line, markup=False)


# -- detached runs -------------------------------------------------------------------------------


def _detach_embedded(
    cli_state: CliState, output: str, *, job_dir: Path | None = None, run_id: str | None = None, resubmit: bool = False
) -> None:
    if job_dir is not None:
        from odin_core.errors import SpecError
        from odin_core.spec import load_pipeline, new_pipe_id

        from .common import print_problems

        try:
            spec = load_pipeline(job_dir)
        except SpecError as e:
            print_problems(e, make_console(stderr=True))
            raise SystemExit(EXIT_INVALID) from None
        run_id = run_id or new_pipe_id(spec.name)
        run_async(preflight(cli_state), cli_state=cli_state)
    assert run_id is not None
    try:
        started = start_driver(cli_state, run_id, job_dir=job_dir, resubmit=resubmit)
    except DriverFailed as e:
        fail(str(e), e.exit_code)
        return
    if output != "table":
        click.echo(dump(started.to_record(), output))
        return
    click.echo(started.run_id)
    err = make_console(stderr=True)
    if started.existing:
        err.print(f"run {started.run_id} exists already and has ended {started.status}", markup=False)
        return
    err.print(
        f"running in the background (driver pid {started.pid}, log {started.log})\n"
        f"  follow it: odin status {started.run_id}  |  odin logs {started.run_id} -f\n"
        f"  stop it:   odin stop {started.run_id}",
        markup=False,
        soft_wrap=True,
    )


def _print_detached(cli_state: CliState, run_id: str, status: str, output: str) -> None:
    if output != "table":
        click.echo(dump({"run_id": run_id, "status": status, "server": cli_state.server}, output))
        return
    click.echo(run_id)
    h = cli_state.server_hint()
    make_console(stderr=True).print(
        f"running on the server\n  follow it: odin {h}status {run_id}  |  odin {h}logs {run_id} -f\n"
        f"  stop it:   odin {h}stop {run_id}",
        markup=False,
        soft_wrap=True,
    )


@click.command(DRIVER_COMMAND, hidden=True)
@click.option("--job", "job_dir", type=click.Path(path_type=Path), default=None)
@click.option("--run-id", required=True)
@click.option("--resubmit", is_flag=True)
@click.option("--ready-fd", type=int, default=None)
def drive_cmd(job_dir: Path | None, run_id: str, resubmit: bool, ready_fd: int | None) -> None:
    """The background driver of `odin run --detach` (not for direct use): drives one run to its end."""
    cli_state = state()
    code = run_async(_drive(cli_state, job_dir, run_id, resubmit, ready_fd), cli_state=cli_state)
    raise SystemExit(code or 0)


async def _drive(cli_state: CliState, job_dir: Path | None, run_id: str, resubmit: bool, ready_fd: int | None) -> int:
    ready = ReadyPipe(ready_fd)
    try:
        async with open_odin(cli_state.settings()) as odin:
            with catching_signals() as signals:
                return await _drive_one(odin, cli_state, job_dir, run_id, resubmit, ready, signals)
    except OdinError as e:
        ready.send({"error": str(e).splitlines()[0], "exit": EXIT_FAILED})
        raise


async def _drive_one(
    odin: Any, cli_state: CliState, job_dir: Path | None, run_id: str, resubmit: bool, ready: ReadyPipe, signals: Any
) -> int:
    if resubmit:
        before = await odin.run(run_id)
        seq = await odin.store.last_seq(run_id)
        print(resubmitted_line(await odin.resubmit(run_id)), flush=True)
        progress = RunProgress(before.run, before.tasks)
    else:
        assert job_dir is not None
        run = await odin.submit(job_dir, run_id=run_id)
        if run.owner != odin.engine.owner or run.status.is_terminal:
            return _existing(run, ready)
        view = await odin.run(run_id)
        seq, progress = 0, RunProgress.fresh(view.run, view.tasks)
    ready.send({"run_id": run_id, "status": RunStatus.RUNNING.value})
    return await attach(
        odin, cli_state, run_id, progress, signals, after_seq=seq, watch=True, output="table", background=True
    )


def _existing(run: Any, ready: ReadyPipe) -> int:
    if run.status.is_terminal:
        ready.send({"run_id": run.run_id, "status": run.status.value, "existing": True})
        return EXIT_OK
    error = f"run {run.run_id!r} is driven by another process; follow it with `odin status {run.run_id}`"
    ready.send({"error": error, "exit": EXIT_FAILED})
    return EXIT_FAILED
