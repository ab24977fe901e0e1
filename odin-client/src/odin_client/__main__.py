"""``python -m odin_client``: the same command as ``odin``."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
