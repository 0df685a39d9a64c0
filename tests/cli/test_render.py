"""A CI reviewer reads the most important first: the Markdown summary and the text output list findings
by severity, highest first, then path and line."""

from __future__ import annotations

import io

from truthplane.cli.render import gate_markdown, print_gate_text
from truthplane.models import Finding, GateResult, Severity, Verdict


def finding(rule: str, severity: Severity, path: str, line: int) -> Finding:
    return Finding(verifier="bandit", rule_id=rule, severity=severity, message=f"{rule} here", path=path,
                   start_line=line)


# in the order a scan lists them: by path and line
NEW = [
    finding("LOW1", Severity.LOW, "a.py", 1),
    finding("HIGH2", Severity.HIGH, "b.py", 9),
    finding("MED1", Severity.MEDIUM, "b.py", 2),
    finding("HIGH1", Severity.HIGH, "a.py", 30),
    finding("CRIT", Severity.CRITICAL, "z.py", 5),
    finding("NOTE", Severity.NOTE, "a.py", 2),
]
EXPECTED = ["CRIT", "HIGH1", "HIGH2", "MED1", "LOW1", "NOTE"]


def order_in(text: str) -> list[str]:
    return sorted(EXPECTED, key=lambda rule: text.index(f"{rule} here"))


def test_markdown_summary_lists_new_findings_highest_severity_first() -> None:
    result = GateResult(verdict=Verdict.REJECT, new=NEW)
    assert order_in(gate_markdown(result)) == EXPECTED
    # cut to a limit, the most severe are the ones shown
    short = gate_markdown(result, limit=2)
    assert "CRIT here" in short and "HIGH1 here" in short and "HIGH2 here" not in short


def test_text_output_lists_new_findings_highest_severity_first() -> None:
    stream = io.StringIO()
    print_gate_text(GateResult(verdict=Verdict.REJECT, new=NEW), stream)
    assert order_in(stream.getvalue()) == EXPECTED


def test_text_output_to_a_log_prints_every_message_as_the_tool_wrote_it() -> None:
    """Read by a CI log or a pipe, the report is plain lines: a message with what a terminal renderer would
    take for markup or an emoji code (ruff's "Invalid escape sequence: `\\[`") is printed as it is."""
    said = "Invalid escape sequence: `\\[` in [bold]x[/] :warning: [red]"
    result = GateResult(verdict=Verdict.REVIEW, new=[
        Finding(verifier="ruff", rule_id="W605", severity=Severity.LOW, message=said, path="[a].py", start_line=2),
    ], reasons=["[why] :x:"])
    stream = io.StringIO()
    print_gate_text(result, stream)
    lines = stream.getvalue().splitlines()
    assert f"       low  [a].py:2  ruff W605: {said}" in lines
    assert "  - [why] :x:" in lines
    assert "\x1b" not in stream.getvalue()
