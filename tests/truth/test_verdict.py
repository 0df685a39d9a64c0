from __future__ import annotations

from truthplane.config import GateConfig
from truthplane.truth.verdict import evaluate
from truthplane.models import Diff, Finding, GateResult, Scan, Severity, ToolStatus, Verdict, VerifierRun


def f(rule: str, severity: Severity = Severity.HIGH, line: int = 1, verifier: str = "ruff") -> Finding:
    return Finding(verifier=verifier, rule_id=rule, severity=severity, message=rule, path="a.py",
                   start_line=line, end_line=line, context_hash=f"ctx-{rule}")


def scan(*findings: Finding, runs: dict[str, ToolStatus] | None = None) -> Scan:
    runs = runs or {"ruff": ToolStatus.OK}
    return Scan(
        created_at="t",
        findings=list(findings),
        verifiers=[
            VerifierRun(name=n, status=s, error=None if s is ToolStatus.OK else "it broke") for n, s in runs.items()
        ],
    )


def test_no_change_approves() -> None:
    result = evaluate(scan(f("A")), scan(f("A", line=9)), GateConfig())
    assert result.verdict is Verdict.APPROVE and len(result.unchanged) == 1


def test_new_high_rejects_new_low_reviews_new_note_approves() -> None:
    assert evaluate(scan(), scan(f("A", Severity.CRITICAL)), GateConfig()).verdict is Verdict.REJECT
    assert evaluate(scan(), scan(f("A", Severity.MEDIUM)), GateConfig()).verdict is Verdict.REVIEW
    result = evaluate(scan(), scan(f("A", Severity.NOTE)), GateConfig())
    assert result.verdict is Verdict.APPROVE and "1 below it" in " ".join(result.reasons)


def test_thresholds_are_configurable() -> None:
    assert (
        evaluate(scan(), scan(f("A", Severity.MEDIUM)), GateConfig(fail_on=Severity.MEDIUM)).verdict is Verdict.REJECT
    )
    assert (
        evaluate(scan(), scan(f("A", Severity.LOW)), GateConfig(review_on=Severity.MEDIUM)).verdict is Verdict.APPROVE
    )
    assert (
        evaluate(scan(), scan(f("A", Severity.LOW), f("B", Severity.LOW)), GateConfig(max_new=1)).verdict
        is Verdict.REJECT
    )


def test_fixed_is_reported() -> None:
    result = evaluate(scan(f("A"), f("B")), scan(f("A")), GateConfig())
    assert [x.rule_id for x in result.fixed] == ["B"] and result.verdict is Verdict.APPROVE


def test_a_failed_verifier_is_never_approval_and_never_fixes_anything() -> None:
    before = scan(f("A"), f("S", verifier="semgrep"), runs={"ruff": ToolStatus.OK, "semgrep": ToolStatus.OK})
    after = scan(f("A"), runs={"ruff": ToolStatus.OK, "semgrep": ToolStatus.FAILED})
    result = evaluate(before, after, GateConfig())
    assert result.verdict is Verdict.UNVERIFIED and result.verdict.exit_code == 4
    assert result.fixed == []
    assert any("semgrep failed: it broke" in r for r in result.reasons)


def test_verifier_without_baseline_is_unverified_not_everything_new() -> None:
    before = scan(f("A"))
    after = scan(f("A"), f("M", verifier="mypy"), runs={"ruff": ToolStatus.OK, "mypy": ToolStatus.OK})
    result = evaluate(before, after, GateConfig())
    assert result.verdict is Verdict.UNVERIFIED and result.new == []
    assert any("mypy did not run on the base" in r for r in result.reasons)


def test_missing_verifier_now() -> None:
    before = scan(f("A"), runs={"ruff": ToolStatus.OK, "bandit": ToolStatus.OK})
    result = evaluate(before, scan(f("A")), GateConfig())
    assert result.verdict is Verdict.UNVERIFIED
    assert any("bandit ran on the base but not now" in r for r in result.reasons)


def edited(rule: str, severity: Severity, line: int, code: str) -> Finding:
    return Finding(verifier="ruff", rule_id=rule, severity=severity, message=rule, path="a.py",
                   start_line=line, end_line=line, context_hash=code, symbol="binomial")


def test_a_finding_on_an_edited_line_is_updated_and_never_rejects_by_itself() -> None:
    before = scan(edited("PIE808", Severity.MEDIUM, 3, "range(0, r)"), f("A", line=9))
    after = scan(edited("PIE808", Severity.MEDIUM, 3, "range(0, r + 1)"), f("A", line=9))
    result = evaluate(before, after, GateConfig())
    assert result.verdict is Verdict.APPROVE
    assert [x.rule_id for x in result.updated] == ["PIE808"] and result.new == result.fixed == []
    assert any("1 finding(s) updated" in r for r in result.reasons)


def test_an_updated_finding_at_fail_on_makes_review_not_reject() -> None:
    before = scan(edited("S602", Severity.HIGH, 3, "call(cmd, shell=True)"))
    after = scan(edited("S602", Severity.HIGH, 3, "call(cmd + ['-v'], shell=True)"))
    result = evaluate(before, after, GateConfig())
    assert result.verdict is Verdict.REVIEW and len(result.updated) == 1
    assert any("1 updated finding(s) at or above high" in r for r in result.reasons)
    assert evaluate(before, after, GateConfig(fail_on=Severity.CRITICAL)).verdict is Verdict.APPROVE


def test_a_finding_on_a_line_that_had_none_is_still_new() -> None:
    before = scan(f("A", line=9))
    after = scan(edited("S602", Severity.HIGH, 3, "call(cmd, shell=True)"), f("A", line=9))
    result = evaluate(before, after, GateConfig())
    assert result.verdict is Verdict.REJECT and result.updated == [] and len(result.new) == 1


def test_documents_written_before_updated_existed_still_load() -> None:
    old = '{"verdict": "APPROVE", "new": [], "fixed": [], "unchanged": [], "verifiers": []}'
    assert GateResult.model_validate_json(old).updated == []
    assert Diff.model_validate_json('{"new": [], "fixed": [], "unchanged": []}').updated == []
