"""Trees kept in the cache directory between gates of commits (truthplane.git.kept): each move leaves exactly the
commit's tree, whatever was left in it; two gates at once hold two trees; nothing lands outside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import git
from tests.git import objects
from truthplane.git import kept
from truthplane.config import load_config
from truthplane.git.repo import Repo
from truthplane.truth.sources import commit_source


def _contents(top: Path) -> dict[str, tuple[str, object]]:
    """Every entry under `top`: directories, files (with their executable bit) and links, as found."""
    found: dict[str, tuple[str, object]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames]:
            full = Path(dirpath) / name
            rel = full.relative_to(top).as_posix()
            if full.is_symlink():
                found[rel] = ("link", os.readlink(full))
            elif full.is_dir():
                found[rel] = ("dir", None)
            else:
                found[rel] = ("file", (os.access(full, os.X_OK), full.read_bytes()))
    return found


def _exactly(repo: Repo, commit: str, tree: Path) -> None:
    with repo.exported(commit) as written:  # a temporary tree, written whole: what a kept one must equal
        assert _contents(tree) == _contents(written)


@pytest.fixture
def history(make_repo) -> tuple[Repo, list[str]]:
    root = make_repo({"pkg/__init__.py": "", "pkg/a.py": "a = 1\n", "old/gone.py": "g = 1\n", "run.sh": "echo\n",
                      "pyproject.toml": "[tool.ruff]\n"})
    commits = [git(root, "rev-parse", "HEAD")]
    (root / "pkg/a.py").write_text("a = 2\n")
    (root / "old/gone.py").unlink()
    (root / "new/deep").mkdir(parents=True)
    (root / "new/deep/b.py").write_text("b = 1\n")
    os.chmod(root / "run.sh", 0o755)
    os.symlink("pkg/a.py", root / "link.py")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "second")
    commits.append(git(root, "rev-parse", "HEAD"))
    (root / "pkg").rename(root / "lib")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "third")
    commits.append(git(root, "rev-parse", "HEAD"))
    return Repo.require(root), commits


def test_a_kept_tree_is_each_commit_exactly_whatever_was_left_in_it(history, tmp_path: Path) -> None:
    repo, commits = history
    cache = tmp_path / "cache"
    trees: list[Path] = []
    for step, commit in enumerate([*commits, commits[0], commits[2], commits[1]]):
        with repo.export(commit, cache) as export:
            tree = export.whole()
            assert tree != export.root and tree.is_relative_to(cache / "trees")
            _exactly(repo, commit, tree)
            trees.append(tree)
            # what a tool or a stopped gate may leave: files of its own, a tracked file changed or removed, a
            # repository of its own, git's lock
            (tree / f"left-{step}.txt").write_text("left\n")
            (tree / "cache-dir" / "x").mkdir(parents=True)
            (tree / "cache-dir" / "x" / "y.pyc").write_bytes(b"\0")
            (tree / "run.sh").write_text("changed by a tool\n")
            (tree / "pyproject.toml").unlink()
            subprocess.run(["git", "init", "-q", str(tree / "nested")], check=True)
            (tree.parent / "index.lock").write_text("")
    assert len(set(trees)) == 1  # one gate at a time: always the same tree, moved


def test_two_gates_at_once_hold_two_trees_and_a_third_writes_its_own(history, tmp_path: Path) -> None:
    repo, commits = history
    cache = tmp_path / "cache"
    with repo.export(commits[0], cache) as one, repo.export(commits[1], cache) as two, \
            repo.export(commits[2], cache) as three:
        first, second, third = one.whole(), two.whole(), three.whole()
        assert first.parent.name == "0" and second.parent.name == "1" and third == three.root
        for commit, tree in zip(commits, (first, second, third), strict=True):
            _exactly(repo, commit, tree)
    with repo.export(commits[1], cache) as again:
        assert again.whole() == first  # released: taken again, and moved
        _exactly(repo, commits[1], first)


def test_a_cache_directory_inside_the_repository_keeps_no_tree(history) -> None:
    repo, commits = history
    cache = repo.root / ".truthplane-cache"
    with repo.export(commits[1], cache) as export:
        assert export.whole() == export.root
        _exactly(repo, commits[1], export.root)
    assert not (cache / "trees").exists()


def test_no_commit_moves_a_kept_tree_outside_itself(make_repo, tmp_path: Path) -> None:
    """A link leading out in one commit, a directory of the same name in the next, a tree made by hand with both:
    git moves the tree without writing through the link, or refuses (and the gate writes a tree of its own)."""
    root = make_repo({"a.py": "x = 1\n"})
    outside = tmp_path / "outside"
    outside.mkdir()

    payload, target = objects.blob(root, "#!/bin/sh\necho pwned\n"), objects.blob(root, str(outside))
    inner = objects.tree(root, f"100755 blob {payload}\tpost-checkout\n")
    link = objects.tree(root, f"120000 blob {target}\tevil\n")
    directory = objects.tree(root, f"040000 tree {inner}\tevil\n")
    both = objects.tree(root, f"120000 blob {target}\tevil\n040000 tree {inner}\tevil\n")
    commits = [git(root, "commit-tree", "-m", name, tree).strip() for name, tree in
               (("link", link), ("directory", directory), ("both", both), ("link again", link))]
    repo = Repo.require(root)
    cache = tmp_path / "cache"
    for commit in commits:
        with repo.export(commit, cache) as export:
            tree = export.whole()
            assert [p.name for p in tree.iterdir()] == ["evil"]
        assert list(outside.iterdir()) == []


def test_a_gate_of_commits_with_a_kept_tree_judges_as_one_written_afresh(make_repo, tmp_path: Path) -> None:
    """ruff's isort rules read the layout (a first-party module is one whose file is there): the head's kept tree
    gives the same findings as a tree written afresh, gate after gate."""
    root = make_repo({
        "pyproject.toml": '[tool.ruff.lint]\nselect = ["I"]\n[tool.truthplane]\nverifiers = ["ruff"]\n',
        "helpers.py": "X = 1\n", "app/__init__.py": "", "app/main.py": "import os\n\nprint(os)\n",
    })
    cache, env = tmp_path / "cache", {**os.environ, "NO_COLOR": "1"}

    def gate(head: str, *extra: str) -> dict:
        proc = subprocess.run([sys.executable, "-m", "truthplane", "gate", ".", "--base", "main", "--head", head,
                               "--format", "json", *extra], cwd=root, capture_output=True, text=True, env=env)
        assert proc.returncode in (0, 1, 3), proc.stderr
        result = json.loads(proc.stdout)
        return {"verdict": result["verdict"], "new": sorted((f["path"], f["rule_id"]) for f in result["new"])}

    # sorted as they are only where helpers.py is a file of the tree (first-party), and the other way round
    for n, (body, unsorted) in enumerate([("import helpers\nimport requests\n\nprint(helpers, requests)\n", True),
                                          ("import requests\n\nimport helpers\n\nprint(helpers, requests)\n", False),
                                          ("import helpers\nimport requests\n\nprint(helpers, requests)\n", True)]):
        git(root, "checkout", "-qB", f"change-{n}", "main")
        (root / "app/main.py").write_text(body)
        git(root, "commit", "-qam", f"change {n}")
        git(root, "checkout", "-q", "main")
        kept_tree = gate(f"change-{n}", "--cache-dir", str(cache))
        assert kept_tree == gate(f"change-{n}", "--no-cache")
        assert (("app/main.py", "I001") in kept_tree["new"]) is unsorted
        (next((cache / "trees").iterdir()) / "0" / "tree" / "requests.py").write_text("")  # left by a tool
    assert (next((cache / "trees").iterdir()) / "0" / "tree" / "helpers.py").is_file()


def test_slots_are_few(monkeypatch: pytest.MonkeyPatch, history, tmp_path: Path) -> None:
    repo, commits = history
    monkeypatch.setattr(kept, "SLOTS", 1)
    with repo.export(commits[0], tmp_path / "c") as one, repo.export(commits[1], tmp_path / "c") as two:
        assert one.whole() != one.root and two.whole() == two.root


def test_trees_of_repositories_used_long_ago_are_removed_but_not_one_in_use(
        make_repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kept, "REPOSITORIES", 2)
    cache = tmp_path / "cache"
    repos = [Repo.require(make_repo({"a.py": f"a = {n}\n"}, name=f"repo{n}")) for n in range(4)]
    with repos[0].export(repos[0].head(), cache) as held:
        first = held.whole()
        os.utime(first.parent / "lock", (1000, 1000))  # used first of all
        for n, repo in enumerate(repos[1:], start=1):
            with repo.export(repo.head(), cache) as export:
                tree = export.whole()
            os.utime(tree.parent / "lock", (1000 + n, 1000 + n))  # then these, in this order
        assert first.is_dir()  # held by a gate: never removed
        _exactly(repos[0], repos[0].head(), first)
    with repos[3].export(repos[3].head(), cache) as export:
        export.whole()
    assert len(list((cache / "trees").iterdir())) == 2 and not first.exists()


def test_a_slot_git_cannot_move_is_written_afresh(history, tmp_path: Path) -> None:
    repo, commits = history
    cache = tmp_path / "cache"
    with repo.export(commits[0], cache) as export:
        tree = export.whole()
    (tree.parent / "index").write_bytes(b"not an index")
    with repo.export(commits[1], cache) as export:
        assert export.whole() == tree
        _exactly(repo, commits[1], tree)


def test_a_cache_that_cannot_hold_trees_gets_a_tree_of_the_export_s_own(history, tmp_path: Path) -> None:
    repo, commits = history
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "trees").write_text("a file where the trees would go\n")
    with repo.export(commits[1], cache) as export:
        assert export.whole() == export.root
        _exactly(repo, commits[1], export.root)


def test_files_asked_for_alone_are_written_while_the_whole_tree_moves(
    monkeypatch: pytest.MonkeyPatch, history, tmp_path: Path
) -> None:
    """A tool that reads only the files it is given (bandit, semgrep) must not wait for the whole tree another tool
    asked for (ruff): on a large repository moving the kept tree is most of a gate of a commit."""
    repo, commits = history
    moving, go_on = threading.Event(), threading.Event()
    move_to = kept.KeptTree.move_to

    def held_move(self: kept.KeptTree, commit: str) -> Path:
        moving.set()
        assert go_on.wait(60)
        return move_to(self, commit)

    monkeypatch.setattr(kept.KeptTree, "move_to", held_move)
    source = commit_source(repo, commits[1], load_config(repo.root), tmp_path / "cache")
    try:
        whole: list[Path] = []
        mover = threading.Thread(target=lambda: whole.append(source.root()))
        mover.start()
        assert moving.wait(60)
        asker = threading.Thread(target=lambda: source.root(["new/deep/b.py"]))
        asker.start()
        asker.join(30)
        written = not asker.is_alive()
        go_on.set()
        mover.join(60)
        asker.join(60)
        assert written, "the file asked for alone waited for the whole tree's move"
        assert (source.root(["new/deep/b.py"]) / "new/deep/b.py").read_text() == "b = 1\n"
        _exactly(repo, commits[1], whole[0])
    finally:
        go_on.set()
        source.close()


def test_a_move_cleans_only_the_directories_whose_times_changed_and_leaves_the_commit_exactly(
    monkeypatch: pytest.MonkeyPatch, history, tmp_path: Path
) -> None:
    """A file is added to a directory only by changing the directory's times: a move cleans the directories whose
    stamp changed since the last move, not the whole tree, and the tree is still the commit's exactly. A stamp too
    close to the moment it was taken is not trusted (cleaned again)."""
    repo, commits = history
    monkeypatch.setattr(kept, "RACY_NS", 1_000_000_000)
    cleans: list[tuple[str, ...]] = []
    real_git = kept.KeptTree._git

    def recording(self: kept.KeptTree, *args: str) -> bytes:
        if "clean" in args:
            cleans.append(args[args.index("clean") + 1:])
        return real_git(self, *args)

    monkeypatch.setattr(kept.KeptTree, "_git", recording)

    def moved(commit: str) -> Path:
        with repo.export(commit, tmp_path / "cache") as export:
            tree = export.whole()
            _exactly(repo, commit, tree)
            return tree

    tree = moved(commits[0])  # written afresh: stamps too new to trust
    time.sleep(1.2)
    assert moved(commits[0]) == tree  # the stamps it leaves are all older than RACY_NS
    time.sleep(1.2)
    (tree / "pkg" / "left.txt").write_text("a tool's\n")
    (tree / "old" / "cache").mkdir()
    (tree / "old" / "cache" / "x.pyc").write_bytes(b"\0")
    (tree / "pkg" / "a.py").write_text("changed in place by a tool\n")  # no directory's times change: git's stat
    moved(commits[1])
    assert cleans[-1] == ("-ffdxq", "--", "old", "pkg")
    # the directories that move changed are cleaned next time whatever their times (too new to be trusted)
    (tree / "new" / "deep" / "left.txt").write_text("a tool's, at once\n")
    moved(commits[2])
    assert "new/deep" in cleans[-1] or "new" in cleans[-1] or cleans[-1] == ("-ffdxq",)
    assert not (tree / "new" / "deep" / "left.txt").exists()


def test_stamps_that_cannot_be_read_cost_a_clean_of_the_whole_tree(
    monkeypatch: pytest.MonkeyPatch, history, tmp_path: Path
) -> None:
    repo, commits = history
    monkeypatch.setattr(kept, "RACY_NS", 0)
    for commit in commits[:2]:
        with repo.export(commit, tmp_path / "cache") as export:
            tree = export.whole()
    stamps = tree.parent / "directories"
    assert stamps.is_file()
    stamps.write_bytes(b"not marshal")
    (tree / "pkg" / "left.txt").write_text("a tool's\n")
    with repo.export(commits[2], tmp_path / "cache") as export:
        _exactly(repo, commits[2], export.whole())
    assert stamps.is_file()  # left again by the move that ended
