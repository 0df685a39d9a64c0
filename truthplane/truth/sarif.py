"""SARIF 2.1.0 out: one run per verifier, results carrying partialFingerprints (truthplane/v1 and GitHub's
primaryLocationLineHash) and, for a diff, baselineState. Reading SARIF is truthplane.verifiers.sarif_input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from truthplane import __version__
from truthplane.models import Finding, Severity, VerifierRun
from truthplane.verifiers.sarif_input import AUTOMATION_PREFIX, CONTEXT_PROPERTY, FINGERPRINT, SRCROOT, SYMBOL_PROPERTY

SARIF_SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"

_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "warning",
    Severity.NOTE: "note",
}
# GitHub code scanning shows these as the alert's security severity
_SECURITY_SEVERITY = {
    Severity.CRITICAL: "9.5",
    Severity.HIGH: "8.0",
    Severity.MEDIUM: "5.5",
    Severity.LOW: "2.0",
    Severity.NOTE: "0.0",
}


# ---- writing ---------------------------------------------------------------------------------


def _location(finding: Finding) -> dict[str, Any]:
    physical: dict[str, Any] = {"artifactLocation": {"uri": quote(finding.path), "uriBaseId": SRCROOT}}
    if finding.start_line:
        region: dict[str, Any] = {"startLine": finding.start_line}
        if finding.end_line and finding.end_line >= finding.start_line:
            region["endLine"] = finding.end_line
        if finding.start_column:
            region["startColumn"] = finding.start_column
        if finding.end_column:
            region["endColumn"] = finding.end_column
        physical["region"] = region
    return {"physicalLocation": physical}


def _result(finding: Finding, rule_index: int, baseline_state: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": finding.rule_id,
        "ruleIndex": rule_index,
        "level": _LEVEL[finding.severity],
        "message": {"text": finding.message or finding.rule_id},
        "properties": {"truthplane/severity": finding.severity.value},
    }
    if finding.path:
        result["locations"] = [_location(finding)]
    if finding.partial_fingerprints:
        result["partialFingerprints"] = dict(sorted(finding.partial_fingerprints.items()))
    if finding.fingerprint:
        result["fingerprints"] = {FINGERPRINT: finding.fingerprint}
    if finding.context_hash:
        result["properties"][CONTEXT_PROPERTY] = finding.context_hash
    if finding.symbol:
        result["properties"][SYMBOL_PROPERTY] = finding.symbol
    if finding.identity:
        result["properties"]["truthplane/identity"] = finding.identity
    if finding.tool_severity:
        result["properties"]["truthplane/tool-severity"] = finding.tool_severity
    if finding.suppressed:
        result["suppressions"] = [{"kind": finding.suppressed}]
    if baseline_state:
        result["baselineState"] = baseline_state
    return result


def _rule(finding: Finding) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "id": finding.rule_id,
        "defaultConfiguration": {"level": _LEVEL[finding.severity]},
        "properties": {"security-severity": _SECURITY_SEVERITY[finding.severity]},
    }
    if finding.help_uri:
        rule["helpUri"] = finding.help_uri
    return rule


def run_for(
    verifier: str,
    findings: Iterable[Finding],
    *,
    version: str | None = None,
    states: Mapping[int, str] | None = None,
    run_info: VerifierRun | None = None,
) -> dict[str, Any]:
    """One SARIF run for one verifier. `states` maps id(finding) -> baselineState."""
    rules: dict[str, int] = {}
    rule_list: list[dict[str, Any]] = []
    results = []
    for finding in findings:
        if finding.rule_id not in rules:
            rules[finding.rule_id] = len(rule_list)
            rule_list.append(_rule(finding))
        state = states.get(id(finding)) if states else None
        results.append(_result(finding, rules[finding.rule_id], state))
    driver: dict[str, Any] = {
        "name": verifier,
        "informationUri": "https://pypi.org/project/truthplane/",
        "rules": rule_list,
    }
    if version:
        driver["version"] = version
    run: dict[str, Any] = {
        "tool": {"driver": driver},
        "automationDetails": {"id": f"{AUTOMATION_PREFIX}{verifier}/"},
        "originalUriBaseIds": {SRCROOT: {"description": {"text": "the repository root"}}},
        "results": results,
        "properties": {"truthplane/version": __version__},
    }
    if run_info is not None:
        successful = run_info.status.value == "ok"
        invocation: dict[str, Any] = {"executionSuccessful": successful}
        if not successful:
            invocation["toolExecutionNotifications"] = [
                {"level": "error", "message": {"text": run_info.error or run_info.status.value}}
            ]
        run["invocations"] = [invocation]
    return run


def sarif_log(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {"$schema": SARIF_SCHEMA_URI, "version": "2.1.0", "runs": runs}


def diff_log(
    new: list[Finding], unchanged: list[Finding], fixed: list[Finding], verifiers: list[VerifierRun],
    *, include_absent: bool = False, suppressed: list[Finding] | None = None, updated: Sequence[Finding] = (),
) -> dict[str, Any]:
    """A log for code scanning upload: new, updated and unchanged results with baselineState, and the
    suppressed ones with their suppressions (code scanning shows those as dismissed).

    Fixed findings are left out unless asked for: GitHub code scanning ignores baselineState and
    would open an alert for an 'absent' result.
    """
    by_verifier: dict[str, list[tuple[Finding, str]]] = {v.name: [] for v in verifiers}
    groups: list[tuple[Sequence[Finding], str]] = [(new, "new"), (updated, "updated"), (unchanged, "unchanged")]
    groups += [(fixed, "absent")] if include_absent else []
    groups.append((suppressed or [], ""))
    for findings, state in groups:
        for finding in findings:
            by_verifier.setdefault(finding.verifier, []).append((finding, state))
    info = {v.name: v for v in verifiers}
    runs = []
    for name, pairs in by_verifier.items():
        ordered = sorted(pairs, key=lambda p: (p[0].path, p[0].start_line or 0, p[0].rule_id))
        runs.append(run_for(
            name, [f for f, _ in ordered], version=info[name].version if name in info else None,
            states={id(f): s for f, s in ordered if s}, run_info=info.get(name),
        ))
    return sarif_log(runs)
