"""The docs are true: every shell example of README.md and docs/*.md runs, and prints what the doc shows.

Each Markdown file's examples run in order, as a reader would type them, in one fresh ODIN_HOME and a working
directory that holds the repository's samples/ and docs/ (so relative paths read as in the docs). A command must
exit as the doc says (0, the code after `$ echo $?`, non-zero when it shows an `error:`), print no traceback, and
print every line the doc shows, in order, up to what varies between runs (times, durations, pids, paths, the random
part of run ids, numbers). Examples that cannot run on one machine are marked in the Markdown (see
``shell_examples``), with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from shell_examples import DEFAULT_SERVER, Example, as_script, examples, missing_lines

REPO = Path(__file__).resolve().parents[2]
OWN_TEST = {"tutorial-microk8s.md"}  # marks and runs its blocks itself: tests/deploy/test_tutorial.py
DOCS = [REPO / "README.md", *sorted(p for p in (REPO / "docs").glob("*.md") if p.name not in OWN_TEST)]
COPIED = ("samples", "docs")  # copied, so job paths read as in the docs (samples/retry, not the link's target)
SKIPPED = frozenset({".git", ".venv", *COPIED})  # everything else of the repository is linked (make demo needs it)
COMMAND_TIMEOUT_S = 300
pytestmark = pytest.mark.timeout(1200)


def runnable(doc: Path) -> list[Example]:
    return [e for e in examples(doc) if e.skip is None and e.commands]


def test_every_shell_example_runs_or_says_why_not() -> None:
    found = [e for doc in DOCS for e in examples(doc)]
    assert any(e.path.name == "cli.md" for e in found) and any(e.path.name == "README.md" for e in found)
    unexplained = [e.where for e in found if e.skip is not None and not e.skip.strip()]
    assert not unexplained, f"a skipped example must say why: {unexplained}"
    empty = [e.where for e in found if e.skip is None and not e.commands]
    assert not empty, f"marked examples that run nothing: {empty}"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    for name in COPIED:
        shutil.copytree(REPO / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    for entry in REPO.iterdir():
        if entry.name not in SKIPPED and not entry.name.endswith("_cache"):
            (work / entry.name).symlink_to(entry)
    (work / ".venv").symlink_to(Path(sys.prefix))  # `make demo` runs .venv/bin/odin
    return work


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ODIN_", "MAKE", "MFLAGS"))}
    path = f"{Path(sys.executable).parent}{os.pathsep}{clean.get('PATH', '')}"
    return {**clean, "PATH": path, "ODIN_HOME": str(tmp_path / "docs-home"), "NO_COLOR": "1", "COLUMNS": "200"}


@contextmanager
def core_server(root: Path, tmp_path: Path, env: dict[str, str]) -> Iterator[str]:
    """`odin-core serve` over ``root`` on a free port; its URL."""
    home = tmp_path / "server-home"
    proc = subprocess.Popen(
        [sys.executable, "-m", "odin_core", "serve", "--port", "0", "--root-path", str(root), "--home", str(home)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # "odin-core X serving ws://127.0.0.1:PORT (root ...)"
        found = re.search(r"serving (ws://\S+)", line)
        assert found, f"odin-core serve did not start: {line!r}"
        yield found.group(1)
    finally:
        proc.terminate()
        proc.wait(30)


def run_example(example: Example, workdir: Path, env: dict[str, str], server: str | None) -> list[str]:
    """What is wrong with the example (empty when it is true)."""
    problems = []
    for command in example.commands if example.prompts else (as_script(example.commands),):
        text = command.text.replace(DEFAULT_SERVER, server) if server else command.text
        done = subprocess.run(
            ["bash", "-c", text], cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, timeout=COMMAND_TIMEOUT_S,
        )  # fmt: skip
        where = f"{example.path.name}:{command.line}: $ {command.text}"
        out = done.stdout.replace(str(workdir), "/work")
        code_ok = done.returncode != 0 if command.exit_code is None else done.returncode == command.exit_code
        if not code_ok:
            expected = "non-zero" if command.exit_code is None else command.exit_code
            problems.append(f"{where}\n  exited {done.returncode}, the doc says {expected}:\n{_indent(out)}")
        elif "Traceback (most recent call last)" in out:
            problems.append(f"{where}\n  printed a traceback:\n{_indent(out)}")
        else:
            missing = missing_lines(command.shown, out)
            if missing:
                shown = "\n".join(f"    {line}" for line in missing)
                problems.append(
                    f"{where}\n  the doc shows lines it did not print:\n{shown}\n  it printed:\n{_indent(out)}"
                )
    return problems


def _indent(text: str) -> str:
    return "\n".join(f"    | {line}" for line in text.rstrip().splitlines()[-40:])


@pytest.mark.parametrize("doc", [d for d in DOCS if runnable(d)], ids=lambda d: d.name)
def test_the_shell_examples_of(doc: Path, workdir: Path, env: dict[str, str], tmp_path: Path) -> None:
    problems = []
    try:
        for example in runnable(doc):
            if example.server:
                with core_server(workdir / "samples", tmp_path, env) as url:
                    problems += run_example(example, workdir, env, url)
            else:
                problems += run_example(example, workdir, env, None)
    finally:
        stop_what_is_left(workdir, env)
    assert not problems, "\n\n".join(problems)


def stop_what_is_left(workdir: Path, env: dict[str, str]) -> None:
    """An example that failed half-way may leave a detached run going: stop it, so no driver outlives the test."""
    odin = [sys.executable, "-m", "odin_client"]
    listed = subprocess.run([*odin, "status", "--active", "--all", "-o", "json"], cwd=workdir, env=env,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    for entry in json.loads(listed.stdout or "[]") if listed.returncode == 0 else []:
        subprocess.run([*odin, "stop", entry["run"]["run_id"]], cwd=workdir, env=env, capture_output=True, timeout=90)
