"""The text report of `truthplane fix`: each candidate's verdict and why, the winner and its diff."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from truthplane.loop import FixRun


def print_report(run: FixRun, stream: TextIO) -> None:
    from rich.markup import escape

    from truthplane.cli.render import _console

    console, on = _console(stream)
    result = run.result
    style = {"APPROVE": "bold green", "REVIEW": "bold yellow", "REJECT": "bold red", "UNVERIFIED": "bold magenta"}
    verdict = result.verdict.value
    head = f"[{style[verdict]}]{verdict}[/]" if on else verdict
    targets = len(run.base.targets) if run.base else 0
    console.print(f"truthplane fix: {head}  ({len(result.candidates)} candidate(s), {targets} targeted finding(s))")
    for note in result.reasons:
        console.print(f"  - {escape(note)}")
    for cand in result.candidates:
        mark = "*" if cand.id == result.winner else " "
        checks = [f"fixed {len(cand.fixed)}", f"new {len(cand.new)}"] + ([f"updated {len(cand.updated)}"] if cand.updated else [])
        if cand.tests is not None:
            checks.append("tests " + ("pass" if cand.tests.passed else f"fail (exit {cand.tests.after_rc})"))
        if cand.repro is not None:
            checks.append(f"repro {cand.repro.after_rc}")
        console.print(f"{mark} {escape(cand.id)} [{cand.source}] {cand.verdict.value}: {', '.join(checks)}, "
                      f"{cand.diff_lines} changed line(s), {cand.duration_s:.1f}s", markup=False)
        for reason in cand.reasons:
            console.print(f"      {escape(reason)}")
    if result.winner:
        console.print(f"\nwinner: {result.winner}", markup=False)
        console.print(run.candidates[result.winner].diff.rstrip(), markup=False, highlight=False)
        if result.commit:
            console.print(f"committed {result.commit[:12]}", markup=False)
        elif result.applied:
            console.print("applied to the working tree", markup=False)
        else:
            console.print("dry run: nothing changed (use --apply or --commit)", markup=False)
    else:
        console.print("\nno candidate was approved: nothing changed", markup=False)
    if result.evidence:
        console.print(f"evidence: {result.evidence}", markup=False)
