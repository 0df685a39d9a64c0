"""`truthplane show RUN_ID`: one run's verdicts, candidates, modifications, commits and evidence."""

from __future__ import annotations

import json
import sys

import typer

from truthplane.cli.history import FORMAT, NOT_MATCHING, check_format, load_run


def show(run_id: str = typer.Argument(..., help="A run id or a unique prefix of one."), fmt: str = FORMAT) -> int:
    """Show one run: verdicts, candidates, modifications, commits and evidence."""
    check_format(fmt)
    _, run, record, evidence, usage = load_run(run_id)
    if fmt == "json":
        document = {"run": run, "record": record, "evidence_files": evidence, "llm_usage": usage}
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        return 0
    out = [f"run {run['run_id']}  {run['kind']}  {run['overall_verdict']}",
           *(f"  {NOT_MATCHING}: {line}" for line in run["mismatch"]),
           f"  {record.get('start_time')} -> {record.get('end_time')}",
           f"  record {run['path']} (sequence {run['sequence']}, record_hash {run['record_hash'][:16]})"]
    for task in record.get("tasks") or []:
        gate, git = task.get("truth_gate") or {}, task.get("git_evidence") or {}
        verdict = str(gate.get("verdict") or task.get("status") or "?")
        out.append(f"  {verdict:<10} {task.get('task_id')}  {task.get('title') or ''}".rstrip())
        if gate.get("reason"):
            out.append(f"             {gate['reason']}")
        for mod in task.get("modifications") or []:
            out.append(f"             {mod.get('file')}: {str(mod.get('sha256_before'))[:12]} -> "
                       f"{str(mod.get('sha256_after'))[:12]}")
        if git.get("commit_sha"):
            out.append(f"             commit {git['commit_sha']}")
    metrics = record.get("honest_metrics") or {}
    out.append("  " + ", ".join(f"{k} {v}" for k, v in metrics.items()))
    for item in evidence:
        state = "  (removed by gc)" if item["pruned_at"] else ""
        out.append(f"  evidence {item['kind']:<5} {item['path']}  sha256 {item['sha256'][:16]}{state}")
    for row in usage:
        out.append(f"  llm {row['provider']}/{row['model']} {row['outcome']} cost {row['cost_usd']}")
    from truthplane.cli.render import printable  # names and reasons come from the repository and its tools

    sys.stdout.write("\n".join(printable(line) for line in out) + "\n")
    return 0


def register(app: typer.Typer) -> None:
    app.command()(show)
