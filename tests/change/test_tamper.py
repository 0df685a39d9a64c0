"""Tamper checks on real `git diff` output: each category caught, and its look-alikes let through."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import git
from truthplane.change.candidates import CandidateError
from truthplane.errors import UsageError
from truthplane.change.tamper import is_test_file, tamper_reasons

pytestmark = pytest.mark.tool("git")

APP = "import os\n\n\ndef run(cmd):\n    return os.system(cmd)\n"
TESTS = (
    "import pytest\n\nfrom app.x import run\n\n\n"
    "def test_run():\n    rc = run('true')\n    assert rc == 0\n\n\n"
    "def test_other():\n    assert run('false') != 0\n"
)
PYPROJECT = (
    '[project]\nname = "demo"\nversion = "1.0"\ndescription = "x"\n\n[tool.ruff]\nline-length = 100\n'
    'target-version = "py311"\nextend-exclude = ["build"]\n\n[tool.ruff.lint]\nselect = ["E", "F"]\n'
)
SPEC = "describe('x', () => {\n  it('works', () => {\n    expect(f()).toBe(1);\n  });\n});\n"


@pytest.fixture
def repo(make_repo) -> Path:
    return make_repo({
        "app/x.py": APP, "tests/test_x.py": TESTS, "pyproject.toml": PYPROJECT,
        "web/x.test.js": SPEC, "web/x.js": "export const f = () => 1;\n", "README.md": "# demo\n",
    })


def change(root: Path, edits: dict[str, str | None]) -> str:
    """`git diff` for these edits (None deletes the file); the tree is put back afterwards."""
    saved = {rel: (root / rel).read_text() if (root / rel).exists() else None for rel in edits}
    for rel, text in edits.items():
        if text is None:
            (root / rel).unlink()
        else:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
            git(root, "add", "-N", rel)
    diff = subprocess.run(["git", "diff"], cwd=root, capture_output=True, text=True, check=True).stdout
    for rel, text in saved.items():
        if text is None:
            git(root, "rm", "-q", "--cached", rel)
            (root / rel).unlink()
        else:
            (root / rel).write_text(text)
    return diff


# ---- suppressions ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "label"), [
    ("    return os.system(cmd)  # noqa: S605", "# noqa"),
    ("    return os.system(cmd)  # nosec B605", "# nosec"),
    ("    return os.system(cmd)  # type: ignore[no-any-return]", "# type: ignore"),
    ("    return os.system(cmd)  # pyright: ignore", "# pyright: ignore"),
    ("    return os.system(cmd)  # nosemgrep: truthplane.python.os-shell-injection", "nosemgrep"),
    ("    return os.system(cmd)  # pragma: no cover", "# pragma: no cover"),
])
def test_added_python_suppressions_are_named_with_file_and_line(repo: Path, line: str, label: str) -> None:
    diff = change(repo, {"app/x.py": APP.replace("    return os.system(cmd)", line)})
    assert tamper_reasons(diff) == [f"adds `{label}` at app/x.py:5"]
    assert tamper_reasons(diff, allow=frozenset({"suppressions"})) == []


@pytest.mark.parametrize(("line", "label"), [
    ("// eslint-disable-next-line no-unused-vars", "eslint-disable"),
    ("/* eslint-disable */", "eslint-disable"),
    ("// @ts-ignore", "@ts-ignore"),
    ("// @ts-nocheck", "@ts-nocheck"),
])
def test_added_js_suppressions(repo: Path, line: str, label: str) -> None:
    diff = change(repo, {"web/x.js": line + "\nexport const f = () => 1;\n"})
    assert tamper_reasons(diff) == [f"adds `{label}` at web/x.js:1"]


def test_prose_and_strings_mentioning_suppressions_are_not_suppressions(repo: Path) -> None:
    prose = APP.replace("def run(cmd):", "def run(cmd):\n    # we never use noqa or nosec here; fix the cause\n"
                        "    hint = 'add # noqa to silence'")
    assert tamper_reasons(change(repo, {"app/x.py": prose})) == []
    docs = "# demo\n\n# noqa\n\nNever add `# noqa` to silence ruff.\n"
    assert tamper_reasons(change(repo, {"README.md": docs})) == []


def test_keeping_an_existing_suppression_while_reformatting_is_not_adding(repo: Path) -> None:
    before = APP.replace("import os\n", "import os  # noqa: F401\n")
    git_commit(repo, {"app/x.py": before})
    after = before.replace("import os  # noqa: F401\n", "import os    # noqa: F401\n")
    assert tamper_reasons(change(repo, {"app/x.py": after})) == []


def git_commit(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).write_text(text)
    git(root, "commit", "-qam", "setup")


# ---- tests -----------------------------------------------------------------------------------------


def test_deleting_a_test_file(repo: Path) -> None:
    assert tamper_reasons(change(repo, {"tests/test_x.py": None})) == ["deletes test file tests/test_x.py"]


def test_deleting_a_test_function(repo: Path) -> None:
    shorter = TESTS.split("\n\ndef test_other")[0] + "\n"
    reasons = tamper_reasons(change(repo, {"tests/test_x.py": shorter}))
    assert reasons[0] == "removes test `def test_other():` at tests/test_x.py:11"
    assert tamper_reasons(change(repo, {"tests/test_x.py": shorter}), allow=frozenset({"tests"})) == []


@pytest.mark.parametrize(("decorated", "label"), [
    ("@pytest.mark.skip(reason='flaky')\ndef test_run():", "@pytest.mark.skip"),
    ("@pytest.mark.skipif(True, reason='x')\ndef test_run():", "@pytest.mark.skipif"),
    ("@pytest.mark.xfail\ndef test_run():", "@pytest.mark.xfail"),
    ("def test_run():\n    pytest.skip('later')", "pytest.skip("),
    ("@unittest.skip('x')\ndef test_run():", "unittest.skip"),
])
def test_skipping_a_test(repo: Path, decorated: str, label: str) -> None:
    diff = change(repo, {"tests/test_x.py": TESTS.replace("def test_run():", decorated)})
    reasons = tamper_reasons(diff)
    assert len(reasons) == 1 and reasons[0].startswith(f"adds `{label}` at tests/test_x.py:")


def test_removing_an_assert(repo: Path) -> None:
    diff = change(repo, {"tests/test_x.py": TESTS.replace("    assert rc == 0\n", "    print(rc)\n")})
    assert tamper_reasons(diff) == ["removes assertion `assert rc == 0` at tests/test_x.py:8"]


def test_replacing_a_test_body_with_pass(repo: Path) -> None:
    diff = change(repo, {"tests/test_x.py": TESTS.replace("    rc = run('true')\n    assert rc == 0\n", "    pass\n")})
    reasons = tamper_reasons(diff)
    assert "replaces the body of test_run with `pass` at tests/test_x.py:7" in reasons
    assert "removes assertion `assert rc == 0` at tests/test_x.py:8" in reasons


def test_js_skips_and_removed_tests(repo: Path) -> None:
    assert tamper_reasons(change(repo, {"web/x.test.js": SPEC.replace("it('works'", "it.skip('works'")})) == [
        "adds `.skip(` at web/x.test.js:2"
    ]
    assert tamper_reasons(change(repo, {"web/x.test.js": SPEC.replace("it('works'", "xit('works'")})) == [
        "adds `xit(` at web/x.test.js:2"
    ]
    emptied = "describe('x', () => {\n});\n"
    reasons = tamper_reasons(change(repo, {"web/x.test.js": emptied}))
    assert "removes test `it('works', () => {` at web/x.test.js:2" in reasons
    assert "removes assertion `expect(f()).toBe(1);` at web/x.test.js:3" in reasons


def test_adding_a_test_or_strengthening_an_assert_is_fine(repo: Path) -> None:
    more = TESTS + "\n\ndef test_third():\n    assert run('true') == 0\n"
    assert tamper_reasons(change(repo, {"tests/test_x.py": more})) == []
    stronger = TESTS.replace("    assert rc == 0\n", "    assert rc == 0, rc\n")
    assert tamper_reasons(change(repo, {"tests/test_x.py": stronger})) == []
    # a .skip( in application code is not a test being skipped
    assert tamper_reasons(change(repo, {"web/x.js": "export const f = (s) => s.skip(1);\n"})) == []


def test_moving_a_test_file_out_of_the_suite(repo: Path) -> None:
    diff = ("diff --git a/tests/test_x.py b/tests/old_x.txt\nsimilarity index 100%\n"
            "rename from tests/test_x.py\nrename to tests/old_x.txt\n")
    assert tamper_reasons(diff) == ["moves test file tests/test_x.py to tests/old_x.txt, out of the test suite"]


def test_is_test_file() -> None:
    assert all(
        map(is_test_file, ["tests/test_a.py", "a_test.py", "pkg/tests/helpers.py", "src/x.spec.ts", "__tests__/a.js"])
    )
    assert not any(map(is_test_file, ["app/x.py", "tests/conftest.py", "src/x.ts", "testing.md"]))


# ---- configuration ------------------------------------------------------------------------------------


@pytest.mark.parametrize("rel", [
    "ruff.toml", ".bandit", "mypy.ini", "setup.cfg", "tox.ini", "pytest.ini", "tests/conftest.py", ".semgrep.yml",
    ".semgrep/rules.yml", ".eslintrc.json", "eslint.config.js", "tsconfig.json", "truthplane.toml",
    ".github/workflows/ci.yml", ".pre-commit-config.yaml", ".ci/run",
])
def test_editing_verifier_or_ci_configuration(repo: Path, rel: str) -> None:
    diff = change(repo, {rel: "x = 1\n"})
    assert tamper_reasons(diff) == [f"edits verifier/CI configuration at {rel}:1"]
    assert tamper_reasons(diff, allow=frozenset({"config"})) == []


def test_pyproject_tool_sections_but_not_the_rest(repo: Path) -> None:
    bump = change(repo, {"pyproject.toml": PYPROJECT.replace('version = "1.0"', 'version = "1.1"')})
    assert tamper_reasons(bump, root=repo) == []
    assert tamper_reasons(bump) == []  # [project] is in the hunk's context
    deep = change(repo, {"pyproject.toml": PYPROJECT.replace('select = ["E", "F"]', 'select = ["E"]')})
    assert tamper_reasons(deep, root=repo) == [
        "edits a verifier's [tool.*] settings in pyproject.toml at pyproject.toml:12"
    ]
    exclude = change(repo, {"pyproject.toml": PYPROJECT.replace('["build"]', '["build", "app"]')})
    assert tamper_reasons(exclude, root=repo) == [
        "edits a verifier's [tool.*] settings in pyproject.toml at pyproject.toml:9"
    ]
    added = change(
        repo, {"pyproject.toml": PYPROJECT.replace("[project]", "[tool.mypy]\nignore_errors = true\n\n[project]")}
    )
    assert tamper_reasons(added, root=repo) == [
        "edits a verifier's [tool.*] settings in pyproject.toml at pyproject.toml:1"
    ]


def test_plain_code_changes_pass(repo: Path) -> None:
    fixed = APP.replace("import os\n", "import subprocess\n").replace(
        "os.system(cmd)", "subprocess.run(cmd, shell=False, check=False).returncode"
    )
    assert tamper_reasons(change(repo, {"app/x.py": fixed, "README.md": "# demo\n\nusage\n"})) == []


def test_unknown_category_and_unparseable_diff() -> None:
    with pytest.raises(UsageError, match="unknown tamper category 'asserts'"):
        tamper_reasons("", allow=frozenset({"asserts"}))
    with pytest.raises(CandidateError):
        tamper_reasons("no diff here")
