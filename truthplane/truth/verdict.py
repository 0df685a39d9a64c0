"""Diff -> verdict. The policy is small on purpose: anyone can predict what the gate will say.

- a verifier that did not run successfully on both sides: UNVERIFIED (exit 4) — no evidence, no approval;
- a new finding at or above gate.fail_on, or more than gate.max_new new findings: REJECT;
- a new finding at or above gate.review_on, an updated one (still reported on a line the change edited)
  at or above gate.fail_on, a suppression the change adds, findings its configuration change silences: REVIEW;
- otherwise APPROVE (new findings below review_on and updated ones below fail_on are listed, not counted
  against the change).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from truthplane.config import GateConfig
from truthplane.truth.fingerprint import match
from truthplane.models import Diff, Finding, GateResult, Scan, ToolStatus, Verdict


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
    # the head's newly suppressed results take part in matching, so a finding the change suppresses is not
    # "fixed"; those suppressed on the base already stay out of it
    newly_suppressed = match(
        [f for f in before.suppressed if f.verifier in comparable],
        [f for f in after.suppressed if f.verifier in comparable], renames,
    ).new if after.suppressed else []
    old = [f for f in before.findings if f.verifier in comparable]
    new = [f for f in after.findings + newly_suppressed if f.verifier in comparable]
    # matching asks about the files of findings (and of renames) only: the rest of a large tree need not be listed
    renames = renames or {}
    asked = {f.path for f in old} | {f.path for f in new} | set(renames) | set(renames.values())
    diff = match(
        old, new, renames,
        # SARIF inputs carry no file list: the paths seen among findings stand in
        before_files={p for p in asked if p in before.files} if before.files else None,
        after_files={p for p in asked if p in after.files} if after.files else None,
        same_files=[p for p in asked if p in after.files and before.files.get(p) == after.files[p]]
        if before.files else None,
    )
    diff = _pair_by_location(diff)
    if newly_suppressed:
        diff = _suppressed_is_not_fixed(diff, renames or {})
    return diff, problems


def _suppressed_is_not_fixed(diff: Diff, renames: Mapping[str, str]) -> Diff:
    """The head's suppressed results leave the lists; one the change suppressed takes its base finding along
    (a comment on the flagged line changes its text): same verifier, rule and file, the nearest line."""
    fixed = list(diff.fixed)
    for finding in diff.new:
        if not finding.suppressed:
            continue
        same = [old for old in fixed if (old.verifier, old.rule_id, renames.get(old.path, old.path))
                == (finding.verifier, finding.rule_id, finding.path)]
        if same:
            fixed.remove(min(same, key=lambda old: abs((old.start_line or 0) - (finding.start_line or 0))))
    return diff.model_copy(update={
        "new": [f for f in diff.new if not f.suppressed], "fixed": fixed,
        "unchanged": [f for f in diff.unchanged if not f.suppressed],
        "updated": [f for f in diff.updated if not f.suppressed],
    })


def _same_rule(one: str, other: str) -> bool:
    # semgrep prefixes a rule's id with the directories of the rule file it was given
    return one == other or one.endswith("." + other) or other.endswith("." + one)


def _pair_by_location(diff: Diff) -> Diff:
    """A foreign tool's SARIF log carries no context of the flagged code: its findings are the same as another
    scan's when verifier, rule, file and line agree. Only a finding without a context hash pairs this way."""
    fixed_at: dict[tuple[str, str, int], list[Finding]] = defaultdict(list)
    for finding in diff.fixed:
        if finding.start_line:
            fixed_at[(finding.verifier, finding.path, finding.start_line)].append(finding)
    if not fixed_at:
        return diff
    paired_fixed: set[int] = set()
    still_new: list[Finding] = []
    unchanged = list(diff.unchanged)
    for finding in diff.new:
        candidates = fixed_at.get((finding.verifier, finding.path, finding.start_line or 0), [])
        partner = next((
            old for old in candidates
            if id(old) not in paired_fixed and (not old.context_hash or not finding.context_hash)
            and _same_rule(old.rule_id, finding.rule_id)
        ), None)
        if partner is None:
            still_new.append(finding)
        else:
            paired_fixed.add(id(partner))
            unchanged.append(finding)
    if not paired_fixed:
        return diff
    return diff.model_copy(update={
        "new": still_new, "fixed": [f for f in diff.fixed if id(f) not in paired_fixed], "unchanged": unchanged,
    })


def judge(
    diff: Diff, problems: list[str], policy: GateConfig, review: Sequence[str] = (),
) -> tuple[Verdict, list[str]]:
    """`review` names what the change did besides its findings (a suppression it adds, findings its
    configuration silences): each one makes the verdict REVIEW at least."""
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
            f"{len(updated_severe)} updated finding(s) at or above {policy.fail_on.value} on lines the change edited "
            f"need review"
        )
    if problems:
        verdict = Verdict.UNVERIFIED
    elif blocking or (policy.max_new is not None and len(diff.new) > policy.max_new):
        verdict = Verdict.REJECT
    elif reviewable or updated_severe or review:
        verdict = Verdict.REVIEW
    else:
        verdict = Verdict.APPROVE
        below = len(diff.new)
        reasons.append(
            f"no new findings at or above {policy.review_on.value}" + (f" ({below} below it)" if below else "")
        )
    if len(diff.updated) > len(updated_severe):
        reasons.append(
            f"{len(diff.updated) - len(updated_severe)} finding(s) updated: still reported on lines the change edited"
        )
    reasons += review
    if diff.fixed:
        reasons.append(f"{len(diff.fixed)} finding(s) fixed")
    return verdict, reasons


@dataclass(frozen=True)
class ConfigChange:
    """The head's code scanned again under the base's configuration, for the verifiers whose configuration
    files (`files`: verifier -> changed paths) the change alters."""

    files: Mapping[str, list[str]]
    head_with_base_config: Scan
    rescanned: frozenset[str] = frozenset()  # the verifiers the base's configuration runs at all


@dataclass
class _ConfigEffects:
    diff: Diff
    silenced: list[Finding] = field(default_factory=list)
    added: list[Finding] = field(default_factory=list)
    review: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _config_effects(diff: Diff, after: Scan, change: ConfigChange, renames: Mapping[str, str]) -> _ConfigEffects:
    """Split what the configuration did from what the code did: findings the base's configuration reports on
    the head's code and the head's does not are silenced (not fixed); the reverse appeared (not new)."""
    effects = _ConfigEffects(diff)
    alternative = change.head_with_base_config
    runs = {r.name: r for r in alternative.verifiers}
    for name, paths in sorted(change.files.items()):
        run = runs.get(name)
        if name not in change.rescanned:
            pass  # the base's settings run no such verifier: all it reports came with the change
        elif run is None or run.status != ToolStatus.OK:
            effects.problems.append(
                f"{name} could not scan the head with the base's configuration, so what the change to "
                f"{', '.join(paths)} silences is unknown: {run.error if run else 'it did not run'}")
            continue
        same_code = match([f for f in alternative.findings if f.verifier == name],
                          [f for f in after.findings if f.verifier == name], same_files=list(after.files) or None)
        where = ", ".join(paths)
        if same_code.fixed:
            effects.silenced += same_code.fixed
            effects.review.append(
                f"{len(same_code.fixed)} {name} finding(s) silenced by a configuration change in {where}")
        if same_code.new:
            effects.added += same_code.new
            effects.notes.append(
                f"{len(same_code.new)} {name} finding(s) appeared because of a configuration change in {where}")
    appeared = {id(f) for f in effects.added}
    still_fixed = match(diff.fixed, effects.silenced, renames).fixed  # a base finding the code still has is not fixed
    effects.diff = diff.model_copy(update={
        "new": [f for f in diff.new if id(f) not in appeared], "fixed": still_fixed,
        "unchanged": [f for f in diff.unchanged if id(f) not in appeared],
        "updated": [f for f in diff.updated if id(f) not in appeared],
    })
    return effects


def evaluate(
    before: Scan,
    after: Scan,
    policy: GateConfig,
    renames: Mapping[str, str] | None = None,
    *,
    base: str | None = None,
    head: str | None = None,
    review: Sequence[str] = (),
    config_change: ConfigChange | None = None,
    notes: Sequence[str] = (),
    suppressed_by_change: Callable[[Finding], bool] | None = None,
) -> GateResult:
    """`review`: what holds the change for REVIEW besides its findings; `notes`: what the reasons should
    say without bearing on the verdict."""
    diff, problems = compare(before, after, renames)
    effects = _ConfigEffects(diff)
    if config_change is not None and config_change.files:
        effects = _config_effects(diff, after, config_change, renames or {})
    suppressed = list(after.suppressed)
    if suppressed_by_change is not None:
        # a tool that drops what a directive silences reports it gone: it is suppressed, not fixed
        silenced = [f for f in effects.diff.fixed if suppressed_by_change(f)]
        if silenced:
            suppressed += [f.model_copy(update={"suppressed": "inSource"}) for f in silenced]
            effects.diff = effects.diff.model_copy(
                update={"fixed": [f for f in effects.diff.fixed if not suppressed_by_change(f)]})
    verdict, reasons = judge(effects.diff, problems + effects.problems, policy, [*review, *effects.review])
    result = GateResult(
        verdict=verdict, reasons=[*reasons, *effects.notes, *notes], new=effects.diff.new, fixed=effects.diff.fixed,
        unchanged=effects.diff.unchanged, updated=effects.diff.updated, suppressed=suppressed,
        silenced_by_config=effects.silenced, added_by_config=effects.added, verifiers=after.verifiers, base=base,
        head=head,
    )
    if after.carried or before.carried:
        # what both sides left out on the files they have alike is unchanged: the same on both (Reference.carried)
        if config_change is not None and config_change.files:
            raise ValueError("a gate that carries files cannot weigh a configuration change: it needs every finding")
        comparable = _comparable(before, after)
        if any(before.carried.get(name) != after.carried.get(name) for name in comparable):
            # both sides leave the same files out, or neither: anything else would call what one side left out
            # fixed or new
            raise ValueError("the two sides of a gate left different findings out")
        result.carry(sum(n for name, (n, _) in after.carried.items() if name in comparable),
                     sum(s for _, s in after.carried.values()))
    return result


def _comparable(before: Scan, after: Scan) -> set[str]:
    ok_before = {r.name for r in before.verifiers if r.status == ToolStatus.OK}
    return {r.name for r in after.verifiers if r.status == ToolStatus.OK and r.name in ok_before}
