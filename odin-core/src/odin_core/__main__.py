"""``odin-core``: the core as a service. ``odin-core serve`` serves the engine over WebSocket."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from . import __version__
from .errors import InvalidRequest, OdinError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="odin-core", description="Odin's core: the DAG engine as a service.")
    p.add_argument("--version", action="version", version=f"odin-core {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser(
        "serve",
        help="serve the engine over the WebSocket protocol (docs/protocol.md)",
        description="Serve the engine over WebSocket. Example: odin-core serve --root-path ./pipelines",
    )
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; others need a token)")
    s.add_argument("--port", type=int, default=30000, help="port (default 30000)")
    s.add_argument(
        "--root-path", type=Path, default=Path("."), help="the pipelines root: jobs are named relative to it"
    )
    s.add_argument("--executor", choices=["local", "kubernetes"], help="where tasks run [env ODIN_EXECUTOR]")
    s.add_argument("--store", help="job store URL, e.g. sqlite:///var/lib/odin/odin.db [env ODIN_STORE]")
    s.add_argument("--home", type=Path, help="ODIN_HOME: default store and run data [env ODIN_HOME]")
    s.add_argument(
        "--token-file",
        metavar="FILE",
        help="file holding the shared secret clients present as a bearer token [env ODIN_TOKEN]",
    )
    s.add_argument(
        "--jwt-secret-file",
        metavar="FILE",
        help="file holding the key of the HS256 JWTs the gateway signs [env ODIN_JWT_SECRET]",
    )
    for refused in ("--token", "--jwt-secret"):  # a secret in argv is visible to every user through `ps`
        s.add_argument(refused, help=argparse.SUPPRESS)
    s.add_argument("--kubeconfig", help="kubeconfig for --executor kubernetes [env ODIN_KUBECONFIG]")
    s.add_argument("--namespace", help="namespace for --executor kubernetes [env ODIN_NAMESPACE]")
    s.add_argument("--log-level", default="INFO")
    m = sub.add_parser(
        "migrate",
        help="bring the job store's schema up to date (serve does this too at start)",
        description="Apply the store's schema migrations and print its version. Example: "
        "ODIN_STORE_PASSWORD_FILE=/run/secrets/pg odin-core migrate --store postgresql://odin@db/odin",
    )
    m.add_argument("--store", help="job store URL [env ODIN_STORE; default: SQLite under ODIN_HOME]")
    m.add_argument("--home", type=Path, help="ODIN_HOME [env ODIN_HOME]")
    m.add_argument("--log-level", default="WARNING")
    return p


async def _migrate(args: argparse.Namespace) -> None:
    from .settings import Settings
    from .store import migrate_store

    env = dict(os.environ)
    env.update({k: str(v) for k, v in {"ODIN_STORE": args.store, "ODIN_HOME": args.home}.items() if v is not None})
    settings = Settings.from_env(env)
    print(await migrate_store(settings.store, settings.store_settings))


def _refuse_secrets_in_argv(args: argparse.Namespace) -> None:
    for flag, value, env in (
        ("--token", args.token, "ODIN_TOKEN"),
        ("--jwt-secret", args.jwt_secret, "ODIN_JWT_SECRET"),
    ):
        if value is not None:
            raise InvalidRequest(
                f"{flag} would put the secret on the command line, where `ps` shows it to every user: "
                f"write it to a file readable only by you and give {flag}-file FILE, or set {env}"
            )


def _secret(path: str | None, from_env: str | None, what: str) -> str | None:
    """A secret from its file (``--token-file``) or the environment; never from argv."""
    from .service.auth import read_secret

    return read_secret(path, what) if path else (from_env or None)


def _root(path: Path) -> Path:
    root = path.expanduser().resolve()
    if not root.is_dir():
        raise InvalidRequest(f"--root-path {str(path)!r} is not a directory: give the directory that holds the jobs")
    return root


async def _serve(args: argparse.Namespace) -> None:
    from .api import Odin
    from .retention import keep_for
    from .service import ServiceSettings, serve_odin
    from .settings import Settings

    env = dict(os.environ)
    given = {
        "ODIN_HOME": args.home,
        "ODIN_EXECUTOR": args.executor,
        "ODIN_STORE": args.store,
        "ODIN_KUBECONFIG": args.kubeconfig,
        "ODIN_NAMESPACE": args.namespace,
    }
    env.update({k: str(v) for k, v in given.items() if v is not None})
    settings = Settings.from_env(env)
    service = ServiceSettings(
        host=args.host,
        port=args.port,
        root_path=_root(args.root_path),
        token=_secret(args.token_file, env.get("ODIN_TOKEN"), "token"),
        jwt_secret=_secret(args.jwt_secret_file, env.get("ODIN_JWT_SECRET"), "JWT secret"),
    )
    service.check()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if settings.executor == "kubernetes":  # a setup problem is one line now, not a failed run later
        from .executors.kubernetes.preflight import check_kubernetes

        await asyncio.to_thread(check_kubernetes, settings.kubernetes)
    async with await Odin.open(settings, root=service.root_path) as odin, serve_odin(odin, service) as server:
        print(f"odin-core {__version__} serving {server.url} (root {service.root_path})", flush=True)
        async with keep_for(odin, settings.store_settings.retention_s):
            await stop.wait()
        logging.getLogger("odin").info("shutting down: runs keep going and are adopted on restart")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("websockets").setLevel(logging.WARNING)  # one line per connection is noise
    try:
        if args.command == "serve":
            _refuse_secrets_in_argv(args)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(args) if args.command == "serve" else _migrate(args))
    except OdinError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
