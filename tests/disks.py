"""A real small disk for the full-disk tests: a tmpfs that a test fills to ENOSPC and frees."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path


class SmallDisk:
    """A real file system of its own (a tmpfs of ``size`` bytes) that the test fills and frees: ENOSPC as a full
    disk gives it, to every process that writes there."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        """Write until the file system refuses (ENOSPC): then no process can add a page to it."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            while True:
                os.write(fd, b"\0" * 65536)  # the last one written in part, then refused
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
        finally:
            os.close(fd)
        assert os.statvfs(self.path).f_bavail == 0

    def free(self) -> None:
        self.filler.unlink()

    def make_room(self, nbytes: int) -> None:
        """Free ``nbytes`` of a filled disk (the filler is cut short by that much)."""
        os.truncate(self.filler, self.filler.stat().st_size - nbytes)


@contextlib.contextmanager
def mounted_small_disk(path: Path, size: str = "16m") -> Iterator[SmallDisk]:
    """A tmpfs of ``size`` mounted at ``path`` (made if missing; mounting needs root, as CI has), then unmounted."""
    from services import unavailable

    path.mkdir(exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if done.returncode != 0:
        unavailable(f"cannot mount a tmpfs for the full-disk tests (run them as root): {done.stderr.strip()}")
    try:
        yield SmallDisk(path)
    finally:  # lazily: a process the test left (a failure) may still hold a file there
        subprocess.run(["umount", "-l", str(path)], check=False)
