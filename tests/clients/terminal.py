"""A command on a real pseudo-terminal: keys typed (Ctrl-C is the byte 0x03, as a keyboard sends it), output read by a
thread and waited on with a timeout, the terminal closed as a window would close."""

from __future__ import annotations

import fcntl
import os
import re
import select
import subprocess
import termios
import threading
import time
from collections.abc import Sequence

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
CTRL_C = b"\x03"


def _controlling_terminal() -> None:
    """In the child: a session of its own, with the pty as its controlling terminal (what a terminal window does)."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    def __init__(self, command: Sequence[str], *, env: dict[str, str], cwd: str) -> None:
        master, slave = os.openpty()
        self.proc = subprocess.Popen(
            list(command), env=env, cwd=cwd, stdin=slave, stdout=slave, stderr=slave,
            preexec_fn=_controlling_terminal, close_fds=True,
        )  # fmt: skip
        os.close(slave)
        self.master = master
        self._text = b""
        self._changed = threading.Condition()
        self._closing = threading.Event()
        self._reader = threading.Thread(target=self._read, name="terminal-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._closing.is_set():
            if not select.select([self.master], [], [], 0.1)[0]:
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO: every process on the terminal has gone
                chunk = b""
            with self._changed:
                self._text += chunk
                self._changed.notify_all()
            if not chunk:
                return

    @property
    def text(self) -> str:
        """Everything shown so far, without colour and cursor codes."""
        with self._changed:
            return ANSI.sub(b"", self._text).decode(errors="replace").replace("\r", "")

    def expect(self, pattern: str, timeout_s: float = 30) -> str:
        """Wait until ``pattern`` (a regex) appears in what was shown after the keys typed last."""
        deadline = time.monotonic() + timeout_s
        regex = re.compile(pattern)
        with self._changed:
            while not regex.search(ANSI.sub(b"", self._text[self._mark :]).decode(errors="replace")):
                left = deadline - time.monotonic()
                assert left > 0, f"{pattern!r} did not appear; the terminal shows:\n{self.text}"
                self._changed.wait(left)
        return self.text

    _mark = 0

    def type(self, keys: bytes) -> None:
        with self._changed:
            self._mark = len(self._text)
        os.write(self.master, keys)

    def wait(self, timeout_s: float = 30) -> int:
        return self.proc.wait(timeout_s)

    def close(self) -> None:
        """Close the terminal, as a window closes: the kernel hangs up its session (SIGHUP)."""
        self._closing.set()
        self._reader.join(5)
        os.close(self.master)
