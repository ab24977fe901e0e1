"""``--detach`` on the embedded engine: the command side (validate, start the driver, say how to follow) and the
hidden ``_drive`` command, the background driver itself (see ``detach`` for the process and its pipe)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from odin_core.errors import OdinError, SpecError
from odin_core.model import RunStatus

from .attach import attach, preflight, resubmitted_line
from .common import (
    EXIT_FAILED,
    EXIT_INVALID,
    EXIT_OK,
    CliState,
    fail,
    make_console,
    open_odin,
    print_problems,
    run_async,
    state,
)
from .detach import DRIVER_COMMAND, DriverFailed, ReadyPipe, start_driver
from .fmt import dump
from .follow import catching_signals
from .progress import RunProgress


def start_detached(
    cli_state: CliState, output: str, *, job_dir: Path | None = None, run_id: str | None = None, resubmit: bool = False
) -> None:
    """Validate (a new run), check the setup, start the background driver and print the run id."""
    if job_dir is not None:
        from odin_core.spec import load_pipeline, new_pipe_id

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
