"""``odin-core``: the core's own command (the WebSocket server arrives with its issue)."""

from __future__ import annotations

import sys

from . import __version__


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("--version", "version"):
        print(f"odin-core {__version__}")
        return 0
    print("usage: odin-core --version\n(the `odin` command runs pipelines; see `odin --help`)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
