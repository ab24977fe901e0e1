"""Pipelines without running them: ``odin validate`` and ``odin show``.

Locally they read the directories given. With ``--server`` the jobs are named relative to the server's
pipelines root and the server is asked: VALIDATE checks a job there, SHOW returns its files, which are
parsed here exactly as the server parses them.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import click
from odin_core.errors import Problem, SpecError

from .common import (
    EXIT_FAILED,
    EXIT_INVALID,
    JOB_DIR,
    OUTPUT_TEXT,
    CliState,
    make_console,
    open_remote,
    print_problems,
    run_async,
    state,
)
from .fmt import dump


@dataclasses.dataclass(frozen=True)
class Checked:
    job: str
    tasks: int
    problems: tuple[Problem, ...]

    @property
    def valid(self) -> bool:
        return not self.problems

    def to_record(self) -> dict[str, Any]:
        problems = [p.to_dict() for p in self.problems]
        return {"job": self.job, "valid": self.valid, "tasks": self.tasks, "problems": problems}


@click.command("validate", short_help="Check pipelines without running them.")
@click.argument("job_dirs", metavar="DIR...", nargs=-1, required=True, type=JOB_DIR)
@OUTPUT_TEXT
def validate_cmd(job_dirs: tuple[Path, ...], output: str) -> None:
    """Check pipelines without running them; every problem is listed with file:line:column.

    With --server, DIR names a job under the server's pipelines root and the server checks it.
    Exit code 1 when any pipeline is invalid.

    \b
    Examples:
      odin validate samples/hello
      odin validate samples/* -o json
      odin --server ws://127.0.0.1:30000 validate team/train
    """
    cli_state = state()
    checked = run_async(_validate_remote(cli_state, job_dirs)) if cli_state.server else _validate_local(job_dirs)
    if output != "text":
        click.echo(dump([c.to_record() for c in checked], output))
    else:
        out, err = make_console(), make_console(stderr=True)
        for c in checked:
            if c.valid:
                out.print(f"{c.job}: valid ({c.tasks} task{'s' if c.tasks != 1 else ''})", markup=False)
            else:
                err.print(f"[bold]{c.job}[/]: [red]invalid[/]")
                print_problems(SpecError(list(c.problems)), err)
    if any(not c.valid for c in checked):
        raise SystemExit(EXIT_FAILED)


def _validate_local(job_dirs: tuple[Path, ...]) -> list[Checked]:
    from odin_core.spec import load_pipeline

    checked = []
    for job_dir in job_dirs:
        try:
            spec = load_pipeline(job_dir)
        except SpecError as e:
            checked.append(Checked(str(job_dir), 0, tuple(e.problems)))
            continue
        checked.append(Checked(str(job_dir), len(spec.tasks), ()))
    return checked


async def _validate_remote(cli_state: CliState, jobs: tuple[Path, ...]) -> list[Checked]:
    fields = {f.name for f in dataclasses.fields(Problem)}
    checked = []
    async with open_remote(cli_state) as odin:
        for job in jobs:
            reply = await odin.validate(str(job))
            problems = tuple(Problem(**{k: v for k, v in p.items() if k in fields}) for p in reply["problems"])
            checked.append(Checked(str(job), int(reply.get("tasks") or 0), problems))
    return checked


@click.command("show", short_help="The expanded pipeline, or its task graph.")
@click.argument("job_dir", metavar="DIR", type=JOB_DIR)
@click.option("--graph", is_flag=True, help="Show the task graph instead of the expanded spec.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "dot"]),
    default="text",
    show_default=True,
    help="Graph format: text, or Graphviz DOT (`| dot -Tsvg > dag.svg`).",
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Choice(["yaml", "json"]),
    default=None,
    help="The spec (or, with --graph, each task's level and dependencies) as YAML or JSON. [default: yaml]",
)
def show_cmd(job_dir: Path, graph: bool, fmt: str, output: str | None) -> None:
    """The pipeline in DIR as Odin understands it: every default and alias expanded, or its DAG.

    With --server, DIR names a job under the server's pipelines root; its files come from the server.

    \b
    Examples:
      odin show samples/ml-sweep
      odin show samples/ml-sweep -o json
      odin show samples/ml-sweep --graph
      odin show samples/ml-sweep --graph --format dot | dot -Tpng > dag.png
    """
    from odin_core.spec import spec_to_dict
    from odin_core.spec.graph import levels, to_dot, to_text

    cli_state = state()
    try:
        spec = run_async(_load_remote(cli_state, str(job_dir))) if cli_state.server else _load_local(job_dir)
    except SpecError as e:
        print_problems(e, make_console(stderr=True))
        raise SystemExit(EXIT_INVALID) from None
    if graph and output:
        level = levels(spec)
        tasks = [{"name": t.name, "level": level[t.name], "depends": list(t.depends)} for t in spec.tasks]
        click.echo(dump({"name": spec.name, "tasks": tasks}, output))
    elif graph:
        click.echo((to_dot if fmt == "dot" else to_text)(spec).rstrip("\n"))
    else:
        data = spec_to_dict(spec)
        data.pop("locations", None)  # where each value was written: for error messages, not for reading
        if cli_state.server:
            data["path"] = f"{cli_state.server} {job_dir}"  # the directory is on the server
        click.echo(dump(data, output or "yaml"))


def _load_local(job_dir: Path) -> Any:
    from odin_core.spec import load_pipeline

    return load_pipeline(job_dir)


async def _load_remote(cli_state: CliState, job: str) -> Any:
    """The server's files of ``job`` (SHOW), parsed here under the same job path."""
    from odin_core.spec import load_pipeline

    async with open_remote(cli_state) as odin:
        files = await odin.show(job)
    with tempfile.TemporaryDirectory(prefix="odin-show-") as tmp:
        root = Path(tmp)
        job_dir = root / job.strip("/")
        for name, text in files.items():
            target = (job_dir / name).resolve()
            if not target.is_relative_to(job_dir.resolve()):
                continue  # a name that would leave the job directory: not a file of this job
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        return load_pipeline(job_dir, root=root)
