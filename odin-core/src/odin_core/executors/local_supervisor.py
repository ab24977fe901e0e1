"""The supervisor of one local attempt: starts the task, waits for it, records how it ended.

The local executor runs ``python -I -S local_supervisor.py <task id>.<attempt>`` and writes the launch
description (argv, env, cwd and the record paths, as JSON) on its stdin, so the task's environment is
never in an argv that ``ps`` shows. The supervisor detaches (fork, ``setsid``: it is the leader of a
session of its own, not a child of the core), then:

1. claims the attempt: ``os.link`` of its identity record (pid and process start time) to the claim
   path, which fails if the path exists, so one attempt is started at most once, by whichever
   supervisor links first (of this core or any other);
2. starts the task in its own process group (SIGTERM/SIGKILL reach the task's children) and records the
   task's pid and start time;
3. answers one line on stdout (``started <pid>``, ``taken``, ``stopped`` or ``error <message>``), then
   needs the core no more;
4. waits for the task; on SIGTERM (or SIGINT, SIGHUP) it sends SIGTERM to the task's group and SIGKILL
   after the grace period; when the task has ended it SIGKILLs whatever the task left behind in the
   session (like the end of a container), then writes the exit code, end time and outputs to the
   result path (temporary file + rename: a reader sees all of it or nothing) and exits.

A core that restarts reads these records to re-attach (``local.py``). Only the standard library is
used, so it starts fast and runs on the interpreter of the core. Linux: identities come from ``/proc``.
The helpers above ``main`` are shared with the executor.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

_END_ROUNDS = 50  # passes over /proc when ending a session (children forked while we kill)
_END_PAUSE_S = 0.01  # between passes: let SIGKILLed processes die


@dataclass(frozen=True)
class ProcStat:
    state: str  # R, S, D, Z (zombie), X (dead), ...
    pgrp: int
    session: int
    start: int  # clock ticks after boot: with the pid, the identity of a process (pids are reused)


def proc_stat(pid: int) -> ProcStat | None:
    """``/proc/<pid>/stat`` of a process, or None when there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (OSError, ValueError):
        return None
    fields = data[data.rindex(b")") + 2 :].split()  # the command name may hold spaces and ')'
    return ProcStat(fields[0].decode(), int(fields[2]), int(fields[3]), int(fields[19]))


def is_running(pid: int, start: int) -> bool:
    """True when ``pid`` is still the process that started at ``start`` and has not ended."""
    st = proc_stat(pid)
    return st is not None and st.start == start and st.state not in ("Z", "X")


def session_members(sid: int) -> list[int]:
    """Live processes of session ``sid``."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st is not None and st.session == sid and st.state not in ("Z", "X"):
                pids.append(int(name))
    return pids


def end_session(sid: int, *, spare: int | None = None) -> bool:
    """SIGKILL every process of session ``sid`` except ``spare``; True when none is left."""
    for _ in range(_END_ROUNDS):
        pids = [p for p in session_members(sid) if p != spare]
        if not pids:
            return True
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(_END_PAUSE_S)
    return not [p for p in session_members(sid) if p != spare]


def write_json(path: str, data: dict[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same directory, then rename)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def claim(path: str, data: dict[str, Any]) -> bool:
    """Create ``path`` holding ``data``, complete, unless it exists (then False): the exclusive claim."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


# -- the supervisor process ---------------------------------------------------------------------


class _Supervisor:
    def __init__(self, launch: dict[str, Any]) -> None:
        self.launch = launch
        self.child: int | None = None
        self.stopping = False
        self.forwarded = False

    def on_stop(self, signum: int, frame: object) -> None:
        self.stopping = True
        self.forward()

    def forward(self) -> None:
        """SIGTERM to the task's group now, SIGKILL to everything it started after the grace period."""
        if self.child is None or self.forwarded:
            return
        self.forwarded = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.child, signal.SIGTERM)
        signal.setitimer(signal.ITIMER_REAL, max(float(self.launch["grace_s"]), 0.001))

    def on_alarm(self, signum: int, frame: object) -> None:
        end_session(os.getsid(0), spare=os.getpid())

    def run(self) -> int:
        launch = self.launch
        me = os.getpid()
        identity = {"pid": me, "start": _own_start(), "claimed": time.time(), "grace_s": launch["grace_s"]}
        if not claim(launch["claim"], identity):
            _reply("taken")
            return 0
        with open(launch["log"], "ab") as log:
            if launch.get("header"):
                log.write(launch["header"].encode())
                log.flush()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(launch["outputs"])
            if self.stopping:  # stopped between the claim and the start
                self._finish(-signal.SIGTERM, "stopped before it started")
                _reply("stopped")
                return 0
            try:
                proc = subprocess.Popen(
                    launch["argv"],
                    cwd=launch["cwd"],
                    env=launch["env"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    process_group=0,
                    preexec_fn=_die_with(me),
                )
            except OSError as e:
                message = f"cannot run {launch['argv'][0]!r}: {e.strerror}"
                self._finish(None, message)
                _reply(f"error {message}")
                return 0
        self.child = proc.pid
        start = proc_stat(proc.pid)
        write_json(launch["task"], {"pid": proc.pid, "start": start.start if start else 0, "started": time.time()})
        if self.stopping:
            self.forward()
        _reply(f"started {proc.pid}")
        code = proc.wait()
        signal.setitimer(signal.ITIMER_REAL, 0)
        end_session(os.getsid(0), spare=me)  # what the task left behind ends with it
        self._finish(code, "")
        return 0

    def _finish(self, code: int | None, error: str) -> None:
        result: dict[str, Any] = {"exit_code": code, "ended": time.time()}
        if error:
            result["error"] = error
        else:
            result.update(_outputs(self.launch["outputs"], int(self.launch["max_outputs"])))
        write_json(self.launch["result"], result)


def _outputs(path: str, limit: int) -> dict[str, Any]:
    """The outputs file as the task left it: its text, or only its size when it is over ``limit``."""
    try:
        with open(path, "rb") as f:
            raw = f.read(limit + 1)
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        return {}
    except OSError as e:
        return {"outputs_error": f"cannot read the outputs file: {e.strerror}"}
    if size > limit:
        return {"outputs_size": size}
    return {"outputs": raw.decode(errors="replace")}


def _own_start() -> int:
    st = proc_stat(os.getpid())
    return st.start if st else 0


def _die_with(parent: int) -> Any:
    """A preexec function: the task's leader gets SIGKILL if the supervisor dies (Linux)."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):  # not Linux, or a Python built without ctypes
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os._exit(137)

    return preexec


def _reply(line: str) -> None:
    """One line to the core on stdout, then stdout goes away (the core may be gone already)."""
    with contextlib.suppress(OSError):
        os.write(1, f"{line}\n".encode())
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def main() -> int:
    if os.fork() > 0:  # detach: the core reaps this first process at once; the second carries on
        os._exit(0)
    os.setsid()
    raw = sys.stdin.buffer.read()
    try:
        launch = json.loads(raw)
    except ValueError:
        _reply("error the launch description is incomplete (the core stopped while sending it)")
        return 2
    sup = _Supervisor(launch)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, sup.on_stop)
    signal.signal(signal.SIGALRM, sup.on_alarm)
    return sup.run()


if __name__ == "__main__":
    sys.exit(main())
