"""eslint: JavaScript/TypeScript lint with the repository's own flat config (eslint.config.js and
friends), reported as SARIF by @microsoft/eslint-formatter-sarif. eslint and the formatter are taken
from the repository's node_modules first (the scanned tree's, then the repository's and the
directories above), then from PATH. truthplane's `args` are passed to eslint.

An eslint config is code: with `sandbox = true` eslint runs in the configured executor (DESIGN.md's
sandbox rule), for repositories that are not trusted; otherwise on the host like the other linters.
`max_warnings = N` gives eslint's --max-warnings=N meaning to the gate: when there are more than N
warnings, every warning is high (the gate's default fail_on), so a new warning rejects the change.

Rules are file-local (results cached per file, a change rescans only changed files) unless the
repository's config asks for type information (typescript-eslint's `projectService`,
`parserOptions.project`, the `*TypeChecked` presets): then one file's findings depend on others, and
results are cached by the whole tree instead.

Exit codes: 0 clean (or warnings only), 1 errors, 2 could not run (bad config, missing plugin).
Severity: error -> medium, warning -> low; a file eslint cannot parse is a `parse-error` (high).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from truthplane.errors import InputError, VerifierError
from truthplane.executors.jobs import Job, Limits
from truthplane.models import Finding, ScanResult, Severity, ToolInfo, ToolStatus
from truthplane.registry import ESLINT_CONFIGS
from truthplane.verifiers._common import (
    cached_tool_info,
    empty_result,
    one_line,
    parse_json,
    repo_path,
    select_files,
)
from truthplane.verifiers._executed import executor_problem, run_job
from truthplane.verifiers._node import (
    JS_SUFFIXES,
    NodeTool,
    borrowed_node_modules,
    find_package,
)
from truthplane.verifiers.interface import Verifier
from truthplane.verifiers.tool import ToolOutput, run_tool

FORMATTER = "@microsoft/eslint-formatter-sarif"
INSTALL_HINT = (
    f"npm install --save-dev eslint {FORMATTER} (truthplane uses node_modules/.bin first, then PATH), "
    "or drop eslint from verifiers in truthplane.toml"
)
PARSE_ERROR = "parse-error"
_CWD_MARK = "TRUTHPLANE-ESLINT-CWD="
# beyond this many files, lint everything and keep the requested files' findings (command-line length)
MAX_FILES = 400
_LEVELS = {"error": Severity.MEDIUM, "warning": Severity.LOW, "note": Severity.NOTE}
_TYPE_AWARE = re.compile(r"projectService|TypeChecked|parserOptions[\s\S]{0,400}?\bproject\s*:")


def uses_type_information(root: Path) -> bool:
    """Does the repository's flat config ask typescript-eslint for type information?"""
    for name in ESLINT_CONFIGS:
        try:
            text = (root / name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if _TYPE_AWARE.search(text):
            return True
    return False


class EslintVerifier(NodeTool, Verifier):
    name = "eslint"
    incremental = True
    file_local = True  # unless the config is type-aware: see available()
    suffixes = JS_SUFFIXES
    config_files = (*ESLINT_CONFIGS, "package.json", "package-lock.json", ".eslintignore")
    settings_files = (*ESLINT_CONFIGS, ".eslintignore")

    def _tools(self, target: Path | None) -> tuple[str | None, Path | None]:
        executable = self.node_tool("eslint", target)
        formatter = find_package(FORMATTER, target, self.project_root, executable) if executable else None
        return executable, formatter

    def available(self) -> ToolInfo:
        if self.project_root is not None and uses_type_information(self.project_root):
            self.file_local = False  # type: ignore[misc]
            self.tree_cacheable = True  # type: ignore[misc]
        executable, formatter = self._tools(None)
        if executable is None:
            return ToolInfo(name=self.instance_name, installed=False, reason=f"eslint is not installed: {INSTALL_HINT}")
        info = cached_tool_info(self.instance_name, [executable, "--version"], install_hint=INSTALL_HINT)
        if formatter is None:
            return info.model_copy(update={
                "installed": False,
                "reason": f"{FORMATTER} is not installed beside eslint: npm install --save-dev {FORMATTER}",
            })
        if self.options.sandbox and (problem := executor_problem(self.context.executor)):
            return info.model_copy(update={"installed": False, "reason": f"sandbox = true, but {problem}"})
        return info

    def scan(self, target: Path, files: list[str] | None = None) -> ScanResult:
        started = time.monotonic()
        version = self.available().version
        if files is not None:
            files = select_files(target, files, self.suffixes)
            if not files:
                return empty_result(self.instance_name, version)
        with borrowed_node_modules(target, self.project_root):
            executable, formatter = self._tools(target)
            if executable is None or formatter is None:
                raise VerifierError(
                    self.instance_name, f"eslint or {FORMATTER} is not installed: {INSTALL_HINT}",
                    status=ToolStatus.MISSING.value,
                )
            command = [
                executable, "--format", str(formatter / _formatter_entry(formatter)),
                "--no-warn-ignored", "--no-error-on-unmatched-pattern", *self.options.args,
                "--", *(files if files is not None and len(files) <= MAX_FILES else ["."]),
            ]
            if self.options.sandbox:
                output, root = self._sandboxed(target, command)
            else:
                output = run_tool(
                    self.instance_name, command, cwd=target, timeout_s=self.timeout_s, ok_exit_codes=(0, 1, 2)
                )
                root = str(target)
        findings = self.parse(target, output, root)
        if files is not None:
            wanted = set(files)
            findings = [f for f in findings if f.path in wanted]
        return ScanResult(
            verifier=self.instance_name, version=version, findings=findings, duration_s=time.monotonic() - started
        )

    def _sandboxed(self, target: Path, command: list[str]) -> tuple[ToolOutput, str]:
        return run_sandboxed(self.instance_name, self.context.executor, target, command,
                             timeout_s=self.timeout_s, env=dict(self.context.env))

    def parse(self, target: Path, output: ToolOutput, root: str) -> list[Finding]:
        """The formatter's SARIF as findings; exit 2 or anything that is not SARIF is a VerifierError."""
        if output.returncode == 2 or not output.stdout.strip():
            raise VerifierError(
                self.instance_name,
                f"eslint could not run (exit {output.returncode}): {_problem(output.stderr or output.stdout)}",
            )
        log = parse_json(self.instance_name, output.stdout, "eslint", output.stderr)
        findings = self._results(target, log, root)
        findings += self._parse_errors(target, log, root)
        if output.returncode == 1 and not any(f.tool_severity == "error" for f in findings):
            raise VerifierError(self.instance_name, "eslint exited 1 (errors) but reported none; run eslint by hand")
        warnings = [f for f in findings if f.tool_severity == "warning"]
        if self.options.max_warnings is not None and len(warnings) > self.options.max_warnings:
            findings = [
                f.model_copy(update={"severity": Severity.HIGH}) if f.tool_severity == "warning" else f
                for f in findings
            ]
        return findings

    def _results(self, target: Path, log: Any, root: str) -> list[Finding]:
        from truthplane.verifiers.sarif_input import findings_from_sarif

        try:
            raw = findings_from_sarif(log, self.instance_name, Path(root))
        except InputError as exc:
            raise VerifierError(self.instance_name, f"eslint printed unusable SARIF: {exc}") from None
        findings = []
        for finding in raw:
            level = finding.tool_severity or "warning"
            findings.append(finding.model_copy(update={
                "path": _located(target, root, finding.path),
                "severity": _LEVELS.get(level, Severity.LOW),
                "tool_severity": level,
                "message": one_line(finding.message),
            }))
        return findings

    def _parse_errors(self, target: Path, log: Any, root: str) -> list[Finding]:
        """eslint reports a file it cannot parse as a configuration notification, not a result."""
        findings = []
        for run in log.get("runs", []) if isinstance(log, dict) else []:
            for invocation in run.get("invocations") or []:
                for note in invocation.get("toolConfigurationNotifications") or []:
                    if not isinstance(note, dict) or note.get("level") != "error":
                        continue
                    location = ((note.get("locations") or [{}])[0] or {}).get("physicalLocation") or {}
                    uri = (location.get("artifactLocation") or {}).get("uri")
                    region = location.get("region") or {}
                    if not isinstance(uri, str):
                        text = one_line(str((note.get("message") or {}).get("text", "")), 200)
                        raise VerifierError(self.instance_name, f"eslint could not run: {text}")
                    from urllib.parse import unquote, urlparse

                    path = unquote(urlparse(uri).path) if uri.startswith("file:") else uri
                    line = region.get("startLine") if isinstance(region.get("startLine"), int) else None
                    findings.append(Finding(
                        verifier=self.instance_name,
                        rule_id=PARSE_ERROR,
                        severity=Severity.HIGH,
                        tool_severity="error",
                        message=one_line(str((note.get("message") or {}).get("text", "cannot parse"))),
                        path=_located(target, root, path),
                        start_line=line,
                        end_line=line,
                        start_column=region.get("startColumn") if isinstance(region.get("startColumn"), int) else None,
                    ))
        return findings


def run_sandboxed(
    verifier: str, executor: str, target: Path, command: list[str], *, timeout_s: float, env: dict[str, str]
) -> tuple[ToolOutput, str]:
    """eslint in the executor, on a copy of `target`: its output, and the copy's directory (the
    paths eslint reports start with it). Exit codes other than 0, 1 and 2 are a VerifierError."""
    inside = [_relative_inside(target, part) for part in command]
    script = f'echo "{_CWD_MARK}$PWD" >&2; exec "$@"'
    job = Job(
        source_dir=str(target),
        command=["sh", "-c", script, "truthplane-eslint", *inside],
        limits=Limits(timeout_s=timeout_s, max_output_bytes=64_000_000, memory_mb=2048),
        env=env,
        label=f"{verifier} on {target.name}",
    )
    result = run_job(verifier, executor, job)
    if result.stdout_truncated:
        raise VerifierError(verifier, "eslint's report was larger than the output limit; scan fewer files")
    cwd = next((ln[len(_CWD_MARK):] for ln in result.stderr.splitlines() if ln.startswith(_CWD_MARK)), "")
    stderr = "\n".join(ln for ln in result.stderr.splitlines() if not ln.startswith(_CWD_MARK))
    if result.returncode not in (0, 1, 2) or not cwd:
        tail = " | ".join((stderr.strip() or result.stdout.strip()).splitlines()[-3:]) or "no output"
        raise VerifierError(verifier, f"eslint exited with {result.returncode} in the sandbox: {one_line(tail, 200)}")
    return ToolOutput(result.returncode or 0, result.stdout, stderr), cwd


def _problem(text: str) -> str:
    """The line of eslint's crash report that says what is wrong, not its banner or stack frames."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(("Oops!", "ESLint:", "at ", "node:")) and not ln.startswith("^")]
    return one_line((useful or lines or ["no output"])[0], 240)


def _formatter_entry(formatter: Path) -> str:
    """The formatter module its package.json names (sarif.js in every release so far)."""
    import json

    try:
        main = json.loads((formatter / "package.json").read_text(encoding="utf-8")).get("main")
    except (OSError, ValueError):
        main = None
    return main if isinstance(main, str) and main else "sarif.js"


def _relative_inside(target: Path, part: str) -> str:
    """A path under the scanned tree as the sandbox's copy sees it (relative to its working dir)."""
    absolute = os.path.abspath(target)
    if part.startswith(absolute + os.sep):
        return "./" + os.path.relpath(part, absolute)
    return part


def _located(target: Path, root: str, path: str) -> str:
    """A reported path relative to the tree eslint ran in, as a repo-relative POSIX path."""
    if path.startswith("/"):
        for base in (root, os.path.realpath(root)):
            if path.startswith(base.rstrip("/") + "/"):
                return Path(os.path.relpath(path, base)).as_posix()
    return repo_path(target, path)
