"""The embedded history: one SQLite file per repository (stdlib sqlite3, WAL; opened by truthplane.databases).

Default path: `<repo>/.truth-plane-results/history.sqlite3`. The schema is versioned: `schema_version`
holds the version, `MIGRATIONS` lists the scripts that bring a file from one version to the next,
and `Store.open` applies the missing ones in a write transaction, so two processes opening an old
file at once migrate it once. To add tables, append a migration; never edit a shipped one.
Migration 2 holds the evidence history (runs, tasks, candidates, verdicts, evidence_files), written
by `truthplane.evidence.history` in the same transaction that appends a record to the hash chain.

Safe for concurrent use: each thread gets its own connection; writers take the database lock with
BEGIN IMMEDIATE and wait up to `busy_timeout_s` for it; WAL lets readers run beside a writer.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self, TypeVar

from truthplane.databases import connect
from truthplane.errors import InputError
from truthplane.paths import RESULTS_DIR, results_dir

HISTORY_FILE = "history.sqlite3"

MIGRATIONS: list[str] = [
    # 1: LLM usage, one row per provider call (or budget reservation), for budgets and the history
    """
    CREATE TABLE llm_usage (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at REAL NOT NULL,
        day TEXT NOT NULL,
        run_id TEXT NOT NULL,
        task TEXT NOT NULL DEFAULT '',
        provider TEXT NOT NULL,
        model TEXT NOT NULL,
        outcome TEXT NOT NULL,
        error TEXT NOT NULL DEFAULT '',
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        cost_usd REAL,
        latency_s REAL NOT NULL DEFAULT 0,
        prompt_hash TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX llm_usage_run ON llm_usage (run_id);
    CREATE INDEX llm_usage_day ON llm_usage (day);
    """,
    # 2: the evidence history, one row per execution record (truthplane/evidence/history.py writes and reads it);
    # costs come from llm_usage joined on run_id, and from the candidates' own cost_usd
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        sequence INTEGER NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        tool TEXT NOT NULL DEFAULT '',
        start_time TEXT NOT NULL DEFAULT '',
        end_time TEXT NOT NULL DEFAULT '',
        recorded_at REAL NOT NULL,
        overall_verdict TEXT NOT NULL,
        path TEXT NOT NULL,
        record_hash TEXT NOT NULL UNIQUE,
        previous_hash TEXT,
        file_sha256 TEXT NOT NULL,
        tasks INTEGER NOT NULL DEFAULT 0,
        approvals INTEGER NOT NULL DEFAULT 0,
        rejections INTEGER NOT NULL DEFAULT 0,
        commits INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX runs_recorded ON runs (recorded_at);
    CREATE TABLE tasks (
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        task_id TEXT NOT NULL,
        title TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (run_id, task_id)
    );
    CREATE TABLE candidates (
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        task_id TEXT NOT NULL,
        candidate_id TEXT NOT NULL,
        source TEXT NOT NULL DEFAULT '',
        provider TEXT NOT NULL DEFAULT '',
        model TEXT NOT NULL DEFAULT '',
        prompt_hash TEXT NOT NULL DEFAULT '',
        cost_usd REAL,
        files_modified INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, task_id, candidate_id)
    );
    CREATE TABLE verdicts (
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        task_id TEXT NOT NULL,
        candidate_id TEXT NOT NULL,
        verdict TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        new_findings INTEGER NOT NULL DEFAULT 0,
        fixed_findings INTEGER NOT NULL DEFAULT 0,
        commit_sha TEXT,
        applied INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, task_id, candidate_id)
    );
    CREATE INDEX verdicts_verdict ON verdicts (verdict);
    CREATE TABLE evidence_files (
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        path TEXT NOT NULL,
        kind TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        bytes INTEGER NOT NULL DEFAULT 0,
        pruned_at REAL,
        PRIMARY KEY (run_id, path)
    );
    CREATE INDEX evidence_files_path ON evidence_files (path);
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)

R = TypeVar("R")


def default_path(root: Path) -> Path:
    return root / RESULTS_DIR / HISTORY_FILE


@dataclass(frozen=True)
class UsageTotals:
    calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    unknown_cost_calls: int = 0


@dataclass(frozen=True)
class UsageRow:
    """One LLM call as stored. There is no column a key could go in."""

    id: int
    created_at: float
    day: str
    run_id: str
    task: str
    provider: str
    model: str
    outcome: str
    error: str
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None
    latency_s: float
    prompt_hash: str


class Store:
    def __init__(self, path: Path, *, busy_timeout_s: float = 30.0) -> None:
        self.path = path
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(cls, path: Path | str | None = None, *, root: Path | None = None, busy_timeout_s: float = 30.0) -> Store:
        """Open (creating and migrating as needed) the history at `path`, or the default one under `root`."""
        default = path is None
        if path is None:
            path = default_path(root or Path.cwd())
        store = cls(Path(path), busy_timeout_s=busy_timeout_s)
        try:
            if default:
                results_dir(root or Path.cwd())
            store.path.parent.mkdir(parents=True, exist_ok=True)
            store._migrate()
        except sqlite3.DatabaseError as exc:
            store.close()
            raise InputError(f"cannot open the history {store.path}: {exc}; move it aside to start a new one") from None
        except OSError as exc:
            store.close()
            raise InputError(f"cannot create the history {store.path}: {exc.strerror}") from None
        return store

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    # ---- connections and transactions --------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is not None:
            return connection
        with self._lock:
            if self._closed:
                raise InputError(f"the history {self.path} is closed")
            # autocommit mode: transactions are explicit (BEGIN IMMEDIATE) below
            # autocommit mode; WAL set once per file, retried while another connection holds the lock
            connection = connect(self.path, timeout_s=self._busy_timeout_s)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
            self._connections.append(connection)
        self._local.connection = connection
        return connection

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding the database lock from its first statement (BEGIN IMMEDIATE)."""
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def read(self, query: Callable[[sqlite3.Connection], R]) -> R:
        return query(self._connection())

    def _migrate(self) -> None:
        with self.write() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT version FROM schema_version").fetchone()
            version = row[0] if row else 0
            if row is None:
                db.execute("INSERT INTO schema_version (version) VALUES (0)")
            if version > SCHEMA_VERSION:
                raise InputError(
                    f"the history {self.path} has schema version {version}, newer than this truthplane "
                    f"({SCHEMA_VERSION}); upgrade truthplane"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in _statements(script):
                    db.execute(statement)
                db.execute("UPDATE schema_version SET version = ?", (number,))

    def schema_version(self) -> int:
        return int(self.read(lambda db: db.execute("SELECT version FROM schema_version").fetchone()[0]))

    # ---- llm_usage ----------------------------------------------------------------------------

    def usage_totals(self, db: sqlite3.Connection | None = None, *, run_id: str | None = None,
                     day: str | None = None) -> UsageTotals:
        """Calls, tokens and cost over the rows of one run and/or one UTC day."""
        clauses, params = [], []
        if run_id is not None:
            clauses.append("run_id = ?")
            params.append(run_id)
        if day is not None:
            clauses.append("day = ?")
            params.append(day)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = (
            "SELECT COUNT(*), COALESCE(SUM(COALESCE(prompt_tokens, 0) + COALESCE(completion_tokens, 0)), 0), "
            "COALESCE(SUM(cost_usd), 0.0), "
            "COALESCE(SUM(CASE WHEN cost_usd IS NULL AND outcome != 'pending' THEN 1 ELSE 0 END), 0) "
            f"FROM llm_usage {where}"
        )
        row = (db or self._connection()).execute(sql, params).fetchone()
        return UsageTotals(calls=row[0], tokens=row[1], cost_usd=float(row[2]), unknown_cost_calls=row[3])

    def insert_usage(self, db: sqlite3.Connection, **fields: Any) -> int:
        columns = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        cursor = db.execute(f"INSERT INTO llm_usage ({columns}) VALUES ({marks})", list(fields.values()))
        return int(cursor.lastrowid or 0)

    def update_usage(self, row_id: int, **fields: Any) -> None:
        assignments = ", ".join(f"{name} = ?" for name in fields)
        with self.write() as db:
            db.execute(f"UPDATE llm_usage SET {assignments} WHERE id = ?", [*fields.values(), row_id])

    def usage_rows(self, *, run_id: str | None = None) -> list[UsageRow]:
        sql = "SELECT * FROM llm_usage" + (" WHERE run_id = ?" if run_id is not None else "") + " ORDER BY id"
        rows = self.read(lambda db: db.execute(sql, [run_id] if run_id is not None else []).fetchall())
        return [UsageRow(**dict(row)) for row in rows]


def _statements(script: str) -> list[str]:
    return [part.strip() for part in script.split(";") if part.strip()]
