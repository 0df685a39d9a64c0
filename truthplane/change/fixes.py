"""The patch loop's values: a candidate change, the checks run on it, and what the gate said of each.

Kept apart from truthplane.models, which a gate imports: a gate judges no candidates.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from truthplane.executors.jobs import PreflightFinding
from truthplane.models import UPDATED_DESCRIPTION, Finding, Scan, Verdict


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
    ran_on: list[str] = Field(default_factory=list, description="where each run after the patch ran: executor on node")


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
        default_factory=list,
        description="dangerous constructs in the code this candidate's jobs ran that no commit of the repository holds",
    )


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


@dataclass
class FixRequest:
    """What to fix and how: the file, the finding or error, where candidates come from, how they run."""


    root: Path
    target: str  # repo-relative POSIX path of the file to fix
    finding: str | None = None  # a fingerprint: fix only that finding
    error: str | None = None  # an error text (traceback) to fix instead of findings
    candidates: int = 3
    providers: list[str] = field(default_factory=list)
    patches: list[Path] = field(default_factory=list)
    autofix: bool = True
    test_cmd: str | None = None
    repro_cmd: str | None = None
    repro_runs: int = 3
    executor: str = "local"
    allow: frozenset[str] = frozenset()
    timeout_s: float = 300.0
    jobs: int | None = None  # candidates judged at once (None: all of them)
    run_id: str | None = None  # the history's id for this run: LLM calls are recorded under it
    home: Path | None = None  # where the history (and its LLM budget) lives, if not root (a snippet's directory)


@dataclass
class Baseline:
    """The tree before any candidate: its snapshot, findings, tests and reproduction, as every candidate is
    judged against them."""


    snapshot: Path
    files: dict[str, str]
    scan: Scan
    targets: list[Finding]
    tests_before: int | None
    tests_output: str
    repro_script: str | None
    repro_before: int | None
    notes: list[str]
    # the baseline's tests and given reproduction, still running while candidates are gathered and run:
    # only the verdicts wait for them (Loop.settled)
    pending: asyncio.Future[None] | None = None
    # the preflight of code every candidate's jobs run that no commit holds: a snippet, a generated reproduction
    preflight: list[PreflightFinding] = field(default_factory=list)
