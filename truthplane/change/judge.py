"""What a candidate must achieve, and the verdict on what it did.

The user's intent decides the target:
- `--repro-cmd` or `--error`: the reproduction (it fails before the patch and passes after, every run).
  The file's findings are not targets: a candidate adds none and breaks no test; the ones it leaves are
  listed as remaining, the ones it also fixes count in the ranking.
- `--finding FP`: that finding.
- neither: the file's findings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from truthplane.change.fixes import Baseline, CandidateResult, FixRequest, FixTarget, RunCheck
from truthplane.models import Finding, Verdict

if TYPE_CHECKING:
    from truthplane.config import GateConfig

NEEDS_PROVIDER = (
    "fixing an error needs an LLM provider, to write its reproduction and the candidate fixes: set GEMINI_API_KEY, "
    "GROQ_API_KEY or DEEPSEEK_API_KEY; or serve a model on a local OpenAI-compatible server (Ollama, llama.cpp), "
    "name it in truthplane.toml ([llm.providers.ollama] model = \"NAME\") and pass --provider ollama; "
    "or give the reproduction with --repro-cmd and a fix with --candidate"
)


def target_kind(request: FixRequest) -> str:
    if request.repro_cmd or request.error:
        return "reproduction"
    return "finding" if request.finding else "findings"


def describe_target(request: FixRequest, targets: list[Finding]) -> FixTarget:
    kind = target_kind(request)
    if kind == "reproduction":
        how = f"`{request.repro_cmd}`" if request.repro_cmd else "a reproduction of the error written by the LLM"
        text = f"the reproduction {how}: it must fail before the patch and pass after, every run"
        if targets:
            text += f"; and finding {targets[0].rule_id} at {targets[0].path}:{targets[0].start_line}"
        return FixTarget(kind="reproduction", description=text)
    if kind == "finding":
        found = targets[0]
        return FixTarget(kind="finding", description=f"finding {found.rule_id} at {found.path}:{found.start_line}")
    return FixTarget(kind="findings", description=f"the {len(targets)} finding(s) in {request.target}")


def _key(found: Finding) -> tuple[str, str, str]:
    return found.verifier, found.rule_id, found.fingerprint


def judge(request: FixRequest, policy: GateConfig, base: Baseline, result: CandidateResult,
          problems: list[str], tampering: list[str]) -> tuple[Verdict, list[str]]:
    """The verdict on one candidate and its reasons; fills in result.targets_fixed and result.remaining."""
    reproduction = target_kind(request) == "reproduction"
    new, fixed, tests, repro = result.new, result.fixed, result.tests, result.repro
    reject, review = list(tampering), list(result.flags)
    target_keys = {_key(f) for f in base.targets}
    fixed_targets = [f for f in fixed if _key(f) in target_keys]
    result.targets_fixed = len(fixed_targets)
    if base.targets and not fixed_targets:
        reject.append(f"fixes none of the {len(base.targets)} targeted finding(s) in {request.target}")
    blocking = [f for f in new if f.severity.at_least(policy.fail_on)]
    if blocking:
        reject.append(f"{len(blocking)} new finding(s) at or above {policy.fail_on.value}: "
                      + ", ".join(f"{f.rule_id} at {f.path}:{f.start_line}" for f in blocking[:3]))
    elif any(f.severity.at_least(policy.review_on) for f in new):
        review.append(f"{len(new)} new finding(s) need review")
    _judge_tests(base, tests, reject, review)
    if reproduction:
        fixed_keys = {_key(f) for f in fixed}
        result.remaining = [f for f in base.scan.findings
                            if f.path == request.target and _key(f) not in fixed_keys and _key(f) not in target_keys]
        if repro is None:
            review.append("no reproduction of the error ran: nothing shows that this candidate fixes it")
    if repro is not None:
        if repro.flaky:
            review.append(f"the reproduction is flaky after the patch (exit codes {repro.after_rc})")
        elif not repro.passed:
            reject.append(f"the reproduction still fails after the patch ({_exit(repro.after_rc[-1])})")
        elif reproduction:
            result.targets_fixed += 1
        if base.repro_before == 0:
            review.append("the reproduction passed before the patch too: it proves nothing")
    if problems:
        return Verdict.UNVERIFIED, problems + reject + review
    if reject:
        return Verdict.REJECT, reject + review
    if review:
        return Verdict.REVIEW, review
    return Verdict.APPROVE, [_summary(policy, result, reproduction)]


def _exit(returncode: int | None) -> str:
    """How a run ended, for a reason: its exit code, or that the executor stopped it at its time limit."""
    return "timed out" if returncode is None else f"exit {returncode}"


def _judge_tests(base: Baseline, tests: RunCheck | None, reject: list[str], review: list[str]) -> None:
    if tests is None or tests.passed:
        return
    if base.tests_before == 0:
        reject.append(f"the tests fail after the patch ({_exit(tests.after_rc[0])}) and passed before")
    else:
        review.append("the tests failed before and still fail: no regression can be ruled out")


def _summary(policy: GateConfig, result: CandidateResult, reproduction: bool) -> str:
    repro = result.repro
    if reproduction and repro is not None:
        runs = len(repro.after_rc)
        parts = [f"the reproduction fails before and passes {runs}/{runs} after"]
        if result.fixed:
            parts.append(f"also fixes {len(result.fixed)} finding(s)")
        if result.remaining:
            parts.append(f"leaves {len(result.remaining)} finding(s) in the file, not targets")
    else:
        parts = [f"fixes {len(result.fixed)} finding(s)"]
    parts.append(f"no new finding at or above {policy.review_on.value}")
    if result.tests is not None:
        parts.append("tests pass")
    if repro is not None and not reproduction:
        parts.append(f"reproduction passes {len(repro.after_rc)}/{len(repro.after_rc)}")
    return ", ".join(parts)


def choose_winner(results: list[CandidateResult]) -> CandidateResult | None:
    """Among the approved: most targets fixed, then no flags, then most findings fixed, then tests passing,
    then the smallest normalised diff, then the fastest."""
    approved = [r for r in results if r.verdict is Verdict.APPROVE]
    if not approved:
        return None
    return min(approved, key=lambda r: (-r.targets_fixed, bool(r.flags), -len(r.fixed),
                                        not (r.tests is None or r.tests.passed), r.diff_lines, r.duration_s))
