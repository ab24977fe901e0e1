"""Helpers of the pipeline tests."""

from __future__ import annotations

import textwrap


def one_task(extra: str = "", name: str = "t") -> str:
    """A pipeline with one task; ``extra`` holds more task fields (unindented YAML, from line 5). A field ``extra``
    sets replaces the default one (whose line becomes a comment, so lines keep their numbers): a key written twice
    is a problem of its own."""
    given = {line.split(":", 1)[0] for line in extra.splitlines() if ":" in line and not line.startswith(" ")}
    image = "# image given below" if "image" in given else "image: img"
    command = "# command given below" if "command" in given else "command: run"
    body = textwrap.indent(extra, "    ")
    return f"tasks:\n  - name: {name}\n    {image}\n    {command}\n{body}\n"
