"""The formats CI systems and review tools read: GitHub Actions workflow commands (annotations), a GitLab Code Quality
report, JUnit XML, and reviewdog's Diagnostic format (rdjson).

What each carries: for a gate (scan against a baseline, diff, gate) the findings the change introduced, matched
by fingerprint (new, and those a configuration change added), except GitLab's report, which lists every finding
of the head state because GitLab compares two pipelines' reports itself, by fingerprint; for a plain scan every
finding. Severity follows the gate's policy: at or above `fail_on` an error, at or above `review_on` a warning,
below it a notice.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING
from xml.etree import ElementTree

from truthplane.models import Finding, GateResult, Scan, Severity, VerifierRun

if TYPE_CHECKING:
    from truthplane.config import GateConfig

CODE_QUALITY_SEVERITY = {Severity.NOTE: "info", Severity.LOW: "minor", Severity.MEDIUM: "major",
                         Severity.HIGH: "critical", Severity.CRITICAL: "blocker"}


def introduced(result: GateResult | Scan) -> list[Finding]:
    """What a reviewer is asked about: a gate's new findings (by fingerprint), or every finding of a scan."""
    if isinstance(result, Scan):
        return list(result.findings)
    return [*result.new, *result.added_by_config]


def head_findings(result: GateResult | Scan) -> list[Finding]:
    """Every finding of the state a gate judged (the head), or of a scan."""
    if isinstance(result, Scan):
        return list(result.findings)
    if not result.complete:
        raise ValueError("this gate result counts its unchanged findings without listing them")
    return [*result.new, *result.added_by_config, *result.updated, *result.unchanged]


def level(finding: Finding, policy: GateConfig) -> str:
    if finding.severity.at_least(policy.fail_on):
        return "error"
    return "warning" if finding.severity.at_least(policy.review_on) else "notice"


def _ordered(findings: list[Finding]) -> list[Finding]:
    return sorted(findings, key=lambda f: (f.path, f.start_line or 0, f.start_column or 0, f.verifier, f.rule_id))


# ---- GitHub Actions ------------------------------------------------------------------------------


def _command_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _command_property(text: str) -> str:
    return _command_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(result: GateResult | Scan, policy: GateConfig) -> str:
    """One workflow command per finding: `::error file=...,line=...::message`, shown on the pull request's files."""
    lines = []
    for f in _ordered(introduced(result)):
        properties = []
        if f.path:
            properties.append(f"file={_command_property(f.path)}")
            if f.start_line:
                properties.append(f"line={f.start_line}")
                if f.end_line and f.end_line >= f.start_line:
                    properties.append(f"endLine={f.end_line}")
                if f.start_column:
                    properties.append(f"col={f.start_column}")
                    if f.end_column and (f.end_line in (None, f.start_line)) and f.end_column >= f.start_column:
                        properties.append(f"endColumn={f.end_column}")
        properties.append(f"title={_command_property(f'{f.verifier} {f.rule_id} ({f.severity.value})')}")
        lines.append(f"::{level(f, policy)} {','.join(properties)}::{_command_data(f.message)}")
    return "".join(line + "\n" for line in lines)


# ---- GitLab Code Quality -------------------------------------------------------------------------


def gitlab_code_quality(result: GateResult | Scan) -> str:
    """The Code Quality report (`artifacts: reports: codequality:`): every finding of the head, its fingerprint
    truthplane's own, so GitLab's comparison of two pipelines shows what a merge request introduces and fixes."""
    issues = []
    seen: set[str] = set()
    for f in _ordered(head_findings(result)):
        fingerprint = f.fingerprint or f"{f.verifier}:{f.rule_id}:{f.path}:{f.start_line}"
        if fingerprint in seen:  # GitLab counts an issue once per fingerprint
            continue
        seen.add(fingerprint)
        issues.append({
            "type": "issue",
            "description": f.message,
            "check_name": f"{f.verifier}:{f.rule_id}",
            "fingerprint": fingerprint,
            "severity": CODE_QUALITY_SEVERITY[f.severity],
            "categories": ["Security"] if f.verifier in ("bandit", "semgrep", "codeql", "pip-audit", "npm-audit")
            else ["Style"] if f.verifier == "ruff" else ["Bug Risk"],
            "location": {"path": f.path or ".", "lines": {"begin": f.start_line or 1, "end": f.end_line
                                                          or f.start_line or 1}},
        })
    return json.dumps(issues, indent=2) + "\n"


# ---- JUnit XML -----------------------------------------------------------------------------------


# what XML 1.0 cannot hold, escaped or not: most control characters, lone surrogates, U+FFFE and U+FFFF
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    """`text` as XML can carry it: a character XML 1.0 has no place for is shown as its Python escape."""
    return _NOT_XML.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)


def junit_report(result: GateResult | Scan, policy: GateConfig) -> str:
    """A test case per verifier: a failure per finding it reported at or above `review_on` (introduced by the
    change, for a gate), an error when the verifier itself could not run."""
    verifiers: list[VerifierRun] = list(result.verifiers)
    findings = [f for f in introduced(result) if f.severity.at_least(policy.review_on)]
    names = [run.name for run in verifiers] + sorted({f.verifier for f in findings} - {r.name for r in verifiers})
    by_name = {run.name: run for run in verifiers}
    suites = ElementTree.Element("testsuites", name="truthplane")
    suite = ElementTree.SubElement(suites, "testsuite", name="truthplane")
    failed = errors = 0
    total_time = 0.0
    for name in names:
        run = by_name.get(name)
        case = ElementTree.SubElement(suite, "testcase", name=_xml(name), classname="truthplane")
        if run is not None:
            case.set("time", f"{run.duration_s:.3f}")
            total_time += run.duration_s
        mine = _ordered([f for f in findings if f.verifier == name])
        for f in mine:
            where = f"{f.path}:{f.start_line}" if f.path and f.start_line else f.path or "(repository)"
            failure = ElementTree.SubElement(case, "failure", type=_xml(f.rule_id),
                                             message=_xml(f"{where}: {f.message} ({f.severity.value})"))
            failure.text = _xml(f"{f.severity.value} {f.verifier} {f.rule_id} at {where}\n{f.message}\nfingerprint "
                                f"{f.fingerprint}\n")
        failed += bool(mine)
        if run is not None and run.status.value != "ok":
            errors += 1
            ElementTree.SubElement(case, "error", type=run.status.value, message=_xml(run.error or run.status.value))
    for element in (suites, suite):
        element.set("tests", str(len(names)))
        element.set("failures", str(failed))
        element.set("errors", str(errors))
        element.set("time", f"{total_time:.3f}")
    ElementTree.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(suites, encoding="unicode") + "\n"


# ---- reviewdog ---------------------------------------------------------------------------------------


RDJSON_SEVERITY = {"error": "ERROR", "warning": "WARNING", "notice": "INFO"}


def _position(line: int | None, column: int | None) -> dict[str, int]:
    position = {"line": line or 1}
    if column:
        position["column"] = column
    return position


def rdjson(result: GateResult | Scan, policy: GateConfig) -> str:
    """reviewdog's Diagnostic format (`reviewdog -f=rdjson`), so its reporters (GitHub, GitLab, Gerrit, Bitbucket,
    Gitea ...) can post what truthplane found."""
    diagnostics = []
    for f in _ordered(introduced(result)):
        diagnostic: dict[str, object] = {
            "message": f.message,
            "severity": RDJSON_SEVERITY[level(f, policy)],
            "source": {"name": f.verifier},
            "code": {"value": f.rule_id, **({"url": f.help_uri} if f.help_uri else {})},
        }
        if f.path:
            location: dict[str, object] = {"path": f.path}
            if f.start_line:
                location["range"] = {"start": _position(f.start_line, f.start_column),
                                     "end": _position(f.end_line or f.start_line, f.end_column)}
            diagnostic["location"] = location
        diagnostics.append(diagnostic)
    document = {"source": {"name": "truthplane"}, "diagnostics": diagnostics}
    return json.dumps(document, indent=2) + "\n"
