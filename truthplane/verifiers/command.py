"""command: any tool the user configures, printing SARIF 2.1.0 or truthplane's JSON finding list.

truthplane.toml::

    [verifiers.mylint]
    type = "command"
    command = ["mylint", "--sarif", "{files}"]   # {files}: the files to scan ("." for all), {root}: the
    format = "sarif"                             #   repository, {output}: a file to write instead of stdout
    ok_exit_codes = [0, 1]
    incremental = true                           # the tool accepts a file subset via {files}

The command runs with cwd=target on the host, so it must only read code: a tool that executes the
repository's code belongs in an executor. Exit codes outside `ok_exit_codes` are could-not-run.
JSON format: a list of objects, or {"findings": [...]}, each with path, line, rule_id, message and
optionally end_line, column, end_column, severity (note/low/medium/high/critical, or error/warning/info;
default medium) and help_uri. Anything else is rejected.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from truthplane.config import VerifierConfig
from truthplane.errors import ConfigError, InputError, VerifierError
from truthplane.leftovers import owned_prefix
from truthplane.models import Finding, ScanResult, Severity, ToolInfo
from truthplane.verifiers._commands import which
from truthplane.verifiers._common import (
    SEVERITY_WORDS,
    empty_result,
    one_line,
    parse_json,
    repo_path,
    select_files,
    validate,
)
from truthplane.verifiers.interface import Verifier, VerifierContext
from truthplane.verifiers.tool import run_tool

FILES, ROOT, OUTPUT = "{files}", "{root}", "{output}"


class _JsonRecord(BaseModel):
    """A command's own JSON findings: its rules (bounds, known severities) are pydantic's to check."""

    model_config = ConfigDict(extra="ignore")


class _JsonFinding(_JsonRecord):
    path: str
    line: int | None = Field(default=None, ge=1)
    end_line: int | None = Field(default=None, ge=1)
    column: int | None = Field(default=None, ge=1)
    end_column: int | None = Field(default=None, ge=1)
    rule_id: str = Field(min_length=1)
    message: str = Field(min_length=1)
    severity: str | None = None
    help_uri: str | None = None

    @field_validator("severity")
    @classmethod
    def _known_severity(cls, value: str | None) -> str | None:
        if value is not None and value.strip().lower() not in SEVERITY_WORDS:
            raise ValueError(f"unknown severity {value!r}; use note, low, medium, high or critical")
        return value


class _JsonFindings(_JsonRecord):
    findings: list[_JsonFinding]


class CommandVerifier(Verifier):
    name = "command"
    incremental = False
    file_local = False
    suffixes: ClassVar[tuple[str, ...]] = ()
    config_files = ()

    def __init__(self, instance_name: str, options: VerifierConfig, context: VerifierContext) -> None:
        super().__init__(instance_name, options, context)
        if options.incremental:
            # configured per instance: such a tool is handed any changed file and filters for itself
            self.incremental = True  # type: ignore[misc]
            self.file_local = True  # type: ignore[misc]
            self.suffixes = ("",)  # type: ignore[misc]

    @property
    def command(self) -> list[str]:
        command = self.options.command
        if not command:
            raise ConfigError(
                f"verifiers.{self.instance_name}: a command verifier needs command = [...], "
                'e.g. command = ["mylint", "--sarif", "{files}"]'
            )
        return list(command)

    def available(self) -> ToolInfo:
        executable = self.command[0]
        found = which(executable)
        if found is None:
            return ToolInfo(
                name=self.instance_name,
                installed=False,
                reason=f"{executable} is not installed or not on PATH: install it, "
                f"or drop {self.instance_name} from verifiers in truthplane.toml",
            )
        return ToolInfo(name=self.instance_name, installed=True, path=found)

    def expand(self, target: Path, files: list[str] | None, output: Path | None) -> list[str]:
        expanded: list[str] = []
        for part in self.command:
            if part == FILES:
                expanded += files if files is not None else ["."]
            else:
                part = part.replace(ROOT, str(target))
                if output is not None:
                    part = part.replace(OUTPUT, str(output))
                expanded.append(part)
        return [*expanded, *self.options.args]

    def scan(self, target: Path, files: list[str] | None = None) -> ScanResult:
        started = time.monotonic()
        if files is not None:
            files = select_files(target, files, ())
            if not files:
                return empty_result(self.instance_name, None)
        writes_file = any(OUTPUT in part for part in self.command)
        with tempfile.TemporaryDirectory(prefix=owned_prefix("command")) as scratch:
            output_path = Path(scratch) / ("output." + self.options.format) if writes_file else None
            result = run_tool(
                self.instance_name,
                self.expand(target, files, output_path),
                cwd=target,
                timeout_s=self.timeout_s,
                ok_exit_codes=tuple(self.options.ok_exit_codes),
            )
            text = result.stdout
            if output_path is not None:
                try:
                    text = output_path.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    raise VerifierError(
                        self.instance_name,
                        f"{self.command[0]} exited {result.returncode} without writing {OUTPUT}",
                    ) from None
        data = parse_json(self.instance_name, text, self.command[0], result.stderr)
        if self.options.format == "sarif":
            findings = self._from_sarif(target, data)
        else:
            findings = self._from_json(target, data)
        if files is not None:
            wanted = set(files)
            findings = [f for f in findings if f.path in wanted]
        return ScanResult(
            verifier=self.instance_name, findings=findings, duration_s=time.monotonic() - started
        )

    def _from_sarif(self, target: Path, log: Any) -> list[Finding]:
        from truthplane.verifiers.sarif_input import findings_from_sarif

        try:
            findings = findings_from_sarif(log, self.instance_name, target)
        except InputError as exc:
            raise VerifierError(
                self.instance_name, f"{self.command[0]} printed unusable SARIF: {exc}"
            ) from None
        return [
            f.model_copy(update={"path": repo_path(target, f.path)}) if f.path and "://" not in f.path else f
            for f in findings
        ]

    def _from_json(self, target: Path, data: Any) -> list[Finding]:
        wrapped = data if isinstance(data, dict) else {"findings": data}
        items = validate(self.instance_name, _JsonFindings, wrapped, self.command[0]).findings
        return [
            Finding(
                verifier=self.instance_name,
                rule_id=item.rule_id,
                severity=SEVERITY_WORDS[item.severity.strip().lower()] if item.severity else Severity.MEDIUM,
                tool_severity=item.severity,
                message=one_line(item.message),
                path=repo_path(target, item.path),
                start_line=item.line,
                end_line=item.end_line or item.line,
                start_column=item.column,
                end_column=item.end_column,
                help_uri=item.help_uri,
            )
            for item in items
        ]
