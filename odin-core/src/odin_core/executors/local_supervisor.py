"""The supervisor of one local attempt: starts the task, waits for it, records how it ended.

The local executor runs ``python -I -S -c <import this module, call main> <task id>.<attempt>`` (imported,
not run as a script, so its compiled bytecode is reused) and writes the launch
description (argv, env, cwd and the record paths, in ``marshal`` format) on its stdin, so the task's
environment is never in an argv that ``ps`` shows. The supervisor detaches (fork, ``setsid``: it is the
leader of a session of its own, not a child of the core), then:

1. claims the attempt: ``os.link`` of its identity record (pid and process start time) to the claim
   path, which fails if the path exists, so one attempt is started at most once, by whichever
   supervisor links first (of this core or any other);
2. starts the task in its own process group (SIGTERM/SIGKILL reach the task's children) and records the
   task's pid and start time;
3. answers one line on stdout (``started <pid>``, ``taken``, ``stopped`` or ``error <message>``), then
   needs the core no more;
4. waits for the task; on SIGTERM (or SIGINT, SIGHUP) it sends SIGTERM to the task's group and SIGKILL to
   the whole session after the grace period; when the task has ended it SIGKILLs whatever the task left
   behind in the session (like the end of a container), then writes the exit code, end time and outputs
   to the result path (temporary file + rename: a reader sees all of it or nothing) and exits.

A core that restarts reads these records (JSON) to re-attach (``local.py``). Every attempt pays for this
process's start, so it imports builtins only (no ``subprocess``, ``json``, ``dataclasses``, ``enum``: each
costs 8-20 ms on the reference machine; see ``bench/local_start_latency.py``). Linux: identities come from
``/proc``. The helpers above ``main`` are shared with the executor.
"""

from __future__ import annotations

import errno
import marshal
import os
import sys
import time

try:  # the C module under `signal`: the same functions and numbers, without importing enum (~8 ms)
    import _signal as signal
except ImportError:  # pragma: no cover (not CPython)
    import signal  # type: ignore[no-redef]

_END_ROUNDS = 50  # passes over /proc when ending a session (children forked while we kill)
_END_PAUSE_S = 0.01  # between passes: let SIGKILLed processes die
_FULL_PAUSE_S = 1.0  # between two tries of a record's write while the disk is full
_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full(e: BaseException) -> bool:
    """A write refused because its disk is full (or over its quota): waited out, never lost (here and in the
    Kubernetes executor's log captures)."""
    return isinstance(e, OSError) and e.errno in _FULL


class ProcStat:
    """What ``/proc/<pid>/stat`` says about a process."""

    __slots__ = ("pgrp", "session", "start", "state")

    def __init__(self, state: str, pgrp: int, session: int, start: int) -> None:
        self.state = state  # R, S, D, Z (zombie), X (dead), ...
        self.pgrp = pgrp
        self.session = session
        self.start = start  # clock ticks after boot: with the pid, the identity of a process (pids are reused)


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
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(_END_PAUSE_S)
    return not [p for p in session_members(sid) if p != spare]


def to_json(data: dict[str, object]) -> str:
    """JSON of a flat record (str, int, float, bool, None values), without importing ``json``."""
    return "{" + ", ".join(f"{_json_value(k)}: {_json_value(v)}" for k, v in data.items()) + "}"


def _json_value(v: object) -> str:
    if v is None or isinstance(v, bool):
        return {None: "null", True: "true", False: "false"}[v]
    if isinstance(v, int | float):
        return repr(v)
    text = str(v)  # escape what JSON requires (quote, backslash, control characters) as \\uXXXX
    return '"' + "".join(c if c >= " " and c not in '"\\' else f"\\u{ord(c):04x}" for c in text) + '"'


def write_record(path: str, data: dict[str, object]) -> None:
    """Write ``data`` to ``path`` atomically (temporary file in the same directory, then rename).

    On a full disk (or quota) it is tried again every second until it is written: the records are how the
    core knows the task's process and how it ended, so the attempt waits for space (and its task, already
    started or ended, is neither left unrecorded nor run again)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    text = to_json(data)
    while True:
        try:
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, path)
            return
        except OSError as e:
            if not disk_full(e):
                raise
            try:
                os.unlink(tmp)
            except OSError:
                pass
            time.sleep(_FULL_PAUSE_S)


def claim(path: str, data: dict[str, object]) -> bool:
    """Create ``path`` holding ``data``, complete, unless it exists (then False): the exclusive claim."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(to_json(data))
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)


def spawn(argv: list[str], cwd: str, env: dict[str, str], log_fd: int) -> int:
    """Fork and exec the task in a process group of its own, stdout and stderr to ``log_fd``; its pid.

    Raises ``OSError`` (with the step that failed) when it cannot be started: the exec's error comes
    back on a close-on-exec pipe, which reads empty once the exec succeeded."""
    if any("\0" in part for part in (*argv, *env, *env.values(), cwd)):  # exec would refuse it in the child, unsaid
        raise OSError(errno.EINVAL, "an argument or an environment value holds a NUL character")
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: only async-signal-safe work until exec, and never return
        step = "setup"
        try:  # every other descriptor is close-on-exec already (Python's default, and the core's Popen)
            os.close(rd)
            os.setpgid(0, 0)
            step = "chdir"
            os.chdir(cwd)
            step = "setup"
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores these; the task gets the defaults
                signal.signal(sig, signal.SIG_DFL)
            step = "exec"
            os.execvpe(argv[0], argv, env)
        except OSError as e:
            os.write(wr, f"{step} {e.errno or 0}".encode())
        finally:
            os._exit(127)
    os.close(wr)
    answer = b""
    while chunk := os.read(rd, 64):
        answer += chunk
    os.close(rd)
    if not answer:
        return pid
    os.waitpid(pid, 0)
    step, _, number = answer.decode().partition(" ")
    err = int(number)
    raise OSError(err, os.strerror(err) + (f" (working directory {cwd})" if step == "chdir" else ""))


# -- the supervisor process ---------------------------------------------------------------------


class _Supervisor:
    def __init__(self, launch: dict) -> None:  # type: ignore[type-arg]
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
        try:
            os.killpg(self.child, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        signal.setitimer(signal.ITIMER_REAL, max(float(self.launch["grace_s"]), 0.001))

    def on_alarm(self, signum: int, frame: object) -> None:
        end_session(os.getsid(0), spare=os.getpid())

    def run(self) -> int:
        launch = self.launch
        me = os.getpid()
        st = proc_stat(me)
        identity = {"pid": me, "start": st.start if st else 0, "claimed": time.time(), "grace_s": launch["grace_s"]}
        if not claim(launch["claim"], identity):
            _reply("taken")
            return 0
        with open(launch["log"], "ab") as log:
            if launch.get("header"):
                log.write(launch["header"].encode())
                log.flush()
            try:
                os.unlink(launch["outputs"])
            except FileNotFoundError:
                pass
            if self.stopping:  # stopped between the claim and the start
                self._finish(-signal.SIGTERM, "stopped before it started")
                _reply("stopped")
                return 0
            try:
                pid = spawn(launch["argv"], launch["cwd"], launch["env"], log.fileno())
            except OSError as e:
                message = f"cannot run {launch['argv'][0]!r}: {e.strerror}"
                self._finish(None, message)
                _reply(f"error {message}")
                return 0
        self.child = pid
        st = proc_stat(pid)
        write_record(launch["task"], {"pid": pid, "start": st.start if st else 0, "started": time.time()})
        if self.stopping:
            self.forward()
        _reply(f"started {pid}")
        _, status = os.waitpid(pid, 0)  # signal handlers run in between (PEP 475)
        signal.setitimer(signal.ITIMER_REAL, 0)
        end_session(os.getsid(0), spare=me)  # what the task left behind ends with it
        self._finish(os.waitstatus_to_exitcode(status), "")
        return 0

    def _finish(self, code: int | None, error: str) -> None:
        result: dict[str, object] = {"exit_code": code, "ended": time.time()}
        if error:
            result["error"] = error
        else:
            result.update(_outputs(self.launch["outputs"], int(self.launch["max_outputs"])))
        write_record(self.launch["result"], result)


def _outputs(path: str, limit: int) -> dict[str, object]:
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


def _reply(line: str) -> None:
    """One line to the core on stdout, then stdout goes away (the core may be gone already)."""
    try:
        os.write(1, f"{line}\n".encode())
    except OSError:
        pass
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


def main() -> int:
    if os.fork() > 0:  # detach: the core reaps this first process at once; the second carries on
        os._exit(0)
    os.setsid()
    try:
        launch = marshal.loads(sys.stdin.buffer.read())
    except (EOFError, ValueError, TypeError):
        _reply("error the launch description is incomplete (the core stopped while sending it)")
        return 2
    log = os.open(launch["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 2)  # what goes wrong here is told in the task's log
    os.close(log)
    sup = _Supervisor(launch)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, sup.on_stop)
    signal.signal(signal.SIGALRM, sup.on_alarm)
    return sup.run()


if __name__ == "__main__":
    sys.exit(main())
