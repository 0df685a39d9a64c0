"""The evidence history in SQLite: one `runs` row per execution record, with its tasks, candidates,
verdicts and evidence files. Written by `truthplane.evidence.ledger.append` in the same transaction that
appends the record to the hash chain; read by `history`, `show`, `report`, `gc` and `verify`.

A task of a record is one candidate unless it lists its own `candidates` (run-all may do so);
costs come from the candidates' `cost_usd` and from `llm_usage` rows with the same run_id.

The rows are an index, never the truth: `row_differences` replays a record into the rows it should
have and names every row that differs, so `verify` fails on a rewritten history and `history`/`show`
display what the record says, marking a run whose rows do not match it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from truthplane.errors import UsageError
from truthplane.store import MIGRATIONS, Store


def _count(value: Any) -> int:
    if isinstance(value, list):
        return len(value)
    return int(value) if isinstance(value, int | float) else 0


def _candidates(task: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    nested = task.get("candidates")
    if isinstance(nested, list) and nested:
        return [c for c in nested if isinstance(c, dict)]
    verification = task.get("verification") or {}
    gate = task.get("truth_gate") or {}
    git = task.get("git_evidence") or {}
    llm = task.get("llm") or {}
    return [{
        "id": task.get("task_id"), "source": task.get("source", kind), "verdict": gate.get("verdict", ""),
        "reason": gate.get("reason", ""), "new": verification.get("new"), "fixed": verification.get("fixed"),
        "commit_sha": git.get("commit_sha"), "applied": git.get("applied", False),
        "provider": llm.get("provider", ""), "model": llm.get("model", ""), "prompt_hash": llm.get("prompt_hash", ""),
        "cost_usd": llm.get("cost_usd"), "modifications": task.get("modifications") or [],
    }]


def record_run(db: sqlite3.Connection, record: dict[str, Any], path: str, file_sha256: str) -> None:
    """Insert one appended record (inside the caller's write transaction)."""
    tasks = [t for t in record.get("tasks", []) if isinstance(t, dict)]
    verdicts = [str((t.get("truth_gate") or {}).get("verdict", "")) for t in tasks]
    commits = {(t.get("git_evidence") or {}).get("commit_sha") for t in tasks} - {None, ""}
    db.execute(
        "INSERT INTO runs (run_id, sequence, kind, tool, start_time, end_time, recorded_at, overall_verdict, path,"
        " record_hash, previous_hash, file_sha256, tasks, approvals, rejections, commits)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (record["run_id"], record["sequence"], str(record.get("kind", "")), str(record.get("tool", "")),
         str(record.get("start_time") or ""), str(record.get("end_time") or ""), time.time(),
         str(record.get("overall_verdict", "")), path, record["record_hash"], record.get("previous_hash"),
         file_sha256, len(tasks), verdicts.count("APPROVE"), verdicts.count("REJECT"), len(commits)),
    )
    for task in tasks:
        task_id = str(task.get("task_id", ""))
        db.execute("INSERT OR IGNORE INTO tasks (run_id, task_id, title, status) VALUES (?, ?, ?, ?)",
                   (record["run_id"], task_id, str(task.get("title") or ""), str(task.get("status") or "")))
        for cand in _candidates(task, str(record.get("kind", ""))):
            cid = str(cand.get("id") or task_id)
            cost = cand.get("cost_usd")
            db.execute(
                "INSERT OR IGNORE INTO candidates (run_id, task_id, candidate_id, source, provider, model,"
                " prompt_hash, cost_usd, files_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record["run_id"], task_id, cid, str(cand.get("source") or ""), str(cand.get("provider") or ""),
                 str(cand.get("model") or ""), str(cand.get("prompt_hash") or ""),
                 float(cost) if isinstance(cost, int | float) else None, len(cand.get("modifications") or [])),
            )
            reason = cand.get("reason")
            if reason is None:
                reason = "; ".join(str(r) for r in cand.get("reasons") or [])
            db.execute(
                "INSERT OR IGNORE INTO verdicts (run_id, task_id, candidate_id, verdict, reason, new_findings,"
                " fixed_findings, commit_sha, applied) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record["run_id"], task_id, cid, str(cand.get("verdict") or ""), str(reason),
                 _count(cand.get("new")), _count(cand.get("fixed")), cand.get("commit_sha"),
                 1 if cand.get("applied") else 0),
            )
    for item in record.get("evidence_files", []):
        db.execute("INSERT OR IGNORE INTO evidence_files (run_id, path, kind, sha256, bytes) VALUES (?, ?, ?, ?, ?)",
                   (record["run_id"], item["path"], item["kind"], item["sha256"], item["bytes"]))


# table -> (primary key, columns not taken from the record: when it was recorded, when gc pruned it)
INDEXED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "runs": (("run_id",), ("recorded_at",)),
    "tasks": (("run_id", "task_id"), ()),
    "candidates": (("run_id", "task_id", "candidate_id"), ()),
    "verdicts": (("run_id", "task_id", "candidate_id"), ()),
    "evidence_files": (("run_id", "path"), ("pruned_at",)),
}
Rows = dict[str, dict[tuple[Any, ...], dict[str, Any]]]


def _rows(db: sqlite3.Connection, run_id: str) -> Rows:
    out: Rows = {}
    for table, (key, skipped) in INDEXED.items():
        cursor = db.execute(f"SELECT * FROM {table} WHERE run_id = ?", (run_id,))  # noqa: S608 (fixed names)
        names = [c[0] for c in cursor.description]
        out[table] = {}
        for values in cursor.fetchall():
            row = {n: v for n, v in zip(names, values, strict=True) if n not in skipped}
            out[table][tuple(row[k] for k in key)] = row
    return out


_scratch = threading.local()


def expected_rows(record: dict[str, Any], path: str, file_sha256: str) -> Rows:
    """The rows `record_run` writes for this record, made again in a private in-memory database (one per
    thread, its schema made once; each record's rows are rolled back)."""
    db = getattr(_scratch, "db", None)
    if db is None:
        db = _scratch.db = sqlite3.connect(":memory:", isolation_level=None)
        for script in MIGRATIONS:
            db.executescript(script)
    db.execute("BEGIN")
    try:
        record_run(db, record, path, file_sha256)
        return _rows(db, str(record["run_id"]))
    finally:
        db.execute("ROLLBACK")


def row_differences(db: sqlite3.Connection, record: dict[str, Any], path: str, file_sha256: str) -> list[str]:
    """Every history row of the record's run that differs from what the record says, one line each."""
    return _differences(expected_rows(record, path, file_sha256), _rows(db, str(record["run_id"])))


def _differences(expected: Rows, actual: Rows) -> list[str]:
    found = []
    for table in INDEXED:
        for key in sorted(set(expected[table]) | set(actual[table]), key=repr):
            where = f"{table}[{', '.join(map(str, key[1:]))}]" if len(key) > 1 else table
            want, have = expected[table].get(key), actual[table].get(key)
            if have is None:
                found.append(f"{where}: missing (the record has it)")
            elif want is None:
                found.append(f"{where}: not in the record (added to the history)")
            else:
                found += [f"{where}.{name}: is {have[name]!r}, the record says {value!r}"
                          for name, value in want.items() if have.get(name) != value]
    return found


def orphan_run_ids(db: sqlite3.Connection) -> list[str]:
    """Run ids that rows of tasks, candidates, verdicts or evidence files name, but `runs` does not."""
    found: set[str] = set()
    for table in INDEXED:
        if table != "runs":
            found |= {str(r[0]) for r in db.execute(
                f"SELECT DISTINCT run_id FROM {table} WHERE run_id NOT IN (SELECT run_id FROM runs)")}  # noqa: S608
    return sorted(found)


def head(db: sqlite3.Connection) -> tuple[int, str | None]:
    row = db.execute("SELECT sequence, record_hash FROM runs ORDER BY sequence DESC LIMIT 1").fetchone()
    return (int(row[0]), str(row[1])) if row else (0, None)


RUN_COLUMNS = ("run_id", "sequence", "kind", "start_time", "end_time", "recorded_at", "overall_verdict", "path",
               "record_hash", "previous_hash", "file_sha256", "tasks", "approvals", "rejections", "commits")


def find_run(store: Store, run_id: str) -> dict[str, Any]:
    """The run with this id, or the only one whose id starts with it."""
    rows = store.read(lambda db: db.execute(
        f"SELECT {', '.join(RUN_COLUMNS)} FROM runs WHERE run_id = ? OR run_id LIKE ? ESCAPE '\\' ORDER BY sequence",
        (run_id, run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")).fetchall())
    exact = [dict(r) for r in rows if r["run_id"] == run_id]
    if exact:
        return exact[0]
    if not rows:
        raise UsageError(f"no run {run_id!r} in the history: `truthplane history` lists them")
    if len(rows) > 1:
        raise UsageError(f"{run_id!r} matches {len(rows)} runs: give more of the run id")
    return dict(rows[0])


def evidence_rows(store: Store, run_id: str) -> list[dict[str, Any]]:
    return [dict(r) for r in store.read(lambda db: db.execute(
        "SELECT path, kind, sha256, bytes, pruned_at FROM evidence_files WHERE run_id = ? ORDER BY path",
        (run_id,)).fetchall())]


def pruned_paths(store: Store) -> dict[str, float]:
    """Evidence files `gc` removed on purpose: path -> when."""
    rows = store.read(lambda db: db.execute(
        "SELECT path, MAX(pruned_at) FROM evidence_files WHERE pruned_at IS NOT NULL GROUP BY path").fetchall())
    return {str(r[0]): float(r[1]) for r in rows}


def all_run_hashes(store: Store) -> list[tuple[str, int, str, str]]:
    """(run_id, sequence, record_hash, path) of every recorded run, in chain order."""
    rows = store.read(lambda db: db.execute(
        "SELECT run_id, sequence, record_hash, path FROM runs ORDER BY sequence").fetchall())
    return [(str(r[0]), int(r[1]), str(r[2]), str(r[3])) for r in rows]


def find_root(start: Path) -> Path:
    """The repository holding `start`, or `start` itself outside git (a snippet's results)."""
    from truthplane.git.repo import Repo

    repo = Repo.discover(start)
    return repo.root.resolve() if repo else start.resolve()
