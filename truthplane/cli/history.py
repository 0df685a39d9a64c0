"""`truthplane history`, `show RUN_ID`, `report RUN_ID --html FILE`, `gc --older-than 24h`.

All read the history of the repository holding the current directory
(`.truth-plane-results/history.sqlite3`) and the execution records beside it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

NOT_MATCHING = "the history does not match this run's record (`truthplane verify` fails)"
_FORMAT = typer.Option("text", "--format", "-f", help="text or json.")
_HTML = typer.Option(..., "--html", help="Write one self-contained HTML page here.", dir_okay=False)


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    import time
    from datetime import UTC, datetime

    from truthplane.errors import UsageError
    from truthplane.evidence.gc import parse_age

    try:
        if text[:1].isdigit() and "-" in text:
            return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
        return time.time() - parse_age(text)
    except (ValueError, UsageError):
        raise UsageError(f"--since takes an age (24h, 7d) or a UTC date (2026-11-23), not {text!r}") from None


def _verdict(text: str | None) -> str | None:
    from truthplane.errors import UsageError
    from truthplane.models import Verdict

    if text is not None and text.upper() not in Verdict._value2member_map_:
        raise UsageError(f"--verdict must be one of {', '.join(Verdict._value2member_map_)}, not {text!r}")
    return text.upper() if text else None


def _check_format(fmt: str) -> None:
    from truthplane.errors import UsageError

    if fmt not in ("text", "json"):
        raise UsageError("--format must be text or json")


def history(
    kind: str = typer.Option(None, "--kind", help="Only runs of this kind: fix or run-all."),
    verdict: str = typer.Option(None, "--verdict", help="Only runs with this overall verdict (APPROVE, REJECT, ...)."),
    since: str = typer.Option(None, "--since", help="Only runs recorded in the last 24h, 7d, ... or since a UTC date."),
    limit: int = typer.Option(20, "--limit", min=1, help="At most this many runs, newest first."),
    fmt: str = _FORMAT,
) -> int:
    """List recorded runs, newest first, and the LLM budget left."""
    from truthplane.cli.render import printable
    from truthplane.config import load_config
    from truthplane.evidence.history import find_root
    from truthplane.evidence.verify import list_runs
    from truthplane.llm.budget import remaining
    from truthplane.store import Store

    _check_format(fmt)
    root = find_root(Path.cwd())
    cutoff = _since(since)
    wanted = _verdict(verdict)
    with Store.open(root=root) as store:
        runs = list_runs(store, root, kind=kind, verdict=wanted, since=cutoff, limit=limit)
        budget = remaining(store, load_config(root))
    if fmt == "json":
        sys.stdout.write(json.dumps({"runs": runs, "budget": budget.model_dump()}, indent=2) + "\n")
        return 0
    if not runs:
        sys.stdout.write("no runs recorded" + (" match" if kind or verdict or since else " yet") + "\n")
    for run in runs:
        cost = f"${run['cost_usd']:.4f}" if run["cost_usd"] is not None else "-"
        sys.stdout.write(printable(
            f"{run['run_id']}  {run['end_time'] or run['start_time']}  {run['kind']:<7}  {run['overall_verdict']:<10}  "
            f"tasks {run['tasks']} (approved {run['approvals']}, rejected {run['rejections']})  "
            f"commits {run['commits']}  cost {cost}") + "\n")
        if not run["matches_record"]:
            sys.stdout.write(printable(f"  {NOT_MATCHING}: {run['mismatch'][0]}") + "\n")
    sys.stdout.write(f"LLM budget (UTC day {budget.day}):\n")
    for line in budget.lines():
        sys.stdout.write(printable(f"  {line}") + "\n")
    return 0


def _load(run_id: str) -> tuple[Path, dict[str, Any], dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """(root, run row, record, evidence rows, llm usage rows)."""
    from dataclasses import asdict

    from truthplane.errors import InputError
    from truthplane.evidence.history import evidence_rows, find_root, find_run
    from truthplane.evidence.verify import checked
    from truthplane.files import MAX_INPUT_BYTES, read_regular_file
    from truthplane.store import Store

    root = find_root(Path.cwd())
    with Store.open(root=root) as store:
        run = checked(store, root, find_run(store, run_id))
        evidence = evidence_rows(store, run["run_id"])
        usage = [asdict(row) for row in store.usage_rows(run_id=run["run_id"])]
    try:  # the record's path comes from the history: a FIFO there is refused, not read forever
        record = json.loads(read_regular_file(root / run["path"], MAX_INPUT_BYTES, InputError).decode("utf-8"))
    except ValueError as exc:
        raise InputError(f"the record of run {run['run_id']} ({run['path']}) cannot be read: {exc}; "
                         "`truthplane verify` says what happened to it") from None
    return root, run, record, evidence, usage


def show(run_id: str = typer.Argument(..., help="A run id or a unique prefix of one."), fmt: str = _FORMAT) -> int:
    """Show one run: verdicts, candidates, modifications, commits and evidence."""
    _check_format(fmt)
    _, run, record, evidence, usage = _load(run_id)
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


def report(
    run_id: str = typer.Argument(..., help="A run id or a unique prefix of one."),
    html_file: Path = _HTML,
) -> int:
    """Write one self-contained HTML page for a run: verdicts, findings, diffs side by side, evidence."""
    from truthplane.files import atomic_write
    from truthplane.evidence.report import render_html

    root, _, record, evidence, usage = _load(run_id)
    atomic_write(html_file, render_html(root, record, evidence=evidence, usage=usage))
    sys.stdout.write(f"wrote {html_file}\n")
    return 0


def gc(
    older_than: str = typer.Option("24h", "--older-than", help="Remove logs of runs older than this (24h, 7d, ...)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be removed."),
) -> int:
    """Remove old logs (full diffs, outputs); records, hashes and the chain stay verifiable. Also removes
    the temp dirs and job cgroups of runs that were killed before they could clean up."""
    from truthplane.cli.render import printable  # the paths come from records anyone can write
    from truthplane.executors.local import sweep_leftovers
    from truthplane.evidence.gc import gc as collect
    from truthplane.evidence.gc import parse_age
    from truthplane.evidence.history import find_root

    if not dry_run:
        for leftover in sweep_leftovers():
            sys.stdout.write(printable(f"removed {leftover}, left by a run that was killed") + "\n")
    result = collect(find_root(Path.cwd()), parse_age(older_than), dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for path, size in result.removed:
        sys.stdout.write(printable(f"{verb} {path} ({size} bytes)") + "\n")
    sys.stdout.write(f"{verb} {len(result.removed)} file(s), {result.bytes} bytes; records and hashes kept\n")
    return 0


def register(app: typer.Typer) -> None:
    app.command()(history)
    app.command()(show)
    app.command()(report)
    app.command()(gc)
