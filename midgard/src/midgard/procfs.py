"""The host adapter for processes: name and cgroup of a pid, read under the configured ``/proc`` root.

NVML reports process ids as the host sees them. The agent sees the same ids when it shares the host's PID namespace
(``hostPID: true``), or when the host's ``/proc`` is mounted read-only and ``proc_root`` points at it; otherwise a
pid is not found and its process is reported without a name or pod (never an error of the report).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from . import cgroups
from .report import ProcFacts

MAX_READ = 64 * 1024  # a cgroup file or command line longer than this is cut (hostile or broken /proc)


def _read(path: Path) -> str:
    try:
        with path.open("rb") as f:
            return f.read(MAX_READ).decode(errors="replace")
    except OSError:
        return ""


def process_name(proc: Path) -> str:
    """The program as nvidia-smi shows it: the command line's first word, else the kernel's short name."""
    cmdline = _read(proc / "cmdline")
    first = cmdline.split("\0", 1)[0].strip()
    return first or _read(proc / "comm").strip()


def facts(pid: int, proc_root: str | Path = "/proc") -> ProcFacts:
    if pid <= 0:
        return ProcFacts()
    proc = Path(proc_root) / str(int(pid))
    cg = cgroups.parse(_read(proc / "cgroup"))
    return ProcFacts(name=process_name(proc), pod_uid=cg.pod_uid, container_id=cg.container_id)


def facts_of(pids: Iterable[int], proc_root: str | Path = "/proc") -> dict[int, ProcFacts]:
    return {pid: facts(pid, proc_root) for pid in pids}
