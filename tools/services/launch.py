#!/usr/bin/env python3
"""Throwaway PostgreSQL and FerretDB (MongoDB protocol) servers for tests, benchmarks and developers.

Standard library only. Each server runs in its own temporary directory on a free loopback port and
is gone when stopped; nothing is shared with another test run.

* PostgreSQL: Debian's binaries (``/usr/lib/postgresql/N/bin``; ``tools/services/setup.sh`` installs
  them). ``initdb`` refuses to run as root, so as root the server runs as the ``postgres`` system
  user. ``initdb`` takes seconds, so its result is cached as a template under
  ``~/.cache/odin/services`` and copied for every start (well under a second). Durability is off
  (``fsync=off``): these servers are for tests, never for data anyone needs.
* FerretDB v1.24.2 on its SQLite backend, built by ``tools/services/build_ferretdb.sh``.

Command line (for developers)::

    python3 tools/services/launch.py postgres   # start one, print its DSN, stop on Ctrl-C
    python3 tools/services/launch.py mongo      # the same for FerretDB
    python3 tools/services/launch.py prepare    # make the PostgreSQL template now (setup.sh runs this)
    python3 tools/services/launch.py reap       # stop servers left behind by killed test runs
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

FERRETDB_VERSION = "v1.24.2"
PG_USER = "odin"  # the superuser of every throwaway cluster (trust auth on loopback only)
SERVICE_ACCOUNT = "postgres"  # the system user the server runs as when we are root
READY_TIMEOUT_S = 30.0
START_ATTEMPTS = 3  # a free port can be taken between choosing it and binding it
DURABILITY_OFF = ("fsync", "synchronous_commit", "full_page_writes")
PG_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "32MB",
    "min_wal_size": "2MB",
    "max_wal_size": "64MB",
    "log_min_messages": "warning",
}


class ServiceError(RuntimeError):
    """A server could not be prepared or started; the message says what to run."""


def cache_root() -> Path:
    return Path(os.environ.get("ODIN_SERVICES_CACHE") or Path.home() / ".cache" / "odin" / "services")


def runtime_root() -> Path:
    """Where running instances live: a directory the postgres user can reach (not under /root)."""
    return Path(tempfile.gettempdir()) / "odin-services"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes] | None, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        if proc is not None and proc.poll() is not None:
            raise ServiceError(f"server exited with {proc.returncode} before listening; log {log}:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise ServiceError(f"server not listening on port {port} after {timeout_s:.0f}s; log {log}:\n{tail(log)}")
        time.sleep(0.02)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def new_instance_dir(kind: str) -> Path:
    """A fresh directory for one server, marked with the pid of the process that owns it (see ``reap``)."""
    runtime_root().mkdir(parents=True, exist_ok=True)
    os.chmod(runtime_root(), 0o1777)
    d = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=runtime_root()))
    os.chmod(d, 0o755)
    (d / "owner.pid").write_text(str(os.getpid()))
    return d


def _start_retrying(what: str, make, source: Path):
    """Boot a new server (``make()``, then ``._boot(source)``); a port taken meanwhile means another try."""
    last: Exception | None = None
    for _ in range(START_ATTEMPTS):
        server = make()
        try:
            server._boot(source)
            return server
        except ServiceError as e:
            last = e
            server.stop()
    raise ServiceError(f"{what} did not start: {last}")


# --------------------------------------------------------------------------------------------- PostgreSQL


def pg_bindir() -> Path:
    """The newest Debian PostgreSQL binaries, or the ones named by ODIN_PG_BINDIR."""
    explicit = os.environ.get("ODIN_PG_BINDIR")
    if explicit:
        return Path(explicit)
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise ServiceError("PostgreSQL is not installed: run `make services` (apt-get install postgresql-15)")
    return found[-1].parent


def _as_service_account() -> list[str]:
    """The prefix that runs a PostgreSQL binary as a user allowed to (root is refused by initdb)."""
    return ["runuser", "-u", SERVICE_ACCOUNT, "--"] if os.geteuid() == 0 else []


def _chown_tree(path: Path) -> None:
    if os.geteuid() != 0:
        return
    account = pwd.getpwnam(SERVICE_ACCOUNT)
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), account.pw_uid, account.pw_gid)
    os.lchown(path, account.pw_uid, account.pw_gid)


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise ServiceError(f"{what} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")


def pg_template(bindir: Path | None = None) -> Path:
    """The cached, freshly initialised data directory that every server starts from (made once)."""
    bindir = bindir or pg_bindir()
    version = bindir.parent.name
    template = cache_root() / f"pg{version}-template"
    if (template / "PG_VERSION").is_file():
        return template
    work = new_instance_dir("pginit")
    try:
        _chown_tree(work)
        data = work / "data"
        _run(
            [
                *_as_service_account(),
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                PG_USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--wal-segsize=1",  # 1 MB WAL segments: a 20 MB smaller template to copy per start
            ],
            "initdb",
        )
        template.parent.mkdir(parents=True, exist_ok=True)
        partial = template.with_name(template.name + f".tmp{os.getpid()}")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(data, partial, symlinks=True)
        with contextlib.suppress(OSError):
            partial.rename(template)  # a concurrent prepare may have won: theirs is as good
        shutil.rmtree(partial, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return template


@dataclass
class Postgres:
    """One throwaway PostgreSQL server. ``dsn`` names its ``postgres`` database; ``create_database`` adds more."""

    port: int = 0
    dir: Path = field(default_factory=Path)
    bindir: Path = field(default_factory=Path)
    durable: bool = False

    @classmethod
    def start(cls, *, durable: bool = False) -> Postgres:
        """``durable``: keep fsync and synchronous commits on (a crash then loses nothing acknowledged)."""
        bindir = pg_bindir()
        template = pg_template(bindir)
        return _start_retrying(
            "PostgreSQL",
            lambda: cls(port=free_port(), dir=new_instance_dir("pg"), bindir=bindir, durable=durable),
            template,
        )

    def _boot(self, template: Path) -> None:
        shutil.copytree(template, self.dir / "data", symlinks=True)
        os.chmod(self.dir / "data", 0o700)
        _chown_tree(self.dir)
        self.restart()
        wait_listening(self.port, None, READY_TIMEOUT_S, self.dir / "log")

    @property
    def dsn(self) -> str:
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        proc = subprocess.run(
            [str(self.bindir / "psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", self.dsn_for(database)],
            input=sql,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise ServiceError(f"psql failed: {proc.stderr.strip()}")
        return proc.stdout

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its DSN."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def running(self) -> bool:
        pid = _pg_pid(self.dir)
        return pid is not None and _alive(pid)

    def crash(self) -> None:
        """Stop the server at once (as a crash would), keeping its data, for ``restart`` (outage tests)."""
        _run(
            [
                *_as_service_account(),
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.dir / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            "pg_ctl stop",
        )

    def restart(self) -> None:
        """Start a crashed server again on the same port and data (it recovers like after a power cut)."""
        (self.dir / "data" / "postmaster.pid").unlink(missing_ok=True)
        settings = {k: v for k, v in PG_SETTINGS.items() if not (self.durable and k in DURABILITY_OFF)}
        options = " ".join(f"-c {k}={v}" for k, v in {**settings, "port": str(self.port)}.items())
        _run(
            [
                *_as_service_account(),
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.dir / "data"),
                "-l",
                str(self.dir / "log"),
                "-w",
                "-t",
                str(int(READY_TIMEOUT_S)),
                "-o",
                f"{options} -k {self.dir}",
                "start",
            ],
            "pg_ctl start",
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server and remove its directory (``mode``: fast, or immediate for a crash-like stop)."""
        _stop_pg_dir(self.dir, self.bindir, mode)


def _pg_pid(d: Path) -> int | None:
    try:
        return int((d / "data" / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _stop_pg_dir(d: Path, bindir: Path, mode: str = "fast") -> None:
    if (d / "data" / "postmaster.pid").exists():
        cmd = [*_as_service_account(), str(bindir / "pg_ctl"), "-D", str(d / "data"), "-m", mode, "-w", "stop"]
        if subprocess.run(cmd, capture_output=True, check=False).returncode != 0:
            pid = _pg_pid(d)
            if pid and _alive(pid):
                os.kill(pid, signal.SIGQUIT)
    shutil.rmtree(d, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- FerretDB


def ferretdb_binary() -> Path:
    explicit = os.environ.get("ODIN_FERRETDB_BIN")
    path = Path(explicit) if explicit else cache_root() / f"ferretdb-{FERRETDB_VERSION}" / "ferretdb"
    if not os.access(path, os.X_OK):
        raise ServiceError(f"FerretDB {FERRETDB_VERSION} is not built ({path}): run `make services`")
    return path


@dataclass
class FerretDB:
    """One throwaway FerretDB server on SQLite. ``url`` has no database; ``url_for(name)`` names one."""

    port: int = 0
    dir: Path = field(default_factory=Path)
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls) -> FerretDB:
        binary = ferretdb_binary()
        return _start_retrying("FerretDB", lambda: cls(port=free_port(), dir=new_instance_dir("ferretdb")), binary)

    def _boot(self, binary: Path, *, fresh: bool = True) -> None:
        if fresh:
            (self.dir / "sqlite").mkdir()
            (self.dir / "state").mkdir()
        log = self.dir / "log"
        cmd = [
            str(binary),
            "--handler=sqlite",
            f"--sqlite-url=file:{self.dir / 'sqlite'}/",
            f"--state-dir={self.dir / 'state'}",
            f"--listen-addr=127.0.0.1:{self.port}",
            f"--debug-addr=127.0.0.1:{free_port()}",
            "--telemetry=disable",
            "--log-level=warn",
        ]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        (self.dir / "server.pid").write_text(str(self.proc.pid))
        wait_listening(self.port, self.proc, READY_TIMEOUT_S, log)

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def url_for(self, database: str) -> str:
        return f"mongodb://127.0.0.1:{self.port}/{database}"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def crash(self) -> None:
        """Kill the server (SIGKILL), keeping its data, for ``restart`` (outage tests)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        """Start a killed server again on the same port and data."""
        self._boot(ferretdb_binary(), fresh=False)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode`` immediate: SIGKILL) and remove its directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if mode == "immediate" else signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------------------------------ housekeeping


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap() -> int:
    """Stop the servers whose owning process is gone (a test run killed before its teardown)."""
    count = 0
    if not runtime_root().is_dir():
        return 0
    for d in runtime_root().iterdir():
        try:
            owner = int((d / "owner.pid").read_text())
        except (OSError, ValueError):
            continue
        if _alive(owner):
            continue
        if d.name.startswith("pg-"):
            with contextlib.suppress(ServiceError):
                _stop_pg_dir(d, pg_bindir(), "immediate")
        else:
            with contextlib.suppress(OSError, ValueError):
                pid = int((d / "server.pid").read_text())
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(d, ignore_errors=True)
        count += 1
    return count


def _serve_forever(server: Postgres | FerretDB, address: str) -> None:
    print(address, flush=True)
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        while not stop and server.running():
            time.sleep(0.2)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Throwaway PostgreSQL / FerretDB servers for Odin's tests")
    parser.add_argument("what", choices=["postgres", "mongo", "prepare", "reap"])
    args = parser.parse_args(argv)
    try:
        if args.what == "prepare":
            print(pg_template())
        elif args.what == "reap":
            print(f"stopped {reap()} leftover server(s)")
        elif args.what == "postgres":
            pg = Postgres.start()
            _serve_forever(pg, pg.dsn)
        else:
            fdb = FerretDB.start()
            _serve_forever(fdb, fdb.url)
    except ServiceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
