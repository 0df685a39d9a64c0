"""A configuration change is not a fix: findings a change's configuration silences (or brings) are told
apart from what its code fixed (or added), in every output format, and silencing holds the gate for REVIEW."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import git
from tests.truth.test_sarif import validate_sarif
from truthplane.cli.main import run

pytestmark = [pytest.mark.tool("ruff"), pytest.mark.tool("bandit")]

APP = (
    "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n\n\n"
    "value = eval(input())\n"  # 8
    'password = "hunter2"\n'  # 9
)
LEGACY = "import pickle\n\n\ndef load(blob):\n    return pickle.loads(blob)\n"
RUFF_S = '[project]\nname = "demo"\n\n[tool.ruff.lint]\nselect = ["S", "F"]\n'
RUFF_NARROW = ('[project]\nname = "demo"\n\n[tool.ruff]\nextend-exclude = ["legacy"]\n\n[tool.ruff.lint]\nselect = '
               '["S602", "S307", "F"]\n')


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")


def gate(capsys: pytest.CaptureFixture[str], root: Path, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    code = run(["gate", str(root), "--base", "main", "--format", "json", *extra])
    out, _ = capsys.readouterr()
    return code, json.loads(out)


def keyed(findings: list[dict]) -> set[tuple[str, str, str, int | None]]:  # type: ignore[type-arg]
    return {(f["verifier"], f["rule_id"], f["path"], f["start_line"]) for f in findings}


@pytest.fixture
def repo(make_repo) -> Path:
    return make_repo({"app/a.py": APP, "legacy/old.py": LEGACY, "pyproject.toml": RUFF_S,
                      "truthplane.toml": 'verifiers = ["ruff", "bandit"]\n'})


def test_a_narrower_ruff_config_silences_findings_it_does_not_fix(repo: Path, capsys, tmp_path: Path) -> None:
    git(repo, "checkout", "-qb", "narrow")
    (repo / "pyproject.toml").write_text(RUFF_NARROW)
    (repo / "app/a.py").write_text(APP.replace("eval(input())", "int(input())"))  # a real fix, of S307 and B307
    git(repo, "commit", "-qam", "narrower ruff, one real fix")
    summary = tmp_path / "summary.md"
    sarif = tmp_path / "gate.sarif"
    code, result = gate(capsys, repo, "--summary-out", str(summary), "--sarif-out", str(sarif))

    assert keyed(result["fixed"]) == {("ruff", "S307", "app/a.py", 8), ("bandit", "B307", "app/a.py", 8)}
    # the password rule (S105) no longer selected, and legacy/ excluded: silenced, not fixed
    assert keyed(result["silenced_by_config"]) == {
        ("ruff", "S105", "app/a.py", 9),
        ("ruff", "S301", "legacy/old.py", 5),
    }
    assert result["new"] == [] and result["added_by_config"] == []
    assert "2 ruff finding(s) silenced by a configuration change in pyproject.toml" in result["reasons"]
    assert result["verdict"] == "REVIEW" and code == 3
    assert "silenced by a configuration change in pyproject.toml" in summary.read_text()
    log = json.loads(sarif.read_text())
    validate_sarif(log)
    silenced = [r for run_ in log["runs"] for r in run_["results"] if r.get("suppressions")]
    assert {r["ruleId"] for r in silenced} == {"S105", "S301"}


def test_findings_a_wider_config_brings_are_not_new(repo: Path, capsys) -> None:
    git(repo, "checkout", "-qb", "wider")
    (repo / "pyproject.toml").write_text(RUFF_S.replace('["S", "F"]', '["S", "F", "PLW"]'))
    (repo / "app/b.py").write_text("def f():\n    global counter\n    counter = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "more rules, a module")
    code, result = gate(capsys, repo)
    # PLW0603 in b.py is new code and flagged by the new rule set, so it appears through the configuration
    assert keyed(result["added_by_config"]) == {("ruff", "PLW0603", "app/b.py", 2)}
    assert result["new"] == [] and result["fixed"] == [] and result["silenced_by_config"] == []
    assert "1 ruff finding(s) appeared because of a configuration change in pyproject.toml" in result["reasons"]
    assert result["verdict"] == "APPROVE" and code == 0


def test_a_new_dot_bandit_that_skips_a_test_is_named(repo: Path, capsys) -> None:
    git(repo, "checkout", "-qb", "skip")
    (repo / ".bandit").write_text("[bandit]\nskips = B602\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "skip B602")
    code, result = gate(capsys, repo)
    assert keyed(result["silenced_by_config"]) == {("bandit", "B602", "app/a.py", 5)}
    assert result["fixed"] == []
    assert "1 bandit finding(s) silenced by a configuration change in .bandit" in result["reasons"]
    assert result["verdict"] == "REVIEW" and code == 3
    # the same judged as a commit (--head), from a checkout of main: the head's files come from git
    git(repo, "checkout", "-q", "main")
    code, by_commit = gate(capsys, repo, "--head", "skip")
    assert keyed(by_commit["silenced_by_config"]) == keyed(result["silenced_by_config"])
    assert by_commit["fixed"] == [] and code == 3


def test_an_unrelated_pyproject_edit_changes_nothing(repo: Path, capsys) -> None:
    (repo / "pyproject.toml").write_text(RUFF_S.replace('name = "demo"', 'name = "demo"\nversion = "2"'))
    code, result = gate(capsys, repo)  # the working tree, uncommitted
    assert result["silenced_by_config"] == [] and result["added_by_config"] == [] and result["fixed"] == []
    assert result["verdict"] == "APPROVE" and code == 0


def test_what_truthplanes_own_exclude_and_verifiers_silence_is_counted(repo: Path, capsys, tmp_path: Path) -> None:
    git(repo, "checkout", "-qb", "exclude")
    (repo / "truthplane.toml").write_text('verifiers = ["ruff"]\nexclude = ["legacy"]\n\n[severity]\nS602 = "note"\n')
    git(repo, "commit", "-qam", "exclude legacy, drop bandit, rate S602 down")
    code, result = gate(capsys, repo)
    silenced = keyed(result["silenced_by_config"])
    assert ("ruff", "S301", "legacy/old.py", 5) in silenced  # excluded now
    assert {("bandit", "B602", "app/a.py", 5), ("bandit", "B301", "legacy/old.py", 5)} <= silenced  # not run now
    assert result["fixed"] == [] and result["new"] == []
    assert "1 ruff finding(s) silenced by a configuration change in truthplane.toml" in result["reasons"]
    assert any(r.startswith("changes truthplane's `severity` in truthplane.toml") for r in result["reasons"])
    assert result["verdict"] == "REVIEW" and code == 3


def test_a_verifier_the_change_turns_on_brings_its_findings_through_the_configuration(repo: Path, capsys) -> None:
    git(repo, "checkout", "-qb", "more")
    (repo / "truthplane.toml").write_text('verifiers = ["ruff", "bandit", "semgrep"]\n')
    git(repo, "commit", "-qam", "semgrep too")
    code, result = gate(capsys, repo)
    added = keyed(result["added_by_config"])
    assert added and {verifier for verifier, *_ in added} == {"semgrep"}
    # listed once: not also unchanged, not new
    assert not any(f["verifier"] == "semgrep" for f in result["unchanged"] + result["new"])
    assert result["verdict"] == "APPROVE" and code == 0
