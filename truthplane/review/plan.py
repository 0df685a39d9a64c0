"""What a review says, whatever the platform: a comment on each introduced finding's line when the line is in the
pull request's diff (the others go into the review's body), and how that meets the comments an earlier run left.

A comment carries its finding's fingerprint in a hidden marker, so the next push updates it instead of adding a
duplicate, and removes it when its finding is gone. Findings are matched by fingerprint, never by line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from truthplane.models import Finding, GateResult

MARKER = "<!-- truthplane:finding {fingerprint} -->"
REVIEW_MARKER = "<!-- truthplane:review -->"
SUPERSEDED = "<!-- truthplane:superseded -->"  # an earlier review body, once a later one holds the verdict
_MARKED = re.compile(r"<!-- truthplane:finding ([^\s>]+) -->")
HUNK = re.compile(r"^@@ -\d+(?:,\d+)? \+(\d+)(?:,(\d+))? @@")
OUTSIDE_LIMIT = 50


def commentable_lines(patch: str) -> set[int]:
    """The new-side lines a review comment can be placed on: every added or context line of the patch's hunks."""
    lines: set[int] = set()
    new_line = 0
    for raw in patch.splitlines():
        match = HUNK.match(raw)
        if match:
            new_line = int(match[1])
            continue
        if not new_line or raw.startswith("\\"):
            continue  # before the first hunk, or "\ No newline at end of file"
        if raw.startswith("-"):
            continue
        lines.add(new_line)
        new_line += 1
    return lines


def marked_fingerprint(body: str) -> str | None:
    match = _MARKED.search(body or "")
    return match[1] if match else None


def _escape(text: str) -> str:
    return text.replace("<", "&lt;").replace(">", "&gt;")


def comment_body(finding: Finding, suggestion: str | None = None, fence: str = "suggestion") -> str:
    """`fence`: how the platform opens a suggestion for the comment's lines (GitLab counts the lines above)."""
    rule = f"`{finding.verifier}` `{finding.rule_id}`"
    link = f" ([rule]({finding.help_uri}))" if finding.help_uri and finding.help_uri.startswith("https://") else ""
    lines = [f"**truthplane: new {finding.severity.value} finding** {rule}{link}", "", _escape(finding.message)]
    if suggestion is not None:
        lines += ["", "A fix the evidence approved (the rescan, the tests and the tamper check):", "", f"```{fence}"]
        if suggestion:
            lines.append(suggestion.rstrip("\n"))
        lines.append("```")
    lines += ["", MARKER.format(fingerprint=finding.fingerprint)]
    return "\n".join(lines)


@dataclass
class Inline:
    finding: Finding
    path: str
    line: int
    body: str
    start_line: int | None = None  # a comment over several lines (the finding's, or a suggestion's): its first


class Suggested(Protocol):
    start_line: int
    end_line: int
    text: str


@dataclass
class Existing:
    """A comment an earlier run left, as the platform lists it."""

    id: str
    fingerprint: str
    path: str
    line: int | None
    body: str
    resolved: bool = False  # a thread already resolved (GitLab): kept as it is while its finding lasts
    start_line: int | None = None  # a comment over several lines (GitHub's multi-line comments): its first


@dataclass
class Plan:
    create: list[Inline] = field(default_factory=list)
    update: list[tuple[Existing, Inline]] = field(default_factory=list)
    keep: list[Existing] = field(default_factory=list)
    remove: list[Existing] = field(default_factory=list)
    outside: list[Finding] = field(default_factory=list)  # introduced, but not on a line of the diff

    def summary(self) -> str:
        return (f"{len(self.create)} new comment(s), {len(self.update)} updated, {len(self.keep)} unchanged, "
                f"{len(self.remove)} removed (finding gone), {len(self.outside)} outside the diff")


def plan_review(result: GateResult, diff_lines: dict[str, set[int]], existing: list[Existing],
                suggestions: Mapping[str, Suggested] | None = None, platform: str = "github") -> Plan:
    """Meet the introduced findings with the earlier comments: create, update, keep, remove. A finding over several
    lines gets its comment over them all when they are all in the diff (else on its last line); a finding with a
    suggestion, over the suggestion's lines. On GitHub a comment's first line is part of where it is (a multi-line
    comment); GitLab's comments sit on one line."""
    suggestions = suggestions or {}
    plan = Plan()
    by_fingerprint = {e.fingerprint: e for e in sorted(existing, key=lambda e: not e.resolved)}  # an open one wins
    wanted: set[str] = set()
    for f in sorted([*result.new, *result.added_by_config], key=lambda f: (f.path, f.start_line or 0, f.rule_id)):
        line = f.end_line or f.start_line
        in_diff = diff_lines.get(f.path, set())
        if not f.path or not line or line not in in_diff or not f.fingerprint:
            plan.outside.append(f)
            continue
        wanted.add(f.fingerprint)
        suggested = suggestions.get(f.fingerprint)
        if (suggested is not None and suggested.end_line == line
                and all(n in in_diff for n in range(suggested.start_line, line))):
            above = line - suggested.start_line
            fence = "suggestion" if platform == "github" else f"suggestion:-{above}+0"
            inline = Inline(f, f.path, line, comment_body(f, suggested.text, fence),
                            suggested.start_line if above else None)
        else:
            first = f.start_line if f.start_line and f.start_line < line else None
            inline = Inline(f, f.path, line, comment_body(f),
                            first if first and all(n in in_diff for n in range(first, line)) else None)
        old = by_fingerprint.get(f.fingerprint)
        if old is None:
            plan.create.append(inline)
        elif _where(old, platform) != _where(inline, platform):
            plan.remove.append(old)  # a comment cannot move: the old one goes, a new one is made where it is now
            plan.create.append(inline)
        elif old.body.strip() != inline.body.strip():
            plan.update.append((old, inline))
        else:
            plan.keep.append(old)
    plan.remove += [e for e in existing if e.fingerprint not in wanted and not e.resolved]
    return plan


def _where(comment: Existing | Inline, platform: str) -> tuple[str, int | None, int | None]:
    """Where a comment is: its path, its line and, on GitHub (multi-line comments), its first line."""
    return comment.path, comment.line, comment.start_line if platform == "github" else None


def review_body(result: GateResult, plan: Plan) -> str:
    mark = {"APPROVE": "✅", "REVIEW": "⚠️", "REJECT": "❌", "UNVERIFIED": "❔"}.get(result.verdict.value, "")
    lines = [f"## {mark} truthplane: {result.verdict.value}", ""]
    lines += [f"- {_escape(reason)}" for reason in result.reasons]
    lines += ["", f"**{len(result.new) + len(result.added_by_config)} new**, **{len(result.fixed)} fixed**, "
                  f"{len(result.updated)} updated, {len(result.unchanged)} unchanged (matched by fingerprint)."]
    if plan.outside:
        lines += ["", "New findings on lines outside this pull request's diff:", ""]
        for f in plan.outside[:OUTSIDE_LIMIT]:
            where = f"{f.path}:{f.start_line}" if f.path and f.start_line else f.path or "(repository)"
            lines.append(f"- `{_escape(where)}` {f.severity.value} `{f.verifier}` `{f.rule_id}`: {_escape(f.message)}")
        if len(plan.outside) > OUTSIDE_LIMIT:
            lines.append(f"- … and {len(plan.outside) - OUTSIDE_LIMIT} more")
    lines += ["", REVIEW_MARKER]
    return "\n".join(lines)
