"""``odin-http``: ``serve`` the gateway, or print its configuration reference (``settings --markdown``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from . import __version__
from .errors import OdinError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="odin-http",
        description="Odin's HTTP gateway. Every setting is an environment variable (ODIN_HTTP_*) or a key of the "
        "TOML file named by ODIN_HTTP_CONFIG: `odin-http settings` lists them.",
    )
    p.add_argument("--version", action="version", version=f"odin-http {__version__}")
    sub = p.add_subparsers(dest="command")
    sub.add_parser("serve", help="serve the REST API (default)")
    s = sub.add_parser("settings", help="print every setting, its variable and default")
    s.add_argument("--markdown", action="store_true", help="as the Markdown tables of docs/gateway.md")
    return p


async def _serve() -> None:
    from .app import serve
    from .settings import Settings

    settings = Settings.from_env()
    logging.getLogger("odin").setLevel(settings.server.log_level.upper())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(settings) as (_gateway, url):
        print(f"odin-http {__version__} serving {url}/v1 (core {settings.core.url})", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "settings":
        from .settings import describe, markdown

        if args.markdown:
            print(markdown(), end="")
        else:
            for d in describe():
                print(f"{d.env:<44} {d.default:<24} {d.doc}")
        return 0
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve())
    except (OdinError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
