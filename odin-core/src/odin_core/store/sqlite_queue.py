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
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from typing import Any

from ..batching import BatchThread, Outcome, outcome

Conn = sqlite3.Connection
Item = tuple[Callable[[Conn], Any], "asyncio.Future[Any]", Any]  # the call, its future, whether it writes


class ConnectionQueue(BatchThread[Conn]):
    """``BatchThread(connection, the connection's thread)``, whose batches share one write transaction."""

    def run_batch(self, items: list[Item]) -> list[Outcome]:
        db = self.resource
        outcomes: list[Outcome] = []
        pending: list[int] = []  # outcomes of writes that hold only once the transaction commits
        in_transaction = False
        refused: BaseException | None = None  # BEGIN IMMEDIATE failed: the batch's later writes fail with it
        for fn, future, write in items:
            if not write:
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
            except sqlite3.Error as e:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                _fail(outcomes, pending, e)
        return outcomes


def _fail(outcomes: list[Outcome], pending: list[int], error: BaseException) -> None:
    """The writes waiting for a commit that will not come fail with ``error``."""
    for i in pending:
        outcomes[i] = (outcomes[i][0], None, error)
    pending.clear()
