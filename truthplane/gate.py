"""Diff -> verdict. The policy is small on purpose: anyone can predict what the gate will say.

- a verifier that did not run successfully on both sides: UNVERIFIED (exit 4) — no evidence, no approval;
- a new finding at or above gate.fail_on, or more than gate.max_new new findings: REJECT;
- a new finding at or above gate.review_on, or an updated one (still reported on a line the change
  edited) at or above gate.fail_on: REVIEW;
- otherwise APPROVE (new findings below review_on and updated ones below fail_on are listed, not counted
  against the change).
"""

from __future__ import annotations

from collections.abc import Mapping

from truthplane.config import GateConfig
from truthplane.fingerprint import match
from truthplane.models import Diff, GateResult, Scan, ToolStatus, Verdict


def compare(before: Scan, after: Scan, renames: Mapping[str, str] | None = None) -> tuple[Diff, list[str]]:
    """Match the findings of the verifiers that ran on both sides; say what could not be compared.

    A verifier that failed now must not make its old findings look fixed, and one without a baseline
    must not make everything look new: both are left out of the diff and reported instead.
    """
    ok_before = {r.name for r in before.verifiers if r.status == ToolStatus.OK}
    ok_after = {r.name for r in after.verifiers if r.status == ToolStatus.OK}
    problems = []
    for run in after.verifiers:
        if run.status != ToolStatus.OK:
            problems.append(f"{run.name} {run.status.value}: {run.error or 'no details'}")
        elif run.name not in ok_before:
            why = "did not run successfully" if any(r.name == run.name for r in before.verifiers) else "did not run"
            problems.append(f"{run.name} {why} on the base, so there is nothing to compare its findings with")
    for run in before.verifiers:
        if not any(r.name == run.name for r in after.verifiers):
            problems.append(f"{run.name} ran on the base but not now: its findings cannot be judged")
    comparable = ok_before & ok_after
    diff = match(
        [f for f in before.findings if f.verifier in comparable],
        [f for f in after.findings if f.verifier in comparable],
        renames,
        # SARIF inputs carry no file list: the paths seen among findings stand in
        before_files=set(before.files) or None,
        after_files=set(after.files) or None,
        same_files=[p for p, blob in after.files.items() if before.files.get(p) == blob] if before.files else None,
    )
    return diff, problems


def judge(diff: Diff, problems: list[str], policy: GateConfig) -> tuple[Verdict, list[str]]:
    reasons = list(problems)
    blocking = [f for f in diff.new if f.severity.at_least(policy.fail_on)]
    reviewable = [f for f in diff.new if f.severity.at_least(policy.review_on) and f not in blocking]
    if blocking:
        reasons.append(f"{len(blocking)} new finding(s) at or above {policy.fail_on.value}")
    if policy.max_new is not None and len(diff.new) > policy.max_new:
        reasons.append(f"{len(diff.new)} new findings, more than the {policy.max_new} allowed")
    if reviewable:
        reasons.append(f"{len(reviewable)} new finding(s) at or above {policy.review_on.value} need review")
    # an edit of a flagged line is not a new problem, but one at fail_on deserves a look
    updated_severe = [f for f in diff.updated if f.severity.at_least(policy.fail_on)]
    if updated_severe:
        reasons.append(
            f"{len(updated_severe)} updated finding(s) at or above {policy.fail_on.value} on lines the change edited need review"
        )
    if problems:
        verdict = Verdict.UNVERIFIED
    elif blocking or (policy.max_new is not None and len(diff.new) > policy.max_new):
        verdict = Verdict.REJECT
    elif reviewable or updated_severe:
        verdict = Verdict.REVIEW
    else:
        verdict = Verdict.APPROVE
        below = len(diff.new)
        reasons.append(
            f"no new findings at or above {policy.review_on.value}" + (f" ({below} below it)" if below else "")
        )
    if len(diff.updated) > len(updated_severe):
        reasons.append(f"{len(diff.updated) - len(updated_severe)} finding(s) updated: still reported on lines the change edited")
    if diff.fixed:
        reasons.append(f"{len(diff.fixed)} finding(s) fixed")
    return verdict, reasons


def evaluate(
    before: Scan,
    after: Scan,
    policy: GateConfig,
    renames: Mapping[str, str] | None = None,
    *,
    base: str | None = None,
    head: str | None = None,
) -> GateResult:
    diff, problems = compare(before, after, renames)
    verdict, reasons = judge(diff, problems, policy)
    return GateResult(
        verdict=verdict, reasons=reasons, new=diff.new, fixed=diff.fixed, unchanged=diff.unchanged,
        updated=diff.updated, verifiers=after.verifiers, base=base, head=head,
    )
