"""pip-audit: known vulnerabilities in the repository's declared dependencies (never the host's own
environment). Audits `requirements*.txt` and `requirements/*.txt`; without those, the [project]
dependencies of pyproject.toml. Fully pinned files are audited as written (--no-deps --disable-pip);
anything else is resolved by pip first. Needs the vulnerability service (PyPI by default; `args` such
as ["-s", "osv", "--osv-url", URL] choose another).

Exit codes: 0 nothing known, 1 vulnerabilities (or a failure: told apart by whether stdout is JSON).
A network failure, or a service that could audit none of the dependencies, is could-not-run, never
"no vulnerabilities". A dependency the service could not audit while others were is a `not-audited`
finding (low). One finding per (advisory, package), severity high, identity "<advisory>:<package>".
"""

from __future__ import annotations

import re
import tempfile
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from truthplane.errors import VerifierError
from truthplane.leftovers import owned_prefix
from truthplane.models import Finding, ScanResult, Severity, ToolInfo
from truthplane.verifiers._common import ToolRecord, cached_tool_info, one_line, parse_json, validate
from truthplane.verifiers.interface import Verifier
from truthplane.verifiers.tool import ToolOutput, run_tool

INSTALL_HINT = "pip install pip-audit, or drop it from verifiers in truthplane.toml"
# what find_sources audits: requirements*.txt at the top and requirements/*.txt
_REQUIREMENTS = re.compile(r"requirements[^/]*\.txt|requirements/[^/]+\.txt")
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
_PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?\s*===?\s*[^\s;,*]+\s*(;[^#]*)?$")
_NETWORK = re.compile(
    r"ConnectionError|NameResolution|Max retries|Could not connect|timed out|Temporary failure", re.IGNORECASE
)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


class _Vuln(ToolRecord):
    id: str
    fix_versions: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    description: str | None = None


class _Dependency(ToolRecord):
    name: str
    version: str | None = None
    vulns: list[_Vuln] = field(default_factory=list)
    skip_reason: str | None = None


class _Report(ToolRecord):
    dependencies: list[_Dependency]


@dataclass
class _Source:
    """One place requirements are declared: the file we show in findings, and what pip-audit reads."""

    shown: str
    audited: Path
    lines: dict[str, int]
    pinned: bool


def _requirement_lines(
    text: str, base: Path | None = None, seen: frozenset[Path] = frozenset()
) -> tuple[dict[str, int], bool]:
    """package -> first line naming it, and whether every requirement (in `-r` includes too, read
    relative to `base`) is pinned to one version, so pip-audit can skip resolving them."""
    lines: dict[str, int] = {}
    pinned = True
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        include = re.match(r"^(?:-r|--requirement)[\s=]+(\S+)$", line)
        if include and base is not None:
            path = (base / include.group(1)).resolve()
            if path in seen or not path.is_file():
                pinned = False
                continue
            _, included_pinned = _requirement_lines(
                path.read_text(encoding="utf-8", errors="replace"), path.parent, seen | {path}
            )
            pinned = pinned and included_pinned
            continue
        if line.startswith(("-", ".", "/")) or "://" in line:
            pinned = pinned and line.startswith("--hash")
            continue
        match = _NAME.match(line)
        if match:
            lines.setdefault(canonical(match.group(1)), number)
        pinned = pinned and bool(_PINNED.match(line.split(" --hash", 1)[0].rstrip(" \\")))
    return lines, pinned


def find_sources(target: Path, scratch: Path) -> list[_Source]:
    files = sorted(target.glob("requirements*.txt")) + sorted(target.glob("requirements/*.txt"))
    sources = []
    for path in files:
        if path.is_file():
            lines, pinned = _requirement_lines(
                path.read_text(encoding="utf-8", errors="replace"), path.parent
            )
            sources.append(_Source(path.relative_to(target).as_posix(), path, lines, pinned))
    if sources:
        return sources
    pyproject = target / "pyproject.toml"
    if not pyproject.is_file():
        return []
    text = pyproject.read_text(encoding="utf-8", errors="replace")
    try:
        dependencies = tomllib.loads(text).get("project", {}).get("dependencies") or []
    except tomllib.TOMLDecodeError as exc:
        raise VerifierError("pip-audit", f"pyproject.toml is not valid TOML ({exc}); fix it") from None
    if not dependencies:
        return []
    requirements = scratch / "pyproject-requirements.txt"
    requirements.write_text("\n".join(str(d) for d in dependencies) + "\n", encoding="utf-8")
    _, pinned = _requirement_lines(requirements.read_text(encoding="utf-8"))
    declared: dict[str, int] = {}
    for dependency in dependencies:
        name = _NAME.match(str(dependency))
        if name:
            at = text.find(f'"{dependency}"')
            declared.setdefault(canonical(name.group(1)), text.count("\n", 0, at) + 1 if at >= 0 else 0)
    return [_Source("pyproject.toml", requirements, {k: v for k, v in declared.items() if v}, pinned)]


class PipAuditVerifier(Verifier):
    name = "pip-audit"
    incremental = False
    file_local = False
    suffixes = ()
    config_files = ("pyproject.toml",)
    settings_files = ()  # the requirements are what it checks, not how

    def dependency_files(self, paths: Iterable[str]) -> list[str]:
        return sorted(p for p in paths if p == "pyproject.toml" or _REQUIREMENTS.fullmatch(p))

    def dependency_state(self, path: str, text: str | None) -> object:
        if path != "pyproject.toml" or text is None:
            return text
        try:
            project = tomllib.loads(text).get("project", {})
        except tomllib.TOMLDecodeError:
            return text
        return (
            (project.get("dependencies"), project.get("optional-dependencies")) if isinstance(project, dict) else text
        )

    def available(self) -> ToolInfo:
        return cached_tool_info(self.instance_name, ["pip-audit", "--version"], install_hint=INSTALL_HINT)

    def scan(self, target: Path, files: list[str] | None = None) -> ScanResult:
        started = time.monotonic()
        if files is not None and not files:
            return ScanResult(verifier=self.instance_name, version=self.available().version)
        with tempfile.TemporaryDirectory(prefix=owned_prefix("pip-audit")) as scratch:
            sources = find_sources(target, Path(scratch))
            if not sources:
                raise VerifierError(
                    self.instance_name,
                    "no requirements to audit (no requirements*.txt, no [project] dependencies in pyproject.toml); "
                    "add one, or drop pip-audit from verifiers in truthplane.toml",
                )
            command = [
                "pip-audit",
                "-f",
                "json",
                "--progress-spinner",
                "off",
                "--aliases",
                "on",
                "--desc",
                "off",
            ]
            for source in sources:
                command += ["-r", str(source.audited)]
            if all(source.pinned for source in sources):
                command += ["--no-deps", "--disable-pip"]
            output = run_tool(
                self.instance_name,
                [*command, *self.options.args],
                cwd=target,
                timeout_s=self.timeout_s,
                ok_exit_codes=(0, 1),
            )
        findings = self.parse(output, sources)
        return ScanResult(
            verifier=self.instance_name,
            version=self.available().version,
            findings=findings,
            duration_s=time.monotonic() - started,
        )

    def parse(self, output: ToolOutput, sources: list[_Source]) -> list[Finding]:
        """pip-audit's JSON report as findings located in `sources`; a service that could not answer
        (or output that is not the report) is a VerifierError."""
        if not output.stdout.strip().startswith("{"):
            tail = " | ".join(output.stderr.strip().splitlines()[-2:]) or "no output"
            if _NETWORK.search(output.stderr):
                raise VerifierError(
                    self.instance_name,
                    f"could not reach the vulnerability service ({one_line(tail, 160)}); check the network or proxy",
                )
            raise VerifierError(
                self.instance_name, f"pip-audit exited {output.returncode}: {one_line(tail, 200)}"
            )
        report = validate(
            self.instance_name,
            _Report,
            parse_json(self.instance_name, output.stdout, "pip-audit", output.stderr),
            "pip-audit",
        )
        skipped = [d for d in report.dependencies if d.skip_reason]
        if report.dependencies and len(skipped) == len(report.dependencies):
            raise VerifierError(
                self.instance_name,
                f"could not reach the vulnerability service: no dependency could be audited "
                f"({one_line(skipped[0].skip_reason or '', 120)}); check the network or proxy",
            )
        if output.returncode == 1 and not any(d.vulns for d in report.dependencies):
            raise VerifierError(
                self.instance_name, "pip-audit exited 1 but reported no vulnerabilities; run it by hand"
            )
        findings: list[Finding] = []
        for dependency in report.dependencies:
            path, line = self._locate(sources, dependency.name)
            if dependency.skip_reason:
                findings.append(self._not_audited(dependency, path, line))
            for vuln in dependency.vulns:
                findings.append(self._finding(dependency, vuln, path, line))
        return findings

    @staticmethod
    def _locate(sources: list[_Source], package: str) -> tuple[str, int | None]:
        for source in sources:
            line = source.lines.get(canonical(package))
            if line:
                return source.shown, line
        # a transitive dependency: no line names it, so point at the first requirements file
        return sources[0].shown, None

    def _finding(self, dependency: _Dependency, vuln: _Vuln, path: str, line: int | None) -> Finding:
        aliases = f" ({', '.join(vuln.aliases)})" if vuln.aliases else ""
        fix = (
            f"upgrade to {' or '.join(vuln.fix_versions)}"
            if vuln.fix_versions
            else "no fixed version is known yet"
        )
        return Finding(
            verifier=self.instance_name,
            rule_id=vuln.id,
            severity=Severity.HIGH,
            message=one_line(
                f"{dependency.name} {dependency.version or ''} is affected by {vuln.id}{aliases}: {fix}"
            ),
            path=path,
            start_line=line,
            end_line=line,
            identity=f"{vuln.id}:{canonical(dependency.name)}",
            help_uri=f"https://osv.dev/vulnerability/{vuln.id}",
        )

    def _not_audited(self, dependency: _Dependency, path: str, line: int | None) -> Finding:
        return Finding(
            verifier=self.instance_name,
            rule_id="not-audited",
            severity=Severity.LOW,
            message=one_line(f"{dependency.name} could not be audited: {dependency.skip_reason}"),
            path=path,
            start_line=line,
            end_line=line,
            identity=f"not-audited:{canonical(dependency.name)}",
        )
