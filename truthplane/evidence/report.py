"""`truthplane report RUN_ID --html FILE`: one self-contained HTML page for a run.

Inline CSS only: no script, no link, no image, no URL of any kind, so the page opens offline and
makes no request. Every value from the record is escaped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1400px;padding:0 1em;color:#1b1f24}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:2em}
h3{font-size:1.05em}table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #d0d7de;padding:2px 6px;
text-align:left;vertical-align:top}th{background:#f6f8fa}code,pre,.mono{font-family:ui-monospace,monospace;font-size:12px}td.mono{word-break:break-all}
pre{background:#f6f8fa;padding:.6em;overflow:auto;max-height:30em;white-space:pre-wrap}
.verdict{display:inline-block;padding:1px 8px;border-radius:3px;color:#fff;font-weight:600}
.APPROVE{background:#1a7f37}.REJECT{background:#cf222e}.REVIEW{background:#9a6700}.UNVERIFIED{background:#57606a}
table.diff{width:100%;table-layout:fixed}table.diff td{white-space:pre-wrap;word-break:break-all;border:none;
font-family:ui-monospace,monospace;font-size:12px}table.diff .n{width:3.5em;color:#57606a;text-align:right}
td.del{background:#ffebe9}td.add{background:#dafbe1}tr.file td{background:#ddf4ff;font-weight:600}
tr.hunk td{background:#f6f8fa;color:#57606a}section.task{border:1px solid #d0d7de;border-radius:6px;padding:0 1em 1em;
margin:1em 0}section.winner{border:2px solid #1a7f37}.mark{display:inline-block;padding:1px 8px;border-radius:3px;
background:#dafbe1;color:#1a7f37;font-weight:600;margin-left:.5em}
"""
NOT_RECORDED = "not recorded"


def e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def shown(value: Any, blank: str = NOT_RECORDED) -> str:
    """A value for a field that must not look empty."""
    return e(blank if value is None or value == "" or value == [] else value)


def _badge(verdict: Any) -> str:
    name = str(verdict or "UNVERIFIED")
    css = name if name in {"APPROVE", "REJECT", "REVIEW"} else "UNVERIFIED"
    return f'<span class="verdict {css}">{e(name)}</span>'


def _table(headers: Iterable[str], rows: Iterable[Iterable[Any]], *, mono: frozenset[int] = frozenset()) -> str:
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=mono' if n in mono else ''}>{shown(c)}</td>" for n, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>" if body else "<p>none</p>"


def side_by_side(diff: str) -> str:
    """A unified diff as a two-column table: before on the left, after on the right."""
    rows: list[str] = []
    removed: list[tuple[int, str]] = []
    added: list[tuple[int, str]] = []
    old = new = 0

    def flush() -> None:
        for n in range(max(len(removed), len(added))):
            left = removed[n] if n < len(removed) else None
            right = added[n] if n < len(added) else None
            rows.append("<tr>" + (f'<td class="n">{left[0]}</td><td class="del">{e(left[1])}</td>' if left
                                  else '<td class="n"></td><td></td>')
                        + (f'<td class="n">{right[0]}</td><td class="add">{e(right[1])}</td>' if right
                           else '<td class="n"></td><td></td>') + "</tr>")
        removed.clear()
        added.clear()

    lines = diff.splitlines()
    in_hunk = False
    for n, line in enumerate(lines):
        header = line.startswith("diff --git ") or (
            line.startswith("--- ") and n + 1 < len(lines) and lines[n + 1].startswith("+++ "))
        match = _HUNK.match(line)
        if header or (not in_hunk and not match):
            flush()
            in_hunk = False
            if not line.startswith("+++ "):
                shown = f"{line[4:]} -> {lines[n + 1][4:]}" if line.startswith("--- ") else line
                rows.append(f'<tr class="file"><td colspan="4">{e(shown)}</td></tr>')
        elif match:
            flush()
            in_hunk = True
            old, new = int(match.group(1)), int(match.group(2))
            rows.append(f'<tr class="hunk"><td colspan="4">{e(line)}</td></tr>')
        elif line.startswith("-"):
            removed.append((old, line[1:]))
            old += 1
        elif line.startswith("+"):
            added.append((new, line[1:]))
            new += 1
        elif not line.startswith("\\"):
            flush()
            text = line.removeprefix(" ")
            rows.append(
                f'<tr><td class="n">{old}</td><td>{e(text)}</td><td class="n">{new}</td><td>{e(text)}</td></tr>'
            )
            old, new = old + 1, new + 1
    flush()
    if not rows:
        return "<p>no diff recorded</p>"
    return ('<table class="diff"><tr><th class="n"></th><th>before</th><th class="n"></th><th>after</th></tr>'
            + "".join(rows) + "</table>")


def _findings(items: Any) -> str:
    if not isinstance(items, list) or not items:
        return "<p>none</p>"
    return _table(("verifier", "rule", "severity", "path", "line", "fingerprint"),
                  ([f.get("verifier"), f.get("rule_id"), f.get("severity"), f.get("path"), f.get("start_line"),
                    str(f.get("fingerprint") or "")[:16]] for f in items if isinstance(f, dict)), mono=frozenset({5}))


def _check(title: str, check: Any) -> str:
    if not isinstance(check, dict):
        return f"<h4>{e(title)}</h4><p>not run</p>"
    state = "flaky" if check.get("flaky") else "passed" if check.get("passed") else "failed"
    summary = (f"<p><code>{shown(check.get('command'))}</code>: {e(state)}; exit before the patch "
               f"{shown(check.get('before_rc'), 'not run')}, after {shown(check.get('after_rc'), 'not run')}"
               f"{'; ' + e(check.get('detail')) if check.get('detail') else ''}</p>")
    parts = [f"<h4>{e(title)}</h4>", summary]
    if check.get("before_output_tail"):
        parts.append(f"<p>output before the patch (it failed then):</p><pre>{e(check['before_output_tail'])}</pre>")
    if check.get("output_tail"):
        parts.append(f"<p>output after the patch:</p><pre>{e(check['output_tail'])}</pre>")
    return "".join(parts)


def _diff_text(root: Path, task: dict[str, Any]) -> tuple[str, str]:
    """(diff, where it came from): the full diff log if it is still there, else the record's preview."""
    log = (task.get("logs") or {}).get("diff")
    if isinstance(log, dict) and log.get("path"):
        path = root / str(log["path"])
        if path.is_file():
            return path.read_text(encoding="utf-8", errors="replace"), f"full diff ({log.get('path')})"
    preview = str((task.get("git_evidence") or {}).get("diff_preview") or "")
    return preview, "diff preview from the record (the full diff log is not available)"


def _task(root: Path, task: dict[str, Any], winner: bool) -> str:
    gate = task.get("truth_gate") or {}
    git = task.get("git_evidence") or {}
    verification = task.get("verification") or {}
    diff, origin = _diff_text(root, task)
    llm = task.get("llm") or {}
    mark = '<span class="mark">winner</span>' if winner else ""
    parts = [
        f'<section class="task{" winner" if winner else ""}"><h3>{_badge(gate.get("verdict") or task.get("status"))} '
        f"{shown(task.get('title') or task.get('task_id'))}{mark}</h3>",
        _table(
            ("task", "source", "status", "reason"),
            [[task.get("task_id"), task.get("source", ""), task.get("status"), gate.get("reason")]],
        ),
        "<h4>New findings</h4>",
        _findings(verification.get("new")),
        "<h4>Fixed findings</h4>",
        _findings(verification.get("fixed")),
        _check("Tests", verification.get("tests")),
        _check("Reproduction", verification.get("reproduction")),
        f"<h4>Diff</h4><p>{e(origin)}</p>",
        side_by_side(diff),
        "<h4>Evidence</h4>",
        _table(
            ("file", "sha256 before", "sha256 after"),
            ([m.get("file"), m.get("sha256_before"), m.get("sha256_after")] for m in task.get("modifications") or []),
            mono=frozenset({1, 2}),
        ),
        f"<p>commit <code>{e(git.get('commit_sha') or 'none')}</code>, applied: "
        f"{'yes' if git.get('applied') else 'no'}</p>",
    ]
    if llm:
        cost = f"cost {e(llm['cost_usd'])} USD" if llm.get("cost_usd") is not None else "cost not recorded"
        parts.append(f"<p>LLM: {shown(llm.get('provider'))} / {shown(llm.get('model'))}, prompt "
                     f"<code>{shown(llm.get('prompt_hash'))}</code>, {cost}</p>")
    return "".join(parts) + "</section>"


def render_html(root: Path, record: dict[str, Any], *, evidence: list[dict[str, Any]],
                usage: list[dict[str, Any]]) -> str:
    winner = record.get("winner")
    tasks = [t for t in record.get("tasks") or [] if isinstance(t, dict)]
    tasks.sort(key=lambda t: winner is None or t.get("task_id") != winner)  # the winner first, the rest as they ran
    target = record.get("target")
    target = target if isinstance(target, dict) else {}
    summary = ([("target", target.get("description")), ("winner", winner or "none")]
               if record.get("kind") == "fix" else [])
    baseline = record.get("baseline") or {}
    verifiers = baseline.get("verifiers") or {}
    metrics = record.get("honest_metrics") or {}
    body = [
        f"<h1>truthplane {e(record.get('kind'))} run {e(record.get('run_id'))} "
        f"{_badge(record.get('overall_verdict'))}</h1>",
        _table(
            ("started", "ended", "tool", *(name for name, _ in summary)),
            [[record.get("start_time"), record.get("end_time"), record.get("tool"), *(value for _, value in summary)]],
        ),
        "<h2>Verdicts</h2>",
        _table(
            ("task", "source", "verdict", "reason"),
            (
                [
                    f"{t.get('task_id')} (winner)" if winner and t.get("task_id") == winner else t.get("task_id"),
                    t.get("source", ""),
                    (t.get("truth_gate") or {}).get("verdict"),
                    (t.get("truth_gate") or {}).get("reason"),
                ]
                for t in tasks
            ),
        ),
        "<h2>Honest metrics</h2>",
        _table(("metric", "value"), metrics.items() if isinstance(metrics, dict) else []),
        "<h2>Baseline</h2>",
        _table(
            ("verifier", "version", "status", "findings"),
            (
                [name, v.get("version"), v.get("status"), v.get("count")]
                for name, v in verifiers.items()
                if isinstance(v, dict)
            )
            if isinstance(verifiers, dict)
            else [],
        ),
        "<h3>Targeted findings</h3>",
        (
            "<p>none: the target is the reproduction</p>"
            if target.get("kind") == "reproduction" and not baseline.get("targets")
            else _findings(baseline.get("targets"))
        ),
        "<h2>Candidates</h2>",
        *(_task(root, t, winner is not None and t.get("task_id") == winner) for t in tasks),
        "<h2>Evidence</h2>",
        _table(
            ("field", "value"),
            [
                ["sequence", record.get("sequence")],
                ["record_hash", record.get("record_hash")],
                ["previous_hash", record.get("previous_hash")],
                ["ledger_format", record.get("ledger_format")],
            ],
            mono=frozenset({1}),
        ),
        _table(
            ("evidence file", "kind", "sha256", "bytes", "removed by gc"),
            (
                [i.get("path"), i.get("kind"), i.get("sha256"), i.get("bytes"), "yes" if i.get("pruned_at") else "no"]
                for i in evidence
            ),
            mono=frozenset({0, 2}),
        ),
        "<h3>LLM calls</h3>",
        _table(
            ("provider", "model", "outcome", "tokens", "cost USD"),
            (
                [
                    u.get("provider"),
                    u.get("model"),
                    u.get("outcome"),
                    (u.get("prompt_tokens") or 0) + (u.get("completion_tokens") or 0),
                    u.get("cost_usd"),
                ]
                for u in usage
            ),
        ),
        f"<p>Re-check this run: <code>truthplane verify {e(record.get('run_id'))}</code></p>",
    ]
    title = f"truthplane {record.get('kind')} {record.get('run_id')}: {record.get('overall_verdict')}"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(title)}</title><style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
