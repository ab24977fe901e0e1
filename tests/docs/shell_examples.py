"""The shell examples of the project's Markdown, and how to tell what they promise (pure: text in, records out).

A fenced block is a shell example when its info string is ``bash``, ``sh``, ``shell`` or ``console``, or when it
has no info string (or ``text``) and holds prompt lines (``$ command``). The line before the fence may say how the
docs test treats it::

    <!-- docs-test: skip (needs a Kubernetes cluster) -->    never run; the reason is required
    <!-- docs-test: server -->                               run with an `odin-core serve` over samples/ started for
                                                             it; ws://127.0.0.1:30000 in commands is that server
    <!-- docs-test: only "make demo" (why not the rest) -->   run only the commands that start with the quoted text

Prompt blocks: each ``$ command`` runs; the lines after it are what it prints (``...`` skips lines; a line ending
in ``...`` is a prefix), and ``$ echo $?`` states the exit code of the command before it. Blocks without prompts:
the block runs as one script (``set -e``) that must exit 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SHELL_INFOS = frozenset({"bash", "sh", "shell", "console"})
PLAIN_INFOS = frozenset({"", "text"})
MARKER = re.compile(r"<!--\s*docs-test:\s*(?P<what>skip|server|only)\b\s*(?P<why>.*?)\s*-->")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<info>[\w-]*)\s*$")
DEFAULT_SERVER = "ws://127.0.0.1:30000"

# What varies from one run to the next, as the doc shows it -> the regex of what it may be when the example runs.
_AGE = re.compile(r"\d+[smhd] ago|\d{4}-\d\d-\d\d")
_DURATION = re.compile(r"\b\d+(?:\.\d+)?s\b|\b\d+m\d\ds\b|\b\d+h\d\dm\b")
_PATH = re.compile(r"(?<![\w/-])/[\w./@~+-]*")
_RUN_ID = re.compile(r"\b([a-z][a-z0-9]*(?:-[a-z0-9]+)*?)-[a-z0-9]{8}\b")  # <name>-<8 random characters>
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_VOLATILE: list[tuple[re.Pattern[str], str]] = [
    (_AGE, r"(?:\d+[smhd] ago|\d{4}-\d\d-\d\d)"),
    (_DURATION, r"(?:\d+(?:\.\d+)?s|\d+m\d\ds|\d+h\d\dm)"),
    (_PATH, r"/\S*"),
    (_RUN_ID, ""),  # the name kept, the random part any
    (_NUMBER, r"\d+(?:\.\d+)?"),  # pids, times, scores, counts, ports
]
_TOKEN = re.compile("|".join(f"(?:{p.pattern})" for p, _ in _VOLATILE) + r"|\s+")


@dataclass(frozen=True)
class Command:
    line: int  # where it is written (1-based)
    text: str
    shown: tuple[str, ...] = ()  # what the doc shows it printing
    exit_code: int | None = 0  # None: any non-zero (the doc shows an error but not its code)


@dataclass(frozen=True)
class Example:
    path: Path
    line: int  # the opening fence
    info: str
    commands: tuple[Command, ...]
    skip: str | None = None  # the reason, when it is marked skip
    server: bool = False
    only: str | None = None  # run only the commands that start with this
    prompts: bool = False  # `$ command` lines with what they print; else a script

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


@dataclass
class _Block:
    line: int
    info: str
    lines: list[tuple[int, str]] = field(default_factory=list)
    marker: tuple[str, str] | None = None


def examples(path: Path) -> list[Example]:
    """Every shell example of a Markdown file, in order."""
    text = path.read_text()
    found = []
    for block in _blocks(text.splitlines()):
        prompts = any(line.startswith("$ ") for _, line in block.lines)
        if block.info not in SHELL_INFOS and not (block.info in PLAIN_INFOS and prompts):
            continue
        what, why = block.marker or ("", "")
        commands = _prompt_commands(block.lines) if prompts else _script_commands(block.lines)
        only = re.match(r'"([^"]+)"', why) if what == "only" else None
        if only is not None:
            commands = [c for c in commands if c.text.startswith(only.group(1))]
        skip = why if what == "skip" else None
        found.append(Example(path, block.line, block.info, tuple(commands), skip=skip, server=what == "server",
                             only=only.group(1) if only else None, prompts=prompts))  # fmt: skip
    return found


def _blocks(lines: list[str]) -> list[_Block]:
    blocks: list[_Block] = []
    current: _Block | None = None
    indent = ""
    for number, line in enumerate(lines, start=1):
        fence = FENCE.match(line)
        if current is None:
            if fence:
                indent = fence.group("indent")
                current = _Block(number, fence.group("info"), marker=_marker_before(lines, number - 1))
            continue
        if fence and fence.group("indent") == indent and not fence.group("info"):
            blocks.append(current)
            current = None
            continue
        current.lines.append((number, line[len(indent) :] if line.startswith(indent) else line.lstrip()))
    return blocks


def _marker_before(lines: list[str], fence_index: int) -> tuple[str, str] | None:
    i = fence_index - 1
    while i >= 0 and not lines[i].strip():
        i -= 1
    found = MARKER.search(lines[i]) if i >= 0 else None
    if not found:
        return None
    why = found.group("why").strip()
    return found.group("what"), why[1:-1] if why.startswith("(") and why.endswith(")") else why


def _prompt_commands(lines: list[tuple[int, str]]) -> list[Command]:
    written: list[tuple[int, str, list[str]]] = []  # (line, command, what it shows)
    for number, line in lines:
        if line.startswith("$ "):
            written.append((number, line[2:].strip(), []))
        elif written:
            written[-1][2].append(line.rstrip())
    commands = []
    for i, (number, text, shown) in enumerate(written):
        if text == "echo $?":
            continue  # not run: it states the exit code of the command before it
        after = written[i + 1] if i + 1 < len(written) else None
        if after is not None and after[1] == "echo $?":
            code = after[2][0].strip() if after[2] else ""
            exit_code: int | None = int(code) if code.isdigit() else None
        else:
            exit_code = None if shown and shown[0].startswith("error:") else 0
        commands.append(Command(number, text, tuple(shown), exit_code))
    return commands


def _script_commands(lines: list[tuple[int, str]]) -> list[Command]:
    return [Command(n, line.strip()) for n, line in lines if line.strip() and not line.strip().startswith("#")]


def as_script(commands: tuple[Command, ...]) -> Command:
    """A block without prompts as one script, as a reader pastes it (``export`` and ``cd`` carry over); it stops at
    the first command that fails."""
    return Command(commands[0].line, "set -e\n" + "\n".join(c.text for c in commands))


def line_pattern(shown: str) -> re.Pattern[str] | None:
    """The regex an output line must match for the doc's ``shown`` line (None: ``...``, anything)."""
    text = shown.strip()
    if text in ("", "...", "…"):
        return None
    prefix = text.endswith(("...", "…"))
    text = text.removesuffix("...").removesuffix("…").rstrip()
    out, pos = [], 0
    for m in _TOKEN.finditer(text):
        out.append(re.escape(text[pos : m.start()]))
        out.append(_volatile(m.group(0)))
        pos = m.end()
    out.append(re.escape(text[pos:]))
    return re.compile("".join(out) + ("" if prefix else r"\s*$"))


def _volatile(token: str) -> str:
    if token.isspace():
        return r"\s+"
    for pattern, regex in _VOLATILE:
        found = pattern.fullmatch(token)
        if found:
            return re.escape(found.group(1)) + "-[a-z0-9]{8}" if pattern is _RUN_ID else regex
    return re.escape(token)


def missing_lines(shown: tuple[str, ...], actual: str) -> list[str]:
    """The doc's lines not found in ``actual``, in order (each doc line matches a later actual line than the one
    before it)."""
    lines = [line.rstrip() for line in actual.splitlines()]
    missing, at = [], 0
    for doc_line in shown:
        pattern = line_pattern(doc_line)
        if pattern is None:
            continue
        for i in range(at, len(lines)):
            if pattern.match(lines[i].strip()):
                at = i + 1
                break
        else:
            missing.append(doc_line)
    return missing


__all__ = ["DEFAULT_SERVER", "Command", "Example", "as_script", "examples", "line_pattern", "missing_lines"]
