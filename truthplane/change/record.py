"""The evidence of a run: `.truth-plane-results/execution_<UTC>.json` in the original Truth Plane format
(start/end time, baseline, tasks with verification, modifications, truth_gate, git_evidence,
honest_metrics, overall_verdict). Every figure is counted from what happened, never estimated.

`write_execution(root, record)` is the one way a record is written, by `fix` and `run-all` alike. In
the same call it:
- moves each task's `logs` ({name: text}) into content-addressed files
  `.truth-plane-results/logs/<sha256>.log`, leaving {name: {path, sha256, bytes}} in the task;
- hashes every `evidence_files` entry the caller lists (a repo-relative path, or {path, kind});
  each becomes {path, kind, sha256, bytes}, as do the log files (kind "log");
- chains the record (truthplane.evidence.ledger: run_id, sequence, previous_hash, field_hashes,
  record_hash, ledger_format), writes it atomically with its in-toto attestation beside it, moves
  the chain head and records the run in the history, all under the history's write lock.
The keys it adds are set on the caller's dict too, so the caller can read `run_id`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from truthplane.files import atomic_write
from truthplane.models import Verdict
from truthplane.paths import RESULTS_DIR, results_dir

if TYPE_CHECKING:
    from truthplane.change.loop import FixRun

DIFF_PREVIEW = 4000
LOGS_DIR = "logs"


def sha256_file(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _finding(f: Any) -> dict[str, Any]:
    return {"verifier": f.verifier, "rule_id": f.rule_id, "severity": f.severity.value, "path": f.path,
            "start_line": f.start_line, "fingerprint": f.fingerprint}


def fix_record(run: FixRun, *, applied: bool, commit: str | None) -> dict[str, Any]:
    base = run.base
    tasks = []
    for result in run.result.candidates:
        candidate = run.candidates.get(result.id)
        tree = run.trees.get(result.id)
        modifications = []
        if base is not None and tree is not None:
            for rel in result.touched:
                modifications.append({"file": rel, "sha256_before": sha256_file(base.snapshot / rel),
                                      "sha256_after": sha256_file(tree / rel)})
        is_winner = result.id == run.result.winner
        tasks.append({
            "task_id": result.id,
            "source": result.source,
            "title": candidate.title if candidate else "",
            "status": result.verdict.record_status,
            "verification": {
                "new": [_finding(f) for f in result.new],
                "fixed": [_finding(f) for f in result.fixed],
                "updated": [_finding(f) for f in result.updated],
                "remaining": [_finding(f) for f in result.remaining],
                "flags": list(result.flags),
                "tests": result.tests.model_dump() if result.tests else None,
                "reproduction": result.repro.model_dump() if result.repro else None,
                "duration_s": result.duration_s,
                "preflight": [f.model_dump() for f in result.preflight],
            },
            "modifications": modifications,
            "truth_gate": {"verdict": result.verdict.value, "reason": "; ".join(result.reasons)},
            "git_evidence": {
                "commit_sha": commit if is_winner else None,
                "applied": applied and is_winner,
                "diff_preview": (candidate.diff[:DIFF_PREVIEW] if candidate else ""),
            },
            "logs": {"diff": candidate.diff} if candidate else {},
            "llm": ({"provider": candidate.provider, "model": candidate.model, "prompt_hash": candidate.prompt_hash,
                     "cost_usd": candidate.cost_usd} if candidate and candidate.source == "llm" else None),
        })
    results = run.result.candidates
    winner = next((r for r in results if r.id == run.result.winner), None)
    return {
        "tool": "truthplane",
        "kind": "fix",
        "start_time": run.started_at,
        "end_time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "baseline": {
            "fingerprints": [f.fingerprint for f in base.scan.findings] if base else [],
            "targets": [_finding(f) for f in base.targets] if base else [],
            "verifiers": {
                v.name: {"version": v.version, "status": v.status.value, "count": v.count}
                for v in (base.scan.verifiers if base else [])
            },
            "files": len(base.files) if base else 0,
        },
        "target": run.result.target.model_dump() if run.result.target else None,
        "tasks": tasks,
        "winner": run.result.winner,
        "honest_metrics": {
            "files_verified": len(base.scan.files) if base else 0,
            "files_modified": len(winner.touched) if winner and applied else 0,
            "builds_tested": sum(1 for r in results if r.tests is not None)
            + sum(len(r.repro.after_rc) for r in results if r.repro),
            "git_commits": 1 if commit else 0,
            "truth_gate_approvals": sum(1 for r in results if r.verdict is Verdict.APPROVE),
            "truth_gate_rejections": sum(1 for r in results if r.verdict is Verdict.REJECT),
        },
        "overall_verdict": run.result.verdict.value,
        "notes": run.result.reasons,
    }


def _repo_relative(root: Path, value: str) -> str:
    from truthplane.errors import InputError

    path = Path(value)
    resolved = (path if path.is_absolute() else root / path).resolve()
    try:
        return resolved.relative_to(root.resolve()).as_posix()
    except ValueError:
        raise InputError(
            f"evidence file {value} is outside {root}: only files in the repository can be evidence"
        ) from None


def _log_files(root: Path, record: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for task in record["tasks"]:
        logs = task.get("logs")
        if not isinstance(logs, dict):
            continue
        for name, content in list(logs.items()):
            if isinstance(content, dict) and "sha256" in content:
                found.append({"path": content["path"], "kind": "log"})
                continue
            data = content.encode("utf-8", errors="replace") if isinstance(content, str) else bytes(content or b"")
            digest = hashlib.sha256(data).hexdigest()
            rel = f"{RESULTS_DIR}/{LOGS_DIR}/{digest}.log"
            if sha256_file(root / rel) != digest:
                atomic_write(root / rel, data)
            logs[name] = {"path": rel, "sha256": digest, "bytes": len(data)}
            found.append({"path": rel, "kind": "log"})
    return found


def _evidence_files(root: Path, record: dict[str, Any]) -> list[dict[str, Any]]:
    from truthplane.errors import InputError

    items: dict[str, dict[str, Any]] = {}
    listed = [item if isinstance(item, dict) else {"path": str(item)} for item in record.get("evidence_files") or []]
    for item in [*listed, *_log_files(root, record)]:
        rel = _repo_relative(root, str(item.get("path")))
        digest = sha256_file(root / rel)
        if digest is None:
            raise InputError(f"evidence file {rel} does not exist: write it before the execution record")
        kind = str(item.get("kind") or ("sarif" if rel.endswith(".sarif") else "file"))
        items[rel] = {"path": rel, "kind": kind, "sha256": digest, "bytes": (root / rel).stat().st_size}
    return list(items.values())


def write_execution(root: Path, record: dict[str, Any]) -> Path:
    """Write, chain and record one execution record; returns the execution file's path."""
    from truthplane.evidence import ledger
    from truthplane.errors import InputError

    if not isinstance(record.get("tasks"), list) or not all(isinstance(t, dict) for t in record["tasks"]):
        raise InputError("an execution record needs tasks: a list of objects")
    if not record.get("kind") or "overall_verdict" not in record:
        raise InputError("an execution record needs kind and overall_verdict")
    results_dir(root)
    record["evidence_files"] = _evidence_files(root, record)
    return ledger.append(root, record)
