"""Values that cross module boundaries: plain dataclasses, with the few conveniences of a model the code uses
(`model_copy`, `model_dump`, `model_dump_json`, `model_validate`).

A gate builds and reads these on every run, and importing pydantic and building its validators costs a fresh
process some 0.2 s of CPU, as much as a tool's run on the changed file: values made by truthplane itself are
made as they are, and only input that comes from outside (a baseline file) is validated, by pydantic, imported
then (`model_validate`).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, fields
from enum import Enum
from functools import cache
from typing import Any, ClassVar, Literal, TypeVar, cast

SCHEMA_VERSION = 1
MAX_TIMEOUT_S = 30 * 24 * 3600  # a month: beyond it a timeout is a typo, and past 2**63 ns the clocks overflow

_R = TypeVar("_R", bound="Record")


class Record:
    """What a model offers, on a dataclass: copies with changes, plain data, JSON, and validation of outside
    input. A subclass is a @dataclass; `_SORTED` names dict fields written sorted by key."""

    __slots__ = ()
    _SORTED: ClassVar[tuple[str, ...]] = ()

    def model_copy(self: _R, *, update: dict[str, Any] | None = None) -> _R:
        """A shallow copy with `update` set over it, unchecked (as pydantic's model_copy)."""
        new = copy.copy(self)
        for name, value in (update or {}).items():
            object.__setattr__(new, name, value)
        return new

    def model_dump(self, *, mode: Literal["python", "json"] = "python", exclude: set[str] | None = None,
                   exclude_none: bool = False) -> dict[str, Any]:
        """The fields as plain data, nested records as dicts; in "json" mode enums as their values."""
        json_mode = mode == "json"
        values = self.__dict__
        out: dict[str, Any] = {}
        for name in _names(type(self)):
            if exclude and name in exclude:
                continue
            value = values[name]
            if type(value) in _SCALARS:
                if value is not None or not exclude_none:
                    out[name] = value
                continue
            if name in self._SORTED:
                value = dict(sorted(value.items()))
            out[name] = _plain(value, json_mode, exclude_none)
        return out

    def model_dump_json(self, *, indent: int | None = None) -> str:
        """JSON as pydantic writes it (UTF-8 kept; compact without an indent)."""
        return dumps(self.model_dump(mode="json"), indent=indent).decode("utf-8")

    @classmethod
    def model_validate(cls: type[_R], data: Any) -> _R:
        """`data` from outside, checked as pydantic checks it: a pydantic ValidationError if it does not fit."""
        return _adapter(cast(Any, cls)).validate_python(data)  # type: ignore[no-any-return]

    @classmethod
    def model_validate_json(cls: type[_R], data: str | bytes) -> _R:
        return _adapter(cast(Any, cls)).validate_json(data)  # type: ignore[no-any-return]


_SCALARS = frozenset({str, int, float, bool, type(None)})
_NAMES: dict[type, tuple[str, ...]] = {}


def _names(cls: type) -> tuple[str, ...]:
    names = _NAMES.get(cls)
    if names is None:
        # a field the constructor does not take is the instance's own state, as a model's private attribute
        names = _NAMES[cls] = tuple(item.name for item in fields(cls) if item.init)  # type: ignore[arg-type]
    return names


def _plain(value: Any, json_mode: bool, exclude_none: bool) -> Any:
    kind = type(value)
    if kind in _SCALARS:
        return value
    if isinstance(value, Record):
        return value.model_dump(mode="json" if json_mode else "python", exclude_none=exclude_none)
    if isinstance(value, Enum):
        return value.value if json_mode else value
    if kind is list or kind is tuple:
        items = [_plain(item, json_mode, exclude_none) for item in value]
        return items if json_mode or kind is list else tuple(items)
    if isinstance(value, dict):
        return {key: _plain(item, json_mode, exclude_none) for key, item in value.items()}
    return value


def dumps(data: Any, *, indent: int | None = None) -> bytes:
    """Plain data as JSON bytes, written as pydantic writes them: UTF-8 kept, compact without an indent, and
    an indented document (megabytes on a large repository) at pydantic-core's speed, not the json module's."""
    if indent is None:
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    from pydantic_core import to_json  # a tenth of what pydantic costs to import, and only for an indent

    return to_json(data, indent=indent)


@cache
def _adapter(cls: type) -> Any:
    from pydantic import TypeAdapter

    return TypeAdapter(cls)


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


@dataclass(frozen=True, kw_only=True)
class Finding(Record):
    """One problem a verifier reported, located in the repository."""

    verifier: str
    rule_id: str
    severity: Severity
    message: str
    path: str  # repo-relative POSIX path; '' for a finding about the repository as a whole
    start_line: int | None = None
    end_line: int | None = None
    start_column: int | None = None
    end_column: int | None = None
    fingerprint: str = ""  # stable identity, filled in by truthplane.truth.fingerprint
    # inputs to matching, kept so two stored scans can be diffed without the code at hand
    context_hash: str = ""
    symbol: str = ""
    identity: str = ""  # a tool-given identity (test node id, advisory+package) that overrides location
    partial_fingerprints: dict[str, str] = field(default_factory=dict)
    help_uri: str | None = None
    tool_severity: str | None = None  # the severity as the tool itself said it
    # the tool reported it suppressed (SARIF suppression kind): listed, not a finding
    suppressed: Literal["inSource", "external"] | None = None

    def __post_init__(self) -> None:
        if type(self.severity) is not Severity:
            object.__setattr__(self, "severity", Severity(self.severity))


class ToolStatus(str, Enum):
    OK = "ok"
    MISSING = "missing"
    FAILED = "failed"
    TIMEOUT = "timeout"


@dataclass(kw_only=True)
class ToolInfo(Record):
    """Whether a verifier (or executor, or provider) is usable here, and why not."""

    name: str
    installed: bool
    version: str | None = None
    path: str | None = None
    reason: str | None = None  # why it is not usable, and what to do


@dataclass(kw_only=True)
class VerifierRun(Record):
    """How one verifier's run went: the consensus rule needs every one of these to be ok."""

    name: str
    version: str | None = None
    status: ToolStatus
    duration_s: float = 0.0
    count: int = 0
    error: str | None = None
    cached_files: int = 0
    scanned_files: int | None = None

    def __post_init__(self) -> None:
        if type(self.status) is not ToolStatus:
            self.status = ToolStatus(self.status)


@dataclass(kw_only=True)
class ScanResult(Record):
    """What one verifier found in one scan."""

    verifier: str
    version: str | None = None
    findings: list[Finding] = field(default_factory=list)
    duration_s: float = 0.0


@dataclass(kw_only=True)
class Scan(Record):
    """A whole scan: every verifier's findings, with what is needed to diff it later (the baseline file)."""

    schema_version: int = SCHEMA_VERSION
    tool: Literal["truthplane"] = "truthplane"
    created_at: str
    commit: str | None = None
    dirty: bool = False
    verifiers: list[VerifierRun] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    suppressed: list[Finding] = field(default_factory=list)  # results the tools report suppressed
    # repo-relative path -> sha256 of the scanned content; written sorted by path: a scan holds its source's
    # listing as it was read (sorting a large tree's listing costs a gate, which never writes it)
    files: dict[str, str] = field(default_factory=dict)
    _SORTED: ClassVar[tuple[str, ...]] = ("files",)
    # verifier -> (findings, suppressed results) a gate's scan left out on the files both its states have alike
    # (truthplane.truth.scanner.Reference.carried): counted, never listed; never part of a stored scan

    @property
    def carried(self) -> dict[str, tuple[int, int]]:
        return self.__dict__.setdefault("_carried", {})  # type: ignore[no-any-return]

    @carried.setter
    def carried(self, counts: dict[str, tuple[int, int]]) -> None:
        self.__dict__["_carried"] = counts


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


@dataclass(kw_only=True)
class Diff(Record):
    """Findings of two states matched by identity."""

    new: list[Finding] = field(default_factory=list)
    fixed: list[Finding] = field(default_factory=list)
    unchanged: list[Finding] = field(default_factory=list)
    updated: list[Finding] = field(default_factory=list)  # see UPDATED_DESCRIPTION


@dataclass(kw_only=True)
class GateResult(Record):
    """The document `--format json` prints for scan, diff and gate."""

    verdict: Verdict
    reasons: list[str] = field(default_factory=list)
    new: list[Finding] = field(default_factory=list)
    fixed: list[Finding] = field(default_factory=list)
    unchanged: list[Finding] = field(default_factory=list)
    updated: list[Finding] = field(default_factory=list)  # see UPDATED_DESCRIPTION
    suppressed: list[Finding] = field(default_factory=list)  # the head's results the tools report suppressed
    # findings the change's configuration no longer reports (the code still has them)
    silenced_by_config: list[Finding] = field(default_factory=list)
    # findings reported only because the change's configuration asks for them
    added_by_config: list[Finding] = field(default_factory=list)
    verifiers: list[VerifierRun] = field(default_factory=list)
    base: str | None = None  # what was compared against: a baseline file, a commit
    head: str | None = None
    # unchanged findings and suppressed results on files both states have alike, counted but not listed: a gate
    # asked only for its verdict and counts (pipeline.gate's `carry`) never decodes them (`carry`: the
    # instance's own state, as a model's private attribute)

    def __post_init__(self) -> None:
        if type(self.verdict) is not Verdict:
            self.verdict = Verdict(self.verdict)

    def carry(self, unchanged: int, suppressed: int) -> GateResult:
        self.__dict__["_carried"] = (unchanged, suppressed)
        return self

    @property
    def _carried(self) -> tuple[int, int]:
        return self.__dict__.get("_carried", (0, 0))  # type: ignore[no-any-return]

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
