"""Values that cross module boundaries. JSON output schemas are exported from these models."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_serializer

SCHEMA_VERSION = 1
MAX_TIMEOUT_S = 30 * 24 * 3600  # a month: beyond it a timeout is a typo, and past 2**63 ns the clocks overflow
# a time limit in seconds: positive, finite, at most MAX_TIMEOUT_S
Seconds = Annotated[float, Field(gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False)]


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
    fingerprint: str = Field(default="", description="stable identity, filled in by truthplane.truth.fingerprint")
    # inputs to matching, kept so two stored scans can be diffed without the code at hand
    context_hash: str = ""
    symbol: str = ""
    identity: str = Field(
        default="", description="a tool-given identity (test node id, advisory+package) that overrides location"
    )
    partial_fingerprints: dict[str, str] = Field(default_factory=dict)
    help_uri: str | None = None
    tool_severity: str | None = Field(default=None, description="the severity as the tool itself said it")
    suppressed: Literal["inSource", "external"] | None = Field(
        default=None, description="the tool reported it suppressed (SARIF suppression kind): listed, not a finding",
    )


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
    suppressed: list[Finding] = Field(default_factory=list, description="results the tools report suppressed")
    files: dict[str, str] = Field(
        default_factory=dict, description="repo-relative path -> sha256 of the scanned content"
    )
    # verifier -> (findings, suppressed results) a gate's scan left out on the files both its states have alike
    # (truthplane.truth.scanner.Reference.carried): counted, never listed; never part of a stored scan
    _carried: dict[str, tuple[int, int]] = PrivateAttr(default_factory=dict)

    @field_serializer("files")
    def _files_by_path(self, files: dict[str, str]) -> dict[str, str]:
        """Written sorted by path: a scan holds its source's listing as it was read (sorting a large tree's listing
        costs a gate, which never writes it)."""
        return dict(sorted(files.items()))

    @property
    def carried(self) -> dict[str, tuple[int, int]]:
        return self._carried

    @carried.setter
    def carried(self, counts: dict[str, tuple[int, int]]) -> None:
        self._carried = counts


class Verdict(str, Enum):
    APPROVE = "APPROVE"
    REVIEW = "REVIEW"
    REJECT = "REJECT"
    UNVERIFIED = "UNVERIFIED"  # could not verify: a verifier failed, is missing or timed out

    @property
    def exit_code(self) -> int:
        return {"APPROVE": 0, "REJECT": 1, "REVIEW": 3, "UNVERIFIED": 4}[self.value]

    @property
    def record_status(self) -> str:
        """How an execution record names the outcome of a task or fix judged with this verdict."""
        return RECORD_STATUS[self.value]


# an execution record's status of a judged task or fix, by verdict
RECORD_STATUS = {"APPROVE": "SUCCESS", "REVIEW": "NEEDS_REVIEW", "REJECT": "REJECTED", "UNVERIFIED": "UNVERIFIED"}


UPDATED_DESCRIPTION = (
    "findings still reported on a line the change edited (same rule, same symbol): neither new nor fixed"
)


class Diff(BaseModel):
    """Findings of two states matched by identity."""

    new: list[Finding] = Field(default_factory=list)
    fixed: list[Finding] = Field(default_factory=list)
    unchanged: list[Finding] = Field(default_factory=list)
    updated: list[Finding] = Field(default_factory=list, description=UPDATED_DESCRIPTION)


class GateResult(BaseModel):
    """The document `--format json` prints for scan, diff and gate."""

    verdict: Verdict
    reasons: list[str] = Field(default_factory=list)
    new: list[Finding] = Field(default_factory=list)
    fixed: list[Finding] = Field(default_factory=list)
    unchanged: list[Finding] = Field(default_factory=list)
    updated: list[Finding] = Field(default_factory=list, description=UPDATED_DESCRIPTION)
    suppressed: list[Finding] = Field(
        default_factory=list, description="the head's results the tools report suppressed"
    )
    silenced_by_config: list[Finding] = Field(
        default_factory=list,
        description="findings the change's configuration no longer reports (the code still has them)",
    )
    added_by_config: list[Finding] = Field(
        default_factory=list, description="findings reported only because the change's configuration asks for them",
    )
    verifiers: list[VerifierRun] = Field(default_factory=list)
    base: str | None = Field(default=None, description="what was compared against: a baseline file, a commit")
    head: str | None = None
    # unchanged findings and suppressed results on files both states have alike, counted but not listed: a gate
    # asked only for its verdict and counts (pipeline.gate's `carry`) never decodes them
    _carried: tuple[int, int] = PrivateAttr(default=(0, 0))

    def carry(self, unchanged: int, suppressed: int) -> GateResult:
        self._carried = (unchanged, suppressed)
        return self

    @property
    def complete(self) -> bool:
        """Whether `unchanged` and `suppressed` list everything (False: some are only counted)."""
        return self._carried == (0, 0)

    @property
    def unchanged_count(self) -> int:
        return len(self.unchanged) + self._carried[0]

    @property
    def suppressed_count(self) -> int:
        return len(self.suppressed) + self._carried[1]
