"""The command's first step (truthplane/cli/start.py): a gate of the working tree starts listing its untracked
files before the command line's imports, and only when it reads every argument for sure."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.conftest import git
from truthplane.cli.start import gate_listing
from truthplane.git import untracked as untracked_module
from truthplane.git.run import GIT_ENV


@pytest.mark.parametrize("args, expected", [
    ([], (".", None)),
    (["repo"], ("repo", None)),
    (["--base", "main", "repo", "--cache-dir", "/c"], ("repo", "/c")),
    (["--base=main", "--cache-dir=/c", "-f", "json", "-o", "out.json", "--fail-on", "high"], (".", "/c")),
    (["-v", "ruff", "--verifier", "bandit", "--no-fetch", "--config", "t.toml", "repo"], ("repo", None)),
    (["--head", "HEAD~1"], None),  # a gate of a commit lists no working tree
    (["--no-cache"], None),
    (["--help"], None),
    (["--unknown", "x"], None),
    (["a", "b"], None),
    (["--base"], None),
    (["-ojson"], None),
])
def test_a_gate_is_read_for_its_listing_only_when_every_argument_is_known(args, expected) -> None:
    assert gate_listing(args) == expected


def test_a_listing_started_early_answers_the_gate_of_its_repository_only(make_repo, tmp_path) -> None:
    root = make_repo({"a/c.py": "x\n"})
    (root / "a" / "u.py").write_text("u\n")
    other = make_repo({"o.py": "o\n"}, name="other")
    store = tmp_path / "cache"
    store.mkdir()
    head = git(root, "rev-parse", "HEAD")
    untracked_module.start_early(root / "a", store, GIT_ENV)
    assert untracked_module.untracked_apart(root, head, store, GIT_ENV, lambda: pytest.fail("walked")) == "a/u.py\0"
    assert not untracked_module._early
    untracked_module.start_early(other, store, GIT_ENV)  # another repository's: not this gate's answer
    assert untracked_module.untracked_apart(root, head, store, GIT_ENV, lambda: "walked\0") in ("walked\0", "a/u.py\0")
    assert not untracked_module._early


def test_the_command_gates_an_untracked_file_it_started_listing_early(make_repo, tmp_path) -> None:
    root = make_repo({"a.py": "x = 1\n"})
    git(root, "checkout", "-qb", "feature")
    cache = tmp_path / "cache"
    cache.mkdir()
    (root / "new.py").write_text("import subprocess\nsubprocess.call('ls', shell=True)\n")
    proc = subprocess.run([sys.executable, "-m", "truthplane", "gate", str(root), "--base", "main", "-v", "bandit",
                           "--cache-dir", str(cache), "--format", "json"], capture_output=True, text=True)
    assert proc.returncode in (1, 3), proc.stderr
    assert "new.py" in proc.stdout
    deadline = time.monotonic() + 60
    while not list(cache.glob("worktrees/*.snapshot")):  # the listing's process answers first, then writes it
        assert time.monotonic() < deadline, "no snapshot written"
        time.sleep(0.01)
