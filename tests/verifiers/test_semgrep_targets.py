"""What semgrep's walk decides, remembered (truthplane.verifiers._targets): a file semgrep is known to scan is named
on its command line, one it is known to skip is left out, and only the rest make it walk. Every scan here is
checked against semgrep's own answer without the memo, for the memo must never change what semgrep reports."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.verifiers.conftest import located
from truthplane.config import VerifierConfig
from truthplane.registry import load
from truthplane.verifiers.interface import Verifier, VerifierContext

pytestmark = pytest.mark.tool("semgrep")

RISKY = "eval(input())\n"


def _semgrep(memo_dir: Path | None, **options: object) -> Verifier:
    cls = load("verifiers", "semgrep")
    return cls("semgrep", VerifierConfig.model_validate(options), VerifierContext(timeout_s=120, cache_dir=memo_dir))


def _targets(argv: list[str]) -> list[str]:
    return argv[argv.index("--") + 1:]


def _includes(argv: list[str]) -> list[str]:
    return [a for a in argv if a.startswith("--include")]


def _exported(root: Path, into: Path) -> Path:
    """The commit's tree as plain files, the way a gate scans a base commit (no .git)."""
    into.mkdir()
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=root, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


@pytest.fixture
def repo(make_repo: Callable[..., Path]) -> Path:
    return make_repo({"pkg/mod.py": RISKY, "pkg/sub/deep.py": RISKY, "tests/t.py": RISKY, "b/c/y.py": RISKY,
                      "top.py": RISKY})


def _learned(memo_dir: Path) -> int:
    with sqlite3.connect(memo_dir / "semgrep-targets.sqlite3") as conn:
        return int(conn.execute("SELECT count(*) FROM decided").fetchone()[0])


def test_a_whole_scan_teaches_which_files_to_name_and_which_to_leave_out(repo: Path, tmp_path: Path) -> None:
    """semgrep's defaults skip tests/ here (no .semgrepignore). Once a whole scan of the commit's exported tree has
    shown what its walk selects, a scan of changed files names the selected ones and leaves tests/ out, with no
    walk at all, and reports what semgrep without the memo reports."""
    memo_dir = tmp_path / "cache"
    verifier = _semgrep(memo_dir)
    everything = ["b/c/y.py", "pkg/mod.py", "pkg/sub/deep.py", "tests/t.py", "top.py"]
    requested = ["pkg/sub/deep.py", "tests/t.py", "top.py"]
    unaided = located(_semgrep(None).scan(repo, files=requested).findings)
    assert {x[1] for x in unaided} == {"pkg/sub/deep.py", "top.py"}

    before = verifier.command(repo, requested).argv
    assert len(_includes(before)) == 3 and _targets(before) == ["."]  # nothing known yet: the walk

    export = _exported(repo, tmp_path / "export")
    verifier.scan(export, files=everything)
    assert _learned(memo_dir) == len(everything)
    # a tree in no repository is a project of its own, with the same ignore rules for what it holds
    assert verifier.narrow(export, requested) == ["pkg/sub/deep.py", "top.py"]

    assert verifier.narrow(repo, requested) == ["pkg/sub/deep.py", "top.py"]
    argv = verifier.command(repo, verifier.narrow(repo, requested)).argv
    assert _targets(argv) == ["pkg/sub/deep.py", "top.py"] and not _includes(argv)
    assert located(verifier.scan(repo, files=requested).findings) == unaided
    assert verifier.narrow(repo, ["tests/t.py"]) == []  # known to report nothing: semgrep need not run


def test_a_changed_ignore_file_above_a_file_makes_semgrep_decide_again(repo: Path, tmp_path: Path) -> None:
    """A decision holds for the ignore files it was made under. b/.semgrepignore now ignores c/, and a root
    .semgrepignore turns semgrep's defaults off (tests/ is scanned): each file is walked for again, and both
    answers are semgrep's own."""
    memo_dir = tmp_path / "cache"
    verifier = _semgrep(memo_dir)
    files = ["b/c/y.py", "tests/t.py", "top.py"]
    assert {x[1] for x in located(verifier.scan(repo, files=files).findings)} == {"b/c/y.py", "top.py"}
    assert verifier.narrow(repo, files) == ["b/c/y.py", "top.py"]  # learned from that walk

    (repo / "b" / ".semgrepignore").write_text("c/\n", encoding="utf-8")
    (repo / ".semgrepignore").write_text("# nothing ignored\n", encoding="utf-8")
    argv = verifier.command(repo, files).argv
    assert len(_includes(argv)) == 3  # every file's ignore files changed: all three walked for
    found = {x[1] for x in located(verifier.scan(repo, files=files).findings)}
    assert found == {"tests/t.py", "top.py"} == {x[1] for x in located(_semgrep(None).scan(repo, files=files).findings)}
    assert verifier.narrow(repo, files) == ["tests/t.py", "top.py"]


def test_a_file_an_ignore_file_includes_counts_too(make_repo: Callable[..., Path], tmp_path: Path) -> None:
    """`:include .gitignore` in .semgrepignore makes .gitignore's patterns semgrep's: editing it changes what semgrep
    skips, so it is part of every decision's context."""
    root = make_repo({".semgrepignore": ":include .gitignore\n", ".gitignore": "", "gen/out.py": RISKY,
                      "src/a.py": RISKY})
    memo_dir = tmp_path / "cache"
    verifier = _semgrep(memo_dir)
    files = ["gen/out.py", "src/a.py"]
    assert {x[1] for x in located(verifier.scan(root, files=files).findings)} == {"gen/out.py", "src/a.py"}
    assert verifier.narrow(root, files) == files
    (root / ".gitignore").write_text("gen/\n", encoding="utf-8")
    assert {x[1] for x in located(verifier.scan(root, files=files).findings)} == {"src/a.py"}
    assert {x[1] for x in located(_semgrep(None).scan(root, files=files).findings)} == {"src/a.py"}


def test_a_file_skipped_for_its_size_is_not_remembered_as_ignored(make_repo: Callable[..., Path],
                                                                   tmp_path: Path) -> None:
    """semgrep skips a file over its size limit whether it finds it or is handed it; that says nothing of the
    path. Once the file is small again, it is scanned."""
    root = make_repo({"big.py": "x = 1\n" * 40 + RISKY, "small.py": RISKY})
    memo_dir = tmp_path / "cache"
    verifier = _semgrep(memo_dir, args=["--max-target-bytes=200"])
    assert {x[1] for x in located(verifier.scan(root, files=["big.py", "small.py"]).findings)} == {"small.py"}
    assert verifier.narrow(root, ["big.py", "small.py"]) == ["big.py", "small.py"]
    (root / "big.py").write_text(RISKY, encoding="utf-8")
    assert {x[1] for x in located(verifier.scan(root, files=["big.py"]).findings)} == {"big.py"}


def test_a_broken_memo_costs_a_walk_not_a_result(repo: Path, tmp_path: Path) -> None:
    memo_dir = tmp_path / "cache"
    memo_dir.mkdir()
    (memo_dir / "semgrep-targets.sqlite3").write_bytes(b"this is not a database" * 100)
    verifier = _semgrep(memo_dir)
    files = ["tests/t.py", "top.py"]
    assert len(_includes(verifier.command(repo, files).argv)) == 2
    assert {x[1] for x in located(verifier.scan(repo, files=files).findings)} == {"top.py"}


def test_no_cache_no_memo(repo: Path) -> None:
    """--no-cache keeps nothing: semgrep walks as before, and nothing is written."""
    verifier = _semgrep(None)
    assert verifier.recipe(repo).inputs["memo"] is None
    assert {x[1] for x in located(verifier.scan(repo, files=["tests/t.py", "top.py"]).findings)} == {"top.py"}
    assert len(_includes(verifier.command(repo, ["tests/t.py", "top.py"]).argv)) == 2


def test_a_scan_of_the_whole_tree_learns_from_what_semgrep_says_it_skipped(repo: Path, tmp_path: Path) -> None:
    """Scanning everything, semgrep is asked to say why it skipped what it found (--verbose): the files skipped by
    an ignore rule are remembered as skipped, the ones it scanned as scanned."""
    memo_dir = tmp_path / "cache"
    verifier = _semgrep(memo_dir)
    argv = verifier.command(repo, None).argv
    assert "--verbose" in argv and "--quiet" not in argv
    unaided = located(_semgrep(None).scan(repo).findings)
    assert located(verifier.scan(repo).findings) == unaided
    assert _learned(memo_dir) == 5
    assert verifier.narrow(repo, ["tests/t.py", "b/c/y.py"]) == ["b/c/y.py"]
    assert _targets(verifier.command(repo, ["b/c/y.py"]).argv) == ["b/c/y.py"]


def test_a_file_that_became_a_symbolic_link_is_decided_again(make_repo: Callable[..., Path], tmp_path: Path) -> None:
    """semgrep follows a symbolic link named on its command line but skips one its walk finds: a path's decision
    does not carry over from a regular file to a link."""
    root = make_repo({"pkg/real.py": RISKY, "pkg/alias.py": RISKY})
    memo_dir = tmp_path / "cache"
    verifier = _semgrep(memo_dir)
    files = ["pkg/alias.py", "pkg/real.py"]
    assert {x[1] for x in located(verifier.scan(root, files=files).findings)} == set(files)
    assert verifier.narrow(root, files) == files
    (root / "pkg" / "alias.py").unlink()
    (root / "pkg" / "alias.py").symlink_to("real.py")
    unaided = located(_semgrep(None).scan(root, files=files).findings)
    assert {x[1] for x in unaided} == {"pkg/real.py"}
    assert located(verifier.scan(root, files=files).findings) == unaided
    assert verifier.narrow(root, files) == ["pkg/real.py"]  # and the walk taught that the link is skipped


def test_what_a_commits_tree_taught_serves_the_working_tree_with_the_repositorys_own_rules(
        make_repo: Callable[..., Path], tmp_path: Path) -> None:
    """The repository's `.semgrep.yml` sits at another path in a commit's exported tree than in the working tree:
    the same rules by content, so the decisions a whole scan of the commit made hold for the working tree."""
    rule = ("rules:\n  - id: no-print\n    pattern: print(...)\n    message: no print\n    languages: [python]\n"
            "    severity: WARNING\n")
    root = make_repo({".semgrep.yml": rule, "pkg/a.py": "print(1)\n", "tests/t.py": "print(2)\n"})
    memo_dir = tmp_path / "cache"
    verifier = _semgrep(memo_dir)
    verifier.scan(_exported(root, tmp_path / "export"), files=["pkg/a.py", "tests/t.py"])
    assert verifier.narrow(root, ["pkg/a.py", "tests/t.py"]) == ["pkg/a.py"]
    argv = verifier.command(root, ["pkg/a.py"]).argv
    assert _targets(argv) == ["pkg/a.py"] and not _includes(argv)
    assert located(verifier.scan(root, files=["pkg/a.py", "tests/t.py"]).findings) == located(
        _semgrep(None).scan(root, files=["pkg/a.py", "tests/t.py"]).findings)
