"""The patch loop's values: a candidate change, the checks run on it, and what the gate said of each.

Kept apart from truthplane.models, which a gate imports: a gate judges no candidates.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

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
    detail: str = ""


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


class FixResult(BaseModel):
    verdict: Verdict
    winner: str | None = None
    candidates: list[CandidateResult] = Field(default_factory=list)
    applied: bool = False
    commit: str | None = None
    evidence: str | None = Field(default=None, description="the execution_<UTC>.json written for this run")
    reasons: list[str] = Field(default_factory=list)
