"""The ``odin`` command: runs pipelines in-process on the embedded default and inspects their runs.

Every command opens the engine on ``$ODIN_HOME`` (SQLite store, local executor); ``--home``
overrides it. ``odin run`` is itself the engine of the run it starts. With ``--server URL`` the
same commands drive a remote core (``odin-core serve``) over its WebSocket protocol instead.
"""

from __future__ import annotations

import copy
import inspect
from pathlib import Path

import click

from .. import __version__
from .commands_drive import drive_cmd
from .commands_gateway import GATEWAY_COMMANDS
from .commands_gpus import gpus_cmd, nodes_cmd, top_cmd
from .commands_inspect import cleanup_cmd, data_cmd, events_cmd, logs_cmd, status_cmd
from .commands_run import resubmit_cmd, run_cmd
from .commands_spec import show_cmd, validate_cmd
from .commands_stop import stop_cmd
from .common import CliState

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
REMOTE_JOB_NOTE = "With --server, DIR is a job path relative to the server's --root-path (it need not exist here)."


class OdinGroup(click.Group):
    """With --server, `odin run/validate/show DIR` name a job on the server: DIR is not checked against this
    machine's files."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if command in (run_cmd, validate_cmd, show_cmd) and command is not None and ctx.params.get("server"):
            command = copy.copy(command)
            command.help = f"{inspect.cleandoc(command.help or '')}\n\n{REMOTE_JOB_NOTE}"
            command.params = [_remote_path(p) for p in command.params]
        return name, command, rest


def _remote_path(param: click.Parameter) -> click.Parameter:
    if not isinstance(param.type, click.Path) or not param.type.exists:
        return param
    param = copy.copy(param)
    param.type = click.Path(file_okay=False, path_type=Path)
    return param


@click.group(cls=OdinGroup, context_settings=CONTEXT)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="ODIN_HOME",
    default=None,
    help="Where runs are stored (the SQLite store and run data). [env: ODIN_HOME; default: ~/.odin]",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "kubernetes"]),
    envvar="ODIN_EXECUTOR",
    default=None,
    help="Where `odin run` runs tasks: local processes, or a Kubernetes cluster. [env: ODIN_EXECUTOR; default: local]",
)
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="ODIN_KUBECONFIG",
    default=None,
    help="Kubeconfig for --executor kubernetes (default: in-cluster, then ~/.kube/config). [env: ODIN_KUBECONFIG]",
)
@click.option(
    "--namespace",
    "-n",
    envvar="ODIN_NAMESPACE",
    default=None,
    help="Namespace for --executor kubernetes. [env: ODIN_NAMESPACE; default: default]",
)
@click.option(
    "--server",
    envvar="ODIN_SERVER",
    default=None,
    metavar="URL",
    help="Drive a remote core (`odin-core serve`, e.g. ws://127.0.0.1:30000) instead of the engine here; every "
    "command goes to it, and DIR (run, validate, show) names a job path relative to the server's --root-path. "
    "[env: ODIN_SERVER]",
)
@click.option(
    "--token",
    envvar="ODIN_TOKEN",
    default=None,
    help="Token (or JWT) presented to --server as `Authorization: Bearer`; prefer the environment variable "
    "(arguments are visible to other users in `ps`). [env: ODIN_TOKEN]",
)
@click.version_option(__version__, prog_name="odin")
@click.pass_context
def cli(
    ctx: click.Context,
    home: Path | None,
    executor: str | None,
    kubeconfig: Path | None,
    namespace: str | None,
    server: str | None,
    token: str | None,
) -> None:
    """Odin runs ML pipelines: a directory with main.yml whose tasks form a DAG.

    \b
    Quick start:
      odin validate samples/hello     check a pipeline
      odin run samples/hello          run it here, following its tasks
      odin run samples/ml-sweep -d    run it in the background; prints the run id
      odin status                     the most recent runs, one line each
      odin logs <run id>--greet       a task's log
      odin resubmit <run id>          run an ended run again, reusing its succeeded tasks
      odin --executor kubernetes --kubeconfig ~/.kube/config run samples/hello
                                      run it on a cluster, one Pod per task
      odin --server ws://127.0.0.1:30000 run hello
                                      run the job `hello` (under the server's --root-path) on a remote core
    """
    ctx.obj = CliState(
        home=home, executor=executor, kubeconfig=kubeconfig, namespace=namespace, server=server, token=token
    )


COMMANDS = (
    run_cmd,
    resubmit_cmd,
    status_cmd,
    logs_cmd,
    data_cmd,
    events_cmd,
    stop_cmd,
    cleanup_cmd,
    show_cmd,
    validate_cmd,
    drive_cmd,
)
for command in COMMANDS:
    cli.add_command(command)
for command in GATEWAY_COMMANDS:  # login, logout, push, jobs, history, user: the HTTP gateway's (--server https://…)
    cli.add_command(command)
for command in (gpus_cmd, nodes_cmd, top_cmd):  # the cluster's GPUs, from the gateway (commands_gpus.py)
    cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns the exit code."""
    try:
        cli.main(args=argv, prog_name="odin", standalone_mode=True)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BrokenPipeError:  # `odin status | head`: the reader is gone, which is not an error
        _quiet_stdout()
        return 0
    return 0


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not complain about the closed pipe."""
    import os
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    raise SystemExit(main())
