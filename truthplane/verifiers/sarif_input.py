"""SARIF 2.1.0 in: any tool's SARIF log (a verifier's output, a baseline saved as SARIF) turned into Findings;
malformed input is an InputError, never anything else."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any, Literal, cast
from urllib.parse import unquote, urlparse

from truthplane.errors import InputError
from truthplane.models import Finding, Severity, VerifierRun

SRCROOT = "%SRCROOT%"
_FOREIGN_LEVEL = {"error": Severity.HIGH, "warning": Severity.MEDIUM, "note": Severity.LOW, "none": Severity.NOTE}
# tools whose SARIF driver name is not the verifier's name
_DRIVER_NAMES = {"semgrep oss": "semgrep", "semgrep pro": "semgrep", "semgrep pro engine": "semgrep"}
AUTOMATION_PREFIX = "truthplane/"
# what truthplane's own results carry besides the fingerprints, so reading them back loses no identity
CONTEXT_PROPERTY = "truthplane/context-hash"
SYMBOL_PROPERTY = "truthplane/symbol"
FINGERPRINT = "truthplane/v1"


def _expect(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InputError(f"malformed SARIF: {where} should be {names}")
    return value


def _urlparse(uri: str, where: str) -> Any:
    try:
        return urlparse(uri)
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise InputError(f"malformed SARIF: {where} is not a URI: {exc}") from None


def _relative_path(uri: str, base_ids: Mapping[str, Any], base_id: str | None, root: Path | None, where: str) -> str:
    parsed = _urlparse(uri, where)
    if parsed.scheme == "file":
        path = unquote(parsed.path)
    elif parsed.scheme and len(parsed.scheme) > 1:
        return uri  # some other URI scheme: keep it whole as an identifier
    else:
        path = unquote(uri)
    if base_id and base_id in base_ids and isinstance(base_ids[base_id], dict):
        base_uri = base_ids[base_id].get("uri")
        if isinstance(base_uri, str) and not PurePosixPath(path).is_absolute():
            path = str(PurePosixPath(unquote(_urlparse(base_uri, f"originalUriBaseIds.{base_id}.uri").path)) / path)
    posix = PurePosixPath(path)
    if posix.is_absolute() and root is not None:
        try:
            return posix.relative_to(PurePosixPath(root.resolve().as_posix())).as_posix()
        except ValueError:
            return posix.as_posix()
    return posix.as_posix().removeprefix("./")


def _severity(result: dict[str, Any], rule: dict[str, Any] | None) -> Severity:
    props = result.get("properties")
    if isinstance(props, dict):
        own = props.get("truthplane/severity")
        if isinstance(own, str) and own in Severity._value2member_map_:
            return Severity(own)
    rule_props = rule.get("properties") if rule else None
    if isinstance(rule_props, dict) and "security-severity" in rule_props:
        try:
            score = float(rule_props["security-severity"])
        except (TypeError, ValueError):
            score = -1.0
        if score >= 9.0:
            return Severity.CRITICAL
        if score >= 7.0:
            return Severity.HIGH
        if score >= 4.0:
            return Severity.MEDIUM
        if score > 0.0:
            return Severity.LOW
    level = result.get("level")
    if level is None and rule:
        default = rule.get("defaultConfiguration")
        level = default.get("level") if isinstance(default, dict) else None
    return _FOREIGN_LEVEL.get(level if isinstance(level, str) else "warning", Severity.MEDIUM)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _suppression(value: Any) -> Literal["inSource", "external"] | None:
    """The kind of the first suppression in force; one a reviewer rejected suppresses nothing."""
    if not isinstance(value, list):
        return None
    for suppression in value:
        if isinstance(suppression, dict) and suppression.get("status") != "rejected":
            return "external" if suppression.get("kind") == "external" else "inSource"
    return None


def _verifier_name(run: dict[str, Any], driver: dict[str, Any]) -> str:
    """truthplane's own runs name their verifier in automationDetails; other tools by their driver's name."""
    details = run.get("automationDetails")
    run_id = details.get("id") if isinstance(details, dict) else None
    if isinstance(run_id, str) and run_id.startswith(AUTOMATION_PREFIX) and run_id.endswith("/"):
        own = run_id[len(AUTOMATION_PREFIX):-1]
        if own and "/" not in own:
            return own
    name = str(driver.get("name") or "sarif").lower()
    return _DRIVER_NAMES.get(name, name)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _findings_of_run(run: dict[str, Any], index: int, verifier: str | None, root: Path | None) -> list[Finding]:
    tool = _expect(run.get("tool"), dict, f"runs[{index}].tool")
    driver = _expect(tool.get("driver"), dict, f"runs[{index}].tool.driver")
    name = verifier or _verifier_name(run, driver)
    rules = driver.get("rules") or []
    _expect(rules, list, f"runs[{index}].tool.driver.rules")
    base_ids = run.get("originalUriBaseIds") or {}
    _expect(base_ids, dict, f"runs[{index}].originalUriBaseIds")
    results = run.get("results") or []
    _expect(results, list, f"runs[{index}].results")
    findings = []
    for n, result in enumerate(results):
        where = f"runs[{index}].results[{n}]"
        _expect(result, dict, where)
        rule_index = result.get("ruleIndex")
        rule = rules[rule_index] if isinstance(rule_index, int) and 0 <= rule_index < len(rules) else None
        rule = rule if isinstance(rule, dict) else None
        rule_id = result.get("ruleId") or (rule or {}).get("id")
        if not isinstance(rule_id, str) and isinstance(result.get("rule"), dict):
            rule_id = result["rule"].get("id")
        if not isinstance(rule_id, str) or not rule_id:
            raise InputError(f"malformed SARIF: {where} has no ruleId")
        message = result.get("message") or {}
        _expect(message, dict, f"{where}.message")
        text = message.get("text") or message.get("markdown") or message.get("id") or rule_id
        path, region = "", cast(dict[str, Any], {})
        locations = result.get("locations") or []
        _expect(locations, list, f"{where}.locations")
        if locations:
            physical = _expect(locations[0], dict, f"{where}.locations[0]").get("physicalLocation") or {}
            _expect(physical, dict, f"{where}.locations[0].physicalLocation")
            artifact = physical.get("artifactLocation") or {}
            _expect(artifact, dict, f"{where}...artifactLocation")
            uri = artifact.get("uri")
            base_id = artifact.get("uriBaseId")
            if base_id is not None:
                _expect(base_id, str, f"{where}...artifactLocation.uriBaseId")
            if isinstance(uri, str):
                path = _relative_path(uri, base_ids, base_id, root, f"{where}...artifactLocation.uri")
            region = physical.get("region") or {}
            _expect(region, dict, f"{where}...region")
        partial = result.get("partialFingerprints") or {}
        _expect(partial, dict, f"{where}.partialFingerprints")
        props = result.get("properties") if isinstance(result.get("properties"), dict) else {}
        own = result.get("fingerprints") if isinstance(result.get("fingerprints"), dict) else {}
        suppressed = _suppression(result.get("suppressions"))
        start_line = _int_or_none(region.get("startLine"))
        findings.append(Finding(
            verifier=name,
            rule_id=rule_id,
            severity=_severity(result, rule),
            message=str(text),
            path=path,
            start_line=start_line,
            end_line=_int_or_none(region.get("endLine")) or start_line,
            start_column=_int_or_none(region.get("startColumn")),
            end_column=_int_or_none(region.get("endColumn")),
            partial_fingerprints={str(k): str(v) for k, v in partial.items() if isinstance(v, (str, int))},
            identity=str(props.get("truthplane/identity", "")),
            fingerprint=_text(own.get(FINGERPRINT)) or _text(partial.get(FINGERPRINT)),
            context_hash=_text(props.get(CONTEXT_PROPERTY)),
            symbol=_text(props.get(SYMBOL_PROPERTY)),
            suppressed=suppressed,
            tool_severity=result.get("level") if isinstance(result.get("level"), str) else None,
            help_uri=(rule or {}).get("helpUri") if isinstance((rule or {}).get("helpUri"), str) else None,
        ))
    return findings


def findings_from_sarif(log: Any, verifier: str | None = None, root: Path | None = None) -> list[Finding]:
    """Findings of every run in a SARIF 2.1.0 log. `verifier` overrides the tool's own name."""
    _expect(log, dict, "the log")
    version = log.get("version")
    if version != "2.1.0":
        raise InputError(f"not a SARIF 2.1.0 log (version is {version!r})")
    runs = _expect(log.get("runs"), list, "runs")
    findings: list[Finding] = []
    for index, run in enumerate(runs):
        findings.extend(_findings_of_run(_expect(run, dict, f"runs[{index}]"), index, verifier, root))
    return findings


def verifier_runs_from_sarif(log: dict[str, Any]) -> list[VerifierRun]:
    """One VerifierRun per SARIF run, taking executionSuccessful into account."""
    from truthplane.models import ToolStatus

    runs = []
    for index, run in enumerate(_expect(log.get("runs"), list, "runs")):
        _expect(run, dict, f"runs[{index}]")
        tool = _expect(run.get("tool"), dict, f"runs[{index}].tool")
        driver = _expect(tool.get("driver"), dict, f"runs[{index}].tool.driver")
        invocations = _expect(run.get("invocations") or [{}], list, f"runs[{index}].invocations")
        ok = all(isinstance(i, dict) and i.get("executionSuccessful", True) is not False for i in invocations)
        runs.append(VerifierRun(
            name=_verifier_name(run, driver),
            version=driver.get("version") if isinstance(driver.get("version"), str) else None,
            status=ToolStatus.OK if ok else ToolStatus.FAILED,
            count=len(_expect(run.get("results") or [], list, f"runs[{index}].results")),
            error=None if ok else "the tool reported that its run did not succeed",
        ))
    return runs
