from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from truthplane.errors import InputError
from truthplane.models import Finding, Severity, ToolStatus, VerifierRun
from truthplane.truth.results import scan_from_data
from truthplane.truth.sarif import diff_log, run_for, sarif_log
from truthplane.verifiers.sarif_input import findings_from_sarif

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "fixtures" / "sarif-schema-2.1.0.json").read_text())


def validate_sarif(log: dict) -> None:
    """Every SARIF file truthplane writes must validate against the OASIS 2.1.0 schema."""
    jsonschema.Draft4Validator(SCHEMA).validate(log)


def finding(**kw) -> Finding:
    base = dict(
        verifier="ruff", rule_id="S307", severity=Severity.HIGH, message="eval is unsafe",
        path="pkg/my module.py", start_line=3, end_line=4, start_column=5, end_column=9,
        fingerprint="abc:0", partial_fingerprints={"truthplane/v1": "abc", "primaryLocationLineHash": "1234:1"},
    )
    base.update(kw)
    return Finding(**base)


def test_written_log_validates_and_round_trips() -> None:
    findings = [finding(), finding(rule_id="E501", severity=Severity.NOTE, start_line=None, end_line=None,
                                   start_column=None, end_column=None, identity="x::y")]
    run = VerifierRun(name="ruff", version="0.5.0", status=ToolStatus.OK, count=2)
    log = sarif_log([run_for("ruff", findings, version="0.5.0", run_info=run)])
    validate_sarif(log)
    back = findings_from_sarif(json.loads(json.dumps(log)))
    assert [(f.rule_id, f.path, f.start_line, f.severity) for f in back] == [
        ("S307", "pkg/my module.py", 3, Severity.HIGH),
        ("E501", "pkg/my module.py", None, Severity.NOTE),
    ]
    assert back[0].partial_fingerprints == {"primaryLocationLineHash": "1234:1", "truthplane/v1": "abc"}
    assert back[1].identity == "x::y"
    # the space in the path is percent-encoded on the wire
    assert (
        log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
        == "pkg/my%20module.py"
    )


def test_diff_log_carries_baseline_state_and_leaves_fixed_out() -> None:
    new, same, gone = finding(rule_id="A"), finding(rule_id="B"), finding(rule_id="C")
    runs = [
        VerifierRun(name="ruff", status=ToolStatus.OK),
        VerifierRun(name="semgrep", status=ToolStatus.FAILED, error="boom"),
    ]
    log = diff_log([new], [same], [gone], runs)
    validate_sarif(log)
    results = {r["ruleId"]: r["baselineState"] for run in log["runs"] for r in run["results"]}
    assert results == {"A": "new", "B": "unchanged"}
    failed = next(run for run in log["runs"] if run["tool"]["driver"]["name"] == "semgrep")
    assert failed["invocations"][0]["executionSuccessful"] is False
    with_absent = diff_log([new], [same], [gone], runs, include_absent=True)
    validate_sarif(with_absent)
    assert {r["baselineState"] for run in with_absent["runs"] for r in run["results"]} == {"new", "unchanged", "absent"}


def test_foreign_sarif_severity_and_paths(tmp_path: Path) -> None:
    log = {
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "CodeQL",
                        "rules": [
                            {"id": "py/sql-injection", "properties": {"security-severity": "8.8"}},
                            {"id": "py/unused-import", "defaultConfiguration": {"level": "note"}},
                        ],
                    }
                },
                "originalUriBaseIds": {"SRC": {"uri": "file:///src/"}},
                "results": [
                    {
                        "ruleIndex": 0,
                        "message": {"text": "sqli"},
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {"uri": "app/db.py", "uriBaseId": "SRC"},
                                    "region": {"startLine": 7},
                                }
                            }
                        ],
                    },
                    {
                        "ruleId": "py/unused-import",
                        "ruleIndex": 1,
                        "message": {"text": "unused"},
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {"uri": f"file://{tmp_path}/x.py"},
                                    "region": {"startLine": 1},
                                }
                            }
                        ],
                    },
                ],
            }
        ],
    }
    found = findings_from_sarif(log, root=tmp_path)
    assert [(f.verifier, f.rule_id, f.severity, f.path) for f in found] == [
        ("codeql", "py/sql-injection", Severity.HIGH, "/src/app/db.py"),
        ("codeql", "py/unused-import", Severity.LOW, "x.py"),
    ]


@pytest.mark.parametrize(
    "bad, needle",
    [
        ([], "the log should be dict"),
        ({"version": "2.0.0", "runs": []}, "not a SARIF 2.1.0 log"),
        ({"version": "2.1.0", "runs": {}}, "runs should be list"),
        ({"version": "2.1.0", "runs": [{"tool": {}}]}, "tool.driver"),
        (
            {
                "version": "2.1.0",
                "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"message": {"text": "m"}}]}],
            },
            "no ruleId",
        ),
    ],
)
def test_malformed_sarif_is_an_input_error(bad: object, needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        findings_from_sarif(bad)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=25,
)
sarif_keys = st.sampled_from([
    "version", "runs", "tool", "driver", "name", "rules", "results", "ruleId", "ruleIndex", "message", "text",
    "locations", "physicalLocation", "artifactLocation", "uri", "region", "startLine", "level",
    "partialFingerprints", "properties", "originalUriBaseIds", "uriBaseId", "tool", "truthplane/severity",
])


def _mutate(value: object, data: st.DataObject) -> object:
    """Replace one node of a valid log with something random."""
    if isinstance(value, dict) and value and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(value)))
        return {**value, key: _mutate(value[key], data)}
    if isinstance(value, list) and value and data.draw(st.booleans()):
        i = data.draw(st.integers(0, len(value) - 1))
        return [*value[:i], _mutate(value[i], data), *value[i + 1:]]
    return data.draw(json_values | st.dictionaries(sarif_keys, json_values, max_size=4))


VALID = sarif_log([run_for("ruff", [finding(), finding(rule_id="X", path="", start_line=None)])])
BASELINE = {"tool": "truthplane", "schema_version": 1, "created_at": "2026-01-01T00:00:00Z",
            "verifiers": [{"name": "ruff", "status": "ok"}], "findings": [finding().model_dump(mode="json")]}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_sarif_and_baselines_parse_or_raise_our_error(data: st.DataObject) -> None:
    document = _mutate(data.draw(st.sampled_from([VALID, BASELINE])), data)
    try:
        scan_from_data(json.loads(json.dumps(document)), "input")
    except InputError:
        pass


@settings(max_examples=200, deadline=None)
@given(document=json_values | st.dictionaries(sarif_keys, json_values, max_size=6))
def test_random_json_parses_or_raises_our_error(document: object) -> None:
    try:
        scan_from_data(document, "input")
    except InputError:
        pass


def test_a_suppressed_result_of_any_tool_is_listed_not_counted() -> None:
    def result(line: int, suppressions: list | None = None) -> dict:
        found = {"ruleId": "R1", "message": {"text": "m"}, "locations": [{"physicalLocation": {
            "artifactLocation": {"uri": "a.py"}, "region": {"startLine": line}}}]}
        if suppressions is not None:
            found["suppressions"] = suppressions
        return found

    log = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "mylint"}}, "results": [
        result(1), result(2, [{"kind": "inSource"}]), result(3, [{"kind": "external", "status": "accepted"}]),
        result(4, [{"kind": "inSource", "status": "rejected"}]),  # a reviewer turned the suppression down
    ]}]}
    scan = scan_from_data(log, "log.sarif")
    assert [f.start_line for f in scan.findings] == [1, 4]
    assert [(f.start_line, f.suppressed) for f in scan.suppressed] == [(2, "inSource"), (3, "external")]
    assert scan.verifiers[0].count == 2
    # truthplane's own SARIF keeps the suppression, and reads back the same
    written = sarif_log([run_for("mylint", scan.findings + scan.suppressed)])
    validate_sarif(written)
    again = scan_from_data(json.loads(json.dumps(written)), "again.sarif")
    assert [(f.start_line, f.suppressed) for f in again.suppressed] == [(2, "inSource"), (3, "external")]


def test_several_runs_of_one_tool_count_each_result_once() -> None:
    def run(rule: str, lines: list[int]) -> dict:
        return {"tool": {"driver": {"name": "CodeQL"}}, "results": [
            {"ruleId": rule, "message": {"text": "m"}, "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": "a.py"}, "region": {"startLine": line}}}]} for line in lines]}

    scan = scan_from_data({"version": "2.1.0", "runs": [run("A", [1, 2]), run("B", [3])]}, "codeql.sarif")
    assert [(r.name, r.count) for r in scan.verifiers] == [("codeql", 3)]
