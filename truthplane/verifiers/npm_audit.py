"""npm audit: known vulnerabilities in the packages the repository's npm lockfile pins
(`npm audit --json --package-lock-only`, so node_modules is never read and no package script runs).
The registry named by the repository's .npmrc (or npm's own configuration) answers; `args` go to npm.

One finding per advisory and package path (a lockfile `node_modules/...` entry), located at that
entry's line in package-lock.json (else the dependency's line in package.json). Identity is
"<advisory>:<package>", the advisory being its GHSA id (else npm's numeric source id), so a package
hoisted or nested elsewhere keeps its findings. Severity: critical, high, moderate -> medium, low,
info -> note.

Exit codes: 0 nothing known, 1 vulnerabilities or a failure, told apart by the JSON: a report has
`vulnerabilities`; anything else (the registry unreachable, the audit endpoint refusing, no lockfile)
is could-not-run, never "no vulnerabilities".
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from dataclasses import field
from pathlib import Path
from typing import Any

from truthplane.errors import VerifierError
from truthplane.models import Finding, ScanResult, Severity, ToolInfo
from truthplane.registry import NPM_LOCKFILES
from truthplane.verifiers._common import ToolRecord, cached_tool_info, one_line, parse_json, validate
from truthplane.verifiers.interface import Verifier
from truthplane.verifiers.tool import ToolOutput, run_tool

INSTALL_HINT = "install Node.js and npm (apt-get install npm), or drop npm-audit from verifiers in truthplane.toml"
# the repository's own manifest and lockfile (at its top, where the audit runs) and what in package.json declares
_DEPENDENCY_FILES = ("package.json", *NPM_LOCKFILES, ".npmrc")
_DECLARING = ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies", "overrides")
_GHSA = re.compile(r"GHSA(-[23456789cfghjmpqrvwx]{4}){3}")
_SEVERITY = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "moderate": Severity.MEDIUM,
    "low": Severity.LOW,
    "info": Severity.NOTE,
}


class _Advisory(ToolRecord):
    source: int | str
    name: str
    title: str = ""
    url: str | None = None
    severity: str = "moderate"
    range: str | None = None


class _Vulnerability(ToolRecord):
    name: str
    severity: str = "moderate"
    via: list[_Advisory | str] = field(default_factory=list)
    nodes: list[str] = field(default_factory=list)
    fixAvailable: bool | dict[str, Any] = False


class _Report(ToolRecord):
    vulnerabilities: dict[str, _Vulnerability]


def advisory_id(advisory: _Advisory) -> str:
    match = _GHSA.search(advisory.url or "")
    return match.group(0) if match else f"npm-{advisory.source}"


def lockfile_lines(text: str) -> dict[str, int]:
    """Line of each `"node_modules/...": {` entry of a package-lock.json (lockfile v2/v3)."""
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = re.match(r'^\s*"((?:[^"\\]|\\.)*node_modules/(?:[^"\\]|\\.)*)"\s*:\s*\{', line)
        if match:
            lines.setdefault(match.group(1), number)
    return lines


def manifest_lines(text: str) -> dict[str, int]:
    """Line of each dependency named in package.json's dependency tables."""
    lines: dict[str, int] = {}
    section = False
    for number, line in enumerate(text.splitlines(), start=1):
        if re.match(r'^\s*"(dependencies|devDependencies|optionalDependencies|peerDependencies)"\s*:', line):
            section = True
            continue
        if section and re.match(r"^\s*\}", line):
            section = False
        match = re.match(r'^\s*"([^"]+)"\s*:', line) if section else None
        if match:
            lines.setdefault(match.group(1), number)
    return lines


class NpmAuditVerifier(Verifier):
    name = "npm-audit"
    incremental = False
    file_local = False
    suffixes = ()
    config_files = ("package.json", *NPM_LOCKFILES, ".npmrc")
    settings_files = ()  # the lockfile is what it checks, not how

    def dependency_files(self, paths: Iterable[str]) -> list[str]:
        return sorted(p for p in paths if p in _DEPENDENCY_FILES)

    def dependency_state(self, path: str, text: str | None) -> object:
        if path != "package.json" or text is None:
            return text  # a lockfile, or .npmrc (which registry answers): the whole file
        try:
            manifest = json.loads(text)
        except ValueError:
            return text
        return {k: manifest.get(k) for k in _DECLARING} if isinstance(manifest, dict) else text

    def available(self) -> ToolInfo:
        return cached_tool_info(self.instance_name, ["npm", "--version"], install_hint=INSTALL_HINT)

    def scan(self, target: Path, files: list[str] | None = None) -> ScanResult:
        started = time.monotonic()
        if files is not None and not files:
            return ScanResult(verifier=self.instance_name, version=self.available().version)
        lockfile = next((name for name in NPM_LOCKFILES if (target / name).is_file()), None)
        if lockfile is None or not (target / "package.json").is_file():
            raise VerifierError(
                self.instance_name,
                "no package.json with a package-lock.json to audit; run `npm install --package-lock-only`, "
                "or drop npm-audit from verifiers in truthplane.toml",
            )
        command = ["npm", "audit", "--json", "--package-lock-only", *self.options.args]
        output = run_tool(
            self.instance_name, command, cwd=target, timeout_s=self.timeout_s, ok_exit_codes=tuple(range(256)),
            env={"npm_config_update_notifier": "false", "npm_config_fund": "false"},
        )
        findings = self.parse(target, output, lockfile)
        return ScanResult(
            verifier=self.instance_name, version=self.available().version, findings=findings,
            duration_s=time.monotonic() - started,
        )

    def parse(self, target: Path, output: ToolOutput, lockfile: str) -> list[Finding]:
        """npm's audit report as findings; an error document (or anything else) is a VerifierError."""
        data = (
            parse_json(self.instance_name, output.stdout, "npm audit", output.stderr) if output.stdout.strip() else None
        )
        if not isinstance(data, dict) or "vulnerabilities" not in data:
            raise VerifierError(self.instance_name, f"could not audit: {self._failure(data, output)}")
        report = validate(self.instance_name, _Report, data, "npm audit")
        if output.returncode not in (0, 1):
            raise VerifierError(
                self.instance_name, f"npm audit exited {output.returncode}: {self._failure(data, output)}"
            )
        locks = lockfile_lines(_read(target / lockfile))
        manifest = manifest_lines(_read(target / "package.json"))
        findings = []
        for name, vulnerability in sorted(report.vulnerabilities.items()):
            for advisory in vulnerability.via:
                if isinstance(advisory, str):
                    continue  # vulnerable only through another package, which has its own finding
                for node in vulnerability.nodes or [f"node_modules/{name}"]:
                    findings.append(self._finding(advisory, vulnerability, node, lockfile, locks, manifest))
        if output.returncode == 1 and not findings and report.vulnerabilities:
            raise VerifierError(self.instance_name, "npm audit exited 1 but named no advisory; run it by hand")
        return findings

    def _failure(self, data: Any, output: ToolOutput) -> str:
        error = data.get("error") if isinstance(data, dict) else None
        message = data.get("message") if isinstance(data, dict) else None
        if isinstance(error, dict):
            message = message or error.get("summary") or error.get("detail") or error.get("code")
        tail = " | ".join(ln for ln in output.stderr.strip().splitlines()[-3:] if "nodedir" not in ln)
        text = one_line(str(message or tail or f"exit {output.returncode}"), 200)
        if "ENOLOCK" in text or "ENOLOCK" in output.stderr:
            return f"{text}; run `npm install --package-lock-only` first"
        return f"{text}; check the network, the proxy or the registry in .npmrc"

    def _finding(
        self, advisory: _Advisory, vulnerability: _Vulnerability, node: str, lockfile: str,
        locks: dict[str, int], manifest: dict[str, int],
    ) -> Finding:
        package = advisory.name or vulnerability.name
        ident = advisory_id(advisory)
        line = locks.get(node)
        path = lockfile
        if line is None and package in manifest:
            path, line = "package.json", manifest[package]
        fix = vulnerability.fixAvailable
        if isinstance(fix, dict) and fix.get("version"):
            remedy = f"fixed by {fix.get('name', package)} {fix['version']}"
        else:
            remedy = "a fix is available" if fix is True else "no fix available"
        where = "" if node == f"node_modules/{package}" else f" (at {node})"
        return Finding(
            verifier=self.instance_name,
            rule_id=ident,
            severity=_SEVERITY.get(advisory.severity, Severity.MEDIUM),
            tool_severity=advisory.severity,
            message=one_line(f"{package} {advisory.range or ''} {advisory.title}{where}: {remedy}".replace("  ", " ")),
            path=path,
            start_line=line,
            end_line=line,
            identity=f"{ident}:{package}",
            help_uri=advisory.url,
        )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""

