"""``midgard``: run the node agent (see ``midgard --help``; every flag also has a MIDGARD_* variable)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import Sequence

from .agent import Agent
from .server import serve
from .settings import AgentSettings, SettingsError, build


async def _once(settings: AgentSettings) -> int:
    agent = Agent(settings)
    try:
        rep = await agent.collect()
    finally:
        await agent.close()
    json.dump(rep, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


async def _run(settings: AgentSettings) -> int:
    agent = Agent(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        runner, port = await serve(agent, settings.listen_host, settings.port)
    except OSError as e:
        print(f"midgard: cannot listen on {settings.listen_host}:{settings.port}: {e.strerror or e}", file=sys.stderr)
        return 2
    agent.start()
    with contextlib.suppress(TimeoutError):  # say "listening" once there is something to serve (or after a while)
        await agent.wait_for(1, timeout_s=3 * settings.interval_s + 30)
    logging.getLogger("midgard").info("serving on %s:%d (push to %s)", settings.listen_host, port,
                                      settings.gateway_url or "nobody")  # fmt: skip
    print(f"midgard listening on {settings.listen_host}:{port}", flush=True)
    try:
        await stop.wait()
    finally:
        await agent.close()
        await runner.cleanup()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings, args = build(argv)
    except SettingsError as e:
        print(f"midgard: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.settings:
        json.dump(settings.public(), sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    return asyncio.run(_once(settings) if args.once else _run(settings))


if __name__ == "__main__":
    sys.exit(main())
