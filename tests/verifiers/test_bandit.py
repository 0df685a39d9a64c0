"""bandit: `.bandit` and pyproject [tool.bandit] apply; parse failures are findings; exit codes mapped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.verifiers.conftest import build_verifier, located
from truthplane.errors import VerifierError
from truthplane.models import Severity
from truthplane.verifiers.bandit import bandit_severity

pytestmark = pytest.mark.tool("bandit")

SHELL = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
EVAL = "def f(text):\n    return eval(text)\n"


def test_findings_without_config(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"app.py": SHELL, "sub/calc.py": EVAL})
    findings = build_verifier("bandit").scan(root).findings
    assert {("B602", "app.py", 5), ("B307", "sub/calc.py", 2)} <= located(findings)
    (eval_finding,) = [f for f in findings if f.rule_id == "B307"]
    assert eval_finding.severity is Severity.MEDIUM
    assert eval_finding.tool_severity == "MEDIUM (confidence HIGH)"
    assert (eval_finding.start_column, eval_finding.end_column) == (12, 22)
    assert eval_finding.help_uri and eval_finding.help_uri.startswith("https://")


def test_dot_bandit_ini_skips_and_excludes(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({
        "app.py": SHELL, "vendor/lib.py": EVAL, "vendor2/lib.py": EVAL,
        ".bandit": "[bandit]\nskips = B602,B404\nexclude = ./vendor\n",
    })
    verifier = build_verifier("bandit")
    found = {rule for rule, _, _ in located(verifier.scan(root).findings)}
    assert "B602" not in found and "B404" not in found
    assert {f.path for f in verifier.scan(root).findings} == {"vendor2/lib.py"}
    # a file named explicitly is excluded just as in a whole scan
    assert verifier.scan(root, files=["vendor/lib.py"]).findings == []


def test_dot_bandit_as_yaml_config(tree: Callable[[dict[str, str]], Path]) -> None:
    # some projects keep bandit's YAML config in .bandit and run `bandit -c .bandit`
    root = tree({"app.py": SHELL, ".bandit": "skips: ['B602', 'B404']\n"})
    assert build_verifier("bandit").scan(root).findings == []


def test_pyproject_tool_bandit_applies(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({
        "app.py": SHELL, "gen/calc.py": EVAL,
        "pyproject.toml": '[tool.bandit]\nskips = ["B602"]\nexclude_dirs = ["gen"]\n',
    })
    findings = build_verifier("bandit").scan(root).findings
    assert "B602" not in {f.rule_id for f in findings}
    assert "gen/calc.py" not in {f.path for f in findings}
    assert "B404" in {f.rule_id for f in findings}


def test_pyproject_without_bandit_section_is_ignored(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"app.py": SHELL, "pyproject.toml": '[project]\nname = "x"\n'})
    assert "B602" in {f.rule_id for f in build_verifier("bandit").scan(root).findings}


def test_args_are_appended(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"app.py": SHELL + EVAL})
    findings = build_verifier("bandit", args=["-t", "B307"]).scan(root).findings
    assert {f.rule_id for f in findings} == {"B307"}


def test_low_confidence_lowers_severity(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"net.py": "import requests\n\n\ndef get(url):\n    return requests.get(url)\n"})
    (finding,) = build_verifier("bandit").scan(root).findings
    assert finding.rule_id == "B113"
    assert finding.tool_severity == "MEDIUM (confidence LOW)"
    assert finding.severity is Severity.LOW


def test_subset_scans_only_named_files(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"a.py": EVAL, "b.py": EVAL})
    findings = build_verifier("bandit").scan(root, files=["b.py", "gone.py", "notes.txt"]).findings
    assert {f.path for f in findings} == {"b.py"}


def test_unparseable_file_is_a_finding_not_silence(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"bad.py": "def f(:\n", "ok.py": EVAL})
    findings = build_verifier("bandit").scan(root).findings
    assert ("parse-error", "bad.py", None) in located(findings)
    assert ("B307", "ok.py", 2) in located(findings)
    # a scan of only the broken file: bandit exits 0, and still the file is not reported as clean
    (only,) = build_verifier("bandit").scan(root, files=["bad.py"]).findings
    assert only.rule_id == "parse-error" and only.severity is Severity.MEDIUM


def test_broken_pyproject_config_is_an_error(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"app.py": SHELL, "pyproject.toml": "[tool.bandit\nskips = \n"})
    with pytest.raises(VerifierError):
        build_verifier("bandit").scan(root)


def test_bad_argument_is_an_error(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"app.py": SHELL})
    with pytest.raises(VerifierError) as caught:
        build_verifier("bandit", args=["--no-such-option"]).scan(root)
    assert "exited with 2" in caught.value.reason


@pytest.mark.parametrize(
    "severity, confidence, expected",
    [("HIGH", "HIGH", Severity.HIGH), ("HIGH", "MEDIUM", Severity.HIGH), ("HIGH", "LOW", Severity.MEDIUM),
     ("MEDIUM", "HIGH", Severity.MEDIUM), ("LOW", "HIGH", Severity.LOW), ("LOW", "LOW", Severity.NOTE)],
)
def test_severity_mapping(severity: str, confidence: str, expected: Severity) -> None:
    assert bandit_severity(severity, confidence) is expected


TEST_MODULE = 'def test_login(client):\n    password = "hunter2"\n    assert client.login(password)\n'
LIBRARY = 'def check(value):\n    assert value\n    return value\n'


def test_asserts_and_fixture_passwords_in_tests_are_no_findings_by_default(
    tree: Callable[[dict[str, str]], Path],
) -> None:
    root = tree({
        "tests/test_login.py": TEST_MODULE, "pkg/login_test.py": TEST_MODULE, "conftest.py": TEST_MODULE,
        "test_top.py": TEST_MODULE, "pkg/lib.py": LIBRARY, "pkg/latest.py": TEST_MODULE,
    })
    found = located(build_verifier("bandit").scan(root).findings)
    # library code keeps them: an assert there vanishes under python -O
    assert found == {("B101", "pkg/lib.py", 2), ("B105", "pkg/latest.py", 2), ("B101", "pkg/latest.py", 3)}


def test_the_repositorys_own_bandit_config_wins_over_the_test_file_default(
    tree: Callable[[dict[str, str]], Path],
) -> None:
    root = tree({"tests/test_login.py": TEST_MODULE, ".bandit": "[bandit]\nskips = B105\n"})
    found = located(build_verifier("bandit").scan(root).findings)
    assert found == {("B101", "tests/test_login.py", 3)}
