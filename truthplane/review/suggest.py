"""`--suggest`: the fix loop on each introduced finding a review comments on, and an approved fix as a suggestion.

For each finding on a line of the diff (at most MAX_FINDINGS, most severe first), `truthplane fix` runs on its file
for that finding: the analysers' autofixes and, where `[llm]` has a usable provider, LLM candidates, each judged by
the rescan, the tests and the tamper check. A suggestion replaces exactly the lines its comment spans, so what is
offered is the winner's change to the finding's own lines; when the winner changed other lines too (an autofix fixes
a whole file), that part alone is judged again, as a patch of its own, and offered only if the evidence approves it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from truthplane.models import Finding, GateResult, Verdict

if TYPE_CHECKING:
    from truthplane.config import Config

MAX_FINDINGS = 10


@dataclass(frozen=True)
class Suggestion:
    start_line: int
    end_line: int
    text: str  # what replaces lines start_line..end_line


def replacement(before: str, after: str, start: int, end: int) -> str | None:
    """What lines start..end (1-based, inclusive) become, if the change from `before` to `after` touches nothing
    else; None when it does (a suggestion replaces exactly the lines its comment spans)."""
    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    prefix, suffix = old[: start - 1], old[end:]
    if len(new) < len(prefix) + len(suffix) or new[: len(prefix)] != prefix:
        return None
    if suffix and new[len(new) - len(suffix):] != suffix:
        return None
    middle = new[len(prefix): len(new) - len(suffix)]
    if middle == old[start - 1: end]:
        return None  # the fix changed nothing there
    return "".join(middle)


def suggestions(root: Path, result: GateResult, config: Config, diff_lines: dict[str, set[int]],
                say: Callable[[str], None] = lambda line: None) -> dict[str, Suggestion]:
    """An approved fix per finding, by fingerprint, where the fix loop found one confined to the finding's lines."""
    wanted = [f for f in [*result.new, *result.added_by_config] if _on_diff(f, diff_lines)]
    wanted.sort(key=lambda f: (-f.severity.rank, f.path, f.start_line or 0))
    found: dict[str, Suggestion] = {}
    from truthplane.errors import TruthplaneError

    for finding in wanted[:MAX_FINDINGS]:
        try:
            suggestion = _fix_one(root, finding, config, say)
        except TruthplaneError as exc:  # no fix to offer for this one; the review goes on
            say(f"no suggestion for {finding.path}:{finding.start_line}: {exc}")
            continue
        if suggestion is not None:
            found[finding.fingerprint] = suggestion
    return found


def _on_diff(finding: Finding, diff_lines: dict[str, set[int]]) -> bool:
    if not finding.path or not finding.start_line or not finding.fingerprint:
        return False
    lines = range(finding.start_line, (finding.end_line or finding.start_line) + 1)
    return all(line in diff_lines.get(finding.path, set()) for line in lines)


def confined(before: str, after: str, start: int, end: int) -> str | None:
    """`before` with only lines start..end changed as `after` changes them; None when `after`'s change to those
    lines cannot be told apart from its changes elsewhere."""
    import difflib

    old, new = before.splitlines(keepends=True), after.splitlines(keepends=True)
    pieces: list[str] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
        inside = start - 1 <= i1 and i2 <= end
        overlaps = i1 < end and i2 > start - 1 or (i1 == i2 and start - 1 <= i1 <= end)
        if tag == "equal" or not overlaps:
            pieces += old[i1:i2]
        elif inside:
            pieces += new[j1:j2]
        else:
            return None  # one edit reaches over the finding's lines and beyond
    result = "".join(pieces)
    return None if result == before else result


def _winner(root: Path, finding: Finding, config: Config, say: Callable[[str], None],
            patch: Path | None = None) -> str | None:
    """The file as the fix loop's approved winner leaves it, or None."""
    from truthplane.change.fixes import FixRequest
    from truthplane.change.loop import run_fix
    from truthplane.config.llm import LLMConfig
    from truthplane.truth.pipeline import ScanOptions

    request = FixRequest(root=root, target=finding.path, finding=finding.fingerprint, patches=[patch] if patch else [],
                         autofix=patch is None, executor=config.executors.default,
                         timeout_s=min(config.timeout_s, 300.0))
    if patch is not None:  # judging one given change: no new candidates from anywhere
        config = config.model_copy(update={"llm": LLMConfig.model_validate(
            {"chain": [], "tasks": {"categorise": [], "reproduce": [], "candidates": []}})})
    run = asyncio.run(run_fix(request, config, ScanOptions(), say))
    try:
        winner = next((c for c in run.result.candidates if c.id == run.result.winner), None)
        if winner is None or winner.verdict is not Verdict.APPROVE or winner.touched != [finding.path]:
            return None
        return (run.trees[winner.id] / finding.path).read_text(encoding="utf-8")
    finally:
        run.cleanup()


def _fix_one(root: Path, finding: Finding, config: Config, say: Callable[[str], None]) -> Suggestion | None:
    import difflib
    import tempfile

    start = finding.start_line or 0
    end = finding.end_line or start
    try:
        before = (root / finding.path).read_text(encoding="utf-8")
        after = _winner(root, finding, config, say)
        if after is None:
            return None
        text = replacement(before, after, start, end)
        if text is None:  # the winner changed more than the finding's lines: judge that part on its own
            partial = confined(before, after, start, end)
            if partial is None:
                return None
            with tempfile.TemporaryDirectory(prefix="truthplane-suggest-") as scratch:
                patch = Path(scratch) / "suggestion.diff"
                patch.write_text("".join(difflib.unified_diff(
                    before.splitlines(keepends=True), partial.splitlines(keepends=True),
                    f"a/{finding.path}", f"b/{finding.path}")), encoding="utf-8")
                judged = _winner(root, finding, config, say, patch)
            if judged != partial:
                return None
            text = replacement(before, partial, start, end)
        return None if text is None else Suggestion(start, end, text)
    except (OSError, UnicodeDecodeError, KeyError):
        return None
