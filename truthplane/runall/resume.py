"""What makes run-all safe to interrupt and run again: commit trailers, the repository lock, carrying
finished tasks over from the last incomplete execution file, and the per-task records.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from truthplane.errors import GitError, UsageError
from truthplane.models import RECORD_STATUS, Verdict
from truthplane.evidence.ledger import RUN_TRAILER, TASK_TRAILER
from truthplane.paths import RESULTS_DIR

if TYPE_CHECKING:
    from truthplane.runall.task_run import Outcome, Tree
    from truthplane.runall.tasks import Task, TaskState
    from truthplane.git.repo import Repo

FINAL = {Verdict(verdict).record_status: Verdict(verdict) for verdict in RECORD_STATUS}
DIFF_PREVIEW = 4000
EXECUTION_NAME = re.compile(r"^execution_\d{8}_\d{6}(_\d+)?\.json$")
HISTORY_DEPTH = 10000  # commits searched for trailers


def lock_repo(repo: Repo) -> int:
    """One run-all per repository at a time: two would race to commit the same tasks."""
    git_dir = Path(repo.git("rev-parse", "--absolute-git-dir").strip())
    fd = os.open(git_dir / "truthplane-run-all.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UsageError("another truthplane run-all is running in this repository: wait for it, or stop it") from None
    return fd


def unlock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def committed(repo: Repo) -> dict[tuple[str, str], str]:
    """(task id, task digest) -> the commit on HEAD's history that carries it."""
    out = repo.git("log", f"-n{HISTORY_DEPTH}", "--format=%H%x1f%B%x1e", "HEAD")
    found: dict[tuple[str, str], str] = {}
    for entry in out.split("\x1e"):
        sha, _, body = entry.strip().partition("\x1f")
        for line in body.splitlines():
            if line.startswith(TASK_TRAILER + ": "):
                parts = line.split(": ", 1)[1].split()
                if len(parts) == 2:
                    found.setdefault((parts[0], parts[1]), sha)
    return found


def last_incomplete(root: Path) -> tuple[str, dict[str, Any]] | None:
    """The newest run-all execution file, if it was interrupted."""
    directory = root / RESULTS_DIR
    files = sorted((p for p in directory.glob("execution_*.json") if EXECUTION_NAME.match(p.name)),
                   key=lambda p: (p.stat().st_mtime, p.name), reverse=True)
    for path in files:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("kind") == "run-all":
            return (path.name, record) if record.get("incomplete") else None
    return None


def carry_over(repo: Repo, root: Path, states: dict[str, TaskState]) -> str | None:
    """Mark tasks done that need no new run: committed ones (trailers), and those the last,
    interrupted run finished. Returns the execution file resumed from, if any."""
    done = committed(repo)
    previous = last_incomplete(root)
    earlier = {}
    if previous is not None:
        earlier = {t.get("task_id"): t for t in previous[1].get("tasks", []) if isinstance(t, dict)}
    held: dict[tuple[str, str, str], tuple[str, dict[str, Any]]] | None = None
    for state in states.values():
        task = state.task
        sha = done.get((task.id, task.digest()))
        if sha is not None:
            old = earlier.get(task.id)
            if old is not None and old.get("digest") == task.digest() and _commit_of(old) == sha:
                _carry(state, old, Verdict.APPROVE, sha, previous[0] if previous else f"commit {sha}")
                continue
            held = _committed_evidence(root) if held is None else held
            source, old = held.get((task.id, task.digest(), sha)) or (f"commit {sha}", _from_commit(repo, task, sha))
            _carry(state, old, Verdict.APPROVE, sha, source)
            continue
        old = earlier.get(task.id)
        if (old is None or old.get("digest") != task.digest() or old.get("status") not in FINAL
                or (old.get("git_evidence") or {}).get("commit_sha")):
            continue  # a result whose commit is no longer on HEAD is run again
        assert previous is not None
        _carry(state, old, FINAL[old["status"]], None, previous[0])
    return previous[0] if previous else None


def _commit_of(task: dict[str, Any]) -> Any:
    return (task.get("git_evidence") or {}).get("commit_sha")


def _committed_evidence(root: Path) -> dict[tuple[str, str, str], tuple[str, dict[str, Any]]]:
    """(task id, digest, commit) -> (the execution file holding the task's evidence, its task record), from
    the chained records that pass their own hashes; the earliest record wins (later ones carried it over)."""
    from truthplane.evidence.ledger import load_chain

    found: dict[tuple[str, str, str], tuple[str, dict[str, Any]]] = {}
    entries = [e for e in load_chain(root / RESULTS_DIR).entries if e.record and not e.problems]
    for entry in sorted(entries, key=lambda e: e.record.get("sequence") or 0 if e.record else 0):
        for task in (entry.record or {}).get("tasks") or []:
            if isinstance(task, dict) and _commit_of(task) and task.get("modifications") is not None:
                key = (str(task.get("task_id")), str(task.get("digest")), str(_commit_of(task)))
                found.setdefault(key, (str(task.get("carried_over_from") or entry.path.name), task))
    return found


def _from_commit(repo: Repo, task: Task, sha: str) -> dict[str, Any]:
    """A committed task no record holds (its records were removed): the change its commit makes."""
    from truthplane.evidence.verify import blob_sha256

    try:
        parent: str | None = repo.git("rev-parse", "--verify", "-q", f"{sha}^").strip()
    except GitError:
        parent = None  # the repository's first commit
    listing = repo.git("diff-tree", "-r", "--no-renames", "-z", "--name-only", "--no-commit-id",
                       *([parent, sha] if parent else ["--root", sha]))
    record = bare_record(task, "SUCCESS", f"already committed in {sha[:12]} by an earlier run whose record is gone")
    record["truth_gate"]["verdict"] = Verdict.APPROVE.value
    record["git_evidence"].update(commit_sha=sha, applied=True)
    record["modifications"] = [
        {
            "file": path,
            "sha256_before": blob_sha256(repo.root, parent, path)[0] if parent else None,
            "sha256_after": blob_sha256(repo.root, sha, path)[0],
        }
        for path in listing.split("\0")
        if path
    ]
    return record


def _carry(state: TaskState, record: dict[str, Any], verdict: Verdict, commit: str | None, source: str) -> None:
    state.status, state.verdict, state.commit, state.carried = "DONE", verdict, commit, source
    state.record = {**record, "carried_over_from": record.get("carried_over_from") or source}


def commit_message(task: Task, outcome: Outcome, run_id: str) -> str:
    reason = "; ".join(outcome.reasons).replace("\n", " ")[:500]
    body = outcome.title if outcome.title and outcome.title != task.label else ""
    lines = [f"truthplane: {task.label}"[:200], ""]
    if body:
        lines += [body, ""]
    lines += [f"Truthplane-Verdict: {outcome.verdict.value}", f"Truthplane-Reason: {reason}",
              f"Truthplane-Files: {len(outcome.touched)}", f"{RUN_TRAILER}: {run_id}",
              f"{TASK_TRAILER}: {task.id} {task.digest()}"]
    return "\n".join(lines) + "\n"


def _finding(f: Any) -> dict[str, Any]:
    return {"verifier": f.verifier, "rule_id": f.rule_id, "severity": f.severity.value, "path": f.path,
            "start_line": f.start_line, "fingerprint": f.fingerprint}


def bare_record(task: Task, status: str, reason: str) -> dict[str, Any]:
    """A task that was not judged in this run: skipped, interrupted, or without a worker."""
    return {
        "task_id": task.id, "title": task.label, "kind": task.kind, "digest": task.digest(),
        "depends_on": task.depends_on, "status": status,
        "verification": None, "modifications": [],
        "truth_gate": {"verdict": None, "reason": reason},
        "git_evidence": {"commit_sha": None, "applied": False, "diff_preview": ""},
    }


def task_record(state: TaskState, tree: Tree, outcome: Outcome, where: dict[str, str], duration: float
                ) -> dict[str, Any]:
    """`where`: the worker's address, the node it runs on and its host."""
    from truthplane.change.record import sha256_file

    task = state.task
    modifications = []
    if outcome.after is not None:
        modifications = [{"file": rel, "sha256_before": sha256_file(tree.directory / rel),
                          "sha256_after": sha256_file(outcome.after / rel)} for rel in outcome.touched]
    return {
        "task_id": task.id, "title": task.label, "kind": task.kind, "digest": task.digest(),
        "depends_on": task.depends_on, "status": outcome.verdict.record_status,
        "worker": where.get("worker"), "node": where.get("node"), "host": where.get("host"),
        "verification": {
            "new": [_finding(f) for f in outcome.new],
            "fixed": [_finding(f) for f in outcome.fixed],
            "checks": outcome.checks,
            "files_scanned": len(outcome.scanned),
            "duration_s": round(duration, 3),
            "started_from_generation": tree.generation,
            "requeued_after_node_loss": state.lost_on,
            "reruns_after_conflict": state.conflicts,
        },
        "modifications": modifications,
        "truth_gate": {"verdict": outcome.verdict.value, "reason": "; ".join(outcome.reasons)},
        "git_evidence": {"commit_sha": state.commit, "applied": state.commit is not None,
                         "branch": state.branch, "branch_commit": state.branch_commit,
                         "diff_preview": outcome.diff[:DIFF_PREVIEW]},
    }


def baseline_record(head: str | None, base: Tree | None) -> dict[str, Any]:
    if base is None:
        return {"commit": head, "files": 0, "scanned": False}
    record: dict[str, Any] = {"commit": head, "files": len(base.files), "scanned": base.scan is not None}
    if base.scan is not None:
        record["fingerprints"] = [f.fingerprint for f in base.scan.findings]
        record["verifiers"] = {v.name: {"version": v.version, "status": v.status.value, "count": v.count}
                               for v in base.scan.verifiers}
    return record


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
