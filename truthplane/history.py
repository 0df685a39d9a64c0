"""The evidence history in SQLite: one `runs` row per execution record, with its tasks, candidates,
verdicts and evidence files. Written by `truthplane.ledger.append` in the same transaction that
appends the record to the hash chain; read by `history`, `show`, `report`, `gc` and `verify`.

A task of a record is one candidate unless it lists its own `candidates` (run-all may do so);
costs come from the candidates' `cost_usd` and from `llm_usage` rows with the same run_id.
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from truthplane.errors import UsageError
from truthplane.store import Store


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


def head(db: sqlite3.Connection) -> tuple[int, str | None]:
    row = db.execute("SELECT sequence, record_hash FROM runs ORDER BY sequence DESC LIMIT 1").fetchone()
    return (int(row[0]), str(row[1])) if row else (0, None)


RUN_COLUMNS = ("run_id", "sequence", "kind", "start_time", "end_time", "recorded_at", "overall_verdict", "path",
               "record_hash", "previous_hash", "file_sha256", "tasks", "approvals", "rejections", "commits")


def list_runs(store: Store, *, kind: str | None = None, verdict: str | None = None, since: float | None = None,
              limit: int | None = None) -> list[dict[str, Any]]:
    """Newest first, each with its cost (candidates' cost_usd, or llm_usage rows of the same run_id)."""
    clauses: list[str] = []
    params: list[Any] = []
    if kind:
        clauses.append("r.kind = ?")
        params.append(kind)
    if verdict:
        clauses.append("r.overall_verdict = ?")
        params.append(verdict.upper())
    if since is not None:
        clauses.append("r.recorded_at >= ?")
        params.append(since)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = (
        f"SELECT {', '.join('r.' + c for c in RUN_COLUMNS)},"
        " (SELECT SUM(c.cost_usd) FROM candidates c WHERE c.run_id = r.run_id) AS candidate_cost,"
        " (SELECT SUM(u.cost_usd) FROM llm_usage u WHERE u.run_id = r.run_id) AS usage_cost,"
        " (SELECT COUNT(*) FROM llm_usage u WHERE u.run_id = r.run_id) AS llm_calls"
        f" FROM runs r {where} ORDER BY r.sequence DESC" + (" LIMIT ?" if limit else "")
    )
    rows = store.read(lambda db: db.execute(sql, [*params, *([limit] if limit else [])]).fetchall())
    out = []
    for row in rows:
        item = dict(row)
        usage, candidate = item.pop("usage_cost"), item.pop("candidate_cost")
        item["cost_usd"] = usage if usage is not None else candidate
        out.append(item)
    return out


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
    from truthplane.workspace import Repo

    repo = Repo.discover(start)
    return repo.root.resolve() if repo else start.resolve()


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> float:
    """'24h', '7d', '90m', '30s', '2w' -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise UsageError(f"{text!r} is not an age: use a number and a unit, e.g. 24h, 7d, 90m")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class GcResult:
    removed: list[tuple[str, int]] = field(default_factory=list)  # (repo-relative path, bytes)

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.removed)


def gc(root: Path, older_than_s: float, *, dry_run: bool = False, now: float | None = None) -> GcResult:
    """Remove log files (kind "log": full diffs, stdout/stderr) whose every run is older than the cutoff,
    and orphaned logs and temporary files older than it. Records, attestations, the head, the history and
    every other evidence file (SARIF, ...) stay, so `verify` still checks the chain and every hash; it
    reports a removed log as removed by gc, because the history marks it `pruned_at`."""
    from truthplane.ledger import LEDGER_FORMAT, RESULTS_DIR, load_chain

    stamp = time.time() if now is None else now
    cutoff = stamp - older_than_s
    results = root / RESULTS_DIR
    result = GcResult()
    with Store.open(root=root) as store, store.write() as db:
        rows = db.execute(
            "SELECT e.path, MAX(r.recorded_at) FROM evidence_files e JOIN runs r ON r.run_id = e.run_id"
            " WHERE e.kind = 'log' GROUP BY e.path").fetchall()
        known = {str(r[0]) for r in rows}
        for path, newest in rows:
            target = root / str(path)
            if newest >= cutoff or not target.is_file():
                continue
            result.removed.append((str(path), target.stat().st_size))
            if not dry_run:
                db.execute("UPDATE evidence_files SET pruned_at = ? WHERE path = ? AND pruned_at IS NULL", (stamp, path))
                target.unlink()
        referenced = {str(i.get("path")) for entry in load_chain(results).entries if entry.record
                      and entry.record.get("ledger_format") == LEDGER_FORMAT
                      for i in entry.record.get("evidence_files") or [] if isinstance(i, dict)}
        leftovers = [*results.glob("logs/*.log"), *results.glob(".*.tmp"), *results.glob("logs/.*.tmp")]
        for target in leftovers:
            rel = target.relative_to(root).as_posix()
            if rel in known or rel in referenced or target.stat().st_mtime >= cutoff:
                continue
            result.removed.append((rel, target.stat().st_size))
            if not dry_run:
                target.unlink()
    return result
