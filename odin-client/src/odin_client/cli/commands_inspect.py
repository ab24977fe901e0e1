"""Reading runs: ``odin status``, ``logs``, ``data``, ``events``, and removing them: ``cleanup``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import click

from .common import OUTPUT_DATA, OUTPUT_TABLE, OUTPUT_TEXT, engine_command, is_remote, make_console, print_table
from .detach import driver_log
from .fmt import dump, plain
from .follow import first_error
from .render import (
    cleanup_table,
    cluster_events_table,
    events_table,
    run_details,
    run_header,
    runs_table,
    status_record,
    task_table,
)

DEFAULT_LIMIT = 20


@click.command("status", short_help="The most recent runs, one line each.")
@click.argument("pattern", required=False, default="")
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(min=1),
    default=DEFAULT_LIMIT,
    show_default=True,
    help="Show this many runs (the newest).",
)
@click.option("--all", "show_all", is_flag=True, help="Show every run.")
@click.option("--active", is_flag=True, help="Only runs that have not ended.")
@click.option("--tasks", "-t", "with_tasks", is_flag=True, help="Each run's task table too.")
@OUTPUT_TABLE
@engine_command
async def status_cmd(
    odin: Any, pattern: str, limit: int, show_all: bool, active: bool, with_tasks: bool, output: str
) -> None:
    """The most recent runs, newest first, one line each: run, status, tasks succeeded/total, age,
    duration, message. --tasks adds each run's task table.

    PATTERN selects runs by run id, job or pipeline name: a glob (`ml-*`) or a part of one.
    -o json/yaml prints the same runs as records, each with its tasks.

    \b
    Examples:
      odin status
      odin status ml-sweep --tasks
      odin status --active --all -o json
    """
    wanted = None if show_all else limit
    views = await odin.status(pattern, active_only=active, limit=None if wanted is None else wanted + 1)
    more = wanted is not None and len(views) > wanted
    views = views[:wanted]
    if output != "table":
        click.echo(dump([status_record(v.run, v.tasks) for v in views], output))
        return
    console = make_console()
    if not views:
        console.print(_nothing(pattern, active), markup=False)
        return
    if with_tasks:
        for i, view in enumerate(views):
            if i:
                console.print()
            console.print(run_header(view.run))
            console.print(run_details(view.run))
            print_table(console, task_table(view.tasks))
    else:
        print_table(console, runs_table(views))
    if more:
        shown = "the newest run" if wanted == 1 else f"the {wanted} newest runs"
        console.print(f"[dim]showing {shown}; --limit N or --all for more, a PATTERN to narrow[/]", soft_wrap=True)


def _nothing(pattern: str, active: bool) -> str:
    what = "active run" if active else "run"
    if pattern:
        return f"no {what} matches {pattern!r}"
    return f"no {what}s" if active else "no runs yet; start one with `odin run DIR`"


@click.command("logs", short_help="A task's log, or every task's log of a run.")
@click.argument("resource", metavar="TASK_ID")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the task (or run) ends.")
@click.option("--lines", type=click.IntRange(min=1), default=None, help="Only the last N lines (of each task).")
@OUTPUT_TEXT
@engine_command
async def logs_cmd(odin: Any, resource: str, follow: bool, lines: int | None, output: str) -> None:
    """The log of a task (TASK_ID is `<run id>--<task>`), every attempt included.

    With a run id only, every task's log, each line prefixed by the task name. -o json prints one
    JSON object per line (`{"task_id", "task", "line"}`, so it streams with --follow); -o yaml a list.

    \b
    Examples:
      odin logs hello-3k9x2m1q--greet
      odin logs ml-sweep-0a1b2c3d --follow
      odin logs ml-sweep-0a1b2c3d -o json | jq -r .line
    """
    run_id, sep, _task = resource.partition("--")
    if sep:
        record = await odin.task(resource)
        tasks = [(record.task_id, record.name)]
    else:
        view = await odin.run(run_id)
        tasks = [(t.task_id, t.name) for t in view.tasks]
    width = max((len(name) for _, name in tasks), default=0)
    streams = [_tagged(odin, task_id, name, follow, lines) for task_id, name in tasks]
    source = _merge(streams) if follow and len(streams) > 1 else _chain(streams)
    async for task_id, name, line in source:
        if output == "json":
            click.echo(json.dumps({"task_id": task_id, "task": name, "line": line}))
        elif output == "yaml":
            click.echo(dump([{"task_id": task_id, "task": name, "line": line}], "yaml"))
        else:
            click.echo(line if sep else f"{name.ljust(width)} | {line}")


Line = tuple[str, str, str]  # task id, task name, text


async def _tagged(odin: Any, task_id: str, name: str, follow: bool, lines: int | None) -> AsyncIterator[Line]:
    async for line in odin.logs(task_id, follow=follow, lines=lines):
        yield task_id, name, line


async def _chain(streams: list[AsyncIterator[Line]]) -> AsyncIterator[Line]:
    for stream in streams:
        async for line in stream:
            yield line


async def _merge(streams: list[AsyncIterator[Line]]) -> AsyncIterator[Line]:
    """Lines of several streams as they come; ends when every stream has ended."""
    queue: asyncio.Queue[Line | None] = asyncio.Queue(maxsize=1000)

    async def pump(stream: AsyncIterator[Line]) -> None:
        try:
            async for line in stream:
                await queue.put(line)
        finally:
            await queue.put(None)

    try:
        async with asyncio.TaskGroup() as group:
            for i, stream in enumerate(streams):
                group.create_task(pump(stream), name=f"logs:{i}")
            remaining = len(streams)
            while remaining:
                line = await queue.get()
                if line is None:
                    remaining -= 1
                else:
                    yield line
    except BaseExceptionGroup as failed:
        raise first_error(failed) from None


@click.command("data", short_help="The record of a run or task.")
@click.argument("resource", metavar="ID")
@OUTPUT_DATA
@engine_command
async def data_cmd(odin: Any, resource: str, output: str) -> None:
    """The full record of a run (with its tasks) or of one task (`<run id>--<task>`).

    \b
    Examples:
      odin data hello-3k9x2m1q
      odin data ml-sweep-0a1b2c3d--evaluate -o json
    """
    click.echo(dump(await odin.data(resource), output))


@click.command("events", short_help="The event log of a run or task.")
@click.argument("resource", metavar="ID")
@OUTPUT_TABLE
@engine_command
async def events_cmd(odin: Any, resource: str, output: str) -> None:
    """The event log of a run, or of one task (`<run id>--<task>`), in order; then what the cluster
    reported about its objects (Kubernetes events), when it ran on one.

    \b
    Example:
      odin events retry-5hd8w0zq
    """
    if "--" in resource:
        await odin.task(resource)  # an unknown task is an error (as for data and logs), not an empty log
    events = await odin.events(resource)
    cluster = await odin.cluster_events(resource)
    if output != "table":
        records = [e.to_record() for e in events]
        click.echo(dump({"events": records, "cluster_events": cluster} if cluster else records, output))
        return
    console = make_console()
    print_table(console, events_table(events))
    if cluster:
        print_table(console, cluster_events_table(cluster))


@click.command("cleanup", short_help="Remove a run's resources, records and files.")
@click.argument("run_id", metavar="ID")
@click.option("--db", is_flag=True, help="Also delete the run's records and events from the store.")
@click.option("--fs", is_flag=True, help="Also delete the run's data directory (logs, outputs, task files).")
@OUTPUT_TABLE
@engine_command
async def cleanup_cmd(odin: Any, run_id: str, db: bool, fs: bool, output: str) -> None:
    """Remove what a run left behind: executor resources, and with --db / --fs its records and files
    (--fs also removes the log of its background driver, if it had one).

    A run that is still active is stopped first (see docs/cli.md for a run another process drives).

    \b
    Example:
      odin cleanup hello-3k9x2m1q --db --fs
    """
    results = await odin.cleanup(run_id, db=db, fs=fs)
    if fs and not is_remote(odin):
        driver_log(odin.settings.home, run_id).unlink(missing_ok=True)
    if output != "table":
        click.echo(dump([plain(r.__dict__) for r in results], output))
        return
    print_table(make_console(), cleanup_table(results))
