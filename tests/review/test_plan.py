"""The parts of a review that need no server: which lines a comment may go on, and which part of a fix a
suggestion may carry."""

from __future__ import annotations

from truthplane.review.plan import commentable_lines
from truthplane.review.suggest import confined, replacement

BEFORE = "a\nb\nc\nd\ne\n"


def test_commentable_lines_are_the_added_and_context_lines_of_each_hunk() -> None:
    patch = "@@ -1,3 +1,4 @@\n a\n-b\n+B\n+B2\n c\n\\ No newline at end of file\n@@ -10,2 +11,2 @@\n x\n+y\n"
    assert commentable_lines(patch) == {1, 2, 3, 4, 11, 12}


def test_a_suggestion_carries_only_a_change_to_the_findings_own_lines() -> None:
    assert replacement(BEFORE, "a\nB\nc\nd\ne\n", 2, 2) == "B\n"
    assert replacement(BEFORE, "a\nc\nd\ne\n", 2, 2) == ""  # the line deleted
    assert replacement(BEFORE, "a\nB\nc\nd\nE\n", 2, 2) is None  # line 5 changed too
    assert replacement(BEFORE, BEFORE, 2, 2) is None  # nothing to suggest


def test_the_part_of_a_wider_fix_on_the_findings_lines_is_cut_out_to_be_judged_alone() -> None:
    assert confined(BEFORE, "A\nb\nc\nd\n", 5, 5) == "a\nb\nc\nd\n"  # only the deletion of line 5 kept
    assert confined(BEFORE, "A\nb\nc\nd\nE\n", 1, 1) == "A\nb\nc\nd\ne\n"
    assert confined(BEFORE, "a\nX\n", 2, 2) is None  # one edit spans the finding's line and beyond
    assert confined(BEFORE, "a\nb\nc\nD\ne\n", 2, 2) is None  # nothing on the finding's line


def test_a_finding_over_several_lines_is_commented_over_them_only_when_all_are_in_the_diff() -> None:
    from truthplane.models import Finding, GateResult, Severity, Verdict
    from truthplane.review.plan import Existing, plan_review

    def finding(start: int, end: int) -> Finding:
        return Finding(verifier="ruff", rule_id="E731", severity=Severity.MEDIUM, message="lambda", path="a.py",
                       start_line=start, end_line=end, fingerprint=f"fp{start}")

    result = GateResult(verdict=Verdict.REVIEW, new=[finding(3, 5), finding(9, 12)])
    diff = {"a.py": {3, 4, 5, 11, 12}}  # 9..12: only its last lines are in the diff
    plan = plan_review(result, diff, [], platform="github")
    assert [(c.start_line, c.line) for c in plan.create] == [(3, 5), (None, 12)]
    # GitLab's comments sit on one line: an earlier one there is where it should be, whatever the finding's start
    earlier = [Existing("d/1", "fp3", "a.py", 5, plan.create[0].body), Existing("d/2", "fp9", "a.py", 12,
                                                                                 plan.create[1].body)]
    gitlab = plan_review(result, diff, earlier, platform="gitlab")
    assert (gitlab.create, gitlab.remove, len(gitlab.keep)) == ([], [], 2)
    # on GitHub an earlier single-line comment is not where a multi-line one now goes: made again over its lines
    github = plan_review(result, diff, earlier, platform="github")
    assert [(c.start_line, c.line) for c in github.create] == [(3, 5)] and [e.id for e in github.remove] == ["d/1"]
