"""Write the secrets a deployment reads, as files: random keys and passwords, never printed.

    python3 tools/images/gen_secrets.py secrets                        # for docker-compose.yml (./secrets)
    python3 tools/images/gen_secrets.py k8s/overlays/microk8s/secrets  # for an overlay's secretGenerator
    python3 tools/images/gen_secrets.py --db-host 10.0.0.5 k8s/overlays/gke/secrets  # PostgreSQL elsewhere

An existing file is kept (rerunning never rotates a key behind a running deployment's back); ``--rotate NAME``
replaces one. The folder is made 0700 and the files 0644: the folder keeps other users of the machine out, and a
container reads its bind-mounted file as its own non-root user. Only the standard library is used.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

DB_USER = "odin"
DB_NAME = "odin"
DB_HOST = "odin-postgres"  # the Service / compose service name of PostgreSQL


def _token(nbytes: int = 32) -> Callable[[dict[str, str]], str]:
    return lambda _made: secrets.token_urlsafe(nbytes)


def _dsn(made: dict[str, str]) -> str:
    host = made.get("_db_host") or DB_HOST
    return f"postgresql://{DB_USER}:{made['db_password']}@{host}:5432/{DB_NAME}"


# name -> how to make it (in this order: later ones may use earlier ones); "" marks an optional, empty file.
SECRETS: dict[str, Callable[[dict[str, str]], str]] = {
    "db_password": _token(24),
    "gateway_dsn": _dsn,
    "user_jwt": _token(48),
    "core_jwt": _token(48),
    "root_password": _token(18),
    "node_token": _token(32),
    "git_ssh_key": lambda _made: "",
    "git_known_hosts": lambda _made: "",
    "git_https_password": lambda _made: "",
}
DESCRIPTIONS = {
    "db_password": "PostgreSQL password of the user odin",
    "gateway_dsn": "the gateway's DSN of the users database (holds the same password)",
    "user_jwt": "key of the users' access and refresh tokens (gateway)",
    "core_jwt": "key of the JWTs the gateway presents to the core (core and gateway; differs from user_jwt)",
    "root_password": "password of the first admin, `admin` (created at the gateway's first start)",
    "node_token": "token midgard agents present to the gateway",
    "git_ssh_key": "optional: deploy key of the pipelines repository's remote (empty: no remote)",
    "git_known_hosts": "optional: the remote's SSH host key",
    "git_https_password": "optional: password or token of an HTTPS remote",
}


def write(folder: Path, *, rotate: tuple[str, ...] = (), db_host: str = "") -> list[str]:
    """Create the missing secrets in ``folder`` (and the ``rotate`` ones anew); returns the names written.
    ``db_host`` is PostgreSQL's address in the gateway's DSN (default the Service odin-postgres)."""
    unknown = sorted(set(rotate) - set(SECRETS))
    if unknown:
        raise ValueError(f"unknown secret {', '.join(unknown)}: choose from {', '.join(SECRETS)}")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    made: dict[str, str] = {"_db_host": db_host}
    written = []
    for name, make in SECRETS.items():
        path = folder / name
        dependent = name == "gateway_dsn" and ("db_password" in written or bool(db_host))
        if path.exists() and name not in rotate and not dependent:
            made[name] = path.read_text(encoding="utf-8")
            continue
        made[name] = make(made)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(made[name])
        path.chmod(0o644)
        written.append(name)
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", nargs="?", type=Path, default=Path("secrets"), help="where to write (default ./secrets)")
    p.add_argument("--rotate", action="append", default=[], metavar="NAME", help="replace this secret")
    p.add_argument("--db-host", default="", help=f"PostgreSQL's address in gateway_dsn (default {DB_HOST})")
    args = p.parse_args(argv)
    try:
        written = write(args.folder, rotate=tuple(args.rotate), db_host=args.db_host)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name in SECRETS:
        state = "written" if name in written else "kept"
        print(f"{args.folder / name}: {state} ({DESCRIPTIONS[name]})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
