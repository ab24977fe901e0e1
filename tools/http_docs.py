#!/usr/bin/env python3
"""Regenerate the settings reference of docs/gateway.md from odin_http.settings (between its markers)."""

from __future__ import annotations

from pathlib import Path

from odin_http.settings import markdown

DOC = Path(__file__).resolve().parents[1] / "docs" / "gateway.md"
START, END = "<!-- settings:begin -->\n", "<!-- settings:end -->"


def main() -> None:
    text = DOC.read_text()
    head, rest = text.split(START, 1)
    _old, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{START}{markdown()}{END}{tail}")
    print(f"updated {DOC}")


if __name__ == "__main__":
    main()
