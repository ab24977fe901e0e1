"""The SQLite store's connection thread, with group commit.

Every store operation is one call on the connection's own thread (a ``batching.BatchThread``): the
calls made in one pass of the event loop, and those made while the thread is busy, run as **one
batch**, in the order they were made. The writes of a batch share one ``BEGIN IMMEDIATE`` … ``COMMIT``
transaction, each write in a savepoint of its own, so a write that raises (a lost lease, a conflict)
is rolled back alone and raises to its caller alone, while the others commit. Reads run in order
between them (inside the transaction once one is open, so a read sees the writes queued before it,
as if each call ran by itself). A write's result is delivered only after its transaction committed.
Under load, one thread hop and one commit serve hundreds of runs' commits; alone, a call is its own
batch, as before.

A ``BEGIN IMMEDIATE`` that meets another process's lock (SQLITE_BUSY after the busy timeout) fails
the batch's writes with that error (the store retries each), not one busy wait per write.

**Quick writes on the loop.** A batch of at most ``INLINE_MAX`` writes that are all ``QUICK`` (a
worker's commit, a new run: a few rows each) runs on the event loop itself when the thread is idle,
which spares the two thread hand-offs that cost more than such a batch. It never waits there: its
``BEGIN IMMEDIATE`` is tried with no busy timeout, and when another process holds the write lock the
batch goes to the thread, which waits as above. Nor does a checkpoint run there: the connection's
automatic checkpoints are off, and the thread checkpoints the WAL (``PASSIVE``: it never waits for
readers or writers) about as often as SQLite would (every 1,000 pages of WAL): once ``CHECKPOINT_EVERY``
write transactions (250 single-event commits left a 5.2 MB WAL: about 5 pages each) or ``CHECKPOINT_ROWS``
changed rows (a wide batch, a large run; counted by SQLite: ``total_changes``) have committed since the
last one.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from typing import Any

from ..batching import BatchThread, Outcome, outcome

Conn = sqlite3.Connection
Item = tuple[Callable[[Conn], Any], "asyncio.Future[Any]", int]  # the call, its future, its kind

READ, WRITE, QUICK = 0, 1, 2
"""A call's kind: a read, a write, or a quick write (may run on the loop)."""
INLINE_MAX = 16
"""Quick writes in a batch at most for it to run on the loop (longer batches amortise the hand-off)."""
CHECKPOINT_EVERY = 250
"""Write transactions between two checkpoints of the WAL at most."""
CHECKPOINT_ROWS = 500
"""Rows changed between two checkpoints of the WAL at most (a row of a wide batch: about 2 pages)."""


class ConnectionQueue(BatchThread[Conn]):
    """``BatchThread(connection, the connection's thread)``, whose batches share one write transaction."""

    inline_max = INLINE_MAX

    def __init__(self, db: Conn, thread: Any, *, busy_timeout_ms: int) -> None:
        super().__init__(db, thread)
        self.busy_timeout_ms = busy_timeout_ms
        self.checked = db.total_changes  # rows changed by this connection at its last checkpoint
        self.unchecked = 0  # write transactions committed since then

    def _due(self) -> bool:
        if self.unchecked >= CHECKPOINT_EVERY:
            return True
        try:
            return self.resource.total_changes - self.checked >= CHECKPOINT_ROWS
        except sqlite3.ProgrammingError:  # closed (the store's last call)
            return False

    def run_inline(self, items: list[Item]) -> list[Outcome] | None:
        if any(kind != QUICK for _, _, kind in items) or self._due():
            return None
        db = self.resource
        began = False
        try:
            db.execute("PRAGMA busy_timeout=0")
            try:
                db.execute("BEGIN IMMEDIATE")
                began = True
            finally:
                db.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
        except sqlite3.Error:  # another process writes (or the connection is closed): the thread's, not the loop's
            if began:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            return None
        try:
            return self._run(items, begun=True)
        except BaseException:  # not a call's own error (those are outcomes): leave no transaction open
            if db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise

    def run_batch(self, items: list[Item]) -> list[Outcome]:
        if self._due():
            self._checkpoint()
        outcomes = self._run(items, begun=False)
        if self._due():  # a wide batch or a large write: checkpointed now, as SQLite would at its commit
            self._checkpoint()
        return outcomes

    def _run(self, items: list[Item], *, begun: bool) -> list[Outcome]:
        """Every call in order, the writes in one transaction (``begun``: its BEGIN IMMEDIATE is done)."""
        db = self.resource
        outcomes: list[Outcome] = []
        pending: list[int] = []  # outcomes of writes that hold only once the transaction commits
        in_transaction = begun
        refused: BaseException | None = None  # BEGIN IMMEDIATE failed: the batch's later writes fail with it
        for fn, future, kind in items:
            if kind == READ:
                outcomes.append(outcome(future, fn, db))
            elif refused is not None:
                outcomes.append((future, None, refused))
            else:
                if not in_transaction:
                    try:
                        db.execute("BEGIN IMMEDIATE")
                    except sqlite3.Error as e:
                        refused = e
                        outcomes.append((future, None, e))
                        continue
                    in_transaction = True
                db.execute("SAVEPOINT odin_call")
                result = outcome(future, fn, db)
                try:
                    if result[2] is None:
                        db.execute("RELEASE odin_call")
                        pending.append(len(outcomes))
                    else:
                        db.execute("ROLLBACK TO odin_call")
                        db.execute("RELEASE odin_call")
                except sqlite3.Error as e:  # the failure ended the whole transaction (SQLite rolled it back)
                    in_transaction = False
                    _fail(outcomes, pending, e)
                    result = (future, None, result[2] or e)
                outcomes.append(result)
        if in_transaction:
            try:
                db.execute("COMMIT")
                self.unchecked += 1
            except sqlite3.Error as e:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                _fail(outcomes, pending, e)
        return outcomes

    def _checkpoint(self) -> None:
        """Copy the WAL's committed pages into the database (what a commit would do with autocheckpoint on)."""
        with contextlib.suppress(sqlite3.Error):  # the next batch tries again
            self.resource.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checked, self.unchecked = self.resource.total_changes, 0


def _fail(outcomes: list[Outcome], pending: list[int], error: BaseException) -> None:
    """The writes waiting for a commit that will not come fail with ``error``."""
    for i in pending:
        outcomes[i] = (outcomes[i][0], None, error)
    pending.clear()
