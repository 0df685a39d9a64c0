"""pytest: runs through the executor on a copy of the repository; failing and erroring tests are
findings identified by node id; exit codes 2-4, timeouts and missing reports are errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tests.verifiers.conftest import build_verifier, write_tree
from truthplane.config import VerifierConfig
from truthplane.errors import VerifierError
from truthplane.models import Finding, Severity
from truthplane.verifiers.interface import VerifierContext
from truthplane.verifiers.pytest_ import PytestVerifier, node_id

SUITE = {
    "tests/test_math.py": (
        "import pytest\n"
        "\n"
        "\n"
        "def test_passes():\n"
        "    assert 1 + 1 == 2\n"
        "\n"
        "\n"
        "def test_fails():\n"
        "    assert 1 + 1 == 3, 'arithmetic is broken'\n"
        "\n"
        "\n"
        "class TestGroup:\n"
        "    @pytest.mark.parametrize('n', [1, 2])\n"
        "    def test_param(self, n):\n"
        "        assert n == 1\n"
        "\n"
        "\n"
        "@pytest.fixture\n"
        "def broken():\n"
        "    raise RuntimeError('fixture exploded')\n"
        "\n"
        "\n"
        "def test_uses_broken(broken):\n"
        "    pass\n"
        "\n"
        "\n"
        "def test_writes_into_its_copy():\n"
        "    open('written-by-a-test.txt', 'w').write('x')\n"
    ),
    "tests/test_imports.py": "import module_that_does_not_exist\n\n\ndef test_never_runs():\n    pass\n",
    "checks/check_style.py": "def test_in_a_file_pytest_ignores_by_default():\n    assert False\n",
}


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Finding]]:
    root = write_tree(tmp_path_factory.mktemp("suite") / "repo", SUITE)
    return root, build_verifier("pytest").scan(root).findings


def test_each_failing_or_erroring_test_is_a_finding(suite: tuple[Path, list[Finding]]) -> None:
    _, findings = suite
    by_identity = {f.identity: f for f in findings}
    assert set(by_identity) == {
        "tests/test_math.py::test_fails",
        "tests/test_math.py::TestGroup::test_param[2]",
        "tests/test_math.py::test_uses_broken",
        "tests/test_imports.py",
    }
    fails = by_identity["tests/test_math.py::test_fails"]
    assert (fails.rule_id, fails.path, fails.start_line) == ("test-failure", "tests/test_math.py", 8)
    assert "arithmetic is broken" in fails.message and "\n" not in fails.message
    assert by_identity["tests/test_math.py::test_uses_broken"].rule_id == "test-error"
    assert "fixture exploded" in by_identity["tests/test_math.py::test_uses_broken"].message
    collection = by_identity["tests/test_imports.py"]
    assert (collection.rule_id, collection.path) == ("test-error", "tests/test_imports.py")
    assert {f.severity for f in findings} == {Severity.HIGH}
    assert {f.verifier for f in findings} == {"pytest"}


def test_tests_run_on_a_copy_not_the_repository(suite: tuple[Path, list[Finding]]) -> None:
    root, _ = suite
    assert not (root / "written-by-a-test.txt").exists()
    assert not (root / ".pytest_cache").exists()
    assert not list(root.glob(".truthplane-junit-*"))


def test_repo_pytest_config_applies(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({
        **{k: v for k, v in SUITE.items() if k.startswith("checks/")},
        "pyproject.toml": '[tool.pytest.ini_options]\ntestpaths = ["checks"]\npython_files = ["check_*.py"]\n',
    })
    (finding,) = build_verifier("pytest").scan(root).findings
    assert finding.identity == "checks/check_style.py::test_in_a_file_pytest_ignores_by_default"


def test_test_args_choose_the_tests(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"tests/test_math.py": SUITE["tests/test_math.py"]})
    findings = build_verifier("pytest", test_args=["tests/test_math.py::test_fails"]).scan(root).findings
    assert [f.identity for f in findings] == ["tests/test_math.py::test_fails"]


def test_green_suite_and_no_tests_are_zero_findings(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"tests/test_ok.py": "def test_ok():\n    assert True\n", "src/empty.py": ""})
    verifier = build_verifier("pytest")
    assert verifier.scan(root).findings == []
    assert build_verifier("pytest", test_args=["src"]).scan(root).findings == []  # exit 5: nothing collected


def test_usage_error_is_could_not_run(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"tests/test_ok.py": "def test_ok():\n    assert True\n"})
    with pytest.raises(VerifierError, match="usage error"):
        build_verifier("pytest", args=["--no-such-pytest-flag"]).scan(root)


def test_hanging_tests_time_out(tree: Callable[[dict[str, str]], Path]) -> None:
    root = tree({"tests/test_hang.py": "import time\n\n\ndef test_hang():\n    time.sleep(600)\n"})
    verifier = PytestVerifier("pytest", VerifierConfig(timeout_s=3), VerifierContext())
    with pytest.raises(VerifierError) as caught:
        verifier.scan(root)
    assert caught.value.status == "timeout"


def test_unknown_executor_is_not_available(tree: Callable[[dict[str, str]], Path]) -> None:
    verifier = PytestVerifier("pytest", VerifierConfig(), VerifierContext(executor="no-such-executor"))
    info = verifier.available()
    assert not info.installed and info.reason and "no-such-executor" in info.reason
    with pytest.raises(VerifierError):
        verifier.scan(tree({"tests/test_ok.py": "def test_ok():\n    pass\n"}))


@pytest.mark.parametrize(
    "attributes, expected",
    [
        ({"classname": "tests.test_a", "name": "test_x", "file": "tests/test_a.py"}, "tests/test_a.py::test_x"),
        ({"classname": "tests.test_a.TestC.Inner", "name": "test_y[a-b]", "file": "tests/test_a.py"},
         "tests/test_a.py::TestC::Inner::test_y[a-b]"),
        ({"classname": "", "name": "tests.test_b"}, "tests/test_b.py"),
        ({"classname": "test_c", "name": "test_z"}, "test_c.py::test_z"),
    ],
)
def test_node_id_from_junit(attributes: dict[str, str], expected: str) -> None:
    case = ElementTree.Element("testcase", attributes)
    assert node_id(case)[0] == expected
