"""tsc: whole-program TypeScript type checking, `tsc --noEmit -p <tsconfig> --pretty false` with
cwd=target, so the project's tsconfig (its include/exclude, strictness, extends) decides what is
checked. `project` names another tsconfig (default tsconfig.json); truthplane's `args` are appended.
tsc is taken from the repository's node_modules first, then PATH. Results depend on the whole
program, so they are cached by the hash of every TS/JS file and the configs, never per file.

Diagnostics `file(line,col): error TSxxxx: message` (indented lines that follow continue the message)
become findings with rule id TSxxxx: an error is high (the project no longer compiles, so a new one
rejects), a warning or suggestion low; `[severity]` in truthplane.toml re-rates them. Exit codes: 0 clean; 1 and 2
diagnostics (1 when nothing would be emitted). An error that names no file and concerns the configuration
(TS5xxx, TS6xxx: unknown option, missing tsconfig, no inputs) is could-not-run; other file-less
errors are findings on the tsconfig.
"""

from __future__ import annotations

import re
import time
from pathlib import Path, PurePosixPath
from typing import ClassVar

from truthplane.config import VerifierConfig
from truthplane.errors import VerifierError
from truthplane.models import Finding, ScanResult, Severity, ToolInfo, ToolStatus
from truthplane.verifiers._common import cached_tool_info, empty_result, one_line, positive, repo_path
from truthplane.verifiers._node import JS_SUFFIXES, NodeTool, borrowed_node_modules
from truthplane.verifiers.interface import Verifier, VerifierContext
from truthplane.verifiers.tool import ToolOutput, run_tool

INSTALL_HINT = (
    "npm install --save-dev typescript (truthplane uses node_modules/.bin first, then PATH), "
    "or drop tsc from verifiers in truthplane.toml"
)
DEFAULT_PROJECT = "tsconfig.json"
_LOCATED = re.compile(
    r"^(?P<file>.+?)\((?P<line>\d+),(?P<col>\d+)\): (?P<level>error|warning|message) (?P<code>TS\d+): (?P<text>.*)$"
)
_GLOBAL = re.compile(r"^(?P<level>error|warning|message) (?P<code>TS\d+): (?P<text>.*)$")
_CONFIG_CODES = re.compile(r"^TS(5\d{3}|6\d{3}|18003)$")


class TscVerifier(NodeTool, Verifier):
    name = "tsc"
    incremental = False
    file_local = False
    tree_cacheable = True
    suffixes = (*JS_SUFFIXES, ".json")
    config_files: ClassVar[tuple[str, ...]] = ("tsconfig.json", "package.json", "package-lock.json")
    settings_files: ClassVar[tuple[str, ...] | None] = ("tsconfig.json",)

    def __init__(self, instance_name: str, options: VerifierConfig, context: VerifierContext) -> None:
        super().__init__(instance_name, options, context)
        if options.project:
            # a tsconfig under another name is part of the cache key too
            self.config_files = (*type(self).config_files, PurePosixPath(options.project).name)  # type: ignore[misc]
            self.settings_files = ("tsconfig.json", PurePosixPath(options.project).name)  # type: ignore[misc]

    @property
    def project(self) -> str:
        return self.options.project or DEFAULT_PROJECT

    def available(self) -> ToolInfo:
        executable = self.node_tool("tsc")
        if executable is None:
            return ToolInfo(name=self.instance_name, installed=False, reason=f"tsc is not installed: {INSTALL_HINT}")
        return cached_tool_info(self.instance_name, [executable, "--version"], install_hint=INSTALL_HINT)

    def scan(self, target: Path, files: list[str] | None = None) -> ScanResult:
        started = time.monotonic()
        version = self.available().version
        if files is not None and not any(f.endswith(self.suffixes) for f in files):
            return empty_result(self.instance_name, version)
        if not (target / self.project).is_file():
            raise VerifierError(
                self.instance_name,
                f'{self.project} not found; set project = "path/to/tsconfig.json" under '
                f'[verifiers.{self.instance_name}]',
            )
        with borrowed_node_modules(target, self.project_root):
            executable = self.node_tool("tsc", target)
            if executable is None:
                raise VerifierError(
                    self.instance_name, f"tsc is not installed: {INSTALL_HINT}", status=ToolStatus.MISSING.value
                )
            command = [executable, "--noEmit", "-p", self.project, "--pretty", "false", *self.options.args]
            output = run_tool(
                self.instance_name, command, cwd=target, timeout_s=self.timeout_s, ok_exit_codes=(0, 1, 2)
            )
        findings = self.parse(target, output)
        return ScanResult(
            verifier=self.instance_name, version=version, findings=findings, duration_s=time.monotonic() - started
        )

    def parse(self, target: Path, output: ToolOutput) -> list[Finding]:
        """tsc's plain diagnostics as findings; a configuration error is a VerifierError."""
        findings: list[Finding] = []
        current: dict[str, str] | None = None
        continuation: list[str] = []

        def flush() -> None:
            if current is not None:
                findings.append(self._finding(target, current, continuation))

        for line in output.stdout.splitlines():
            located = _LOCATED.match(line)
            unlocated = None if located else _GLOBAL.match(line)
            if located or unlocated:
                flush()
                current, continuation = (located or unlocated).groupdict(), []  # type: ignore[union-attr]
            elif current is not None and line.startswith(" ") and line.strip():
                continuation.append(line.strip())
            elif line.strip():
                raise VerifierError(
                    self.instance_name,
                    f"tsc printed something that is not a diagnostic ({one_line(line, 120)!r}); run it by hand",
                )
        flush()
        for finding in findings:
            if not finding.path and _CONFIG_CODES.match(finding.rule_id):
                raise VerifierError(
                    self.instance_name,
                    f"tsc cannot use {self.project}: {finding.rule_id} {one_line(finding.message, 200)}",
                )
        findings = [f if f.path else f.model_copy(update={"path": self.project}) for f in findings]
        if output.returncode != 0 and not findings:
            tail = " | ".join((output.stdout.strip() or output.stderr.strip()).splitlines()[-3:]) or "no output"
            raise VerifierError(
                self.instance_name, f"tsc exited {output.returncode} without diagnostics: {one_line(tail, 200)}"
            )
        return findings

    def _finding(self, target: Path, item: dict[str, str], continuation: list[str]) -> Finding:
        message = " ".join([item["text"], *continuation])
        line = positive(int(item["line"])) if item.get("line") else None
        return Finding(
            verifier=self.instance_name,
            rule_id=item["code"],
            severity=Severity.HIGH if item["level"] == "error" else Severity.LOW,
            tool_severity=item["level"],
            message=one_line(message),
            path=repo_path(target, item["file"]) if item.get("file") else "",
            start_line=line,
            end_line=line,
            start_column=positive(int(item["col"])) if item.get("col") else None,
        )
