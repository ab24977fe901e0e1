"""CPU per file-system call of a captured log's first write, on the file system of a directory.

A Kubernetes attempt's captured log is ``<data>/<run>/.odin/logs/<task>.log``: a run's first capture makes three
directories and a file (four inodes), a later one appends to a file that exists. This times each of those calls,
``--n`` times, in a fresh directory under ``DIR`` (process CPU time, kernel included), then removes it; with
``--churn`` it first makes and removes ``--n`` files there, as a busy data directory does (some file systems scan
recently freed inodes when they allocate one).

    .venv/bin/python bench/fs_inodes.py [DIR ...] [--n 1000] [--churn]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine

FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND
LABELS = {
    "mkdir": "mkdir (a run's directory)",
    "mkdir_inside": "mkdir (inside it)",
    "create": "create a file and write",
    "append": "append to that file",
}


def timed(n: int, call: Callable[[int], None]) -> float:
    """Microseconds of process CPU per call."""
    t0 = time.process_time()
    for i in range(n):
        call(i)
    return (time.process_time() - t0) / n * 1e6


def write(path: str, data: bytes) -> None:
    fd = os.open(path, FLAGS, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def measure(base: Path, n: int, churn: bool) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="odin-fs-", dir=base))
    try:
        if churn:
            for i in range(n):
                write(f"{root}/churn-{i}", b"")
            for i in range(n):
                os.unlink(f"{root}/churn-{i}")
        line = b"odin fake container finished\n"
        return {
            "mkdir": timed(n, lambda i: os.mkdir(f"{root}/run-{i}")),
            "mkdir_inside": timed(n, lambda i: os.mkdir(f"{root}/run-{i}/.odin")),
            "create": timed(n, lambda i: write(f"{root}/run-{i}/.odin/step.log", line)),
            "append": timed(n, lambda i: write(f"{root}/run-{i}/.odin/step.log", line)),
        }
    finally:
        shutil.rmtree(root)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="*", default=[tempfile.gettempdir()], help="directories on the file systems to time")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--churn", action="store_true", help="make and remove --n files first")
    args = ap.parse_args()
    print(machine())
    for d in args.dirs:
        fs = next(
            (
                line.split()[2]
                for line in Path("/proc/mounts").read_text().splitlines()
                if line.split()[1] == _mount_point(Path(d))
            ),
            "?",
        )
        print(f"{d} ({fs}), {args.n} calls each{', after churn' if args.churn else ''}:")
        for what, us in measure(Path(d), args.n, args.churn).items():
            print(f"  {LABELS[what]:<28} {us:8.1f} µs CPU")


def _mount_point(path: Path) -> str:
    path = path.resolve()
    while not os.path.ismount(path):
        path = path.parent
    return str(path)


if __name__ == "__main__":
    main()
