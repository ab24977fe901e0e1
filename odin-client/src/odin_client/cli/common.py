"""What every command shares: settings from the global options, consoles, the engine, error handling."""

from __future__ import annotations

import asyncio
import errno
import functools
import io
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from odin_core.errors import AuthError, OdinError, SpecError
from odin_core.settings import Settings
from rich.console import Console

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1  # the run ended TERMINATED, or an expected error (unknown id, invalid pipeline for validate)
EXIT_INVALID = 2  # the pipeline to run is invalid (click uses 2 for usage errors too)
EXIT_INTERRUPTED = 130  # Ctrl-C: the run was stopped (or, on a server, left running)
PIPE_WIDTH = 200  # console width when output goes to a file or a pipe (nothing wraps mid-message)


def output_option(default: str = "table", *choices: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``-o/--output``: ``default`` (a human format) or json/yaml for scripts."""
    return click.option(
        "-o",
        "--output",
        "output",
        type=click.Choice([default, *(choices or ("json", "yaml"))]),
        default=default,
        show_default=True,
        help="Output format; json and yaml print records for scripts.",
    )


OUTPUT_TABLE = output_option("table")
OUTPUT_TEXT = output_option("text")
OUTPUT_DATA = output_option("yaml", "json")

# DIR of `run`, `show`, `validate`: not checked by click, so that a missing directory is reported as a problem of
# that pipeline (by the loader, like every other problem), and so that with --server it can name a job on the server.
JOB_DIR = click.Path(path_type=Path)


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
        return Settings.from_env(self.environment())

    def environment(self) -> dict[str, str]:
        """This process's environment with the global options applied (what a background driver inherits)."""
        env = dict(os.environ)
        given = {
            "ODIN_HOME": self.home,
            "ODIN_EXECUTOR": self.executor,
            "ODIN_KUBECONFIG": self.kubeconfig,
            "ODIN_NAMESPACE": self.namespace,
        }
        env.update({k: str(v) for k, v in given.items() if v is not None})
        return env

    def server_hint(self) -> str:
        """The global options to repeat in a suggested command: `--server URL ` when remote, else ``""``."""
        return f"--server {self.server} " if self.server else ""


class HangupTolerant(io.TextIOBase):
    """A terminal stream whose writes stop failing once the terminal is gone (EIO after a hang-up): the command still
    has a run to end cleanly. Other errors (a closed pipe) are raised as usual."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._gone = False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                return int(self._stream.write(text))
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
                self._gone = True
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
                self._gone = True

    def isatty(self) -> bool:
        return not self._gone and bool(self._stream.isatty())

    def fileno(self) -> int:
        return int(self._stream.fileno())

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self._stream, "encoding", "utf-8") or "utf-8")


def make_console(*, stderr: bool = False) -> Console:
    """A console on stdout or stderr; colour and live updates only on a terminal."""
    stream: Any = sys.stderr if stderr else sys.stdout
    tty = stream.isatty()
    if tty:
        stream = HangupTolerant(stream)
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


def state(ctx: click.Context | None = None) -> CliState:
    ctx = ctx or click.get_current_context()
    obj = ctx.find_root().obj
    return obj if isinstance(obj, CliState) else CliState()


@asynccontextmanager
async def open_odin(settings: Settings) -> AsyncIterator[Any]:
    """The in-process engine on the embedded default (SQLite under $ODIN_HOME, local executor)."""
    from odin_core.api import Odin  # imported late: `odin --help` stays fast

    try:
        if not settings.store_url:  # the embedded store lives in ODIN_HOME: say so when that cannot be
            settings.home.mkdir(parents=True, exist_ok=True)
        odin = await Odin.open(settings)
    except OSError as e:
        raise OdinError(
            f"cannot use ODIN_HOME {settings.home}: {e.strerror or e}; "
            "point --home (or ODIN_HOME) at a writable directory"
        ) from None
    try:
        yield odin
    finally:
        await odin.close()


@asynccontextmanager
async def open_remote(cli_state: CliState) -> AsyncIterator[Any]:
    """The remote core (ws://) or gateway (http(s)://) given by --server."""
    assert cli_state.server
    async with open_backend(cli_state) as remote:
        yield remote


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


def is_remote(odin: Any) -> bool:
    """Whether ``odin`` is a remote core or gateway, not the engine in this process (its runs go on without it)."""
    from odin_core.api import Odin

    return not isinstance(odin, Odin)


def print_problems(error: SpecError, console: Console) -> None:
    """Every problem on its own line: ``file:line:col: field: message (hint)``."""
    for problem in error.problems:
        console.print(str(problem), markup=False, soft_wrap=True)
    count = len(error.problems)
    console.print(f"[red]pipeline is invalid: {count} problem{'s' if count != 1 else ''}[/]")


def fail(message: str, code: int = EXIT_FAILED) -> None:
    """Print an error in red on stderr and leave with ``code`` (never a traceback)."""
    make_console(stderr=True).print(f"[red]error:[/] {_escape(message)}", soft_wrap=True)
    raise SystemExit(code)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def auth_message(error: AuthError, cli_state: CliState) -> str:
    """What to do about a refused request: give a token, or check the one given."""
    if cli_state.token is None:
        return f"the Odin server at {cli_state.server} needs a token: pass --token TOKEN or set ODIN_TOKEN"
    return f"{error}; check --token / ODIN_TOKEN"


def os_message(error: OSError) -> str:
    """A file-system error in one line, naming the file."""
    return f"{error.strerror or error}: {error.filename}" if error.filename else str(error.strerror or error)


def run_async(coro: Coroutine[Any, Any, T], *, spec_exit: int = EXIT_INVALID, cli_state: CliState | None = None) -> T:
    """Run one command's coroutine; expected errors become a red message and an exit code."""
    try:
        return asyncio.run(coro)
    except SpecError as e:
        print_problems(e, make_console(stderr=True))
        raise SystemExit(spec_exit) from None
    except AuthError as e:
        fail(auth_message(e, cli_state or CliState()) if cli_state and cli_state.server else str(e))
    except OdinError as e:
        fail(str(e))
    except ValueError as e:  # bad settings, e.g. an unsupported ODIN_STORE URL
        fail(str(e))
    except OSError as e:  # an ODIN_HOME that cannot be created, a full disk
        fail(os_message(e))
    except KeyboardInterrupt:  # Ctrl-C outside `odin run`'s own handling (connecting, reading)
        fail("interrupted", EXIT_INTERRUPTED)
    raise AssertionError("unreachable")


def engine_command(fn: Callable[..., Awaitable[int | None]]) -> Callable[..., None]:
    """Turn ``async def cmd(odin, **options) -> exit code`` into a click callback using the embedded engine
    (or, with ``--server``, a ``RemoteOdin``: the same API over the core's WebSocket protocol)."""

    @functools.wraps(fn)
    def wrapper(**kwargs: Any) -> None:
        cli_state = state()

        async def body() -> int | None:
            async with open_backend(cli_state) as odin:
                return await fn(odin, **kwargs)

        code = run_async(body(), cli_state=cli_state)
        if code:
            raise SystemExit(code)

    return wrapper
