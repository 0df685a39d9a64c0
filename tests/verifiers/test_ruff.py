"""ruff: the repository's own ruff configuration decides what is found; truthplane only adds."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.verifiers.conftest import build_verifier, located
from truthplane.errors import VerifierError
from truthplane.models import Severity
from truthplane.verifiers.ruff import ruff_severity

pytestmark = pytest.mark.tool("ruff")

CODE = ("import os\n\n\ndef f():\n    return undefined_name  # a comment that makes this line longer than eighty-eight "
        "characters\n")


def test_default_rules_without_repo_config(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"a.py": CODE})
    found = located(build_verifier("ruff").scan(root).findings)
    assert {("F401", "a.py", 1), ("F821", "a.py", 5)} <= found
    assert not any(rule == "E501" for rule, _, _ in found)


@pytest.mark.parametrize(
    "config_file, content",
    [
        ("pyproject.toml", '[tool.ruff]\nline-length = 88\n[tool.ruff.lint]\nselect = ["E501"]\n'),
        ("ruff.toml", '[lint]\nselect = ["E501"]\n'),
        (".ruff.toml", '[lint]\nselect = ["E501"]\n'),
    ],
)
def test_repo_config_decides_what_is_found(
    tree: Callable[[dict[str, str]], Path], config_file: str, content: str
) -> None:
    root = tree({"a.py": CODE, config_file: content})
    findings = build_verifier("ruff").scan(root).findings
    assert located(findings) == {("E501", "a.py", 5)}
    assert findings[0].severity is Severity.LOW
    assert findings[0].help_uri and "line-too-long" in findings[0].help_uri


def test_args_add_to_repo_config(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({
        "a.py": "def f(x=[]):\n    return x\n",
        "pyproject.toml": '[tool.ruff.lint]\nselect = ["E501"]\n',
    })
    found = located(build_verifier("ruff", args=["--extend-select", "B006"]).scan(root).findings)
    assert ("B006", "a.py", 1) in found


def test_subset_scans_only_named_python_files(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"a.py": "import os\n", "b.py": "import sys\n", "README.md": "import os\n"})
    findings = build_verifier("ruff").scan(root, files=["a.py", "README.md", "deleted.py"]).findings
    assert {f.path for f in findings} == {"a.py"}


def test_repo_excludes_apply_to_named_files(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"gen/x.py": "import os\n", "pyproject.toml": '[tool.ruff]\nextend-exclude = ["gen"]\n'})
    verifier = build_verifier("ruff")
    assert verifier.scan(root).findings == []
    assert verifier.scan(root, files=["gen/x.py"]).findings == []


def test_locations_are_one_based_with_exclusive_end(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"pkg/a b.py": "import os\n"})
    (finding,) = [f for f in build_verifier("ruff").scan(root).findings if f.rule_id == "F401"]
    assert (finding.path, finding.start_line, finding.start_column, finding.end_line, finding.end_column) == (
        "pkg/a b.py", 1, 8, 1, 10,
    )


def test_syntax_error_is_a_high_finding(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"bad.py": "def f(:\n    pass\n", "ok.py": "import os\n"})
    findings = build_verifier("ruff").scan(root).findings
    syntax = [f for f in findings if f.path == "bad.py"]
    assert syntax and {f.rule_id for f in syntax} == {"invalid-syntax"}
    assert {f.severity for f in syntax} == {Severity.HIGH}
    assert ("F401", "ok.py", 1) in located(findings)


def test_broken_repo_config_is_an_error(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"a.py": "import os\n", "ruff.toml": "[lint\nselect = \n"})
    with pytest.raises(VerifierError) as caught:
        build_verifier("ruff").scan(root)
    assert "exited with 2" in caught.value.reason


def test_unknown_rule_in_args_is_an_error(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"a.py": "import os\n"})
    with pytest.raises(VerifierError):
        build_verifier("ruff", args=["--select", "NOPE999"]).scan(root)


@pytest.mark.parametrize(
    "code, severity",
    [("F401", Severity.MEDIUM), ("E902", Severity.MEDIUM), ("S307", Severity.MEDIUM), ("E501", Severity.LOW),
     ("I001", Severity.LOW), ("invalid-syntax", Severity.HIGH), ("E999", Severity.HIGH)],
)
def test_severity_mapping(code: str, severity: Severity) -> None:
    assert ruff_severity(code) is severity


TEST_MODULE = 'def test_login(client):\n    password = "hunter2"\n    assert client.login(password)\n'
SELECT_S = '[tool.ruff.lint]\nselect = ["S"]\n'


def test_asserts_in_tests_are_no_findings_by_default(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"pyproject.toml": SELECT_S, "tests/test_login.py": TEST_MODULE, "pkg/conftest.py": TEST_MODULE,
                 "pkg/login.py": TEST_MODULE})
    found = located(build_verifier("ruff").scan(root).findings)
    assert found == {("S105", "pkg/login.py", 2), ("S101", "pkg/login.py", 3)}


def test_the_repositorys_own_per_file_ignores_win(tree: Callable[[dict[str, str]], Path]) -> None:
    config = SELECT_S + '[tool.ruff.lint.per-file-ignores]\n"tests/*" = ["S105"]\n'
    root = tree({"pyproject.toml": config, "tests/test_login.py": TEST_MODULE})
    found = located(build_verifier("ruff").scan(root).findings)
    assert found == {("S101", "tests/test_login.py", 3)}
