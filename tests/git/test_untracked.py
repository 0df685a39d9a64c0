"""The untracked files from the snapshot of the working tree's directories (truthplane.git.untracked) against git's
own walk, through random changes of real repositories: files and directories made, removed, renamed and turned
into one another, ignore rules written and removed, paths added to and removed from the index, commits, branches,
symbolic links, ignored directories, nested repositories."""

from __future__ import annotations

import marshal
import os
import random
import shutil
import time
from pathlib import Path

import pytest

from tests.conftest import git
from truthplane.git import untracked as untracked_module
from truthplane.git.run import GIT_ENV, run
from truthplane.git.untracked import LISTING, untracked, untracked_apart

NAMES = ["a", "b", "c", "build", "cache", "x.log", "keep.log", "n.py", "tmp.tmp", "sp ace", "st*r", "[br]", "été"]
RULES = ["*.log", "build/", "/cache", "!keep.log", "*.tmp", "sub*/", "c", "!c/", "[br]", "deep/**/z"]


class Lister:
    """untracked() with a store, counting git's full walks; every answer checked against git's own walk. `here`:
    as the listing's own process lists, from the top directory, by relative paths (a pytest.MonkeyPatch to
    change the working directory with)."""

    def __init__(self, root: Path, store: Path, here: pytest.MonkeyPatch | None = None) -> None:
        self.root, self.store, self.here = root, store, here
        self.walks = self.answers = 0
        time.sleep(0.02)  # the repository just made is past the racy window of quick_racy

    def walk(self) -> str:
        self.walks += 1
        return run(self.root, *LISTING)

    def check(self) -> list[str]:
        head = git(self.root, "rev-parse", "HEAD")
        if self.here is None:
            answer = untracked(self.root, head, self.store, GIT_ENV, self.walk)
        else:
            self.here.chdir(self.root)
            later: list = []
            answer = untracked_module._untracked_here(str(self.root), head, str(self.store), self.walk, later)
            for work in later:
                work()
        expected = run(self.root, *LISTING)
        self.answers += 1
        got, want = answer.split("\0"), expected.split("\0")
        assert sorted(got) == sorted(want), (sorted(set(got) - set(want)), sorted(set(want) - set(got)))
        time.sleep(0.02)  # past the file system's clock tick: a change after the listing shows in the times
        return [p for p in want if p]


@pytest.fixture
def quick_racy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust what changed more than 10 ms before a listing (the default window, seconds, would make every
    directory these tests touch racy, and so never trusted)."""
    monkeypatch.setattr(untracked_module, "RACY_NS", 10_000_000)


def files_and_dirs(root: Path) -> tuple[list[Path], list[Path]]:
    files, dirs = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        if ".git" in dirnames:
            dirnames.remove(".git")
        here = Path(dirpath)
        dirs += [here / d for d in dirnames]
        files += [here / f for f in filenames]
    return files, dirs


def change(rng: random.Random, root: Path) -> str:
    """One random change of the working tree, the index or HEAD (or none, where the change chosen cannot be
    made: a file where a directory was to be made, say)."""
    try:
        return _change(rng, root)
    except OSError:
        return "none"


def _change(rng: random.Random, root: Path) -> str:
    files, dirs = files_and_dirs(root)
    places = [root, *[d for d in dirs if not d.is_symlink()]]
    place = rng.choice(places)
    name = rng.choice(NAMES)
    kind = rng.choice(["file", "file", "file", "dir", "rm", "rmdir", "mv", "add", "rm-cached", "commit", "rules",
                       "rules", "exclude", "swap", "link", "branch", "deep", "file", "dir", "mv"])
    if rng.random() < 0.04:
        kind = "nested"
    nested = [d for d in dirs if not d.is_symlink() and (d / ".git").exists()]
    if nested and rng.random() < 0.5:
        shutil.rmtree(rng.choice(nested) / ".git")
        return "unnest"
    target = place / name
    if kind == "file" and not target.is_dir():
        target.write_text(f"{rng.random()}\n")
    elif kind == "dir":
        made = target / rng.choice(NAMES)
        if not target.exists() or target.is_dir():
            made.parent.mkdir(parents=True, exist_ok=True)
            if not made.is_dir():
                made.write_text("x\n")
    elif kind == "deep":
        made = place / "deep" / rng.choice(NAMES) / "z"
        if all(not p.exists() or p.is_dir() for p in made.parents if root in p.parents):
            made.parent.mkdir(parents=True, exist_ok=True)
            if not made.is_dir():
                made.write_text("z\n")
    elif kind == "rm" and files:
        victim = rng.choice(files)
        if victim.name != ".gitignore" or rng.random() < 0.3:
            victim.unlink()
    elif kind == "rmdir" and dirs:
        victim = rng.choice(dirs)
        if victim.is_symlink():
            victim.unlink()
        else:
            shutil.rmtree(victim)
    elif kind == "mv" and (files or dirs):
        source = rng.choice(files + dirs)
        if not target.exists() and source not in target.parents and source != target:
            source.rename(target)
    elif kind == "add":
        listed = [p for p in run(root, *LISTING).split("\0") if p and not p.endswith("/")]
        if listed:
            git(root, "add", "--", rng.choice(listed))
    elif kind == "rm-cached":
        tracked = [p for p in run(root, "ls-files", "-z").split("\0") if p and not p.endswith(".gitignore")]
        if tracked:
            git(root, "rm", "-q", "--cached", "--", rng.choice(tracked))
    elif kind == "commit":
        git(root, "commit", "-qam", "change", "--allow-empty")
    elif kind == "rules":
        rules = place / ".gitignore"
        if rng.random() < 0.2 and rules.is_file():
            rules.unlink()
        elif not rules.is_dir():
            with rules.open("a") as handle:
                handle.write(rng.choice(RULES) + "\n")
    elif kind == "exclude":
        with (root / ".git" / "info" / "exclude").open("a") as handle:
            handle.write(rng.choice(RULES) + "\n")
    elif kind == "swap" and files:
        victim = rng.choice(files)
        victim.unlink()
        victim.mkdir()
        (victim / "inside").write_text("i\n")
    elif kind == "link" and not target.exists() and not target.is_symlink():
        target.symlink_to(rng.choice(places))
    elif kind == "nested" and not target.exists():
        target.mkdir()
        git(target, "init", "-q")
        (target / "inner").write_text("i\n")
    elif kind == "branch":
        git(root, "checkout", "-q", "-B", f"b{rng.randrange(3)}")
    return kind


def seed_repo(make_repo, rng: random.Random) -> Path:  # type: ignore[no-untyped-def]
    files: dict[str, str] = {".gitignore": "*.log\nbuild/\n"}
    for _ in range(25):
        depth = rng.randrange(1, 4)
        rel = "/".join(rng.choice(["pkg", "lib", "sub1", "docs", "t"]) for _ in range(depth))
        files[f"{rel}/{rng.choice(NAMES[5:])}"] = "v\n"
    files = {p: c for p, c in files.items() if not any(p.startswith(q + "/") for q in files)}
    root = make_repo(files)
    for rel in list(files)[:5]:
        (root / rel).with_name("untracked.txt").write_text("u\n")
    (root / "build").mkdir()
    (root / "build" / "out.o").write_text("o\n")
    return root


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("apart", [False, True], ids=["in the gate", "in a process of its own"])
def test_snapshot_answers_as_git_walks_through_random_changes(seed, apart, make_repo, tmp_path, quick_racy,
                                                              monkeypatch) -> None:
    rng = random.Random(seed)
    root = seed_repo(make_repo, rng)
    lister = Lister(root, tmp_path / "cache", monkeypatch if apart else None)
    lister.check()
    kinds = []
    for _ in range(45):
        kinds.append(change(rng, root))
        if rng.random() < 0.5:
            time.sleep(0.02)  # the change not too recent to trust either: the index file, say, is compared by stamp
        lister.check()
    # the snapshot answered most listings itself: these repositories are no test of git's walk alone
    assert lister.walks < lister.answers / 2, (lister.walks, kinds)


def test_an_unchanged_tree_is_answered_without_git_walking(make_repo, tmp_path, quick_racy) -> None:
    root = make_repo({"a/b/c.py": "x\n", "d/e.py": "y\n", ".gitignore": "*.log\n"})
    (root / "a" / "new.py").write_text("n\n")
    lister = Lister(root, tmp_path / "cache")
    assert lister.check() == ["a/new.py"]
    assert lister.walks == 1
    assert lister.check() == ["a/new.py"]
    (root / "d" / "more.py").write_text("m\n")
    (root / "d" / "skip.log").write_text("m\n")
    assert lister.check() == ["a/new.py", "d/more.py"]
    assert lister.walks == 1


def test_a_listing_that_learns_nothing_new_writes_no_snapshot(make_repo, tmp_path, quick_racy) -> None:
    root = make_repo({"a/b/c.py": "x\n", "d/e.py": "y\n"})
    (root / "a" / "new.py").write_text("n\n")
    lister = Lister(root, tmp_path / "cache")
    lister.check()
    lister.check()  # the first snapshot's directories were too recent to trust: this one trusts them
    kept = untracked_module._snapshot_path(tmp_path / "cache", root)
    written = kept.stat()
    assert lister.check() == ["a/new.py"]
    assert (kept.stat().st_ino, kept.stat().st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    (root / "d" / "more.py").write_text("m\n")
    assert lister.check() == ["a/new.py", "d/more.py"]
    assert kept.stat().st_ino != written.st_ino
    assert lister.walks == 1


@pytest.mark.parametrize("apart", [False, True], ids=["in the gate", "in a process of its own"])
def test_changes_among_thousands_of_directories_are_each_found(apart, make_repo, tmp_path, quick_racy,
                                                                monkeypatch) -> None:
    """The stamps are compared a block at a time: a change anywhere in any block, the first directory and the
    last among them, is found, and a directory gone is no change to read."""
    names = [f"p{n // 100:02d}/d{n:04d}" for n in range(1500)]
    root = make_repo({f"{name}/f.py": "x\n" for name in names})
    lister = Lister(root, tmp_path / "cache", monkeypatch if apart else None)
    lister.check()
    lister.check()
    made = []
    for name in (names[0], names[511], names[512], names[1023], names[1499]):
        (root / name / "new.py").write_text("n\n")
        made.append(f"{name}/new.py")
    shutil.rmtree(root / names[700])
    assert lister.check() == sorted(made)
    (root / "p03" / "new").mkdir()
    (root / "p03" / "new" / "deep.py").write_text("d\n")
    assert lister.check() == sorted([*made, "p03/new/deep.py"])
    assert lister.walks == 1


def test_a_path_removed_from_the_index_is_untracked_though_no_directory_changed(make_repo, tmp_path,
                                                                                   quick_racy) -> None:
    root = make_repo({"a/b/c.py": "x\n", "a/keep.py": "k\n"})
    lister = Lister(root, tmp_path / "cache")
    assert lister.check() == []
    git(root, "rm", "-q", "--cached", "a/b/c.py")
    assert lister.check() == ["a/b/c.py"]
    git(root, "add", "a/b/c.py")
    assert lister.check() == []
    git(root, "rm", "-q", "--cached", "a/b/c.py")
    git(root, "commit", "-qm", "gone from HEAD")
    assert lister.check() == ["a/b/c.py"]
    assert lister.walks == 1


def test_changed_ignore_rules_are_obeyed(make_repo, tmp_path, quick_racy) -> None:
    root = make_repo({"a/b/c.py": "x\n", "a/.gitignore": "*.tmp\n"})
    (root / "a" / "b" / "t.tmp").write_text("t\n")
    (root / "a" / "b" / "u.py").write_text("u\n")
    (root / "top.tmp").write_text("t\n")
    lister = Lister(root, tmp_path / "cache")
    assert lister.check() == ["a/b/u.py", "top.tmp"]
    with (root / "a" / ".gitignore").open("w") as handle:  # the same directory entry, new content
        handle.write("*.py\n")
    assert lister.check() == ["a/b/t.tmp", "top.tmp"]
    assert lister.walks == 1  # a/ and all below it read again, not the whole tree
    (root / "a" / ".gitignore").unlink()
    assert lister.check() == ["a/b/t.tmp", "a/b/u.py", "top.tmp"]
    (root / "a" / "b" / ".gitignore").write_text("u.py\n")
    assert lister.check() == ["a/b/.gitignore", "a/b/t.tmp", "top.tmp"]
    assert lister.walks == 1
    (root / ".git" / "info" / "exclude").write_text("*.tmp\n")
    assert lister.check() == ["a/b/.gitignore"]
    (root / ".gitignore").write_text(".gitignore\n")
    assert lister.check() == []
    assert lister.walks == 3


def test_a_nested_repository_is_always_walked_by_git(make_repo, tmp_path, quick_racy) -> None:
    root = make_repo({"a/c.py": "x\n"})
    (root / "inner").mkdir()
    git(root / "inner", "init", "-q")
    lister = Lister(root, tmp_path / "cache")
    assert lister.check() == ["inner/"]
    assert lister.check() == ["inner/"]
    assert lister.walks == 2
    shutil.rmtree(root / "inner" / ".git")
    (root / "inner" / "f.py").write_text("f\n")
    assert lister.check() == ["inner/f.py"]
    (root / "inner" / "g.py").write_text("g\n")
    assert lister.check() == ["inner/f.py", "inner/g.py"]
    assert lister.walks == 3
    git(root / "inner", "init", "-q")  # in a directory the snapshot holds
    assert lister.check() == ["inner/"]


def test_an_ignored_directory_is_not_read(make_repo, tmp_path, quick_racy, monkeypatch) -> None:
    root = make_repo({"a/c.py": "x\n", ".gitignore": "node_modules/\n"})
    (root / "node_modules" / "dep").mkdir(parents=True)
    lister = Lister(root, tmp_path / "cache")
    assert lister.check() == []
    read: list[str] = []
    scandir = os.scandir
    monkeypatch.setattr(untracked_module.os, "scandir", lambda path: read.append(os.fsdecode(path)) or scandir(path))
    (root / "node_modules" / "dep" / "more").mkdir()
    (root / "node_modules" / "x.js").write_text("x\n")
    assert lister.check() == []
    assert not [p for p in read if "node_modules" in p]
    assert lister.walks == 1


def test_a_directory_changed_too_close_to_the_snapshot_is_read_again(make_repo, tmp_path) -> None:
    # the default window: every directory these tests made is too recent to trust, whatever its times say
    root = make_repo({"a/c.py": "x\n"})
    lister = Lister(root, tmp_path / "cache")
    lister.check()
    with untracked_module._snapshot_path(tmp_path / "cache", root).open("rb") as handle:
        snapshot = marshal.load(handle)
    assert snapshot["dirs"] == ["", "a"]
    assert snapshot["stamps"] == untracked_module._RACY * 2
    lister.check()
    assert lister.walks == 2  # git's info/exclude is as new: nothing the snapshot holds is trusted


def test_a_broken_snapshot_costs_a_walk_not_an_answer(make_repo, tmp_path, quick_racy) -> None:
    root = make_repo({"a/c.py": "x\n"})
    (root / "u.py").write_text("u\n")
    lister = Lister(root, tmp_path / "cache")
    lister.check()
    for path in (tmp_path / "cache" / "worktrees").iterdir():
        path.write_bytes(b"\x00garbage")
    assert lister.check() == ["u.py"]
    assert lister.walks == 2


def test_without_a_store_git_walks(make_repo) -> None:
    root = make_repo({"a/c.py": "x\n"})
    (root / "u.py").write_text("u\n")
    assert untracked(root, git(root, "rev-parse", "HEAD"), None, GIT_ENV, lambda: "asked\0") == "asked\0"


def test_the_listing_apart_answers_as_git_and_leaves_the_snapshot(make_repo, tmp_path, quick_racy) -> None:
    root = make_repo({"a/c.py": "x\n", ".gitignore": "*.log\n"})
    (root / "a" / "u.py").write_text("u\n")
    (root / "a" / "v.log").write_text("v\n")
    lister = Lister(root, tmp_path / "cache")
    head = git(root, "rev-parse", "HEAD")
    assert untracked_apart(root, head, tmp_path / "cache", GIT_ENV, lambda: pytest.fail("walked here")) == "a/u.py\0"
    kept = untracked_module._snapshot_path(tmp_path / "cache", root)
    deadline = time.monotonic() + 60
    while not kept.exists():  # the process answers first, then writes its snapshot
        assert time.monotonic() < deadline, "no snapshot written"
        time.sleep(0.01)
    with kept.open("rb") as handle:
        snapshot = marshal.load(handle)
    assert (snapshot["dirs"], snapshot["untracked"]) == (["", "a"], ["a/u.py"])
    assert lister.check() == ["a/u.py"]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads a process's priority from /proc")
def test_the_listing_apart_runs_below_the_gates_priority(make_repo, tmp_path, monkeypatch) -> None:
    """The tools a gate waits for share the machine with the listing: it, and the git it runs, yield to them."""
    root = make_repo({"a/c.py": "x\n"})
    (root / "a" / "u.py").write_text("u\n")
    head = git(root, "rev-parse", "HEAD")
    seen = tmp_path / "niceness"
    wrapper = tmp_path / "bin" / "git"
    wrapper.parent.mkdir()
    real = shutil.which("git")
    wrapper.write_text(f"#!/bin/sh\ncut -d' ' -f19 /proc/$$/stat >> '{seen}'\nexec '{real}' \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    assert untracked_apart(root, head, tmp_path / "cache", GIT_ENV, lambda: pytest.fail("walked here")) == "a/u.py\0"
    levels = {int(level) for level in seen.read_text().split()}
    assert levels == {min(os.nice(0) + untracked_module._NICE, 19)}


def test_a_listing_apart_that_fails_is_walked_here(tmp_path) -> None:
    (tmp_path / "no repository").mkdir()
    assert untracked_apart(tmp_path / "no repository", "0" * 40, tmp_path / "cache", GIT_ENV,
                           lambda: "walked\0") == "walked\0"


def test_a_directory_back_between_its_stat_and_its_parents_read_is_read_whole(make_repo, tmp_path, quick_racy,
                                                                             monkeypatch) -> None:
    root = make_repo({"d/c.py": "x\n"})
    (root / "d" / "x").mkdir()
    (root / "d" / "x" / "old.py").write_text("o\n")
    lister = Lister(root, tmp_path / "cache")
    assert lister.check() == ["d/x/old.py"]
    shutil.rmtree(root / "d" / "x")
    (root / "d" / "x").mkdir()
    (root / "d" / "x" / "new.py").write_text("n\n")
    real = os.lstat
    missing = [str(root / "d" / "x")]

    def lstat(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.fspath(path) in missing:
            missing.clear()  # gone while the directories were statted, back when its parent is read
            raise FileNotFoundError(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(untracked_module.os, "lstat", lstat)
    assert lister.check() == ["d/x/new.py"]
    assert not missing
    assert lister.check() == ["d/x/new.py"]
    (root / "d" / "x" / "more.py").write_text("m\n")
    assert lister.check() == ["d/x/more.py", "d/x/new.py"]
    assert lister.walks == 1


def test_a_directory_changed_close_to_an_update_is_not_trusted_either(make_repo, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(untracked_module, "RACY_NS", 60_000_000_000)  # every directory here changed within it
    monkeypatch.setattr(untracked_module._Lister, "key", lambda self, started: b"the same rules")  # (so did git's)
    root = make_repo({"a/c.py": "x\n", "b/d.py": "y\n"})
    lister = Lister(root, tmp_path / "cache")
    lister.check()
    (root / "a" / "new.py").write_text("n\n")
    assert lister.check() == ["a/new.py"]  # the same directories: the snapshot's stamps written over in place
    with untracked_module._snapshot_path(tmp_path / "cache", root).open("rb") as handle:
        snapshot = marshal.load(handle)
    assert snapshot["dirs"] == ["", "a", "b"]
    assert snapshot["stamps"] == untracked_module._RACY * 3


def test_the_index_is_compared_only_when_its_file_changed(make_repo, tmp_path, quick_racy, monkeypatch) -> None:
    root = make_repo({"a/c.py": "x\n", "a/d.py": "y\n"})
    lister = Lister(root, tmp_path / "cache")
    compared: list[str] = []
    real = untracked_module._Lister.staged
    monkeypatch.setattr(untracked_module._Lister, "staged",
                        lambda self, commit: compared.append(commit) or real(self, commit))
    assert lister.check() == []
    (root / "a" / "new.py").write_text("n\n")
    assert lister.check() == ["a/new.py"]
    assert len(compared) == 1  # the snapshot's own; the index file is the same since
    git(root, "rm", "-q", "--cached", "a/d.py")
    time.sleep(0.02)  # an index file changed since, and not too recently to be told from a later change
    assert lister.check() == ["a/d.py", "a/new.py"]
    assert len(compared) == 2


def test_a_command_runs_without_subprocess_as_subprocess_runs_it(tmp_path) -> None:
    """The listing's process runs git by posix_spawn: the exit code, standard output whole, standard input fed
    while the output is read (both far beyond a pipe's buffer), standard error dropped."""
    env = dict(os.environ)
    data = os.urandom(3 << 20)
    assert untracked_module._run(["cat"], env, data) == (0, data)
    assert untracked_module._run(["sh", "-c", "echo out; echo err >&2; exit 3"], env) == (3, b"out\n")
    assert untracked_module._run(["sh", "-c", "read line || echo none"], env) == (0, b"none\n")  # stdin: empty
    assert untracked_module._run(["sh", "-c", "head -c 5"], env, data)[1] == data[:5]  # the rest is not read
    with pytest.raises(FileNotFoundError):
        untracked_module._run(["truthplane-no-such-command"], env)
    marker = tmp_path / "still running"
    with pytest.raises(TimeoutError):
        untracked_module._run(["sh", "-c", f"sleep 2; touch '{marker}'"], env, timeout=0.2)
    time.sleep(2.5)
    assert not marker.exists()  # killed when its time was up


def test_the_listing_process_imports_neither_subprocess_nor_threading(make_repo, tmp_path, quick_racy) -> None:
    """What the listing's own process imports is a good part of its CPU, beside the tools on the same cores."""
    import subprocess
    import sys

    root = make_repo({"a/c.py": "x\n"})
    (root / "a" / "u.py").write_text("u\n")
    for _ in range(2):  # first with no snapshot, then from it
        proc = subprocess.run([sys.executable, "-I", "-S", "-X", "importtime", untracked_module.__file__, str(root),
                               "-", str(tmp_path / "cache")], capture_output=True, check=True)
        assert proc.stdout.endswith(b"\0a/u.py\0")
        imported = {line.rpartition("|")[2].strip() for line in proc.stderr.decode().splitlines()}
        assert imported & {"subprocess", "threading", "re", "collections", "typing", "hashlib"} == set()
        time.sleep(0.02)
