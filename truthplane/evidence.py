"""The evidence of a run: `.truth-plane-results/execution_<UTC>.json` in the original Truth Plane format
(start/end time, baseline, tasks with verification, modifications, truth_gate, git_evidence,
honest_metrics, overall_verdict). Every figure is counted from what happened, never estimated.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from truthplane.fsutil import atomic_write
from truthplane.models import Verdict

if TYPE_CHECKING:
    from truthplane.loop import FixRun

DIFF_PREVIEW = 4000
_STATUS = {Verdict.APPROVE: "SUCCESS", Verdict.REVIEW: "NEEDS_REVIEW", Verdict.REJECT: "REJECTED", Verdict.UNVERIFIED: "UNVERIFIED"}


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
            "status": _STATUS[result.verdict],
            "verification": {
                "new": [_finding(f) for f in result.new],
                "fixed": [_finding(f) for f in result.fixed],
                "tests": result.tests.model_dump() if result.tests else None,
                "reproduction": result.repro.model_dump() if result.repro else None,
                "duration_s": result.duration_s,
            },
            "modifications": modifications,
            "truth_gate": {"verdict": result.verdict.value, "reason": "; ".join(result.reasons)},
            "git_evidence": {
                "commit_sha": commit if is_winner else None,
                "applied": applied and is_winner,
                "diff_preview": (candidate.diff[:DIFF_PREVIEW] if candidate else ""),
            },
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
            "verifiers": {v.name: {"version": v.version, "status": v.status.value, "count": v.count}
                          for v in (base.scan.verifiers if base else [])},
            "files": len(base.files) if base else 0,
        },
        "tasks": tasks,
        "winner": run.result.winner,
        "honest_metrics": {
            "files_verified": len(base.scan.files) if base else 0,
            "files_modified": len(winner.touched) if winner and applied else 0,
            "builds_tested": sum(1 for r in results if r.tests is not None) + sum(len(r.repro.after_rc) for r in results if r.repro),
            "git_commits": 1 if commit else 0,
            "truth_gate_approvals": sum(1 for r in results if r.verdict is Verdict.APPROVE),
            "truth_gate_rejections": sum(1 for r in results if r.verdict is Verdict.REJECT),
        },
        "overall_verdict": run.result.verdict.value,
        "notes": run.result.reasons,
    }


def write_execution(root: Path, record: dict[str, Any]) -> Path:
    directory = root / ".truth-plane-results"
    stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    path = directory / f"execution_{stamp}.json"
    n = 1
    while path.exists():
        path = directory / f"execution_{stamp}_{n}.json"
        n += 1
    atomic_write(path, json.dumps(record, indent=2) + "\n")
    return path
