"""What every command shares: settings from the global options, consoles, the engine, error handling."""

from __future__ import annotations

import asyncio
import functools
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from odin_core.errors import OdinError, SpecError
from odin_core.settings import Settings
from rich.console import Console

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1  # the run ended TERMINATED, or an expected error (unknown id, invalid pipeline for validate)
EXIT_INVALID = 2  # the pipeline to run is invalid (click uses 2 for usage errors too)
EXIT_INTERRUPTED = 130  # Ctrl-C: the run was stopped
PIPE_WIDTH = 200  # console width when output goes to a file or a pipe (nothing wraps mid-message)

OUTPUT_TABLE = click.option(
    "-o",
    "--output",
    "output",
    type=click.Choice(["table", "json", "yaml"]),
    default="table",
    show_default=True,
    help="Output format; json and yaml print records for scripts.",
)
OUTPUT_DATA = click.option(
    "-o",
    "--output",
    "output",
    type=click.Choice(["yaml", "json"]),
    default="yaml",
    show_default=True,
    help="Output format.",
)


@dataclass(frozen=True)
class CliState:
    """Global options, kept on the click context object."""

    home: Path | None = None
    executor: str | None = None
    kubeconfig: Path | None = None
    namespace: str | None = None
    server: str | None = None  # ws://host:port of an `odin-core serve`: commands use it instead of the engine here
    token: str | None = None

    def settings(self) -> Settings:
        env = dict(os.environ)
        given = {
            "ODIN_HOME": self.home,
            "ODIN_EXECUTOR": self.executor,
            "ODIN_KUBECONFIG": self.kubeconfig,
            "ODIN_NAMESPACE": self.namespace,
        }
        env.update({k: str(v) for k, v in given.items() if v is not None})
        return Settings.from_env(env)


def make_console(*, stderr: bool = False) -> Console:
    """A console on stdout or stderr; colour and live updates only on a terminal."""
    stream = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    return Console(
        file=stream,
        highlight=False,
        soft_wrap=False,
        force_terminal=tty or None,
        width=None if tty else PIPE_WIDTH,
        no_color=not tty or "NO_COLOR" in os.environ,
    )


def print_table(console: Console, table: Any) -> None:
    """Print a table; off a terminal without the padding rich leaves at the end of each line."""
    if console.is_terminal:
        console.print(table)
        return
    with console.capture() as captured:
        console.print(table)
    console.file.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))


def state(ctx: click.Context) -> CliState:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, CliState) else CliState()


@asynccontextmanager
async def open_odin(settings: Settings) -> AsyncIterator[Any]:
    """The in-process engine on the embedded default (SQLite under $ODIN_HOME, local executor)."""
    from odin_core.api import Odin  # imported late: `odin --help` stays fast

    odin = await Odin.open(settings)
    try:
        yield odin
    finally:
        await odin.close()


@asynccontextmanager
async def open_backend(cli_state: CliState) -> AsyncIterator[Any]:
    """What commands drive: the remote core given by --server, else the in-process engine."""
    if cli_state.server and cli_state.server.lower().startswith(("http://", "https://")):
        from ..http import HttpOdin, TokenCache  # the HTTP gateway (odin-http)

        async with HttpOdin(cli_state.server, token=cli_state.token, cache=TokenCache()) as gateway:
            yield gateway
        return
    if cli_state.server:
        from ..remote import RemoteOdin

        async with RemoteOdin(cli_state.server, token=cli_state.token) as remote:
            yield remote
        return
    async with open_odin(cli_state.settings()) as odin:
        yield odin


def print_problems(error: SpecError, console: Console) -> None:
    """Every problem on its own line: ``file:line:col: field: message (hint)``."""
    for problem in error.problems:
        console.print(str(problem), markup=False, soft_wrap=True)
    count = len(error.problems)
    console.print(f"[red]pipeline is invalid: {count} problem{'s' if count != 1 else ''}[/]")


def fail(message: str, code: int = EXIT_FAILED) -> None:
    """Print an error in red on stderr and leave with ``code`` (never a traceback)."""
    make_console(stderr=True).print(f"[red]error:[/] {_escape(message)}")
    raise SystemExit(code)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def run_async(coro: Coroutine[Any, Any, T], *, spec_exit: int = EXIT_INVALID) -> T:
    """Run one command's coroutine; expected errors become a red message and an exit code."""
    try:
        return asyncio.run(coro)
    except SpecError as e:
        print_problems(e, make_console(stderr=True))
        raise SystemExit(spec_exit) from None
    except OdinError as e:
        fail(str(e))
    except ValueError as e:  # bad settings, e.g. an unsupported ODIN_STORE URL
        fail(str(e))
    raise AssertionError("unreachable")


def engine_command(fn: Callable[..., Awaitable[int | None]]) -> Callable[..., None]:
    """Turn ``async def cmd(odin, **options) -> exit code`` into a click callback using the embedded engine
    (or, with ``--server``, a ``RemoteOdin``: the same API over the core's WebSocket protocol)."""

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> None:
        cli_state = state(click.get_current_context())

        async def body() -> int | None:
            async with open_backend(cli_state) as odin:
                return await fn(odin, **kwargs)

        code = run_async(body())
        if code:
            raise SystemExit(code)

    return wrapper
