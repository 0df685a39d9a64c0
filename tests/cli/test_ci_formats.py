"""The CI formats, each checked against its consumer's own rules: GitHub's workflow command syntax and escaping,
GitLab Code Quality's fields, JUnit XML against the Jenkins xunit plugin's junit-10.xsd, and rdjson against
reviewdog's DiagnosticResult JSON schema (both schemas copied unchanged into tests/cli/schemas/). The end-to-end
tests run real ruff on a real change."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from truthplane.cli import ci_formats
from truthplane.cli.main import run
from truthplane.config import GateConfig
from truthplane.models import Finding, GateResult, Severity, ToolStatus, Verdict, VerifierRun

SCHEMAS = Path(__file__).parent / "schemas"
# GitHub's workflow command: `::name key=value,key=value::message`; a property value is escaped for % \r \n : ,
COMMAND = re.compile(r"^::(?P<level>error|warning|notice)(?: (?P<props>[^:]*))?::(?P<message>.*)$")
POLICY = GateConfig(fail_on=Severity.HIGH, review_on=Severity.MEDIUM)


def unescape(text: str) -> str:
    for code, char in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
        text = text.replace(code, char)
    return text


def parse_commands(text: str) -> list[dict[str, str]]:
    commands = []
    for line in text.splitlines():
        match = COMMAND.match(line)
        assert match, f"not a workflow command: {line!r}"
        props = dict(part.split("=", 1) for part in match["props"].split(",")) if match["props"] else {}
        assert all(set(value) & set(":,\r\n") == set() for value in props.values()), props
        commands.append({"level": match["level"], "message": unescape(match["message"]),
                         **{key: unescape(value) for key, value in props.items()}})
    return commands


def finding(rule: str, severity: Severity, path: str, line: int | None, message: str, **extra: object) -> Finding:
    return Finding(verifier="bandit", rule_id=rule, severity=severity, message=message, path=path, start_line=line,
                   fingerprint=f"{rule}-{path}-{line}", **extra)  # type: ignore[arg-type]


TRICKY = finding("B602", Severity.HIGH, "dir,with:odd/a%b.py", 3, "100% sure: a, b\nsecond line\r",
                 end_line=4, start_column=5, end_column=9)
RESULT = GateResult(
    verdict=Verdict.REJECT,
    new=[TRICKY, finding("B105", Severity.MEDIUM, "app.py", 7, "hard-coded password"),
         finding("B101", Severity.LOW, "app.py", 9, "assert used")],
    added_by_config=[finding("B311", Severity.LOW, "rand.py", 1, "random is not for security")],
    unchanged=[finding("B404", Severity.LOW, "old.py", 1, "subprocess imported")],
    fixed=[finding("B303", Severity.MEDIUM, "gone.py", 2, "md5")],
    verifiers=[VerifierRun(name="bandit", status=ToolStatus.OK, version="1.8", duration_s=0.5, count=5),
               VerifierRun(name="semgrep", status=ToolStatus.FAILED, error="rules could not be read")],
)


def test_github_commands_are_one_per_introduced_finding_escaped_as_github_reads_them() -> None:
    commands = parse_commands(ci_formats.github_annotations(RESULT, POLICY))
    assert len(commands) == 4  # the 3 new and the one a configuration change added; unchanged and fixed are not
    tricky = next(c for c in commands if c["file"] == "dir,with:odd/a%b.py")
    assert tricky == {"level": "error", "message": "100% sure: a, b\nsecond line\r", "file": "dir,with:odd/a%b.py",
                      "line": "3", "endLine": "4", "col": "5", "title": "bandit B602 (high)"}
    levels = {c["title"].split()[1]: c["level"] for c in commands}
    assert levels == {"B602": "error", "B105": "warning", "B101": "notice", "B311": "notice"}  # by the policy


def test_gitlab_code_quality_has_the_fields_gitlab_requires_for_every_finding_of_the_head() -> None:
    issues = json.loads(ci_formats.gitlab_code_quality(RESULT))
    assert len(issues) == 5  # new, added and unchanged: GitLab compares two pipelines' reports itself
    for issue in issues:
        assert isinstance(issue["description"], str) and issue["description"]
        assert isinstance(issue["check_name"], str) and issue["check_name"].startswith("bandit:")
        assert issue["severity"] in {"info", "minor", "major", "critical", "blocker"}
        assert isinstance(issue["location"]["path"], str) and isinstance(issue["location"]["lines"]["begin"], int)
    assert len({issue["fingerprint"] for issue in issues}) == 5
    by_rule = {issue["check_name"]: issue for issue in issues}
    assert by_rule["bandit:B602"]["severity"] == "critical"
    assert by_rule["bandit:B602"]["fingerprint"] == TRICKY.fingerprint
    assert "bandit:B303" not in by_rule  # fixed: not in the head


def test_junit_validates_against_junit_10_xsd_with_a_failure_per_finding_at_or_above_review_on() -> None:
    import xmlschema
    from xml.etree import ElementTree

    text = ci_formats.junit_report(RESULT, POLICY)
    xmlschema.XMLSchema(SCHEMAS / "junit-10.xsd").validate(text)
    root = ElementTree.fromstring(text)
    cases = {case.get("name"): case for case in root.iter("testcase")}
    assert set(cases) == {"bandit", "semgrep"}
    assert [f.get("type") for f in cases["bandit"].findall("failure")] == ["B105", "B602"]  # medium and up only
    assert cases["semgrep"].find("error") is not None and not cases["semgrep"].findall("failure")
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("2", "1", "1")
    with pytest.raises(xmlschema.XMLSchemaValidationError):  # the schema can say no
        xmlschema.XMLSchema(SCHEMAS / "junit-10.xsd").validate("<testsuites><testsuite><testcase/></testsuite>"
                                                               "</testsuites>")


def test_junit_stays_well_formed_when_a_path_message_or_tool_error_holds_control_characters() -> None:
    """XML 1.0 has no place for most control characters, escaped or not: a file a pull request names with one, or
    a tool's stderr with colour codes, must not make the report unreadable to the CI that parses it."""
    import xmlschema
    from xml.etree import ElementTree

    hostile = finding("B602", Severity.HIGH, "evil\x1b[2J.py", 1, "bad\x00 \x0c form feed\ud800 end")
    result = GateResult(verdict=Verdict.REJECT, new=[hostile],
                        verifiers=[VerifierRun(name="bandit", status=ToolStatus.OK, duration_s=0.1, count=1),
                                   VerifierRun(name="semgrep", status=ToolStatus.FAILED, error="\x1b[31mboom\x1b[0m")])
    text = ci_formats.junit_report(result, POLICY)
    root = ElementTree.fromstring(text)  # a strict parser: no invalid character gets through
    xmlschema.XMLSchema(SCHEMAS / "junit-10.xsd").validate(text)
    (failure,) = root.iter("failure")
    assert "evil\\x1b[2J.py:1" in failure.get("message", "") and "bad\\x00 \\x0c form feed" in failure.text
    assert root.find(".//error").get("message") == "\\x1b[31mboom\\x1b[0m"


def test_rdjson_validates_against_reviewdogs_schema() -> None:
    document = json.loads(ci_formats.rdjson(RESULT, POLICY))
    schema = json.loads((SCHEMAS / "reviewdog-DiagnosticResult.json").read_text())
    jsonschema.Draft4Validator(schema).validate(document)
    diagnostics = document["diagnostics"]
    assert len(diagnostics) == 4
    tricky = next(d for d in diagnostics if d["code"]["value"] == "B602")
    assert tricky["location"] == {"path": "dir,with:odd/a%b.py",
                                  "range": {"start": {"line": 3, "column": 5}, "end": {"line": 4, "column": 9}}}
    assert {d["code"]["value"]: d["severity"] for d in diagnostics} == {
        "B602": "ERROR", "B105": "WARNING", "B101": "INFO", "B311": "INFO"}
    with pytest.raises(jsonschema.ValidationError):  # the schema can say no
        jsonschema.Draft4Validator(schema).validate({"diagnostics": [{"severity": "FATAL"}]})


# ---- end to end: a real change, real ruff ------------------------------------------------------------------


@pytest.mark.tool("ruff")
@pytest.mark.parametrize("fmt", ["github", "gitlab", "junit", "rdjson"])
def test_a_scan_against_its_baseline_reports_only_what_the_change_introduced(
        fmt: str, make_repo, capsys, monkeypatch, tmp_path: Path) -> None:  # noqa: ANN001
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    root = make_repo({"old.py": "import os\n", "app.py": "x = 1\n",
                      "truthplane.toml": 'verifiers = ["ruff"]\n[gate]\nreview_on = "note"\n'})
    assert run(["scan", "--baseline", str(root), "--format", "json"]) == 0
    capsys.readouterr()
    (root / "app.py").write_text("import sys\nimport json\nx = 1\n")  # new unused imports
    run(["scan", str(root), "--format", "json"])
    gate = json.loads(capsys.readouterr().out)
    new = sorted((f["path"], f["start_line"], f["rule_id"]) for f in gate["new"])
    assert len(new) >= 2 and all(path == "app.py" for path, _, _ in new) and not gate["fixed"]
    run(["scan", str(root), "--format", fmt])
    out = capsys.readouterr().out
    if fmt == "github":
        commands = parse_commands(out)
        assert sorted((c["file"], int(c["line"]), c["title"].split()[1]) for c in commands) == new
    elif fmt == "gitlab":
        issues = json.loads(out)
        head = sorted((i["location"]["path"], i["location"]["lines"]["begin"], i["check_name"].split(":")[1])
                      for i in issues)
        assert head == sorted([*new, ("old.py", 1, "F401")])  # the head: GitLab works out what is new
        run(["scan", str(root), "--format", fmt])
        assert json.loads(capsys.readouterr().out) == issues  # fingerprints stable across runs
    elif fmt == "junit":
        import xmlschema

        xmlschema.XMLSchema(SCHEMAS / "junit-10.xsd").validate(out)
        assert out.count("<failure ") == len(new) and 'name="ruff"' in out
    else:
        document = json.loads(out)
        jsonschema.Draft4Validator(json.loads((SCHEMAS / "reviewdog-DiagnosticResult.json").read_text())).validate(
            document)
        assert sorted((d["location"]["path"], d["location"]["range"]["start"]["line"], d["code"]["value"])
                      for d in document["diagnostics"]) == new
