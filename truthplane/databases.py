"""Opening SQLite files that several threads and processes share (the history, the result cache).

A module of its own: a gate opens its result cache with these, and needs nothing else of the history's
(truthplane.store: its schema, records and migrations are some 5 ms of a gate's imports).
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path


def is_busy(exc: sqlite3.Error) -> bool:
    """Another connection holds a lock: wait and retry. Anything else may be real damage."""
    text = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def connect(path: Path, *, timeout_s: float = 30.0) -> sqlite3.Connection:
    """A connection in WAL mode with a busy timeout.

    Switching to WAL needs a moment alone with the file and SQLite answers "locked" at once rather than
    waiting, so it is done only when the file is not in WAL yet (the mode persists) and retried while busy.
    """
    connection = sqlite3.connect(path, timeout=timeout_s, isolation_level=None, check_same_thread=False)
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        deadline = time.monotonic() + timeout_s
        delay = 0.01
        while True:
            try:
                mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() != "wal":
                    connection.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if not is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
    except BaseException:
        connection.close()
        raise
    return connection
