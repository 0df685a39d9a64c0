"""ruff: fast Python lint. Runs with cwd=target so the repository's pyproject [tool.ruff], ruff.toml
or .ruff.toml applies (never --isolated); truthplane's `args` are appended to it.

Exit codes: 0 clean, 1 findings, 2 could not run (bad config, bad arguments, crash).
Severity: syntax errors high; pyflakes (F), E9 and flake8-bandit (S) medium; everything else low.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from truthplane.errors import VerifierError
from truthplane.models import Finding, Severity, ToolInfo
from truthplane.verifiers._commands import Recipe
from truthplane.verifiers._common import (
    TEST_FILE_DEFAULTS,
    TEST_FILE_RULES,
    ToolRecord,
    cached_tool_info,
    drop_test_file_rules,
    one_line,
    parse_json,
    positive,
    repo_path,
    validate,
)
from truthplane.verifiers.file_tool import FileToolVerifier
from truthplane.verifiers.tool import ToolOutput

INSTALL_HINT = "pip install ruff, or drop it from verifiers in truthplane.toml"
SYNTAX_ERROR = "invalid-syntax"


class _Location(ToolRecord):
    row: int | None = None
    column: int | None = None


class _RuffDiagnostic(ToolRecord):
    code: str | None
    message: str
    filename: str
    location: _Location | None = None
    end_location: _Location | None = None
    url: str | None = None
    severity: str | None = None


class _RuffOutput(ToolRecord):
    diagnostics: list[_RuffDiagnostic]


def ruff_severity(code: str) -> Severity:
    if code in (SYNTAX_ERROR, "E999"):
        return Severity.HIGH
    if code.startswith(("F", "E9", "S")):
        return Severity.MEDIUM
    return Severity.LOW


def sets_per_file_ignores(target: Path) -> bool:
    """Whether the repository's top-level ruff configuration has per-file-ignores of its own."""
    for name, table_path in (("ruff.toml", ()), (".ruff.toml", ()), ("pyproject.toml", ("tool", "ruff"))):
        path = target / name
        if not path.is_file():
            continue
        try:
            table: Any = tomllib.loads(path.read_text(encoding="utf-8", errors="replace"))
        except tomllib.TOMLDecodeError:
            continue  # ruff reports a broken file in its own words
        for key in table_path:
            table = table.get(key, {}) if isinstance(table, dict) else {}
        if not isinstance(table, dict):
            continue
        lint: dict[str, Any] = table["lint"] if isinstance(table.get("lint"), dict) else {}
        if any(key in section for section in (table, lint) for key in ("per-file-ignores", "extend-per-file-ignores")):
            return True
    return False


class RuffVerifier(FileToolVerifier):
    name = "ruff"
    file_local = True
    suffixes = (".py", ".pyi")
    config_files = ("pyproject.toml", "ruff.toml", ".ruff.toml")
    pyproject_keys = ("tool.ruff", "project.requires-python")  # ruff infers its target version from the latter

    def available(self) -> ToolInfo:
        return cached_tool_info(self.instance_name, ["ruff", "--version"], install_hint=INSTALL_HINT)

    def config_fingerprint(self) -> str:
        return super().config_fingerprint() + TEST_FILE_DEFAULTS

    def recipe(self, target: Path) -> Recipe:
        return Recipe("ruff", {"args": list(self.options.args)})

    def findings(self, target: Path, output: ToolOutput, files: list[str] | None) -> list[Finding]:
        findings = self.parse(target, output)
        if not sets_per_file_ignores(target):  # the repository has said which rules apply to which files
            findings = drop_test_file_rules(findings, TEST_FILE_RULES["ruff"])
        return findings

    def parse(self, target: Path, output: ToolOutput) -> list[Finding]:
        """ruff's JSON report as findings; anything else is a VerifierError."""
        data = parse_json(self.instance_name, output.stdout, "ruff", output.stderr)
        diagnostics = validate(self.instance_name, _RuffOutput, {"diagnostics": data}, "ruff").diagnostics
        if output.returncode == 1 and not diagnostics:
            raise VerifierError(
                self.instance_name, "ruff exited 1 (findings) but reported none; run `ruff check` by hand"
            )
        return [self._finding(target, item) for item in diagnostics]

    def _finding(self, target: Path, item: _RuffDiagnostic) -> Finding:
        code = item.code or SYNTAX_ERROR
        start = item.location or _Location()
        end = item.end_location or _Location()
        return Finding(
            verifier=self.instance_name,
            rule_id=code,
            severity=ruff_severity(code),
            tool_severity=item.severity,
            message=one_line(item.message),
            path=repo_path(target, item.filename),
            start_line=positive(start.row),
            start_column=positive(start.column),
            end_line=positive(end.row),
            end_column=positive(end.column),
            help_uri=item.url,
        )
