"""Values that cross module boundaries. JSON output schemas are exported from these models."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class Severity(str, Enum):
    """One scale for every tool: note < low < medium < high < critical."""

    NOTE = "note"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    def at_least(self, other: Severity) -> bool:
        return self.rank >= other.rank


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}


class Finding(BaseModel):
    """One problem a verifier reported, located in the repository."""

    model_config = ConfigDict(frozen=True)

    verifier: str
    rule_id: str
    severity: Severity
    message: str
    path: str = Field(description="repo-relative POSIX path; '' for a finding about the repository as a whole")
    start_line: int | None = None
    end_line: int | None = None
    start_column: int | None = None
    end_column: int | None = None
    fingerprint: str = Field(default="", description="stable identity, filled in by truthplane.fingerprint")
    # inputs to matching, kept so two stored scans can be diffed without the code at hand
    context_hash: str = ""
    symbol: str = ""
    identity: str = Field(default="", description="a tool-given identity (test node id, advisory+package) that overrides location")
    partial_fingerprints: dict[str, str] = Field(default_factory=dict)
    help_uri: str | None = None
    tool_severity: str | None = Field(default=None, description="the severity as the tool itself said it")


class ToolStatus(str, Enum):
    OK = "ok"
    MISSING = "missing"
    FAILED = "failed"
    TIMEOUT = "timeout"


class ToolInfo(BaseModel):
    """Whether a verifier (or executor, or provider) is usable here, and why not."""

    name: str
    installed: bool
    version: str | None = None
    path: str | None = None
    reason: str | None = Field(default=None, description="why it is not usable, and what to do")


class VerifierRun(BaseModel):
    """How one verifier's run went: the consensus rule needs every one of these to be ok."""

    name: str
    version: str | None = None
    status: ToolStatus
    duration_s: float = 0.0
    count: int = 0
    error: str | None = None
    cached_files: int = 0
    scanned_files: int | None = None


class ScanResult(BaseModel):
    """What one verifier found in one scan."""

    verifier: str
    version: str | None = None
    findings: list[Finding] = Field(default_factory=list)
    duration_s: float = 0.0


class Scan(BaseModel):
    """A whole scan: every verifier's findings, with what is needed to diff it later (the baseline file)."""

    schema_version: int = SCHEMA_VERSION
    tool: Literal["truthplane"] = "truthplane"
    created_at: str
    commit: str | None = None
    dirty: bool = False
    verifiers: list[VerifierRun] = Field(default_factory=list)
    findings: list[Finding] = Field(default_factory=list)
    files: dict[str, str] = Field(default_factory=dict, description="repo-relative path -> sha256 of the scanned content")


class Verdict(str, Enum):
    APPROVE = "APPROVE"
    REVIEW = "REVIEW"
    REJECT = "REJECT"
    UNVERIFIED = "UNVERIFIED"  # could not verify: a verifier failed, is missing or timed out

    @property
    def exit_code(self) -> int:
        return {"APPROVE": 0, "REJECT": 1, "REVIEW": 3, "UNVERIFIED": 4}[self.value]


class Diff(BaseModel):
    """Findings of two states matched by identity."""

    new: list[Finding] = Field(default_factory=list)
    fixed: list[Finding] = Field(default_factory=list)
    unchanged: list[Finding] = Field(default_factory=list)


class GateResult(BaseModel):
    """The document `--format json` prints for scan, diff and gate."""

    verdict: Verdict
    reasons: list[str] = Field(default_factory=list)
    new: list[Finding] = Field(default_factory=list)
    fixed: list[Finding] = Field(default_factory=list)
    unchanged: list[Finding] = Field(default_factory=list)
    verifiers: list[VerifierRun] = Field(default_factory=list)
    base: str | None = Field(default=None, description="what was compared against: a baseline file, a commit")
    head: str | None = None


# ---- executors -------------------------------------------------------------------------------


class Limits(BaseModel):
    """Resource limits for one job. Network is off unless asked for."""

    timeout_s: float = 60.0
    memory_mb: int = 1024
    pids: int = 256
    cpus: float = 1.0
    network: bool = False
    max_output_bytes: int = 1_000_000


class Job(BaseModel):
    """A command to run against some files, somewhere isolated.

    `files` maps repo-relative paths to contents; `source_dir` names a directory snapshot to copy
    instead (or as well). `env` is empty by default: the host's environment never leaks in.
    """

    command: list[str]
    files: dict[str, bytes] = Field(default_factory=dict)
    source_dir: str | None = None
    workdir: str = "."
    env: dict[str, str] = Field(default_factory=dict)
    stdin: bytes | None = None
    limits: Limits = Field(default_factory=Limits)
    label: str = ""


class JobResult(BaseModel):
    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_s: float = 0.0
    timed_out: bool = False
    oom_killed: bool = False
    executor: str
    node: str = "localhost"
    sandboxed: bool = True
    attempts: int = 1
    notes: list[str] = Field(default_factory=list, description="what the caller should know: unsandboxed, retried on another node, ...")

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.oom_killed


# ---- the patch loop ----------------------------------------------------------------------------


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
