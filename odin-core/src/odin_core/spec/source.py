"""Read ``main.yml`` into plain data plus the position of every node, so problems can point at the text.

PyYAML's ``compose`` keeps marks on nodes but loses them on construction; this module walks the node tree
itself (anchors, aliases and ``<<:`` merge keys included) and records, per field path, the line and column of
each value and of each mapping key, and the raw text of each scalar (so ``args: [0.0010]`` stays ``"0.0010"``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import Problem

FieldPath = tuple[str | int, ...]
Mark = tuple[int, int]  # 1-based line, column
MAX_REPEATED_NODES = 100_000
"""Nodes that aliases (``<<:`` merges among them) may repeat in one document, all together: a file of a few
hundred bytes whose aliases nest ("billion laughs") would otherwise expand to billions of values and take the
memory of the process reading it. Each use of an alias counts the nodes it repeats."""


def format_path(path: FieldPath) -> str:
    """``("tasks", 2, "num_gpus")`` -> ``tasks[2].num_gpus`` (how problems name a field)."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


@dataclass
class Source:
    """A parsed pipeline file: its data and where each part of it was written."""

    file: str
    data: Any = None
    marks: dict[FieldPath, Mark] = field(default_factory=dict)
    key_marks: dict[FieldPath, Mark] = field(default_factory=dict)
    raw: dict[FieldPath, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)  # found while parsing, none of them fatal (duplicate keys)

    def mark(self, path: FieldPath, *, key: bool = False) -> Mark:
        """Position of a value (or its key), falling back to the closest enclosing node that has one."""
        table = self.key_marks if key else self.marks
        if path in table:
            return table[path]
        while path:
            path = path[:-1]
            if path in self.marks:
                return self.marks[path]
        return (1, 1)

    def problem(self, path: FieldPath, message: str, hint: str = "", *, key: bool = False) -> Problem:
        line, column = self.mark(path, key=key)
        return Problem(self.file, line, column, format_path(path), message, hint)


def read_source(
    job_dir: Path, file: str, *, shown: str | None = None, root: Path | None = None
) -> Source | list[Problem]:
    """Parse ``job_dir/file``; on a missing file or a YAML error, the single problem that stops loading.

    Problems name the file as ``shown`` (the path the user gave). With ``root``, a file whose resolved path
    leaves it (a link to ``/etc/passwd``) is refused unread.
    """
    target = job_dir / file
    shown = shown or file
    if not job_dir.is_dir():
        return [
            Problem(
                shown,
                0,
                0,
                "",
                f"pipeline directory {str(job_dir)!r} does not exist or is not a directory",
                f"give the directory that holds the pipeline's {file}",
            )
        ]
    if not target.is_file():
        hint = f"a pipeline directory holds its definition in {file}"
        return [Problem(shown, 0, 0, "", f"no {file} in pipeline directory {str(job_dir)!r}", hint)]
    if root is not None and not target.resolve().is_relative_to(root.resolve()):
        return [Problem(shown, 0, 0, "", f"{file} is a link to a file outside the pipelines root {str(root)!r}")]
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        return [Problem(shown, 0, 0, "", f"cannot read {file}: {e}")]
    return parse_source(text, shown)


def parse_source(text: str, file: str) -> Source | list[Problem]:
    """Parse YAML text (safe loader only) into a :class:`Source`."""
    loader = yaml.SafeLoader(text)
    source = Source(file)
    try:
        node = loader.get_single_node()
        if node is not None:
            source.data = _Walker(loader, source).value(node, ())
    except yaml.MarkedYAMLError as e:
        return [_yaml_problem(e, file)]
    except yaml.YAMLError as e:
        return [Problem(file, 1, 1, "", f"invalid YAML: {e}")]
    except _Recursive as e:
        return [source.problem(e.path, "a YAML alias refers to a node that contains it")]
    except RecursionError:
        return [Problem(file, 1, 1, "", "the YAML nests too deeply to be read", "a pipeline nests a few levels deep")]
    except _TooBig as e:
        return [
            source.problem(  # at the top-level key holding it (deeper paths run through the aliased text)
                e.path[:1],
                f"YAML aliases repeat more than {MAX_REPEATED_NODES:,} values here",
                "write the repeated parts out, or nest fewer aliases in each other",
                key=True,
            )
        ]
    finally:
        loader.dispose()
    return source


_OPENERS = {  # contexts whose mark is where something was opened and never closed
    "while parsing a flow sequence": "this '[' is not closed",
    "while parsing a flow mapping": "this '{' is not closed",
    "while scanning a quoted scalar": "this quote is not closed",
}


def _yaml_problem(e: yaml.MarkedYAMLError, file: str) -> Problem:
    """The YAML error at the place to fix: an unclosed bracket or quote where it was opened (the parser only
    notices on a later line), anything else where the parser stopped."""
    opened = _OPENERS.get(str(e.context)) if e.context_mark is not None else None
    mark = e.context_mark if opened else e.problem_mark or e.context_mark
    if opened:
        after = f" at line {e.problem_mark.line + 1}" if e.problem_mark is not None else ""
        message = f"invalid YAML: {opened} ({e.problem}{after})"
    else:
        message = "invalid YAML: " + (" ".join(str(m) for m in (e.context, e.problem) if m) or "syntax error")
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    return Problem(file, line, column, "", message, "check indentation, quotes and colons")


class _Recursive(Exception):
    def __init__(self, path: FieldPath) -> None:
        self.path = path


class _TooBig(Exception):
    def __init__(self, path: FieldPath) -> None:
        self.path = path


class _Walker:
    """Builds plain data from nodes while filling the source's position tables."""

    def __init__(self, loader: yaml.SafeLoader, source: Source) -> None:
        self.loader = loader
        self.source = source
        self.active: set[int] = set()  # nodes on the current path, to catch recursive aliases
        self.walked: set[int] = set()  # nodes met once; meeting one again (an alias) counts against the budget
        self.repeated = 0

    def value(self, node: yaml.Node, path: FieldPath) -> Any:
        if id(node) in self.walked:
            self.repeated += 1
            if self.repeated > MAX_REPEATED_NODES:
                raise _TooBig(path)
        else:
            self.walked.add(id(node))
        self.source.marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            self.source.raw[path] = node.value
            return self.loader.construct_object(node)
        if id(node) in self.active:
            raise _Recursive(path)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.value(item, (*path, i)) for i, item in enumerate(node.value)]
            assert isinstance(node, yaml.MappingNode)
            return self.mapping(node, path)
        finally:
            self.active.discard(id(node))

    def mapping(self, node: yaml.MappingNode, path: FieldPath) -> dict[Any, Any]:
        written = {id(k) for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"}  # not merged in
        self.loader.flatten_mapping(node)  # resolves "<<:" merge keys in place (merged pairs first)
        out: dict[Any, Any] = {}
        first: dict[Any, Mark] = {}  # where each key written in this mapping was written first
        for key_node, value_node in node.value:
            key = self.loader.construct_object(key_node)
            if isinstance(key, (list, dict)):
                key = str(key)
            child = (*path, key)
            mark = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if id(key_node) in written:
                if key in first:  # YAML allows no repeated key; PyYAML would keep the last one, silently
                    where = f"line {first[key][0]}"
                    self.source.problems.append(
                        Problem(
                            self.source.file,
                            *mark,
                            format_path(child),
                            f"{key!r} is written twice in this mapping (first at {where})",
                            "keep one: the second would replace the first",
                        )
                    )
                    continue
                first[key] = mark
            self.source.key_marks[child] = mark
            out[key] = self.value(value_node, child)
        return out
