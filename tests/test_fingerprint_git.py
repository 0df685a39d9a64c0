"""Matching across real git history: renames git detects, and moves it does not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tests.conftest import git
from truthplane.fingerprint import annotate, match
from truthplane.models import Diff, Finding, Severity

MODULE = "".join(
    f"def handler_{i}(request, scope):\n"
    f"    payload = request.read()\n"
    f"    result = eval(payload, {{'scope': scope, 'n': {i}}})\n"
    f"    return result\n\n\n"
    for i in range(6)
)


def findings_at(repo: Path, rev: str) -> tuple[list[Finding], set[str]]:
    """A stand-in analyser over a commit: one finding per line that calls eval."""
    paths = set(git(repo, "ls-tree", "-r", "--name-only", rev).splitlines())
    found = []
    for path in sorted(paths):
        text = git(repo, "show", f"{rev}:{path}") + "\n"
        for number, line in enumerate(text.splitlines(), start=1):
            if "eval(" in line:
                found.append(Finding(verifier="ruff", rule_id="S307", severity=Severity.MEDIUM,
                                     message="Use of possibly insecure function", path=path, start_line=number))

    def read_source(path: str) -> bytes | None:
        return (git(repo, "show", f"{rev}:{path}") + "\n").encode() if path in paths else None

    return annotate(found, read_source), paths


def git_renames(repo: Path, base: str, head: str) -> dict[str, str]:
    renames = {}
    for line in git(repo, "diff", "--name-status", "-M", base, head).splitlines():
        status, *paths = line.split("\t")
        if status.startswith("R"):
            renames[paths[0]] = paths[1]
    return renames


def diff_commits(repo: Path, base: str, head: str) -> tuple[Diff, dict[str, str]]:
    before, before_files = findings_at(repo, base)
    after, after_files = findings_at(repo, head)
    renames = git_renames(repo, base, head)
    return match(before, after, renames, before_files=before_files, after_files=after_files), renames


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD")


def test_git_mv_with_edits_above_keeps_every_finding(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"app/handlers.py": MODULE, "README.md": "docs\n"})
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "mv", "app/handlers.py", "app/views.py")
    (repo / "app/views.py").write_text("import logging\n\nLOG = logging.getLogger(__name__)\n\n\n" + MODULE)
    result, renames = diff_commits(repo, base, commit_all(repo, "move"))
    assert renames == {"app/handlers.py": "app/views.py"}
    assert (len(result.new), len(result.fixed), len(result.unchanged)) == (0, 0, 6)


def test_move_too_reformatted_for_git_is_still_matched_by_content(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"app/handlers.py": MODULE})
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "rm", "-q", "app/handlers.py")
    reformatted = MODULE.replace("    ", "\t").replace("{'scope': scope, 'n'", '{\n\t\t"scope": scope,\n\t\t"n"')
    reformatted = reformatted.replace("})\n", ",\n\t})\n")
    (repo / "lib").mkdir()
    (repo / "lib/views.py").write_text(reformatted)
    result, renames = diff_commits(repo, base, commit_all(repo, "move and reformat"))
    assert renames == {}  # git sees a deletion and an addition
    assert (len(result.new), len(result.fixed), len(result.unchanged)) == (0, 0, 6)


def test_an_edited_call_in_a_renamed_file_is_new(make_repo: Callable[..., Path]) -> None:
    repo = make_repo({"app/handlers.py": MODULE})
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "mv", "app/handlers.py", "app/views.py")
    (repo / "app/views.py").write_text(MODULE.replace("'n': 3}", "'n': 3, 'os': __import__('os')}"))
    result, _ = diff_commits(repo, base, commit_all(repo, "move and widen the scope"))
    assert (len(result.new), len(result.fixed), len(result.unchanged)) == (1, 1, 5)
    assert result.new[0].symbol == result.fixed[0].symbol == "handler_3"
