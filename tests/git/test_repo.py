from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git
from tests.git import objects
from truthplane.errors import GitError
from truthplane.git.repo import Repo, blob_id


def test_blob_id_is_gits() -> None:
    proc = subprocess.run(["git", "hash-object", "--stdin"], input=b"hello\n", capture_output=True, check=True)
    assert blob_id(b"hello\n") == proc.stdout.decode().strip()


def test_worktree_files_see_dirty_untracked_and_skip_symlinks(make_repo) -> None:
    root = make_repo({"a.py": "x = 1\n", "b.py": "y = 2\n", ".gitignore": "ignored.py\n"})
    (root / "a.py").write_text("x = 2\n")
    (root / "new file.py").write_text("z = 3\n")
    (root / "ignored.py").write_text("secret = 1\n")
    (root / "b.py").unlink()
    (root / "link.py").symlink_to("/etc/passwd")
    repo = Repo.require(root)
    files = {f.path: f.blob for f in repo.worktree_files()}
    assert set(files) == {"a.py", "new file.py", ".gitignore"}
    assert files["a.py"] == blob_id(b"x = 2\n")
    assert repo.is_dirty()


def test_excluded_paths_are_neither_read_nor_a_difference(make_repo) -> None:
    from truthplane.truth.sources import Excluder

    root = make_repo({"a.py": "x = 1\n", "vendor/lib.py": "y = 1\n"})
    results = root / ".truth-plane-results"
    results.mkdir()
    (results / "baseline.json").write_text("{}")
    (root / "vendor" / "lib.py").write_text("y = 2\n")
    repo = Repo.require(root)
    skip = Excluder([".truth-plane-results", "vendor/"])
    files, dirty = repo.worktree_state(skip)
    assert {f.path for f in files} == {"a.py"} and not dirty
    assert repo.renames(repo.head() or "", skip=skip) == {}
    (root / "b.py").write_text("z = 1\n")
    assert repo.worktree_state(skip)[1]  # an untracked file that is scanned is a difference


def test_renames_by_git_mv_and_plain_mv_leave_the_index_alone(make_repo) -> None:
    body = "".join(f"value_{i} = {i}\n" for i in range(40))
    root = make_repo({"old.py": body, "other.py": body.replace("value", "v")})
    repo = Repo.require(root)
    head = repo.head()
    git(root, "mv", "old.py", "moved.py")
    (root / "other.py").rename(root / "plain.py")  # not told to git
    index_before = (root / ".git" / "index").read_bytes()
    assert repo.renames(head) == {"old.py": "moved.py", "other.py": "plain.py"}
    assert (root / ".git" / "index").read_bytes() == index_before
    assert "?? plain.py" in git(root, "status", "--porcelain")


def test_missing_base_ref_is_a_clear_error(make_repo) -> None:
    repo = Repo.require(make_repo({"a.py": "x = 1\n"}))
    with pytest.raises(GitError, match="base ref 'origin/main' not found.*fetch"):
        repo.resolve("origin/main")


def test_shallow_clone_without_merge_base_says_so(make_repo, tmp_path: Path) -> None:
    origin = make_repo({"a.py": "x = 1\n"}, name="origin")
    for i in range(3):
        (origin / "a.py").write_text(f"x = {i}\n")
        git(origin, "commit", "-qam", f"c{i}")
    git(origin, "checkout", "-qb", "feature", "HEAD~2")
    (origin / "b.py").write_text("y = 1\n")
    git(origin, "add", "b.py")
    git(origin, "commit", "-qm", "feature")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth=1", "--no-single-branch", f"file://{origin}", str(clone))
    repo = Repo.require(clone)
    git(clone, "checkout", "-q", "feature")
    with pytest.raises(GitError, match="shallow"):
        repo.merge_base("HEAD", repo.resolve("origin/main"))


def test_exported_tree_is_the_commit_and_is_removed(make_repo) -> None:
    root = make_repo({"dir with space/a.py": "x = 1\n"})
    repo = Repo.require(root)
    (root / "dir with space" / "a.py").write_text("changed\n")
    with repo.exported(repo.head()) as tree:
        assert (tree / "dir with space" / "a.py").read_text() == "x = 1\n"
    assert not tree.exists()
    assert (root / "dir with space" / "a.py").read_text() == "changed\n"


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(GitError, match="not inside a git repository"):
        Repo.require(tmp_path)


def test_a_crafted_commit_is_never_written_outside_its_temporary_directory(make_repo, tmp_path: Path) -> None:
    """A tree made by hand (git mktree) may hold what no checkout would: a link beside a directory of the same name
    leading out, a `.git` with a hook, a `..`. Git itself writes a commit's files (TreeExport): nothing lands outside
    the temporary directory, and a path git refuses is a GitError."""
    root = make_repo({"a.py": "x = 1\n"})
    outside = tmp_path / "outside"
    outside.mkdir()

    def hashed(content: str) -> str:
        return objects.blob(root, content)

    def tree(lines: str) -> str:
        return objects.tree(root, lines)

    payload = hashed("#!/bin/sh\necho pwned\n")
    inner = tree(f"100755 blob {payload}\tpost-checkout\n")
    linked = tree(f"120000 blob {hashed(str(outside))}\tevil\n040000 tree {inner}\tevil\n")
    repo = Repo.require(root)
    commit = git(root, "commit-tree", "-m", "links", linked).strip()
    with repo.exported(commit) as exported:
        assert [p.name for p in exported.iterdir()] == ["evil"]
    assert list(outside.iterdir()) == []
    hooks = tree(f"040000 tree {inner}\thooks\n")
    dotted = tree(f"040000 tree {hooks}\t.git\n040000 tree {inner}\t..\n100644 blob {payload}\tok.py\n")
    commit = git(root, "commit-tree", "-m", "dots", dotted).strip()
    with pytest.raises(GitError, match="invalid path"), repo.exported(commit):
        pass
    assert not (root.parent / "post-checkout").exists() and list(outside.iterdir()) == []


def test_files_asked_for_alone_are_written_without_reading_the_whole_tree(make_repo) -> None:
    """A few files of a commit (what bandit and semgrep read) are written from an index of those files alone, as
    the commit has them (a script stays executable, a link a link); a later whole tree is the commit's exactly."""
    root = make_repo({"pkg/a.py": "a = 1\n", "pkg/b.py": "b = 1\n", "run.sh": "echo\n", "other/c.py": "c = 1\n"})
    os.chmod(root / "run.sh", 0o755)
    os.symlink("pkg/a.py", root / "link.py")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "modes")
    repo = Repo.require(root)
    commit = repo.head()
    with repo.export(commit) as export:
        export.add(["pkg/a.py", "run.sh", "link.py"])
        index = {"GIT_INDEX_FILE": str(export.root.parent / "index")}
        listed = subprocess.run(["git", "ls-files", "-s"], cwd=root, env={**os.environ, **index},
                                capture_output=True, text=True, check=True).stdout
        assert sorted(line.split("\t")[1] for line in listed.splitlines()) == ["link.py", "pkg/a.py", "run.sh"]
        assert (export.root / "pkg/a.py").read_text() == "a = 1\n"
        assert os.access(export.root / "run.sh", os.X_OK)
        assert os.readlink(export.root / "link.py") == "pkg/a.py"
        assert sorted(p.relative_to(export.root).as_posix() for p in export.root.rglob("*") if not p.is_dir()) == [
            "link.py", "pkg/a.py", "run.sh"]
        export.add(["other/c.py"])
        assert (export.root / "other/c.py").read_text() == "c = 1\n"
        assert export.whole() == export.root
        with repo.exported(commit) as written:
            assert sorted(p.relative_to(written).as_posix() for p in written.rglob("*")) == sorted(
                p.relative_to(export.root).as_posix() for p in export.root.rglob("*"))


def test_a_crafted_commit_s_files_asked_for_alone_land_nowhere_outside(make_repo, tmp_path: Path) -> None:
    """The files of a hand-made tree asked for one by one: what git refuses is refused as before (a GitError), and
    nothing is written outside the export, whichever way round a link and a directory of the same name come."""
    root = make_repo({"a.py": "x = 1\n"})
    outside = tmp_path / "outside"
    outside.mkdir()
    payload = objects.blob(root, "#!/bin/sh\necho pwned\n")
    inner = objects.tree(root, f"100755 blob {payload}\tpost-checkout\n")
    linked = objects.tree(root, f"120000 blob {objects.blob(root, str(outside))}\tevil\n040000 tree {inner}\tevil\n")
    repo = Repo.require(root)
    commit = git(root, "commit-tree", "-m", "links", linked).strip()
    for order in (["evil", "evil/post-checkout"], ["evil/post-checkout", "evil"]):
        with repo.export(commit) as export:
            for path in order:
                try:
                    export.add([path])
                except GitError:
                    pass
            assert [p.name for p in export.root.iterdir()] == ["evil"]
        assert list(outside.iterdir()) == []
    hooks = objects.tree(root, f"040000 tree {inner}\thooks\n")
    dotted = objects.tree(root, f"040000 tree {hooks}\t.git\n040000 tree {inner}\t..\n100644 blob {payload}\tok.py\n")
    commit = git(root, "commit-tree", "-m", "dots", dotted).strip()
    for path in (".git/hooks/post-checkout", "../post-checkout"):
        with repo.export(commit) as export:
            with pytest.raises(GitError):
                export.add([path])
            assert list(export.root.iterdir()) == []
    assert not (root.parent / "post-checkout").exists() and list(outside.iterdir()) == []
