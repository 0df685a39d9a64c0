"""Turning results into text, JSON, SARIF and Markdown; progress while verifiers run.

Colour and live progress only on a terminal; plain lines when piped or NO_COLOR is set (CI logs).
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from collections.abc import Callable

    from truthplane.models import Finding, GateResult, Scan, VerifierRun

_VERDICT_MARK = {"APPROVE": "✅", "REVIEW": "⚠️", "REJECT": "❌", "UNVERIFIED": "⛔"}
VERDICT_STYLE = {"APPROVE": "bold green", "REVIEW": "bold yellow", "REJECT": "bold red", "UNVERIFIED": "bold magenta"}
_SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "note": "dim"}


# C0 and C1 control characters, DEL, the bidirectional overrides that reorder what a reader sees, and
# lone surrogates (from a tool's JSON), which no output stream can encode
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_CONTROL_IN_LINES = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def printable(text: object) -> str:
    """`text` on one line, every control character shown as an escape: a file name or a tool's message
    cannot start a new line (forging a verdict), move the cursor, clear the screen or reorder the text."""
    return _CONTROL.sub(_escaped, str(text))


def printable_lines(text: str) -> str:
    """Like printable(), but keeping newlines and tabs: for multi-line text such as a diff."""
    return _CONTROL_IN_LINES.sub(_escaped, text)


def fancy(stream: Any) -> bool:
    """Colour and live displays: a real terminal, NO_COLOR unset, not a dumb terminal."""
    return (
        hasattr(stream, "isatty") and stream.isatty()
        and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
    )


def _location(f: Finding) -> str:
    if not f.path:
        return "(repository)"
    return printable(f"{f.path}:{f.start_line}" if f.start_line else f.path)


def _run_line(run: VerifierRun) -> str:
    if run.status.value != "ok":
        return printable(f"{run.name}: {run.status.value.upper()} — {run.error}")
    cached = f", {run.cached_files} file(s) from cache" if run.cached_files else ""
    name = f"{run.name} {run.version}" if run.version else run.name  # a build command has no version
    return printable(f"{name}: {run.count} finding(s) in {run.duration_s:.2f}s{cached}")


class Progress:
    """Live spinner per verifier on a terminal; one plain line per finished verifier otherwise.

    `scope(label)` gives a view for one scanned state, so a gate's two scans share one display.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream: TextIO = stream or sys.stderr
        self._lock = threading.Lock()
        self._live = None
        self._tasks: dict[tuple[str, str], Any] = {}
        if fancy(self.stream):
            from rich.console import Console
            from rich.progress import Progress as RichProgress
            from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

            self._live = RichProgress(
                SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                console=Console(file=self.stream), transient=False,
            )

    def __enter__(self) -> Progress:
        if self._live is not None:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()

    def scope(self, label: str) -> _Scope:
        label = printable(label)
        if self._live is None:
            self._plain(f"truthplane: scanning {label}")
        return _Scope(self, label)

    def _plain(self, line: str) -> None:
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def _started(self, label: str, name: str) -> None:
        if self._live is not None:
            from rich.markup import escape  # only on a terminal: plain lines never pay for rich

            with self._lock:
                self._tasks[label, name] = self._live.add_task(escape(printable(f"[{label}] {name}")), total=1)

    def _finished(self, label: str, run: VerifierRun) -> None:
        line = _run_line(run)
        if self._live is None:
            self._plain(f"  [{label}] {line}")
            return
        from rich.markup import escape

        style = "green" if run.status.value == "ok" else "bold red"
        with self._lock:
            task = self._tasks.get((label, run.name))
            if task is not None:
                self._live.update(task, description=f"[{style}]{escape(f'[{label}] {line}')}[/]", completed=1)


class _Scope:
    def __init__(self, progress: Progress, label: str) -> None:
        self._progress = progress
        self._label = label

    def started(self, name: str) -> None:
        self._progress._started(self._label, name)

    def finished(self, run: VerifierRun) -> None:
        self._progress._finished(self._label, run)


# ---- documents -------------------------------------------------------------------------------


def write_document(path: Path, data: str | bytes, *, append: bool = False) -> None:
    """Write an output file (--output, --sarif-out, --summary-out) atomically; a place that cannot take it
    (a directory, /proc, a read-only disk) is a one-line usage error naming it."""
    from truthplane.errors import UsageError
    from truthplane.files import atomic_write

    try:
        if append and path.is_file():
            previous = path.read_bytes()
            data = previous + (data.encode("utf-8") if isinstance(data, str) else data)
        atomic_write(path, data)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def gate_json(result: GateResult) -> bytes:
    _listing(result)
    from truthplane.models import dumps

    return dumps(result.model_dump(mode="json"), indent=2) + b"\n"


def _listing(result: GateResult) -> None:
    if not result.complete:  # a gate run with `carry` lists only what changed: its caller asked for counts
        raise ValueError("this gate result counts its unchanged findings without listing them")


def gate_sarif(result: GateResult) -> str:
    from truthplane.truth.sarif import diff_log

    _listing(result)
    # a finding the configuration silences is, to code scanning, dismissed by something outside the source
    silenced = [f.model_copy(update={"suppressed": "external"}) for f in result.silenced_by_config]
    log = diff_log(result.new + result.added_by_config, result.unchanged, result.fixed, result.verifiers,
                   suppressed=result.suppressed + silenced, updated=result.updated)
    return json.dumps(log, indent=2) + "\n"


def gate_markdown(result: GateResult, *, limit: int = 50) -> str:
    mark = _VERDICT_MARK[result.verdict.value]
    lines = [f"## {mark} truthplane: {result.verdict.value}", ""]
    if result.base or result.head:
        lines += [f"Compared `{_md(result.head or 'working tree')}` with `{_md(result.base or '')}`.", ""]
    lines += [f"- {_md(reason, limit=None)}" for reason in result.reasons] + [""]
    lines += [
        f"**{len(result.new)} new**, **{len(result.fixed)} fixed**, {_updated(result)}"
        f"{result.unchanged_count} unchanged"
        + (f", **{len(result.silenced_by_config)} silenced by configuration**" if result.silenced_by_config else "")
        + ".", "",
        "| verifier | version | status | findings | time |", "|---|---|---|---|---|",
    ]
    for run in result.verifiers:
        status = "ok" if run.status.value == "ok" else f"**{run.status.value}**: {_md(run.error or '')}"
        lines.append(
            f"| {_md(run.name)} | {_md(run.version or '—')} | {status} | {run.count} | {run.duration_s:.2f}s |"
        )
    if result.suppressed_count:
        lines += ["", f"{result.suppressed_count} result(s) suppressed in source or by the tool are not counted "
                  "(`--format json` lists them under `suppressed`)."]
    sections = (
        ("New findings", result.new), ("Updated findings (on lines the change edited)", result.updated),
        ("Fixed findings", result.fixed),
        ("Silenced by a configuration change", result.silenced_by_config),
        ("Appeared because of a configuration change", result.added_by_config),
    )
    for title, findings in sections:
        if not findings:
            continue
        lines += ["", f"### {title}", "", "| severity | where | rule | message |", "|---|---|---|---|"]
        for f in _most_severe_first(findings)[:limit]:
            lines.append(
                f"| {f.severity.value} | `{_md(_location(f))}` | {_md(f.verifier)} `{_md(f.rule_id)}` | "
                f"{_md(f.message)} |"
            )
        if len(findings) > limit:
            lines.append(f"| | | | … and {len(findings) - limit} more |")
    return "\n".join(lines) + "\n"


def unverified_markdown(reason: str, base: str, head: str | None) -> str:
    """The summary of a gate that could not judge at all (no base, no merge-base, a broken configuration)."""
    mark = _VERDICT_MARK["UNVERIFIED"]
    return (f"## {mark} truthplane: UNVERIFIED\n\nCould not compare `{_md(head or 'the working tree')}` with "
            f"`{_md(base)}`:\n\n- {_md(reason, None)}\n")


def unverified_sarif(reason: str) -> str:
    """A valid SARIF log with no results whose one invocation failed for `reason`: what CI uploads then."""
    from truthplane.models import ToolStatus, VerifierRun
    from truthplane.truth.sarif import run_for, sarif_log

    failed = VerifierRun(name="truthplane", status=ToolStatus.FAILED, error=reason)
    return json.dumps(sarif_log([run_for("truthplane", [], run_info=failed)]), indent=2) + "\n"


def _most_severe_first(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-f.severity.rank, f.path, f.start_line or 0, f.rule_id))


def _updated(result: GateResult) -> str:
    return f"{len(result.updated)} updated, " if result.updated else ""


def _md(text: str, limit: int | None = 300) -> str:
    """One table cell or list item: a newline would end the row, a control character reach the terminal."""
    return printable(text.replace("|", "\\|").replace("\n", " "))[:limit]


def _finding_lines(console: Any, title: str, findings: list[Finding], style_on: bool, limit: int = 50) -> None:
    """The most severe first, at most `limit` of them: a terminal summary, not the record."""
    if not findings:
        return
    escape: Callable[[str], str] = str
    if style_on:
        from rich.markup import escape as markup_escape

        escape = markup_escape
    ordered = _most_severe_first(findings)
    console.print(f"\n{title} ({len(findings)}):")
    for f in ordered[:limit]:
        sev = f.severity.value
        sev_text = f"[{_SEVERITY_STYLE[sev]}]{sev:>8}[/]" if style_on else f"{sev:>8}"
        console.print(
            f"  {sev_text}  {escape(_location(f))}  {escape(printable(f.verifier))} {escape(printable(f.rule_id))}: "
            f"{escape(printable(f.message))}",
            highlight=False, soft_wrap=True,
        )
    if len(ordered) > limit:
        console.print(f"  ... and {len(ordered) - limit} more (--format json lists them all)")


class _Lines:
    """The report's lines as they are, for a reader that is not a terminal (a CI log, a pipe): rich's console,
    with its markup, styles and emoji codes, is for a terminal, and importing it costs a gate more than printing."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def print(self, text: str = "", *, markup: bool = False, highlight: bool = False, soft_wrap: bool = True) -> None:
        self._stream.write(text + "\n")


def _console(stream: TextIO) -> tuple[Any, bool]:
    from rich.console import Console

    on = fancy(stream)
    return Console(file=stream, force_terminal=on, no_color=not on, highlight=False, soft_wrap=True, emoji=False), on


def _report(stream: TextIO) -> tuple[Any, bool]:
    """Where the gate's and the scan's text reports print: styled on a terminal, plain lines otherwise (every
    text there is written unescaped when not `on`)."""
    return _console(stream) if fancy(stream) else (_Lines(stream), False)


def print_gate_text(result: GateResult, stream: TextIO, *, show_unchanged: bool = False) -> None:
    console, on = _report(stream)
    verdict = result.verdict.value
    head = f"[{VERDICT_STYLE[verdict]}]{verdict}[/]" if on else verdict
    silenced = f", {len(result.silenced_by_config)} silenced by configuration" if result.silenced_by_config else ""
    console.print(f"truthplane: {head}  ({len(result.new)} new, {len(result.fixed)} fixed, {_updated(result)}"
                  f"{result.unchanged_count} unchanged{silenced})")
    for reason in result.reasons:
        console.print(f"  - {printable(reason)}", markup=False)
    if result.suppressed_count:
        console.print(
            f"  {result.suppressed_count} suppressed result(s) not counted (--format json lists them)", markup=False
        )
    _finding_lines(console, "New", result.new, on)
    _finding_lines(console, "Updated, on lines the change edited", result.updated, on)
    _finding_lines(console, "Fixed", result.fixed, on)
    _finding_lines(console, "Silenced by a configuration change", result.silenced_by_config, on)
    _finding_lines(console, "Appeared because of a configuration change", result.added_by_config, on)
    if show_unchanged:
        _listing(result)
        _finding_lines(console, "Unchanged", result.unchanged, on)


def print_scan_text(scan: Scan, stream: TextIO, *, saved: list[Path] | None = None) -> None:
    console, on = _report(stream)
    failed = [r for r in scan.verifiers if r.status.value != "ok"]
    by_severity: dict[str, int] = {}
    for f in scan.findings:
        by_severity[f.severity.value] = by_severity.get(f.severity.value, 0) + 1
    summary = ", ".join(f"{n} {sev}" for sev, n in sorted(by_severity.items(), key=lambda kv: -_rank(kv[0])))
    console.print(f"truthplane: {len(scan.findings)} finding(s)" + (f" ({summary})" if summary else ""), markup=False)
    for run in scan.verifiers:
        console.print(f"  {_run_line(run)}", markup=False)
    _finding_lines(console, "Findings", scan.findings, on)
    if failed:
        console.print(f"\n{len(failed)} verifier(s) could not run: this scan is not complete evidence.", markup=False)
    for path in saved or []:
        console.print(f"wrote {printable(path)}", markup=False)


def scan_markdown(scan: Scan) -> str:
    from truthplane.models import GateResult, Verdict

    failed = any(r.status.value != "ok" for r in scan.verifiers)
    as_gate = GateResult(
        verdict=Verdict.UNVERIFIED if failed else Verdict.APPROVE, new=scan.findings,
        verifiers=scan.verifiers, reasons=["a scan with no baseline: every finding is listed as new"],
    )
    return gate_markdown(as_gate)


def scan_sarif(scan: Scan) -> str:
    from truthplane.truth.sarif import run_for, sarif_log

    runs = [
        run_for(
            r.name, [f for f in scan.findings + scan.suppressed if f.verifier == r.name], version=r.version, run_info=r
        )
        for r in scan.verifiers
    ]
    return json.dumps(sarif_log(runs), indent=2) + "\n"


def _rank(severity: str) -> int:
    return ["note", "low", "medium", "high", "critical"].index(severity)
