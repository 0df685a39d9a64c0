"""The text report of `truthplane fix`: each candidate's verdict and why, the winner and its diff."""

from __future__ import annotations

from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from truthplane.change.loop import FixRun

TAIL_LINES = 20


def print_report(run: FixRun, stream: TextIO) -> None:
    from rich.markup import escape

    from truthplane.cli.render import VERDICT_STYLE, _console, printable, printable_lines

    console, on = _console(stream)
    result = run.result
    verdict = result.verdict.value
    head = f"[{VERDICT_STYLE[verdict]}]{verdict}[/]" if on else verdict
    console.print(f"truthplane fix: {head}  ({len(result.candidates)} candidate(s))")
    if result.target is not None:
        console.print(f"target: {escape(result.target.description)}")
    for note in result.reasons:
        console.print(f"  - {escape(printable(note))}")
    base = run.base
    if base is not None and base.tests_before not in (0, None) and base.tests_output.strip():
        console.print("the tests' output before any patch ends with:", markup=False)
        for line in base.tests_output.rstrip().splitlines()[-TAIL_LINES:]:
            console.print(f"  | {printable(line)}", markup=False, highlight=False)
    for cand in result.candidates:
        mark = "*" if cand.id == result.winner else " "
        checks = [f"fixed {len(cand.fixed)}", f"new {len(cand.new)}"] + (
            [f"updated {len(cand.updated)}"] if cand.updated else []
        )
        if cand.tests is not None:
            checks.append("tests " + ("pass" if cand.tests.passed else f"fail (exit {cand.tests.after_rc})"))
        if cand.repro is not None:
            checks.append(f"repro {cand.repro.after_rc}")
        console.print(f"{mark} {printable(cand.id)} [{cand.source}] {cand.verdict.value}: {', '.join(checks)}, "
                      f"{cand.diff_lines} changed line(s), {cand.duration_s:.1f}s", markup=False)
        for reason in cand.reasons:
            console.print(f"      {escape(printable(reason))}")
        if cand.remaining:
            shown = ", ".join(f"{f.rule_id} at {f.path}:{f.start_line}" for f in cand.remaining[:5])
            more = f" and {len(cand.remaining) - 5} more" if len(cand.remaining) > 5 else ""
            console.print(f"      remaining (not targets): {printable(shown)}{more}", markup=False)
        for finding in cand.preflight:
            console.print(f"      preflight (informs, never blocks): {escape(printable(finding.line_text()))}")
    if result.winner:
        console.print(f"\nwinner: {printable(result.winner)}", markup=False)
        console.print(printable_lines(run.candidates[result.winner].diff.rstrip()), markup=False, highlight=False)
        if result.commit:
            console.print(f"committed {result.commit[:12]}", markup=False)
        elif result.applied:
            console.print("applied to the working tree", markup=False)
        else:
            console.print("dry run: nothing changed (use --apply or --commit)", markup=False)
    else:
        console.print("\nno candidate was approved: nothing changed", markup=False)
    if result.evidence:
        console.print(f"evidence: {printable(result.evidence)}", markup=False)
