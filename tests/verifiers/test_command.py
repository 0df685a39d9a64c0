"""command: a user-configured tool printing SARIF or truthplane's JSON list; its exit codes, output
file, placeholders and validation. The tools here are small Python scripts: real processes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.verifiers.conftest import build_verifier, located
from truthplane.errors import ConfigError, VerifierError
from truthplane.models import Severity

PRINT_FILE = (
    "import sys\nsys.stdout.write(open(sys.argv[1]).read())\nsys.exit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)\n"
)

SARIF = {
    "version": "2.1.0",
    "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
    "runs": [{
        "tool": {"driver": {"name": "mylint", "rules": [{"id": "ML001", "helpUri": "https://example.org/ML001"}]}},
        "results": [{
            "ruleId": "ML001",
            "level": "error",
            "message": {"text": "something is off"},
            "locations": [{"physicalLocation": {
                "artifactLocation": {"uri": "src/app.py"},
                "region": {"startLine": 3, "startColumn": 5, "endLine": 3, "endColumn": 9},
            }}],
        }],
    }],
}


def _tool_repo(tree: Callable[[dict[str, str]], Path], output: Any, extra: dict[str, str] | None = None) -> Path:
    text = output if isinstance(output, str) else json.dumps(output)
    return tree({"tool.py": PRINT_FILE, "out.txt": text, "src/app.py": "a\nb\nc = 1\n", **(extra or {})})


def test_sarif_output(tree: Callable[[dict[str, str]], Path]) -> None:
    root = _tool_repo(tree, SARIF)
    verifier = build_verifier("command", "mylint", command=["python3", "tool.py", "out.txt"], format="sarif")
    (finding,) = verifier.scan(root).findings
    assert finding.verifier == "mylint"
    assert (finding.rule_id, finding.path, finding.start_line, finding.start_column) == ("ML001", "src/app.py", 3, 5)
    assert finding.severity is Severity.HIGH


def test_sarif_with_absolute_file_uris(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({})
    log = json.loads(json.dumps(SARIF))
    location = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    location["artifactLocation"]["uri"] = (root / "src" / "app.py").as_uri()
    root = _tool_repo(tree, log)
    (finding,) = build_verifier("command", command=["python3", "tool.py", "out.txt"]).scan(root).findings
    assert finding.path == "src/app.py"


@pytest.mark.parametrize(
    "output",
    ["not json at all", {"version": "2.0.0", "runs": []}, {"version": "2.1.0", "runs": "nope"},
     {"version": "2.1.0", "runs": [{"results": []}]}],
)
def test_malformed_sarif_is_an_error(tree: Callable[[dict[str, str]], Path], output: Any) -> None:
    root = _tool_repo(tree, output)
    with pytest.raises(VerifierError) as caught:
        build_verifier("command", command=["python3", "tool.py", "out.txt"]).scan(root)
    assert caught.value.status == "failed"


def test_json_output_both_shapes(tree: Callable[[dict[str, str]], Path]) -> None:
    items = [
        {"path": "src/app.py", "line": 2, "rule_id": "R1", "message": "first", "severity": "critical"},
        {"path": "./src/app.py", "line": 3, "end_line": 4, "column": 2, "rule_id": "R2", "message": "second"},
    ]
    for output in (items, {"findings": items}):
        root = _tool_repo(tree, output)
        findings = (
            build_verifier("command", command=["python3", "tool.py", "out.txt"], format="json").scan(root).findings
        )
        assert located(findings) == {("R1", "src/app.py", 2), ("R2", "src/app.py", 3)}
        severities = {f.rule_id: f.severity for f in findings}
        assert severities == {"R1": Severity.CRITICAL, "R2": Severity.MEDIUM}


@pytest.mark.parametrize(
    "item",
    [
        {"line": 1, "rule_id": "R", "message": "m"},
        {"path": "a.py", "line": 0, "rule_id": "R", "message": "m"},
        {"path": "a.py", "line": 1, "rule_id": "", "message": "m"},
        {"path": "a.py", "line": 1, "rule_id": "R", "message": "m", "severity": "catastrophic"},
        {"path": "a.py", "line": "one", "rule_id": "R", "message": "m"},
    ],
)
def test_invalid_json_findings_are_rejected(tree: Callable[[dict[str, str]], Path], item: dict[str, Any]) -> None:
    root = _tool_repo(tree, [item])
    with pytest.raises(VerifierError):
        build_verifier("command", command=["python3", "tool.py", "out.txt"], format="json").scan(root)


def test_exit_codes(tree: Callable[[dict[str, str]], Path]) -> None:
    root = _tool_repo(tree, SARIF)
    command = ["python3", "tool.py", "out.txt", "3"]
    with pytest.raises(VerifierError, match="exited with 3"):
        build_verifier("command", command=command).scan(root)
    assert len(build_verifier("command", command=command, ok_exit_codes=[0, 3]).scan(root).findings) == 1


def test_output_file_and_root_placeholders(tree: Callable[[dict[str, str]], Path]) -> None:
    writer = "import json, sys\njson.dump(json.load(open(sys.argv[1] + '/report.json')), open(sys.argv[2], 'w'))\n"
    root = tree({"writer.py": writer, "report.json": json.dumps(SARIF), "src/app.py": "a\nb\nc\n"})
    verifier = build_verifier("command", command=["python3", "writer.py", "{root}", "{output}"])
    assert located(verifier.scan(root).findings) == {("ML001", "src/app.py", 3)}


def test_output_file_not_written_is_an_error(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"quiet.py": "pass\n"})
    with pytest.raises(VerifierError, match="without writing"):
        build_verifier("command", command=["python3", "quiet.py", "{output}"]).scan(root)


def test_incremental_subset_reaches_the_tool(tree: Callable[[dict[str, str]], Path]) -> None:
    echo = (
        "import json, sys\n"
        "print(json.dumps([{'path': p, 'line': 1, 'rule_id': 'seen', 'message': 'scanned'} for p in sys.argv[1:]]))\n"
    )
    root = tree({"echo.py": echo, "a.js": "x\n", "b.js": "y\n"})
    verifier = build_verifier("command", command=["python3", "echo.py", "{files}"], format="json", incremental=True)
    assert verifier.incremental and verifier.file_local
    assert {f.path for f in verifier.scan(root, files=["b.js", "deleted.js"]).findings} == {"b.js"}
    assert {f.path for f in verifier.scan(root).findings} == {"."}
    assert not build_verifier("command", command=["x"]).incremental


def test_missing_command_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs command"):
        build_verifier("command", "mylint").scan(tmp_path)


def test_missing_executable(tmp_path: Path) -> None:
    verifier = build_verifier("command", "mylint", command=["truthplane-no-such-linter", "{files}"])
    info = verifier.available()
    assert not info.installed and info.reason and "truthplane-no-such-linter" in info.reason
    with pytest.raises(VerifierError) as caught:
        verifier.scan(tmp_path)
    assert caught.value.status == "missing"


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 5) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["path", "line", "rule_id", "message", "severity", "end_line", "column", "findings"]),
        inner, max_size=6,
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(data=_json_values)
def test_any_json_either_parses_or_is_a_verifier_error(data: Any) -> None:
    verifier = build_verifier("command", command=["unused"], format="json")
    try:
        findings = verifier._from_json(Path("/repo"), data)
    except VerifierError:
        return
    for finding in findings:
        assert finding.rule_id and finding.message and finding.path is not None
