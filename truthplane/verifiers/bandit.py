"""bandit: Python security lint. The repository's `.bandit` (an ini file with a [bandit] section, passed
with --ini, or a YAML config passed with -c) and pyproject [tool.bandit] (passed with -c) apply; with
both, the ini wins for what it sets, as in bandit itself. truthplane's `args` are appended.

Exit codes: 0 clean, 1 findings, anything else could not run. A file bandit could not parse is listed in
its `errors`; that is a finding (`parse-error`, medium), so a broken file never passes as clean.
Severity: bandit's HIGH/MEDIUM/LOW -> high/medium/low, one step lower when bandit's confidence is LOW.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import field
from pathlib import Path

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

INSTALL_HINT = "pip install bandit, or drop it from verifiers in truthplane.toml"

_SEVERITY = {"HIGH": Severity.HIGH, "MEDIUM": Severity.MEDIUM, "LOW": Severity.LOW}
_ONE_STEP_DOWN = {Severity.HIGH: Severity.MEDIUM, Severity.MEDIUM: Severity.LOW, Severity.LOW: Severity.NOTE}


class _BanditResult(ToolRecord):
    filename: str
    test_id: str
    issue_text: str
    issue_severity: str
    issue_confidence: str = "HIGH"
    line_number: int
    line_range: list[int] = field(default_factory=list)
    col_offset: int | None = None
    end_col_offset: int | None = None
    more_info: str | None = None


class _BanditError(ToolRecord):
    filename: str
    reason: str


class _BanditOutput(ToolRecord):
    results: list[_BanditResult]
    errors: list[_BanditError]


def bandit_severity(severity: str, confidence: str) -> Severity:
    mapped = _SEVERITY.get(severity.upper(), Severity.MEDIUM)
    return _ONE_STEP_DOWN[mapped] if confidence.upper() == "LOW" else mapped


def config_arguments(target: Path) -> list[str]:
    """The repository's own bandit configuration, as bandit's command-line options."""
    arguments: list[str] = []
    ini_names_config = False
    dot_bandit = target / ".bandit"
    if dot_bandit.is_file():
        import configparser  # only for a .bandit: some 4 ms of a gate's imports otherwise

        parser = configparser.ConfigParser()
        try:
            parser.read(dot_bandit, encoding="utf-8")
            is_ini = parser.has_section("bandit")
        except (configparser.Error, UnicodeDecodeError):
            is_ini = False
        if is_ini:
            arguments += ["--ini", str(dot_bandit)]
            ini_names_config = parser.has_option("bandit", "configfile")
        else:
            arguments += ["-c", str(dot_bandit)]
            ini_names_config = True
    pyproject = target / "pyproject.toml"
    if not ini_names_config and pyproject.is_file():
        text = pyproject.read_text(encoding="utf-8", errors="replace")
        try:
            has_section = "bandit" in tomllib.loads(text).get("tool", {})
        except tomllib.TOMLDecodeError:
            # let bandit read the broken file and report the problem in its own words
            has_section = re.search(r"^\s*\[+\s*tool\.bandit", text, re.MULTILINE) is not None
        if has_section:
            arguments += ["-c", str(pyproject)]
    return arguments


class BanditVerifier(FileToolVerifier):
    name = "bandit"
    file_local = True
    warm_start = True  # most of a run on one file is Python starting and bandit importing itself
    suffixes = (".py",)
    config_files = (".bandit", "pyproject.toml")
    reads_only_given = True  # each file on its own, with its rules
    pyproject_keys = ("tool.bandit",)

    def available(self) -> ToolInfo:
        return cached_tool_info(self.instance_name, ["bandit", "--version"], install_hint=INSTALL_HINT)

    def config_fingerprint(self) -> str:
        return super().config_fingerprint() + TEST_FILE_DEFAULTS

    def recipe(self, target: Path) -> Recipe:
        return Recipe("bandit", {"config_args": config_arguments(target), "args": list(self.options.args)})

    def findings(self, target: Path, output: ToolOutput, files: list[str] | None) -> list[Finding]:
        findings = self.parse(target, output)
        if not config_arguments(target):  # the repository's own bandit configuration decides for itself
            findings = drop_test_file_rules(findings, TEST_FILE_RULES["bandit"])
        return findings

    def parse(self, target: Path, output: ToolOutput) -> list[Finding]:
        """bandit's JSON report as findings; anything else is a VerifierError."""
        data = parse_json(self.instance_name, output.stdout, "bandit", output.stderr)
        report = validate(self.instance_name, _BanditOutput, data, "bandit")
        if output.returncode == 1 and not report.results:
            raise VerifierError(
                self.instance_name, "bandit exited 1 (findings) but reported none; run bandit by hand"
            )
        findings = [self._finding(target, item) for item in report.results]
        return findings + [self._error_finding(target, item) for item in report.errors]

    def _finding(self, target: Path, item: _BanditResult) -> Finding:
        end_line = max(item.line_range) if item.line_range else item.line_number
        return Finding(
            verifier=self.instance_name,
            rule_id=item.test_id,
            severity=bandit_severity(item.issue_severity, item.issue_confidence),
            tool_severity=f"{item.issue_severity} (confidence {item.issue_confidence})",
            message=one_line(item.issue_text),
            path=repo_path(target, item.filename),
            start_line=positive(item.line_number),
            end_line=positive(end_line),
            start_column=None if item.col_offset is None else item.col_offset + 1,
            end_column=None if item.end_col_offset is None else item.end_col_offset + 1,
            help_uri=item.more_info,
        )

    def _error_finding(self, target: Path, item: _BanditError) -> Finding:
        syntax = "syntax error" in item.reason.lower()
        return Finding(
            verifier=self.instance_name,
            rule_id="parse-error" if syntax else "scan-error",
            severity=Severity.MEDIUM,
            message=one_line(
                f"bandit could not check this file ({item.reason}); its security findings are unknown"
            ),
            path=repo_path(target, item.filename),
        )
