"""``odin run`` and ``odin resubmit``: start a run (or run an ended one again) and follow it, or detach.

Embedded, this process is the engine of the runs it starts (``--detach`` hands that job to a background
driver, ``_drive``). With ``--server`` the server drives them and this process only follows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from odin_core.errors import Conflict, InvalidRequest
from odin_core.model import RunStatus
from odin_core.spec.ids import check_run_id

from .attach import attach, last_seq, preflight, resubmitted_line
from .commands_drive import start_detached
from .common import (
    EXIT_INVALID,
    EXIT_OK,
    JOB_DIR,
    OUTPUT_TABLE,
    CliState,
    fail,
    is_remote,
    make_console,
    open_backend,
    run_async,
    state,
)
from .fmt import dump
from .follow import catching_signals
from .progress import RunProgress


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
@click.argument("job_dir", metavar="DIR", type=JOB_DIR)
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
        start_detached(cli_state, output, job_dir=job_dir, run_id=run_id)
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
        start_detached(cli_state, output, run_id=run_id, resubmit=True)
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
