"""The patch loop's values: a candidate change, the checks run on it, and what the gate said of each.

Kept apart from truthplane.models, which a gate imports: a gate judges no candidates.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from truthplane.jobs import PreflightFinding
from truthplane.models import UPDATED_DESCRIPTION, Finding, Verdict


class Candidate(BaseModel):
    """A proposed change: a unified diff with repo-relative paths (a/ and b/ prefixes)."""

    id: str
    source: Literal["llm", "autofix", "patch"]
    title: str = ""
    diff: str
    rationale: str = ""
    provider: str | None = None
    model: str | None = None
    prompt_hash: str | None = None
    cost_usd: float | None = None
    also_from: list[str] = Field(default_factory=list, description="ids of duplicates merged into this one")


class RunCheck(BaseModel):
    """A command's outcome before and after a candidate (reproduction or tests)."""

    command: str
    before_rc: int | None = None
    after_rc: list[int | None] = Field(default_factory=list, description="one per repetition")
    passed: bool = False
    flaky: bool = False
    output_tail: str = ""
    before_output_tail: str = Field(default="", description="the output's tail before any patch, when it failed then")
    detail: str = ""
    interpreter: str | None = Field(default=None, description="the Python `python` meant in the command's job")


class CandidateResult(BaseModel):
    """What the gate said of one candidate (fix --format json: candidates[])."""

    id: str
    source: str
    verdict: Verdict
    reasons: list[str] = Field(default_factory=list)
    new: list[Finding] = Field(default_factory=list)
    fixed: list[Finding] = Field(default_factory=list)
    updated: list[Finding] = Field(default_factory=list, description=UPDATED_DESCRIPTION)
    tests: RunCheck | None = None
    repro: RunCheck | None = None
    duration_s: float = 0.0
    touched: list[str] = Field(default_factory=list)
    diff_lines: int = 0
    targets_fixed: int = Field(default=0, description="targets it fixes: the reproduction (1) and targeted findings")
    remaining: list[Finding] = Field(default_factory=list, description="the file's findings it leaves (not targets)")
    flags: list[str] = Field(default_factory=list, description="possible reward hacks seen in its diff")
    preflight: list[PreflightFinding] = Field(
        default_factory=list, description="dangerous constructs in the code this candidate's jobs ran that no commit of the repository holds")


class FixTarget(BaseModel):
    """What the user asked to fix, which decides what a candidate must achieve."""

    kind: Literal["reproduction", "finding", "findings"]
    description: str


class FixResult(BaseModel):
    verdict: Verdict
    target: FixTarget | None = None
    winner: str | None = None
    candidates: list[CandidateResult] = Field(default_factory=list)
    applied: bool = False
    commit: str | None = None
    evidence: str | None = Field(default=None, description="the execution_<UTC>.json written for this run")
    reasons: list[str] = Field(default_factory=list)
