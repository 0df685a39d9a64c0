"""Candidates: normalising, dedupe, and checking/applying real diffs with real git."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git
from truthplane.change.candidates import (
    CandidateError,
    PatchFileError,
    apply_candidate,
    check_patch,
    dedupe,
    diff_size,
    normalise_diff,
    patch_file_candidates,
)
from truthplane.errors import ExitCode
from truthplane.change.fixes import Candidate

pytestmark = pytest.mark.tool("git")

APP = "def total(items):\n    result = 0\n    for item in items:\n        result += item\n    return result\n"
FIXED = APP.replace("result = 0", "result = 1")


def candidate(diff: str, cid: str = "c") -> Candidate:
    return Candidate(id=cid, source="patch", diff=diff)


def git_diff(root: Path, rel: str, new: str | bytes, *args: str) -> str:
    """Change a file in root, take `git diff`, and put the file back."""
    path = root / rel
    old = path.read_bytes() if path.exists() else None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(new.encode() if isinstance(new, str) else new)
    git(root, "add", "-N", rel)
    diff = subprocess.run(["git", "diff", *args], cwd=root, capture_output=True, text=True, check=True).stdout
    if old is None:
        git(root, "rm", "-q", "--cached", rel)
        path.unlink()
    else:
        path.write_bytes(old)
    return diff


@pytest.fixture
def repo(make_repo) -> Path:
    return make_repo(
        {"app/calc.py": APP, "README.md": "hello\n", "tests/test_calc.py": "def test_x():\n    assert 1\n"}
    )


# ---- normalising -----------------------------------------------------------------------------------


def test_whitespace_and_comment_variants_normalise_equal(repo: Path) -> None:
    plain = git_diff(repo, "app/calc.py", FIXED)
    spaced = git_diff(repo, "app/calc.py", APP.replace("result = 0", "result   =   1    # start at one"))
    assert normalise_diff(plain) == normalise_diff(spaced)
    assert diff_size(plain) == 2


def test_different_edits_normalise_differently(repo: Path) -> None:
    one = git_diff(repo, "app/calc.py", FIXED)
    two = git_diff(repo, "app/calc.py", APP.replace("result = 0", "result = 2"))
    assert normalise_diff(one) != normalise_diff(two)


def test_indentation_is_meaning_in_python(repo: Path) -> None:
    inside = git_diff(repo, "app/calc.py", APP.replace("    return result", "        return result"))
    assert diff_size(inside) == 2


def test_comment_only_change_has_size_zero_but_hash_in_string_is_code(repo: Path) -> None:
    comment = git_diff(repo, "app/calc.py", APP.replace("    return result", "    # why\n    return result  # done"))
    assert diff_size(comment) == 0
    string = git_diff(
        repo, "app/calc.py", APP.replace("    return result", '    print("# not a comment")\n    return result')
    )
    assert diff_size(string) == 1


def test_js_slash_comments_dropped() -> None:
    a = "--- a/x.js\n+++ b/x.js\n@@ -1 +1 @@\n-let a = 1;\n+let a = 2; // two\n"
    b = "--- a/x.js\n+++ b/x.js\n@@ -1 +1 @@\n-let a = 1;\n+let  a=2;\n"
    c = "--- a/x.js\n+++ b/x.js\n@@ -1 +1 @@\n-let a = 1;\n+let a = 'http://x';\n"
    assert normalise_diff(a) == normalise_diff(b)
    assert diff_size(c) == 2


def test_dedupe_keeps_first_and_records_others(repo: Path) -> None:
    plain = git_diff(repo, "app/calc.py", FIXED)
    spaced = git_diff(repo, "app/calc.py", APP.replace("result = 0", "result =  1"))
    other = git_diff(repo, "app/calc.py", APP.replace("result = 0", "result = 5"))
    fenced = "Here is the fix:\n```diff\n" + plain + "```\n"
    merged = dedupe([candidate(plain, "a"), candidate(other, "b"), candidate(spaced, "c"), candidate(fenced, "d")])
    assert [c.id for c in merged] == ["a", "b"]
    assert merged[0].also_from == ["c", "d"]
    assert merged[1].also_from == []


def test_dedupe_keeps_unparseable_candidates() -> None:
    merged = dedupe([candidate("not a diff", "x"), candidate("not a diff", "y")])
    assert [c.id for c in merged] == ["x", "y"]


# ---- checking ----------------------------------------------------------------------------------------


def test_git_diff_applies_to_repo_and_plain_copy(repo: Path, tmp_path: Path) -> None:
    diff = git_diff(repo, "app/calc.py", FIXED)
    assert check_patch(repo, candidate(diff)) == []
    plain = tmp_path / "plain"
    shutil.copytree(repo, plain, ignore=shutil.ignore_patterns(".git"))
    assert check_patch(plain, candidate(diff)) == []
    assert apply_candidate(plain, candidate(diff)) == ["app/calc.py"]
    assert (plain / "app/calc.py").read_text() == FIXED
    assert (repo / "app/calc.py").read_text() == APP


def test_plain_directory_inside_another_repo_is_its_own_root(repo: Path) -> None:
    inner = repo / "app"  # patch paths are relative to app/, not to the enclosing repository
    diff = "--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def total(items):\n-    result = 0\n+    result = 1\n"
    assert apply_candidate(inner, candidate(diff)) == ["calc.py"]
    assert (inner / "calc.py").read_text() == FIXED


def test_diff_u_output_applies(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "new.py").write_text(FIXED)
    proc = subprocess.run(["diff", "-u", str(repo / "app/calc.py"), str(tmp_path / "new.py")],
                          capture_output=True, text=True, check=False)
    absolute = proc.stdout
    assert check_patch(repo, candidate(absolute))[0].startswith("touches a path outside the repository")
    proc = subprocess.run(["diff", "-u", "app/calc.py", str(tmp_path / "new.py")],
                          cwd=repo, capture_output=True, text=True, check=False)
    relative = proc.stdout.replace(str(tmp_path / "new.py"), "app/calc.py")
    assert check_patch(repo, candidate(relative)) == []
    assert apply_candidate(repo, candidate(relative)) == ["app/calc.py"]
    assert (repo / "app/calc.py").read_text() == FIXED


def test_llm_diff_with_fences_wrong_counts_and_bare_header(repo: Path) -> None:
    wrong_counts = (
        "Sure! Here is the patch.\n\n```diff\n--- a/app/calc.py\n+++ b/app/calc.py\n@@ -1,9 +1,9 @@\n"
        " def total(items):\n-    result = 0\n+    result = 1\n     for item in items:\n```\nThis starts at one.\n"
    )
    assert check_patch(repo, candidate(wrong_counts)) == []
    bare = ("```\n--- a/app/calc.py\n+++ b/app/calc.py\n@@\n     for item in items:\n-        result += item\n+        "
            "result += 2 * item\n```")
    assert apply_candidate(repo, candidate(bare)) == ["app/calc.py"]
    assert "result += 2 * item" in (repo / "app/calc.py").read_text()


def test_new_deleted_and_renamed_files(repo: Path) -> None:
    created = git_diff(repo, "app/extra.py", "X = 1\n")
    assert apply_candidate(repo, candidate(created)) == ["app/extra.py"]
    assert (repo / "app/extra.py").read_text() == "X = 1\n"
    deleted = ("diff --git a/README.md b/README.md\ndeleted file mode 100644\n--- a/README.md\n+++ /dev/null\n@@ -1 "
               "+0,0 @@\n-hello\n")
    assert apply_candidate(repo, candidate(deleted)) == ["README.md"]
    assert not (repo / "README.md").exists()
    renamed = ("diff --git a/app/extra.py b/app/more.py\nsimilarity index 100%\nrename from app/extra.py\nrename to "
               "app/more.py\n")
    assert apply_candidate(repo, candidate(renamed)) == ["app/extra.py", "app/more.py"]
    assert (repo / "app/more.py").read_text() == "X = 1\n"


@pytest.mark.parametrize("path", ["../outside.py", "app/../../outside.py", "/etc/passwd"])
def test_paths_outside_the_repo_are_rejected(repo: Path, path: str) -> None:
    diff = f"--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-a\n+b\n".replace("a//", "/").replace("b//", "/")
    reasons = check_patch(repo, candidate(diff))
    assert len(reasons) == 1 and "outside the repository" in reasons[0]
    with pytest.raises(CandidateError, match="outside the repository"):
        apply_candidate(repo, candidate(diff))


def test_git_internals_are_rejected(repo: Path) -> None:
    diff = "--- /dev/null\n+++ b/.git/hooks/pre-commit\n@@ -0,0 +1 @@\n+echo hi\n"
    assert check_patch(repo, candidate(diff)) == ["touches git's own files: .git/hooks/pre-commit"]


def test_symlink_that_leaves_the_repo(repo: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "calc.py").write_text(APP)
    os.symlink(outside, repo / "linked")
    diff = git_diff(repo, "app/calc.py", FIXED).replace("app/calc.py", "linked/calc.py")
    assert check_patch(repo, candidate(diff)) == ["touches linked/calc.py through a symlink that leaves the repository"]
    with pytest.raises(CandidateError, match="symlink"):
        apply_candidate(repo, candidate(diff))
    assert (outside / "calc.py").read_text() == APP
    link = ("diff --git a/evil b/evil\nnew file mode 120000\n--- /dev/null\n+++ b/evil\n@@ -0,0 +1 @@\n+../../etc\n"
            "\\ No newline at end of file\n")
    assert "leaves the repository" in check_patch(repo, candidate(link))[0]


def test_binary_edits_are_rejected(repo: Path) -> None:
    (repo / "logo.bin").write_bytes(b"\x00\x01\x02")
    git(repo, "add", "logo.bin")
    git(repo, "commit", "-qm", "logo")
    binary = git_diff(repo, "logo.bin", b"\x00\x09\x09", "--binary")
    assert "GIT binary patch" in binary
    assert check_patch(repo, candidate(binary)) == ["edits a binary file: logo.bin"]
    text_patch = "--- a/logo.bin\n+++ b/logo.bin\n@@ -1 +1 @@\n-x\n+y\n"
    assert check_patch(repo, candidate(text_patch)) == ["edits a binary file: logo.bin"]


def test_does_not_apply_says_why(repo: Path) -> None:
    diff = (
        "--- a/app/calc.py\n+++ b/app/calc.py\n@@ -1,2 +1,2 @@\n def total(things):\n-    value = 0\n+    value = 1\n"
    )
    reasons = check_patch(repo, candidate(diff))
    assert len(reasons) == 1 and reasons[0].startswith("does not apply:") and "app/calc.py" in reasons[0]
    with pytest.raises(CandidateError, match="does not apply"):
        apply_candidate(repo, candidate(diff))


def test_apply_is_all_or_nothing(repo: Path) -> None:
    good = git_diff(repo, "app/calc.py", FIXED)
    bad = "--- a/README.md\n+++ b/README.md\n@@ -1 +1 @@\n-goodbye\n+hi\n"
    with pytest.raises(CandidateError):
        apply_candidate(repo, candidate(good + bad))
    assert (repo / "app/calc.py").read_text() == APP


@pytest.mark.parametrize("text", ["", "hello there", "@@ -1 +1 @@\n-a\n+b\n"])
def test_unparseable_diffs(repo: Path, text: str) -> None:
    reasons = check_patch(repo, candidate(text))
    assert len(reasons) == 1 and reasons[0].startswith("the diff does not parse")
    with pytest.raises(CandidateError):
        apply_candidate(repo, candidate(text))


# ---- patch files -------------------------------------------------------------------------------------


def test_patch_file_candidates(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "fix.diff").write_text(git_diff(repo, "app/calc.py", FIXED))
    monkeypatch.chdir(tmp_path)
    [found] = patch_file_candidates([Path("fix.diff")])
    assert (found.id, found.source) == ("fix.diff", "patch")
    assert check_patch(repo, found) == []


def test_patch_file_problems_are_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "latin.diff").write_bytes(b"--- a/x\n+++ b/x\n@@ -1 +1 @@\n-\xe9\n+e\n")
    (tmp_path / "empty.diff").write_text("\n")
    for name, message in [
        ("missing.diff", "candidate patch .*no such file"),
        ("latin.diff", "not UTF-8"),
        ("empty.diff", "empty"),
    ]:
        with pytest.raises(PatchFileError, match=message) as caught:
            patch_file_candidates([tmp_path / name])
        assert caught.value.exit_code == ExitCode.USAGE
        assert name in str(caught.value)


def test_fences_inside_a_markdown_hunk_are_content(make_repo) -> None:
    root = make_repo({"README.md": "Use it:\n\n```sh\nrun\n```\n"})
    diff = git_diff(root, "README.md", "Use it:\n\n```sh\nrun --fast\n```\n")
    fenced = "```diff\n" + diff + "```\n"
    assert normalise_diff(diff) == normalise_diff(fenced)
    assert apply_candidate(root, candidate(fenced)) == ["README.md"]
    assert "run --fast" in (root / "README.md").read_text()


def test_format_patch_output_applies(repo: Path, tmp_path: Path) -> None:
    (repo / "app/calc.py").write_text(FIXED)
    git(repo, "commit", "-qam", "start at one")
    patch = git(repo, "format-patch", "-1", "--stdout") + "\n"
    git(repo, "revert", "--no-edit", "HEAD")
    assert diff_size(patch) == 2
    assert apply_candidate(repo, candidate(patch)) == ["app/calc.py"]
    assert (repo / "app/calc.py").read_text() == FIXED


def test_quoted_unicode_path(make_repo) -> None:
    root = make_repo({"tést.py": "x = 1\n"})
    diff = git_diff(root, "tést.py", "x = 2\n")
    assert '"a/t\\303\\251st.py"' in diff
    assert apply_candidate(root, candidate(diff)) == ["tést.py"]


def test_directive_comments_are_not_dropped(repo: Path) -> None:
    plain = git_diff(repo, "app/calc.py", FIXED)
    silenced = git_diff(repo, "app/calc.py", FIXED.replace("result = 1", "result = 1  # noqa: F841"))
    typed = git_diff(repo, "app/calc.py", FIXED.replace("result = 1", "result = 1  # type: ignore"))
    assert len({normalise_diff(plain), normalise_diff(silenced), normalise_diff(typed)}) == 3
    merged = dedupe([candidate(silenced, "noqa"), candidate(plain, "clean")])
    assert [c.id for c in merged] == ["noqa", "clean"]
