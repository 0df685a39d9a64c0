"""Autofix candidates from real ruff and semgrep: they apply, the lint is gone, the user's tree is untouched."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from truthplane.change.autofix import autofix_candidates, file_diff
from truthplane.change.candidates import CandidateError, apply_candidate, check_patch

PYPROJECT = '[tool.ruff]\nline-length = 100\n\n[tool.ruff.lint]\nextend-select = ["E711", "UP"]\n'
APP = (
    "import os\nimport sys\nfrom typing import List\n\n\n"
    "def names(items: List[str]) -> list:\n"
    "    if items == None:\n        return sys.argv\n    return [i for i in items]\n"
)


def ruff_codes(root: Path, rel: str) -> list[str]:
    proc = subprocess.run(["ruff", "check", "--no-cache", "--output-format=json", rel], cwd=root,
                          capture_output=True, text=True, check=False)
    return sorted(item["code"] for item in json.loads(proc.stdout))


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def applied(root: Path, tmp_path: Path, diff: str, name: str) -> Path:
    copy = tmp_path / name
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns(".git"))
    from truthplane.change.fixes import Candidate

    apply_candidate(copy, Candidate(id=name, source="autofix", diff=diff))
    return copy


@pytest.fixture
def repo(make_repo) -> Path:
    return make_repo(
        {"pyproject.toml": PYPROJECT, "app/names.py": APP, "app/__init__.py": "", "app/clean.py": "X = 1\n"}
    )


@pytest.mark.tool("ruff")
def test_ruff_safe_and_unsafe_fixes_apply_and_clear_the_lint(repo: Path, tmp_path: Path) -> None:
    assert {"F401", "E711", "UP006"} <= set(ruff_codes(repo, "app/names.py"))
    before = snapshot(repo)
    found = {c.id: c for c in autofix_candidates(repo, ["app/names.py", "app/clean.py"])}
    assert snapshot(repo) == before
    assert set(found) == {"ruff-fix", "ruff-unsafe-fix"}
    safe, unsafe = found["ruff-fix"], found["ruff-unsafe-fix"]
    assert safe.source == "autofix" and safe.title == "ruff check --fix"
    assert unsafe.title == "ruff check --fix --unsafe-fixes"
    assert safe.diff.startswith("diff --git a/app/names.py b/app/names.py\n--- a/app/names.py\n+++ b/app/names.py\n")
    assert "app/clean.py" not in safe.diff
    assert check_patch(repo, safe) == [] and check_patch(repo, unsafe) == []

    after_safe = ruff_codes(applied(repo, tmp_path, safe.diff, "safe"), "app/names.py")
    assert "F401" not in after_safe and "UP006" not in after_safe
    assert "E711" in after_safe  # comparing to None with `is` changes behaviour: ruff calls it unsafe
    assert ruff_codes(applied(repo, tmp_path, unsafe.diff, "unsafe"), "app/names.py") == []


@pytest.mark.tool("ruff")
def test_rules_restrict_the_fixes(repo: Path, tmp_path: Path) -> None:
    found = autofix_candidates(repo, ["app/names.py"], rules=["F401"])
    assert [c.id for c in found] == ["ruff-fix"]  # unsafe fixes of F401 alone change nothing more
    assert found[0].title == "ruff check --fix --select=F401"
    remaining = ruff_codes(applied(repo, tmp_path, found[0].diff, "f401"), "app/names.py")
    assert "F401" not in remaining and "UP006" in remaining and "E711" in remaining
    assert autofix_candidates(repo, ["app/names.py"], unsafe=False, rules=["E711"]) == []


@pytest.mark.tool("ruff")
def test_repository_config_is_honoured(make_repo) -> None:
    root = make_repo({
        "pyproject.toml": '[tool.ruff.lint.per-file-ignores]\n"app/__init__.py" = ["F401"]\n\n'
                          '[tool.ruff]\nextend-exclude = ["vendored"]\n',
        "app/__init__.py": "import os\n", "vendored/lib.py": "import os\n", "app/x.py": "import os\n",
    })
    found = autofix_candidates(root, ["app/__init__.py", "vendored/lib.py", "app/x.py"], unsafe=False)
    assert [c.id for c in found] == ["ruff-fix"]
    assert "app/x.py" in found[0].diff
    assert "app/__init__.py" not in found[0].diff and "vendored" not in found[0].diff


@pytest.mark.tool("ruff")
def test_nothing_to_fix_gives_no_candidate(repo: Path) -> None:
    assert autofix_candidates(repo, ["app/clean.py", "app/__init__.py"]) == []


@pytest.mark.tool("ruff")
def test_file_without_final_newline(make_repo, tmp_path: Path) -> None:
    root = make_repo({"a.py": "import os\nimport sys\nprint(sys.argv)"})
    [fix] = autofix_candidates(root, ["a.py"], unsafe=False)
    assert "\\ No newline at end of file" in fix.diff
    text = (applied(root, tmp_path, fix.diff, "nl") / "a.py").read_text()
    assert "import os" not in text and text.endswith("\nprint(sys.argv)")


@pytest.mark.tool("ruff")
def test_ruff_that_cannot_run_is_an_error_or_a_problem(make_repo) -> None:
    root = make_repo({"pyproject.toml": "[tool.ruff]\nline-length = 'long'\n", "a.py": "import os\n"})
    with pytest.raises(CandidateError, match="ruff autofix could not run"):
        autofix_candidates(root, ["a.py"])
    problems: list[str] = []
    assert autofix_candidates(root, ["a.py"], problems=problems) == []
    assert problems and all(p.startswith("ruff autofix could not run: ruff: exited with 2") for p in problems)


def test_names_outside_the_repo_are_refused(repo: Path) -> None:
    for name in ("../x.py", "app/missing.py", "app"):
        with pytest.raises(CandidateError, match="not a file inside"):
            autofix_candidates(repo, [name])


SEMGREP_RULES = """rules:
  - id: prefer-sys-exit
    languages: [python]
    severity: WARNING
    message: exit() is for the interactive shell; use sys.exit()
    pattern: exit($CODE)
    fix: sys.exit($CODE)
"""


@pytest.mark.tool("semgrep", "ruff")
def test_semgrep_autofix_with_the_repositorys_fix_rules(make_repo, tmp_path: Path) -> None:
    root = make_repo({".semgrep.yml": SEMGREP_RULES, "tool.py": "import sys\n\nprint(sys.argv)\nexit(3)\n"})
    before = snapshot(root)
    found = {c.id: c for c in autofix_candidates(root, ["tool.py"], unsafe=False)}
    assert snapshot(root) == before
    fix = found["semgrep-autofix"]
    assert fix.title == "semgrep --autofix (.semgrep.yml)"
    assert "-exit(3)\n+sys.exit(3)\n" in fix.diff
    assert (applied(root, tmp_path, fix.diff, "sg") / "tool.py").read_text().endswith("sys.exit(3)\n")


@pytest.mark.tool("semgrep", "ruff")
def test_semgrep_extra_rules_and_no_fix_rules(make_repo) -> None:
    root = make_repo({"rules/exit.yml": SEMGREP_RULES, "tool.py": "import sys\n\nexit(sys.argv)\n"})
    assert autofix_candidates(root, ["tool.py"], unsafe=False) == []  # shipped rules carry no fix:
    [fix] = autofix_candidates(root, ["tool.py"], unsafe=False, semgrep_rules=[Path("rules/exit.yml")])
    assert fix.id == "semgrep-autofix" and "+sys.exit(sys.argv)" in fix.diff
    with pytest.raises(CandidateError, match="do not exist"):
        autofix_candidates(root, ["tool.py"], semgrep_rules=[Path("rules/none.yml")])


def test_file_diff_of_identical_content_is_empty() -> None:
    assert file_diff("a.py", "x = 1\n", "x = 1\n") == ""
    assert file_diff("a.py", "x = 1\n", "x = 2\n").count("\n") == 6


@pytest.mark.tool("ruff")
def test_truthplane_ruff_args_widen_the_fixes(make_repo) -> None:
    root = make_repo({"a.py": "def f(x):\n    return x == None\n"})
    assert autofix_candidates(root, ["a.py"]) == []
    [fix] = autofix_candidates(root, ["a.py"], ruff_args=["--extend-select", "E711"])
    assert fix.id == "ruff-unsafe-fix" and "+    return x is None\n" in fix.diff
    assert fix.title == "ruff check --fix --unsafe-fixes --extend-select E711"
