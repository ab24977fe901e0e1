"""Pipelines without running them: ``odin validate`` and ``odin show``."""

from __future__ import annotations

from pathlib import Path

import click
from odin_core.errors import SpecError

from .common import EXIT_FAILED, EXIT_INVALID, make_console, print_problems
from .fmt import dump

JOB_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


@click.command("validate", short_help="Check pipelines without running them.")
@click.argument("job_dirs", metavar="DIR...", nargs=-1, required=True, type=JOB_DIR)
def validate_cmd(job_dirs: tuple[Path, ...]) -> None:
    """Check pipelines without running them; every problem is listed with file:line:column.

    Exit code 1 when any pipeline is invalid.

    \b
    Examples:
      odin validate samples/hello
      odin validate samples/*
    """
    from odin_core.spec import load_pipeline

    out, err = make_console(), make_console(stderr=True)
    invalid = 0
    for job_dir in job_dirs:
        try:
            spec = load_pipeline(job_dir)
        except SpecError as e:
            invalid += 1
            err.print(f"[bold]{job_dir}[/]: [red]invalid[/]")
            print_problems(e, err)
            continue
        count = len(spec.tasks)
        out.print(f"{job_dir}: valid ({count} task{'s' if count != 1 else ''})", markup=False)
    if invalid:
        raise SystemExit(EXIT_FAILED)


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
def show_cmd(job_dir: Path, graph: bool, fmt: str) -> None:
    """The pipeline in DIR as Odin understands it: every default and alias expanded, or its DAG.

    \b
    Examples:
      odin show samples/ml-sweep
      odin show samples/ml-sweep --graph
      odin show samples/ml-sweep --graph --format dot | dot -Tpng > dag.png
    """
    from odin_core.spec import load_pipeline, spec_to_dict
    from odin_core.spec.graph import to_dot, to_text

    try:
        spec = load_pipeline(job_dir)
    except SpecError as e:
        print_problems(e, make_console(stderr=True))
        raise SystemExit(EXIT_INVALID) from None
    if graph:
        click.echo((to_dot if fmt == "dot" else to_text)(spec).rstrip("\n"))
    else:
        data = spec_to_dict(spec)
        data.pop("locations", None)  # where each value was written: for error messages, not for reading
        click.echo(dump(data, "yaml"))
