"""The gatekeeper's five operations as plain functions over one repository, so a coding agent can check
its own change before it claims success (served over MCP by `truthplane mcp`, testable without it).

    build_db(path, language, build_command)   a CodeQL database of the tree (cached by tree hash)
    analyze(path | database, ...)             truthplane's verifiers over the tree, or CodeQL queries over a
                                              database: findings saved as a baseline or SARIF file
    diff_alerts(before, after)                two baselines or SARIF logs: new / fixed / unchanged and a verdict
    summarize(alerts)                         counts by severity, rule and verifier, one line per finding
    gate(path, base)                          what the working tree changes against the merge-base with base

Every path an agent passes is resolved inside the repository the server was started in: the
gatekeeper never reads or writes outside it. Results are JSON-ready dicts; a bad input is a
TruthplaneError with a one-line message, as on the command line.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from truthplane.errors import UsageError
from truthplane.models import Finding, GateResult, Scan

MAX_LISTED = 200  # findings listed per category; counts are always complete


class Gatekeeper:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _inside(self, value: str, what: str) -> Path:
        path = (self.root / value).resolve()
        if path != self.root and self.root not in path.parents:
            raise UsageError(f"{what} {value!r} is outside the repository {self.root}")
        return path

    def _config(self, path: Path):  # noqa: ANN202 - Config, imported lazily
        from truthplane.config import load_config

        return load_config(path)

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() if path != self.root else "."

    def build_db(self, path: str = ".", language: str | None = None, build_command: str | None = None) -> dict[str, Any]:
        from truthplane.verifiers import codeql

        scope = self._inside(path, "path")
        language = language or codeql.detect_language(scope)
        database = codeql.build_db(scope, build_command, language, cache_root=self.root)
        return {"database": self._relative(database), "language": language}

    def analyze(self, path: str = ".", verifiers: list[str] | None = None, database: str | None = None,
                query_pack: str | None = None) -> dict[str, Any]:
        """With `database`: CodeQL's queries over it (SARIF). Otherwise truthplane's verifiers over `path`,
        saved as a baseline; either file can be handed to diff_alerts and summarize."""
        if database is not None:
            from truthplane.verifiers import codeql

            db = self._inside(database, "database")
            pack = query_pack or f"codeql/{_db_language(db)}-queries"
            sarif = codeql.analyze(db, pack)
            return {"alerts": self._relative(sarif), **summary(codeql.alerts_of(sarif, root=self.root))}
        from truthplane.pipeline import ScanOptions, scan_path
        from truthplane.registry import check_selection
        from truthplane.results import save_baseline

        target = self._inside(path, "path")
        config = self._config(target)
        check_selection(config, verifiers)
        scan = scan_path(target, config, ScanOptions(only=verifiers or None))
        saved, sarif_files = save_baseline(target, scan)
        return {
            "alerts": self._relative(saved),
            "sarif": [self._relative(p) for p in sarif_files],
            "verifiers": _runs(scan),
            "complete": all(r["status"] == "ok" for r in _runs(scan)),
            **summary(scan.findings),
        }

    def diff_alerts(self, before: str, after: str) -> dict[str, Any]:
        from truthplane.gate import evaluate
        from truthplane.results import load_scan

        earlier, later = self._inside(before, "before"), self._inside(after, "after")
        result = evaluate(load_scan(earlier, self.root), load_scan(later, self.root), self._config(self.root).gate,
                          base=before, head=after)
        return judged(result)

    def summarize(self, alerts: str) -> dict[str, Any]:
        from truthplane.results import load_scan

        return summary(load_scan(self._inside(alerts, "alerts")).findings)

    def gate(self, base: str = "origin/main", path: str = ".", verifiers: list[str] | None = None) -> dict[str, Any]:
        from truthplane.pipeline import ScanOptions
        from truthplane.pipeline import gate as run_gate
        from truthplane.registry import check_selection

        target = self._inside(path, "path")
        config = self._config(target)
        check_selection(config, verifiers)
        return judged(run_gate(target, config, ScanOptions(only=verifiers or None), base_ref=base))


def _db_language(db: Path) -> str:
    # <language>-<tree hash>, as codeql.database_path names it
    return db.name.rsplit("-", 1)[0] if "-" in db.name else db.name


def _finding(f: Finding) -> dict[str, Any]:
    return {"verifier": f.verifier, "rule_id": f.rule_id, "severity": f.severity.value, "message": f.message,
            "path": f.path, "start_line": f.start_line, "fingerprint": f.fingerprint}


def _runs(scan: Scan) -> list[dict[str, Any]]:
    return [{"name": r.name, "version": r.version, "status": r.status.value, "count": r.count, "error": r.error}
            for r in scan.verifiers]


def summary(findings: list[Finding]) -> dict[str, Any]:
    ordered = sorted(findings, key=lambda f: (-f.severity.rank, f.path, f.start_line or 0, f.rule_id))
    return {
        "total": len(findings),
        "by_severity": dict(Counter(f.severity.value for f in ordered)),
        "by_rule": dict(sorted(Counter(f"{f.verifier}:{f.rule_id}" for f in findings).items())),
        "findings": [_finding(f) for f in ordered[:MAX_LISTED]],
        "listed": min(len(findings), MAX_LISTED),
    }


def judged(result: GateResult) -> dict[str, Any]:
    return {
        "verdict": result.verdict.value,
        "exit_code": result.verdict.exit_code,
        "reasons": result.reasons,
        "base": result.base,
        "head": result.head,
        "counts": {"new": len(result.new), "fixed": len(result.fixed), "unchanged": len(result.unchanged)},
        "new": [_finding(f) for f in result.new[:MAX_LISTED]],
        "fixed": [_finding(f) for f in result.fixed[:MAX_LISTED]],
        "verifiers": [{"name": r.name, "version": r.version, "status": r.status.value, "count": r.count,
                       "error": r.error} for r in result.verifiers],
    }
