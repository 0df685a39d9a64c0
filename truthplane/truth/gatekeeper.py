"""The gatekeeper's five operations as plain functions over one repository, so a coding agent can check
its own change before it claims success (served over MCP by `truthplane mcp`, testable without it).

    build_db(path, language, build_command)   a CodeQL database of the tree (cached by tree hash)
    analyze(path | database, ...)             truthplane's verifiers over the tree (saved as a baseline when
                                              asked), or CodeQL queries over a database (a SARIF file)
    diff_alerts(before, after)                two baselines or SARIF logs: new / fixed / unchanged and a verdict
    summarize(alerts)                         counts by severity and rule, and a page of the findings
    gate(path, base)                          what the working tree changes against the merge-base with base

Every path an agent passes is resolved inside the repository the server was started in: the
gatekeeper never reads or writes outside it. The repository cannot move it out either: a result
directory that is a symbolic link and a configuration file that leads outside are refused, and the
result cache is the one whoever started the server chose, whatever the repository's `cache_dir` says.
Results are JSON-ready dicts; a bad input is a TruthplaneError with a one-line message, as on the
command line.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from truthplane.errors import UsageError
from truthplane.models import Diff, Finding, GateResult, Scan
from truthplane.paths import RESULTS_DIR, SARIF_DIR
from truthplane.verifiers._common import one_line

if TYPE_CHECKING:
    from truthplane.verifiers.codeql import Alerts

DEFAULT_LIMIT = 20  # findings listed per answer unless the agent asks for more; counts are always complete
MAX_LIMIT = 200
MESSAGE_CHARS = 240  # a finding's message is cut here: some tools repeat whole paragraphs of advice


class Gatekeeper:
    def __init__(self, root: Path, cache_dir: Path | None = None) -> None:
        from truthplane.paths import default_cache_dir

        self.root = root.resolve()
        self.cache_dir = (cache_dir or default_cache_dir()).resolve()
        # one gate at a time: the tools a gate starts ahead are held process-wide until that gate takes them
        self._gating = threading.Lock()

    def _inside(self, value: str, what: str) -> Path:
        path = (self.root / value).resolve()
        if path != self.root and self.root not in path.parents:
            raise UsageError(f"{what} {value!r} is outside the repository {self.root}")
        return path

    def _config(self, path: Path):  # noqa: ANN202 - Config, imported lazily
        from truthplane.config import load_config

        for name in ("truthplane.toml", "pyproject.toml"):
            if (path / name).exists() or (path / name).is_symlink():
                self._inside(self._relative(path / name), "configuration file")
        return load_config(path)

    def _options(self, verifiers: list[str] | None):  # noqa: ANN202 - ScanOptions, imported lazily
        from truthplane.truth.pipeline import ScanOptions

        return ScanOptions(only=verifiers or None, cache_dir=self.cache_dir)

    def _writable(self, directory: Path) -> None:
        """A directory results are written into (`directory` is under the root, spelled without links):
        refused if it, or a directory between it and the root, is a symbolic link."""
        for step in (directory, *directory.parents):
            if step == self.root or self.root not in step.parents:
                return
            if step.is_symlink():
                raise UsageError(f"{self._relative(step)} is a symbolic link: the gatekeeper writes only inside "
                                 f"{self.root}; remove the link")

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() if path != self.root else "."

    def build_db(
        self, path: str = ".", language: str | None = None, build_command: str | None = None
    ) -> dict[str, Any]:
        from truthplane.verifiers import codeql

        scope = self._inside(path, "path")
        self._writable(self.root / RESULTS_DIR / codeql.DB_DIR)
        language = language or codeql.detect_language(scope)
        database = codeql.build_db(scope, build_command, language, cache_root=self.root)
        return {"database": self._relative(database), "language": language}

    def analyze(self, path: str = ".", verifiers: list[str] | None = None, database: str | None = None,
                query_pack: str | None = None, baseline: bool = False, limit: int = DEFAULT_LIMIT,
                offset: int = 0) -> dict[str, Any]:
        """With `database`: CodeQL's queries over it (SARIF). Otherwise truthplane's verifiers over `path`,
        saved as a baseline only with `baseline`; either file can be handed to diff_alerts and summarize."""
        check_page(limit, offset)
        if database is not None:
            from truthplane.verifiers import codeql

            db = self._inside(database, "database")  # resolved: its SARIF log is written beside it, inside
            pack = query_pack or f"codeql/{_db_language(db)}-queries"
            sarif = codeql.analyze(db, pack)
            return {"alerts": self._relative(sarif), **summary(codeql.alerts_of(sarif, root=self.root), limit, offset)}
        from truthplane.truth.pipeline import scan_path
        from truthplane.verifiers.loader import check_selection
        from truthplane.truth.results import save_baseline

        target = self._inside(path, "path")
        if baseline:
            for directory in (RESULTS_DIR, SARIF_DIR):
                self._writable(target / directory)
        config = self._config(target)
        check_selection(config, verifiers)
        scan = scan_path(target, config, self._options(verifiers))
        recorded: dict[str, Any] = {"alerts": None, "sarif": []}
        if baseline:
            saved, sarif_files = save_baseline(target, scan)
            recorded = {"alerts": self._relative(saved), "sarif": [self._relative(p) for p in sarif_files]}
        return {
            **recorded,
            "verifiers": _runs(scan),
            "complete": all(r["status"] == "ok" for r in _runs(scan)),
            **summary(scan.findings, limit, offset),
        }

    def diff_alerts(self, before: str, after: str, limit: int = DEFAULT_LIMIT, offset: int = 0) -> dict[str, Any]:
        from truthplane.truth.verdict import evaluate
        from truthplane.truth.results import load_scan

        check_page(limit, offset)
        earlier, later = self._inside(before, "before"), self._inside(after, "after")
        result = evaluate(load_scan(earlier, self.root), load_scan(later, self.root), self._config(self.root).gate,
                          base=before, head=after)
        return judged(result, limit, offset)

    def summarize(self, alerts: str, limit: int = DEFAULT_LIMIT, offset: int = 0) -> dict[str, Any]:
        from truthplane.truth.results import load_scan

        check_page(limit, offset)
        return summary(load_scan(self._inside(alerts, "alerts")).findings, limit, offset)

    def gate(self, base: str = "origin/main", path: str = ".", verifiers: list[str] | None = None,
             limit: int = DEFAULT_LIMIT, offset: int = 0) -> dict[str, Any]:
        from truthplane.truth.pipeline import gate as run_gate
        from truthplane.verifiers.loader import check_selection
        from truthplane.git.repo import Repo

        check_page(limit, offset)
        target = self._inside(path, "path")
        from truthplane.git.run import gate_calls_ahead
        from truthplane.truth.ahead import LaunchPlans, tools_ahead

        plans = LaunchPlans(self.cache_dir, only=tuple(verifiers) if verifiers else None)
        with self._gating:
            # as the CLI does: git lists the change and the tools start on it while the repository is checked and
            # the configuration read (nothing started there outlives the block)
            with tools_ahead(plans) as on_listed, gate_calls_ahead(target, base, None, on_listed, store=self.cache_dir):
                top = Repo.require(target).root.resolve()
                if top != self.root and self.root not in top.parents:
                    raise UsageError(f"the git repository of {path!r} starts at {top}, above the server's root "
                                     f"{self.root}: start the server at the repository's top directory")
                config = self._config(target)
                check_selection(config, verifiers)
                result = run_gate(target, config, self._options(verifiers), base_ref=base, plans=plans, carry=True)
        return judged(result, limit, offset)


def _db_language(db: Path) -> str:
    # <language>-<tree hash>, as codeql.database_path names it
    return db.name.rsplit("-", 1)[0] if "-" in db.name else db.name


def check_page(limit: int, offset: int) -> None:
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(
            f"limit {limit} is out of range: 1 to {MAX_LIMIT} findings per answer (default {DEFAULT_LIMIT})"
        )
    if offset < 0:
        raise UsageError(f"offset {offset} is negative: 0 is the first finding")


def _most_severe_first(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (-f.severity.rank, f.path, f.start_line or 0, f.rule_id))


def _finding(f: Finding) -> dict[str, Any]:
    message = f.message if len(f.message) <= MESSAGE_CHARS else f.message[:MESSAGE_CHARS - 1] + "\u2026"
    return {"verifier": f.verifier, "rule_id": f.rule_id, "severity": f.severity.value, "message": message,
            "path": f.path, "start_line": f.start_line, "fingerprint": f.fingerprint}


def _page(total: int, limit: int, offset: int) -> dict[str, Any]:
    return {"offset": offset, "limit": limit, "next_offset": offset + limit if offset + limit < total else None}


def _runs(scan: Scan) -> list[dict[str, Any]]:
    return [{"name": r.name, "version": r.version, "status": r.status.value, "count": r.count, "error": r.error}
            for r in scan.verifiers]


def summary(findings: list[Finding], limit: int = DEFAULT_LIMIT, offset: int = 0) -> dict[str, Any]:
    """Counts of every finding, and one page of them, the most severe first."""
    check_page(limit, offset)
    ordered = _most_severe_first(findings)
    rules = Counter(f"{f.verifier}:{f.rule_id}" for f in findings)
    return {
        "total": len(findings),
        "by_severity": dict(Counter(f.severity.value for f in ordered)),
        "rules": len(rules),
        "by_rule": dict(sorted(rules.items(), key=lambda item: (-item[1], item[0]))[:DEFAULT_LIMIT]),
        "findings": [_finding(f) for f in ordered[offset:offset + limit]],
        **_page(len(findings), limit, offset),
    }


def judged(result: GateResult, limit: int = DEFAULT_LIMIT, offset: int = 0) -> dict[str, Any]:
    """The verdict, its reasons and the counts; one page of the new, updated, fixed and silenced findings, the
    most severe first. Unchanged and suppressed findings are only counted: they are not what the change did."""
    check_page(limit, offset)
    return {
        "verdict": result.verdict.value,
        "exit_code": result.verdict.exit_code,
        "reasons": result.reasons,
        "base": result.base,
        "head": result.head,
        "counts": {
            "new": len(result.new),
            "fixed": len(result.fixed),
            "updated": len(result.updated),
            "unchanged": result.unchanged_count,
            "suppressed": result.suppressed_count,
            "silenced_by_config": len(result.silenced_by_config),
        },
        "new": [_finding(f) for f in _most_severe_first(result.new)[offset : offset + limit]],
        "updated": [_finding(f) for f in _most_severe_first(result.updated)[offset : offset + limit]],
        "fixed": [_finding(f) for f in _most_severe_first(result.fixed)[offset : offset + limit]],
        "silenced_by_config": [
            _finding(f) for f in _most_severe_first(result.silenced_by_config)[offset : offset + limit]
        ],
        **_page(
            max(len(result.new), len(result.updated), len(result.fixed), len(result.silenced_by_config)), limit, offset
        ),
        "verifiers": [
            {"name": r.name, "version": r.version, "status": r.status.value, "count": r.count, "error": r.error}
            for r in result.verifiers
        ],
    }


def diff_alerts(before: Alerts, after: Alerts, renames: Mapping[str, str] | None = None) -> Diff:
    """New, fixed and unchanged alerts between two analyses, paired by CodeQL's own fingerprints."""
    from truthplane.truth.fingerprint import match
    from truthplane.verifiers.codeql import alerts_of

    return match(alerts_of(before), alerts_of(after), renames)


class AlertSummary(BaseModel):
    total: int
    by_severity: dict[str, int] = Field(default_factory=dict)
    by_rule: dict[str, int] = Field(default_factory=dict)
    lines: list[str] = Field(default_factory=list, description="one per alert: severity rule path:line message")


def summarize(alerts: Alerts | Diff) -> AlertSummary | dict[str, AlertSummary]:
    """Counts by severity and rule (plus one line per alert); a Diff gives one summary per state."""
    from truthplane.verifiers.codeql import alerts_of

    if isinstance(alerts, Diff):
        return {state: _summary(getattr(alerts, state)) for state in ("new", "fixed", "unchanged")}
    return _summary(alerts_of(alerts))


def _summary(findings: list[Finding]) -> AlertSummary:
    ordered = sorted(findings, key=lambda f: (-f.severity.rank, f.path, f.start_line or 0, f.rule_id))
    return AlertSummary(
        total=len(findings),
        by_severity=dict(Counter(f.severity.value for f in ordered)),
        by_rule=dict(sorted(Counter(f.rule_id for f in findings).items())),
        lines=[
            f"{f.severity.value} {f.rule_id} {f.path}:{f.start_line or '-'} {one_line(f.message, 160)}" for f in ordered
        ],
    )
