"""Writes into the user's checkout from a hostile repository: `truthplane fix --apply/--commit` and `run-all`
end to end, with real git, real ruff and the real local executor, against committed symlinks, links swapped
in while candidates are judged, and git's own directory."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git
from truthplane.cli.main import run

CONFIG = 'verifiers = ["ruff"]\n'
HOOK = """diff --git a/{link}/post-commit b/{link}/post-commit
new file mode 100755
--- /dev/null
+++ b/{link}/post-commit
@@ -0,0 +1,2 @@
+#!/bin/sh
+echo planted > planted.txt
"""

pytestmark = [pytest.mark.tool("ruff"), pytest.mark.tool("bwrap")]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")


def fix(capsys, root: Path, patch: Path, *extra: str) -> tuple[int, str]:
    code = run(["fix", str(root / "a.py"), "--no-autofix", "--candidate", str(patch), *extra])
    return code, capsys.readouterr()[1]


def snapshot_of(root: Path) -> tuple[str, str, bytes]:
    status = "\n".join(
        line for line in git(root, "status", "--porcelain").splitlines() if ".truth-plane-results" not in line
    )
    return git(root, "rev-parse", "HEAD"), status, (root / ".git" / "index").read_bytes()


@pytest.fixture
def linked(make_repo, tmp_path: Path):
    """A repository that commits three links: into .git/hooks, to a sibling directory, and to an absolute path."""
    elsewhere, absolute = tmp_path / "elsewhere", tmp_path / "absolute"
    elsewhere.mkdir()
    absolute.mkdir()
    root = make_repo({"a.py": "x = 1\n", "truthplane.toml": CONFIG}, commit=False)
    (root / "gh").symlink_to(".git/hooks")
    (root / "out").symlink_to("../elsewhere")
    (root / "abs").symlink_to(absolute)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "links")
    return root, {"gh": root / ".git" / "hooks", "out": elsewhere, "abs": absolute}


@pytest.mark.parametrize("link", ["gh", "out", "abs"])
@pytest.mark.parametrize("mode", ["--apply", "--commit"])
def test_a_change_under_a_committed_symlink_is_refused(linked, tmp_path: Path, capsys, link: str, mode: str) -> None:
    root, targets = linked
    patch = tmp_path / "hook.diff"
    patch.write_text(HOOK.format(link=link))
    before = snapshot_of(root)
    code, err = fix(capsys, root, patch, mode)
    assert code == 1, err
    assert f"refused to write {link}/post-commit: {link} is a symlink in the working tree" in err
    assert "update-index" not in err and "fatal" not in err
    assert not (targets[link] / "post-commit").exists()
    assert snapshot_of(root) == before


def test_a_link_swapped_in_while_candidates_are_judged_is_not_followed(
    make_repo, tmp_path: Path, capsys, monkeypatch
) -> None:
    """The snapshot had a plain directory; by the time the winner is written it is a link out of the repository."""
    import truthplane.change.loop as loop

    root = make_repo({"a.py": "x = 1\n", "pkg/keep.py": "y = 2\n", "truthplane.toml": CONFIG})
    outside = tmp_path / "outside"
    outside.mkdir()
    patch = tmp_path / "new.diff"
    patch.write_text("--- /dev/null\n+++ b/pkg/new.py\n@@ -0,0 +1 @@\n+z = 3\n")
    real = loop.choose_winner

    def swap_then_choose(results):  # noqa: ANN001, ANN202
        (root / "pkg" / "keep.py").rename(outside / "keep.py")
        (root / "pkg").rmdir()
        (root / "pkg").symlink_to(outside)
        return real(results)

    monkeypatch.setattr(loop, "choose_winner", swap_then_choose)
    code, err = fix(capsys, root, patch, "--apply")
    assert code == 1 and "refused to write pkg/new.py: pkg is a symlink in the working tree" in err
    assert sorted(p.name for p in outside.iterdir()) == ["keep.py"]


def test_the_write_itself_refuses_a_link_that_appears_after_the_check(make_repo, tmp_path: Path) -> None:
    """No window between checking and writing: the writer walks directory descriptors and never follows a link."""
    from truthplane.git.tree_writer import TreeWriter, UnsafeWrite

    root = make_repo({"a.py": "x = 1\n"})
    outside = tmp_path / "outside"
    outside.mkdir()
    writer = TreeWriter(root, guarded=[root / ".git"])
    assert writer.problem("sub/new.py") is None
    (root / "sub").symlink_to(outside)
    with pytest.raises(UnsafeWrite, match="sub is a symlink"):
        writer.write("sub/new.py", b"z = 1\n", executable=False)
    with pytest.raises(UnsafeWrite, match="git's own directory"):
        writer.write(".git/hooks/post-commit", b"#!/bin/sh\n", executable=True)
    with pytest.raises(UnsafeWrite, match="not a plain path"):
        writer.write("../escape.py", b"", executable=False)
    (root / "link.py").symlink_to(outside / "target.py")
    with pytest.raises(UnsafeWrite, match="link.py: it is a symlink"):
        writer.write("link.py", b"z = 1\n", executable=False)
    assert list(outside.iterdir()) == []


def test_gits_own_directory_is_refused_by_identity_whatever_its_name(make_repo, tmp_path: Path) -> None:
    """A repository whose git directory lives inside the working tree under another name (--separate-git-dir)."""
    from truthplane.git.checkout import writer_for
    from truthplane.git.tree_writer import UnsafeWrite
    from truthplane.git.repo import Repo

    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "--separate-git-dir", str(root / "meta"))
    (root / "a.py").write_text("x = 1\n")
    writer = writer_for(Repo(root))
    assert "meta is git's own directory" in (writer.problem("meta/hooks/post-commit") or "")
    with pytest.raises(UnsafeWrite):
        writer.write("meta/hooks/post-commit", b"#!/bin/sh\n", executable=True)
    assert not (root / "meta" / "hooks" / "post-commit").exists()


def test_run_all_rejects_a_command_that_writes_under_a_committed_link(linked, capsys, monkeypatch) -> None:
    root, targets = linked
    (root / "tasks.toml").write_text("""
[[tasks]]
id = "plant"
kind = "command"
command = "mkdir -p gh && printf '#!/bin/sh\\\\necho planted\\\\n' > gh/post-commit && chmod +x gh/post-commit"
files = ["gh/post-commit"]
""")
    git(root, "add", "tasks.toml")
    git(root, "commit", "-qm", "tasks")
    head = git(root, "rev-parse", "HEAD")
    monkeypatch.chdir(root)
    code = run(["run-all", "--format", "json"])
    doc = json.loads(capsys.readouterr()[0])
    (task,) = doc["tasks"]
    assert code == 1 and task["status"] == "REJECTED", task
    assert "refused to write gh/post-commit: gh is a symlink" in task["truth_gate"]["reason"], task["truth_gate"]
    assert not (targets["gh"] / "post-commit").exists()
    assert git(root, "rev-parse", "HEAD") == head
    assert not git(root, "for-each-ref", "refs/heads/truthplane/")  # nor a branch holding the planted hook


def test_a_branch_is_not_made_under_a_link_of_its_parent_commit(linked, tmp_path: Path) -> None:
    from truthplane.git.checkout import create_branch
    from truthplane.git.tree_writer import UnsafeWrite
    from truthplane.git.repo import Repo

    root, _ = linked
    tree = tmp_path / "tree"
    (tree / "gh").mkdir(parents=True)
    (tree / "gh" / "post-commit").write_text("#!/bin/sh\n")
    repo = Repo(root)
    with pytest.raises(UnsafeWrite, match="gh is a symlink in commit"):
        create_branch(repo, "planted", parent=repo.head(), tree=tree, touched=["gh/post-commit"])
    assert not git(root, "for-each-ref", "refs/heads/planted")


def test_an_approved_change_still_writes_plain_paths(make_repo, tmp_path: Path, capsys) -> None:
    root = make_repo({"a.py": "x = 1\n", "truthplane.toml": CONFIG})
    os.chmod(root / "a.py", 0o640)
    patch = tmp_path / "ok.diff"
    patch.write_text(
        "--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n--- /dev/null\n+++ b/new/deep/b.py\n@@ -0,0 +1 @@\n+y = "
        "1\n"
    )
    code, err = fix(capsys, root, patch, "--commit")
    assert code == 0, err
    assert (root / "a.py").read_text() == "x = 2\n" and (root / "new" / "deep" / "b.py").read_text() == "y = 1\n"
    assert (root / "a.py").stat().st_mode & 0o777 == 0o640  # the file's own permissions are kept
    assert git(root, "status", "--porcelain", "--", "a.py", "new") == ""


@pytest.mark.parametrize("command", [["scan"], ["scan", "--baseline"], ["gate"], ["run-all"], ["fix", "description"]])
@pytest.mark.parametrize("where", ["bare", "git-dir"])
def test_a_repository_without_a_working_tree_is_refused(make_repo, tmp_path: Path, capsys, monkeypatch,
                                                        command: list[str], where: str) -> None:
    source = make_repo(
        {
            "a.py": "x = 1\n",
            "truthplane.toml": CONFIG,
            "tasks.toml": "[[tasks]]\nid = 't'\nkind = 'command'\ncommand = 'true'\n",
        }
    )
    if where == "bare":
        home = tmp_path / "bare.git"
        git(tmp_path, "clone", "-q", "--bare", str(source), str(home))
        expected = f"{home} is a bare git repository"
    else:
        home = source / ".git"
        expected = f"{home} is inside git's own directory"
    (home / "description").write_text("x = 1\n")
    before = sorted(p.relative_to(home) for p in home.rglob("*"))
    monkeypatch.chdir(home)
    code = run(command)
    err = capsys.readouterr()[1]
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith(f"truthplane: error: {expected}"), err
    assert sorted(p.relative_to(home) for p in home.rglob("*")) == before  # no results written into it


# a BOM, CRLF and LF lines mixed, no final newline, its own permissions: all of it is the file's, not the change's
FORMED = b"\xef\xbb\xbfx = 1\r\nimport os\r\ny = 2\nz = 3\r\nw = 4"
REWRITTEN = b"x = 1\ny = 5\nz = 3\nw = 4\n"  # a tool that rewrites the whole file, in its own form
KEPT = b"\xef\xbb\xbfx = 1\r\ny = 5\nz = 3\r\nw = 4"


@pytest.mark.parametrize("mode", ["--apply", "--commit"])
def test_only_the_approved_lines_change_not_the_files_form(make_repo, tmp_path: Path, capsys, mode: str) -> None:
    root = make_repo({"a.py": FORMED, "truthplane.toml": CONFIG}, commit=False)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "formed")
    os.chmod(root / "a.py", 0o600)
    for name, content in (("old", FORMED), ("new", REWRITTEN)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.py").write_bytes(content)
    proc = subprocess.run(
        ["git", "diff", "--no-index", "old/a.py", "new/a.py"], cwd=tmp_path, capture_output=True, check=False
    )
    patch = tmp_path / "rewrite.diff"
    patch.write_bytes(proc.stdout.replace(b"old/a.py", b"a.py").replace(b"new/a.py", b"a.py"))
    code = run(["fix", str(root / "a.py"), "--no-autofix", "--candidate", str(patch), "--format", "json", mode])
    doc = json.loads(capsys.readouterr()[0])
    assert code == 0 and doc["winner"] == str(patch), (doc["candidates"][0]["reasons"], doc["reasons"])
    assert (root / "a.py").read_bytes() == KEPT
    assert (root / "a.py").stat().st_mode & 0o777 == 0o600
    stat = git(root, "diff", "--numstat", "HEAD~1" if mode == "--commit" else "HEAD", "--", "a.py")
    assert stat.split()[:2] == ["1", "2"], stat  # import os and y = 2 out, y = 5 in: nothing else
    record = json.loads((root / doc["evidence"]).read_text())
    (change,) = [m for task in record["tasks"] for m in task.get("modifications", [])]
    assert change["sha256_after"] == hashlib.sha256(KEPT).hexdigest()
    assert change["sha256_before"] == hashlib.sha256(FORMED).hexdigest()
    if mode == "--commit":
        assert git(root, "status", "--porcelain", "--", "a.py") == ""
        assert git(root, "ls-tree", "HEAD", "a.py").startswith("100644")


def conflicted(make_repo, how: str) -> Path:
    """A repository stopped in the middle of a merge, a rebase, or a stash pop, b.py in conflict."""
    root = make_repo({"a.py": "import os\nx = 1\n", "b.py": "b = 0\n", "truthplane.toml": CONFIG})
    git(root, "checkout", "-qb", "feature")
    (root / "b.py").write_text("b = 1\n")
    git(root, "commit", "-qam", "feature")
    git(root, "checkout", "-q", "main")
    (root / "b.py").write_text("b = 2\n")
    if how == "stash":
        git(root, "stash", "-q")
        (root / "b.py").write_text("b = 3\n")
        git(root, "commit", "-qam", "main")
        with pytest.raises(subprocess.CalledProcessError):
            git(root, "stash", "pop", "-q")
        return root
    git(root, "commit", "-qam", "main")
    if how == "rebase":
        git(root, "checkout", "-q", "feature")
    with pytest.raises(subprocess.CalledProcessError):
        git(root, "merge" if how == "merge" else "rebase", "feature" if how == "merge" else "main")
    return root


UNUSED = "--- a/a.py\n+++ b/a.py\n@@ -1,2 +1 @@\n-import os\n x = 1\n"


@pytest.mark.parametrize(("how", "reason"), [("merge", "a merge is in progress (MERGE_HEAD exists)"),
                                              ("rebase", "a rebase is in progress (rebase-merge exists)"),
                                              ("stash", "unmerged paths in the index (b.py)")])
def test_fix_commit_refuses_while_git_is_in_the_middle_of_something(make_repo, tmp_path: Path, capsys,
                                                                      how: str, reason: str) -> None:
    root = conflicted(make_repo, how)
    patch = tmp_path / "unused.diff"
    patch.write_text(UNUSED)
    head, index = git(root, "rev-parse", "HEAD"), (root / ".git" / "index").read_bytes()
    code, err = fix(capsys, root, patch, "--commit")
    assert code == 2 and reason in err and "nothing was committed" in err, err
    assert git(root, "rev-parse", "HEAD") == head and (root / ".git" / "index").read_bytes() == index
    assert (root / "a.py").read_text() == "import os\nx = 1\n"
    code, err = fix(capsys, root, patch, "--apply")  # the working tree alone may still take the fix
    assert code == 0 and (root / "a.py").read_text() == "x = 1\n", err


def test_a_merge_started_while_candidates_are_judged_stops_the_commit(
    make_repo, tmp_path: Path, capsys, monkeypatch
) -> None:
    import truthplane.change.loop as loop

    root = make_repo({"a.py": "import os\nx = 1\n", "b.py": "b = 0\n", "truthplane.toml": CONFIG})
    git(root, "checkout", "-qb", "feature")
    (root / "b.py").write_text("b = 1\n")
    git(root, "commit", "-qam", "feature")
    git(root, "checkout", "-q", "main")
    patch = tmp_path / "unused.diff"
    patch.write_text(UNUSED)
    real = loop.choose_winner

    def merge_then_choose(results):  # noqa: ANN001, ANN202
        git(root, "merge", "--no-commit", "--no-ff", "-q", "feature")
        return real(results)

    monkeypatch.setattr(loop, "choose_winner", merge_then_choose)
    head = git(root, "rev-parse", "HEAD")
    code, err = fix(capsys, root, patch, "--commit")
    assert code == 2 and "a merge is in progress" in err
    assert git(root, "rev-parse", "HEAD") == head and (root / "a.py").read_text() == "import os\nx = 1\n"


def test_run_all_refuses_to_start_during_a_merge(make_repo, capsys, monkeypatch) -> None:
    root = conflicted(make_repo, "merge")
    (root / "tasks.toml").write_text(
        '[[tasks]]\nid = "t"\nkind = "command"\ncommand = "echo x > x.txt"\nfiles = ["x.txt"]\n'
    )
    head = git(root, "rev-parse", "HEAD")
    monkeypatch.chdir(root)
    code = run(["run-all"])
    err = capsys.readouterr()[1]
    assert code == 2 and "a merge is in progress" in err
    assert git(root, "rev-parse", "HEAD") == head and not (root / "x.txt").exists()


def test_fix_commit_writes_a_symlink_the_winner_makes_as_a_symlink(make_repo, tmp_path: Path, capsys) -> None:
    root = make_repo({"a.py": "x = 1\n", "docs/guide.md": "guide\n", "truthplane.toml": CONFIG})
    patch = tmp_path / "link.diff"
    patch.write_text("diff --git a/GUIDE.md b/GUIDE.md\nnew file mode 120000\n--- /dev/null\n+++ b/GUIDE.md\n"
                     "@@ -0,0 +1 @@\n+docs/guide.md\n\\ No newline at end of file\n"
                     "--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n")
    code, err = fix(capsys, root, patch, "--commit")
    assert code == 0, err
    assert os.readlink(root / "GUIDE.md") == "docs/guide.md"
    assert git(root, "ls-tree", "HEAD", "GUIDE.md").startswith("120000")
    assert git(root, "status", "--porcelain", "--", "GUIDE.md", "a.py") == ""
