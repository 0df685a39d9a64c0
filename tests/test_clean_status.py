"""`git status` stays clean: the directories truthplane writes into a repository ignore themselves, as
pytest's and ruff's caches do. Real scan, fix and run-all on a real git repository."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import git
from tests.evidence.test_ledger import private_env  # noqa: F401
from truthplane.cli.main import run
from truthplane.paths import IGNORE_EVERYTHING, RESULTS_DIR, SARIF_DIR

FILES = {"a.py": "import os\nx = 1\n", "truthplane.toml": 'verifiers = ["ruff"]\n', "tasks.toml": """
[[tasks]]
id = "notes"
kind = "command"
command = "echo noted > notes.txt"
files = ["notes.txt"]
"""}

pytestmark = [pytest.mark.tool("ruff"), pytest.mark.tool("bwrap")]


def status(root: Path) -> str:
    return git(root, "status", "--porcelain", "--untracked-files=all")


def test_scan_fix_and_run_all_leave_git_status_clean(make_repo, capsys, monkeypatch) -> None:
    root = make_repo(FILES)
    monkeypatch.chdir(root)
    run(["scan", "--baseline"])
    assert list((root / RESULTS_DIR).glob("baseline_*.json")) and (root / SARIF_DIR / "ruff.sarif").is_file()
    assert status(root) == ""
    assert run(["fix", "a.py", "--commit"]) == 0
    assert status(root) == ""
    assert run(["run-all", "--workers", "1"]) == 0
    assert status(root) == ""
    capsys.readouterr()
    for directory in (RESULTS_DIR, SARIF_DIR):
        assert (root / directory / ".gitignore").read_text() == IGNORE_EVERYTHING
    git(root, "add", "-A")  # would have committed the history database
    assert git(root, "diff", "--cached", "--name-only") == ""
    assert (root / RESULTS_DIR / "history.sqlite3").is_file()
    assert run(["verify"]) == 0, capsys.readouterr()[0]


def test_directories_made_before_without_a_gitignore_get_one_and_a_users_own_is_kept(make_repo, capsys,
                                                                                      monkeypatch) -> None:
    root = make_repo(FILES)
    (root / RESULTS_DIR).mkdir()
    (root / RESULTS_DIR / "baseline_20260101_000000.json").write_text("{}\n")  # left by an older truthplane
    (root / SARIF_DIR).mkdir()
    own = "history.sqlite3*\nlogs/\n"  # keeps records and baselines visible to git
    (root / SARIF_DIR / ".gitignore").write_text(own)
    assert status(root) != ""
    monkeypatch.chdir(root)
    run(["scan", "--baseline"])
    capsys.readouterr()
    assert (root / RESULTS_DIR / ".gitignore").read_text() == IGNORE_EVERYTHING
    assert (root / SARIF_DIR / ".gitignore").read_text() == own
    assert status(root) == "\n".join(f"?? {SARIF_DIR}/{name}" for name in (".gitignore", "ruff.sarif"))
    git(root, "add", "-f", f"{RESULTS_DIR}/baseline_20260101_000000.json")  # keeping evidence in git on purpose
    assert git(root, "diff", "--cached", "--name-only") == f"{RESULTS_DIR}/baseline_20260101_000000.json"


def test_a_linked_results_directory_is_refused_and_nothing_is_written_through_it(make_repo, tmp_path: Path,
                                                                                capsys, monkeypatch) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = make_repo(FILES)
    (root / SARIF_DIR).symlink_to(outside, target_is_directory=True)
    git(root, "add", SARIF_DIR)
    git(root, "commit", "-qm", "a hostile link")
    monkeypatch.chdir(root)
    assert run(["scan", "--baseline"]) == 4
    assert f"{SARIF_DIR} is a symbolic link or a file, not a directory" in capsys.readouterr()[1]
    assert list(outside.iterdir()) == [] and not list((root / RESULTS_DIR).glob("baseline_*"))
