"""`truthplane history`: the recorded runs, newest first, and the LLM budget left.

`history`, `show`, `report` and `gc` read the history of the repository holding the current directory
(`.truth-plane-results/history.sqlite3`) and the execution records beside it; what they share is here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

NOT_MATCHING = "the history does not match this run's record (`truthplane verify` fails)"
FORMAT = typer.Option("text", "--format", "-f", help="text or json.")


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


def check_format(fmt: str) -> None:
    from truthplane.errors import UsageError

    if fmt not in ("text", "json"):
        raise UsageError("--format must be text or json")


def history(
    kind: str = typer.Option(None, "--kind", help="Only runs of this kind: fix or run-all."),
    verdict: str = typer.Option(None, "--verdict", help="Only runs with this overall verdict (APPROVE, REJECT, ...)."),
    since: str = typer.Option(None, "--since", help="Only runs recorded in the last 24h, 7d, ... or since a UTC date."),
    limit: int = typer.Option(20, "--limit", min=1, help="At most this many runs, newest first."),
    fmt: str = FORMAT,
) -> int:
    """List recorded runs, newest first, and the LLM budget left."""
    from truthplane.cli.render import printable
    from truthplane.config import load_config
    from truthplane.evidence.history import find_root
    from truthplane.evidence.verify import list_runs
    from truthplane.llm.budget import remaining
    from truthplane.store import Store

    check_format(fmt)
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


def load_run(run_id: str) -> tuple[Path, dict[str, Any], dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
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


def register(app: typer.Typer) -> None:
    app.command()(history)
