from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import git
from truthplane.errors import GitError
from truthplane.git.repo import Repo
from truthplane.git.run import gate_calls_ahead


@pytest.fixture
def git_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A log of every git call's arguments, one call a line (a `git` first on PATH that logs and runs git)."""
    log = tmp_path / "git-calls"
    wrapper = tmp_path / "bin" / "git"
    wrapper.parent.mkdir()
    wrapper.write_text(f"#!/bin/sh\necho \"$*\" >> '{log}'\nexec '{shutil.which('git')}' \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}")
    return log


def _branch(make_repo) -> Path:
    root = make_repo({"pkg/a.py": "x = 1\n"})
    git(root, "checkout", "-qb", "feature")
    (root / "pkg" / "a.py").write_text("x = 2\n")
    git(root, "commit", "-qam", "feature")
    git(root, "checkout", "-q", "main")
    (root / "pkg" / "b.py").write_text("y = 1\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "main moves on")
    git(root, "checkout", "-q", "feature")
    return root


def _inside(path: Path, base: str, ask):
    """What `ask` answers inside a gate_calls_ahead block, once the calls started ahead are over."""
    over = threading.Event()

    def on_listed(listing) -> None:
        if listing is None or listing[2] is not None:
            over.set()

    with gate_calls_ahead(path, base, None, on_listed):
        assert over.wait(30)
        return ask()


def test_the_top_directory_both_commits_and_their_merge_base_take_one_round_of_git(make_repo, git_calls) -> None:
    """A gate waits for its refs before any tool starts: two git calls side by side, not four in a row, and
    the gate's own calls take their answers."""
    root = _branch(make_repo)
    truth = (str(root), git(root, "rev-parse", "main"), git(root, "rev-parse", "HEAD"),
             git(root, "merge-base", "HEAD", "main"))
    git_calls.unlink()

    def ask() -> tuple[str, str, str | None, str]:
        repo = Repo.require(root / "pkg")
        base, head = repo.resolve("main"), repo.head()
        assert head is not None
        return str(repo.root), base, head, repo.merge_base(head, base)

    assert _inside(root / "pkg", "main", ask) == truth
    calls = git_calls.read_text().splitlines()
    assert "rev-parse --show-toplevel main^{commit} HEAD^{commit}" in calls
    assert "merge-base HEAD main" in calls
    assert not [call for call in calls if call.startswith(("rev-parse --verify", "merge-base " + truth[2]))]
    assert "rev-parse --show-toplevel" not in calls


@pytest.mark.parametrize("base", ["nothing-by-that-name", "main~1..HEAD", "-q"])
def test_a_base_that_is_no_commit_is_reported_as_without_the_calls_ahead(make_repo, base: str) -> None:
    root = _branch(make_repo)
    with pytest.raises(GitError) as alone:
        Repo.require(root).resolve(base)
    with pytest.raises(GitError) as ahead:
        _inside(root, base, lambda: Repo.require(root).resolve(base))
    assert str(ahead.value) == str(alone.value)


def test_a_history_the_base_does_not_share_is_reported_as_without_the_calls_ahead(make_repo) -> None:
    root = _branch(make_repo)
    git(root, "checkout", "-q", "--orphan", "elsewhere")
    git(root, "commit", "-qm", "unrelated")

    def ask() -> str:
        repo = Repo.require(root)
        head = repo.head()
        assert head is not None
        return repo.merge_base(head, repo.resolve("main"))

    with pytest.raises(GitError, match="share no history"):
        _inside(root, "main", ask)


@pytest.mark.parametrize("committed", [True, False])
def test_a_small_trees_untracked_files_are_listed_here_once_the_tools_started(make_repo, tmp_path: Path,
                                                                             monkeypatch, committed: bool) -> None:
    """A small tree's untracked files are listed in the gate's own process, whose interpreter lock starting the
    tools needs: the listing waits for the first start on the tracked changes, and its answer is the same."""
    import truthplane.git.run as run_module
    from truthplane.git.run import GIT_ENV, LISTING, run
    from truthplane.git.untracked import untracked

    root = _branch(make_repo)
    if not committed:
        (root / "pkg" / "a.py").write_text("x = 3\n")  # against HEAD itself: a change of the working tree alone
    (root / "pkg" / "new.py").write_text("z = 1\n")
    store = tmp_path / "cache"
    head = git(root, "rev-parse", "HEAD")
    untracked(root, head, store, GIT_ENV, lambda: run(root, *LISTING))  # a snapshot: listed here from now on
    events: list[str] = []
    listings: list[tuple] = []
    real = run_module.untracked_apart

    def listing_apart(*args, **kwargs) -> str:
        events.append("listing")
        return real(*args, **kwargs)

    monkeypatch.setattr(run_module, "untracked_apart", listing_apart)

    def on_listed(listing) -> None:
        events.append("launch")
        listings.append(listing)

    with gate_calls_ahead(root, "main" if committed else "HEAD", None, on_listed, store=store):
        pass
    assert events[0] == "launch" and "listing" in events
    assert listings[-1][2] == "pkg/new.py\0"  # the last call knows the untracked files
    assert listings[0][2] is None  # the first, only what is committed or tracked
    assert (listings[0][3] is not None) == committed and (listings[-1][1] != "") == (not committed)


def test_a_large_trees_untracked_files_are_listed_at_once(make_repo, tmp_path: Path, monkeypatch) -> None:
    """A tree listed in a process of its own (no snapshot yet, or a large one) does not wait for the tools."""
    import truthplane.git.run as run_module

    root = _branch(make_repo)
    (root / "pkg" / "a.py").write_text("x = 3\n")
    events: list[str] = []
    real = run_module.untracked_apart
    monkeypatch.setattr(run_module, "untracked_apart",
                        lambda *args, **kwargs: events.append("listing") or real(*args, **kwargs))
    started = threading.Event()

    def on_listed(listing) -> None:
        if not started.is_set():
            started.set()
            deadline = time.monotonic() + 10
            while "listing" not in events and time.monotonic() < deadline:
                time.sleep(0.01)  # the listing starts meanwhile
        events.append("launch")

    with gate_calls_ahead(root, "main", None, on_listed, store=tmp_path / "cache"):
        pass
    assert events[0] == "listing"
