"""Reading runs: ``odin status``, ``logs``, ``data``, ``events``, and removing them: ``cleanup``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import click

from .common import OUTPUT_DATA, OUTPUT_TABLE, engine_command, make_console, print_table
from .fmt import dump, plain
from .render import (
    cleanup_table,
    cluster_events_table,
    events_table,
    run_details,
    run_header,
    status_record,
    task_table,
)


@click.command("status", short_help="Runs and their tasks.")
@click.argument("pattern", required=False, default="")
@OUTPUT_TABLE
@engine_command
async def status_cmd(odin: Any, pattern: str, output: str) -> None:
    """Runs (newest first) and their tasks.

    PATTERN selects runs: a glob (`ml-*`) or a part of the run id or job name.

    \b
    Examples:
      odin status
      odin status ml-sweep -o json
    """
    views = await odin.status(pattern)
    if output != "table":
        click.echo(dump([status_record(v.run, v.tasks) for v in views], output))
        return
    console = make_console()
    if not views:
        console.print(f"no run matches {pattern!r}" if pattern else "no runs yet; start one with `odin run DIR`")
        return
    for i, view in enumerate(views):
        if i:
            console.print()
        console.print(run_header(view.run))
        console.print(run_details(view.run))
        print_table(console, task_table(view.tasks))


@click.command("logs", short_help="A task's log, or every task's log of a run.")
@click.argument("resource", metavar="TASK_ID")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until the task (or run) ends.")
@click.option("--lines", type=click.IntRange(min=1), default=None, help="Only the last N lines (of each task).")
@engine_command
async def logs_cmd(odin: Any, resource: str, follow: bool, lines: int | None) -> None:
    """The log of a task (TASK_ID is `<run id>--<task>`), every attempt included.

    With a run id only, every task's log, each line prefixed by the task name.

    \b
    Examples:
      odin logs hello-3k9x2m1q--greet
      odin logs ml-sweep-0a1b2c3d --follow
    """
    run_id, sep, _task = resource.partition("--")
    if sep:
        async for line in odin.logs(resource, follow=follow, lines=lines):
            click.echo(line)
        return
    view = await odin.run(run_id)
    width = max((len(t.name) for t in view.tasks), default=0)
    streams = [_prefixed(odin, t.task_id, t.name.ljust(width), follow, lines) for t in view.tasks]
    source = _merge(streams) if follow else _chain(streams)
    async for line in source:
        click.echo(line)


async def _prefixed(odin: Any, task_id: str, prefix: str, follow: bool, lines: int | None) -> AsyncIterator[str]:
    async for line in odin.logs(task_id, follow=follow, lines=lines):
        yield f"{prefix} | {line}"


async def _chain(streams: list[AsyncIterator[str]]) -> AsyncIterator[str]:
    for stream in streams:
        async for line in stream:
            yield line


async def _merge(streams: list[AsyncIterator[str]]) -> AsyncIterator[str]:
    """Lines of several streams as they come; ends when every stream has ended."""
    queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=1000)

    async def pump(stream: AsyncIterator[str]) -> None:
        try:
            async for line in stream:
                await queue.put(line)
        finally:
            await queue.put(None)

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
    """Remove what a run left behind: executor resources, and with --db / --fs its records and files.

    A run that is still active is stopped first.

    \b
    Example:
      odin cleanup hello-3k9x2m1q --db --fs
    """
    results = await odin.cleanup(run_id, db=db, fs=fs)
    if output != "table":
        click.echo(dump([plain(r.__dict__) for r in results], output))
        return
    print_table(make_console(), cleanup_table(results))
