"""SIGKILL `truthplane fix --commit` at many points: the user's working tree, index and HEAD are either
untouched or, once the next truthplane command has read the journal, exactly the approved commit.

The kill points are chosen two ways: right before the k-th git command truthplane starts (for every k of
the commit phase and a spread of the earlier ones), and at a random moment after it (between git calls,
e.g. while a file is being written). A `git` wrapper first on PATH counts the calls and fires the kill;
the real git still does all the work.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import git

SOURCE = "import os\nimport sys\n\n\ndef main():\n    return sys.argv\n"
OTHER = "VALUE = 1\n"
CONFIG = 'verifiers = ["ruff"]\n'

WRAPPER = r"""#!/bin/bash
# count this git call; kill truthplane right before (or shortly after) the chosen one
exec 9>>"$TP_DIR/lock"; flock 9
n=$(( $(cat "$TP_DIR/count" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$TP_DIR/count"
echo "$n $*" >> "$TP_DIR/log"
flock -u 9
if [ "$n" = "${TP_KILL_AT:-0}" ]; then
  for _ in $(seq 200); do [ -s "$TP_DIR/pid" ] && break; sleep 0.01; done
  pid=$(cat "$TP_DIR/pid")
  if [ -n "$TP_KILL_DELAY" ]; then
    (sleep "$TP_KILL_DELAY"; kill -9 "$pid") 9>&- &
  else
    kill -9 "$pid"; exit 137
  fi
fi
exec "$TP_REAL_GIT" "$@"
"""

pytestmark = [pytest.mark.tool("ruff"), pytest.mark.tool("bwrap"), pytest.mark.tool("flock")]


def user_state(root: Path) -> tuple[str, str, dict[str, bytes]]:
    """HEAD, the index's entries, and every working-tree file outside .git and what truthplane writes."""
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith((".git/", ".truth-plane-results/", ".sarif-results/")):
            files[rel] = path.read_bytes()
    return git(root, "rev-parse", "HEAD"), git(root, "ls-files", "-s"), files


def run_fix(root: Path, tmp: Path, kill_at: int = 0, delay: str = "") -> subprocess.CompletedProcess[str] | int:
    for name in ("count", "log", "pid"):
        (tmp / name).unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{tmp / 'bin'}:{os.environ['PATH']}", "TP_DIR": str(tmp),
           "TP_REAL_GIT": git_path(), "TP_KILL_AT": str(kill_at), "TP_KILL_DELAY": delay,
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    proc = subprocess.Popen([sys.executable, "-m", "truthplane.cli.main", "fix", "app.py", "--commit"],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    (tmp / "pid.tmp").write_text(str(proc.pid))
    (tmp / "pid.tmp").replace(tmp / "pid")
    out, err = proc.communicate(timeout=300)
    return proc.returncode if proc.returncode < 0 else subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def git_path() -> str:
    import shutil

    found = shutil.which("git")
    assert found
    return found


def recover(root: Path) -> None:
    """The next truthplane command finishes or drops an interrupted commit before anything else."""
    proc = subprocess.run([sys.executable, "-m", "truthplane.cli.main", "scan", "--baseline", "--format", "json"],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture
def crash_repo(make_repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")
    root = make_repo({"app.py": SOURCE, "other.py": OTHER, "truthplane.toml": CONFIG})
    work = tmp_path / "harness"
    (work / "bin").mkdir(parents=True)
    (work / "bin" / "git").write_text(WRAPPER)
    (work / "bin" / "git").chmod(0o755)
    return root, work


def test_sigkill_at_any_point_of_fix_commit_leaves_the_checkout_whole(crash_repo) -> None:
    root, work = crash_repo
    original = user_state(root)
    original_head = original[0]

    # one full run, to learn the approved result and how many git calls a run makes
    done = run_fix(root, work)
    assert not isinstance(done, int) and done.returncode == 0, done
    assert "committed" in done.stdout, (done.stdout, done.stderr, (work / "log").read_text())
    approved_tree = git(root, "rev-parse", "HEAD^{tree}")
    assert git(root, "rev-parse", "HEAD^") == original_head
    approved = user_state(root)
    assert approved[2]["app.py"] != original[2]["app.py"] and approved[2]["other.py"] == original[2]["other.py"]
    calls = (work / "log").read_text().splitlines()
    commit_phase = next(int(line.split()[0]) for line in calls if " commit-tree " in f" {line} ")
    first_write = next(int(line.split()[0]) for line in calls if " read-tree " in f" {line} ")
    total = len(calls)
    assert first_write <= commit_phase <= total

    rng = random.Random(20261123)
    points = [(k, "") for k in range(first_write, total + 1)]
    points += [(k, "") for k in sorted(rng.sample(range(1, first_write), min(8, first_write - 1)))]
    points += [(rng.randint(first_write, total), f"0.00{rng.randint(1, 9)}") for _ in range(8)]

    outcomes = {"untouched": 0, "approved": 0}
    for kill_at, delay in points:
        git(root, "reset", "-q", "--hard", original_head)  # the test's own reset, between trials
        assert user_state(root) == original
        result = run_fix(root, work, kill_at, delay)
        head = git(root, "rev-parse", "HEAD")
        if head == original_head:
            # HEAD never moved: nothing of the user's may have changed, even before any recovery
            assert user_state(root) == original, (kill_at, delay, result)
        recover(root)
        now = user_state(root)
        if now == original:
            outcomes["untouched"] += 1
        else:
            assert git(root, "rev-parse", "HEAD^") == original_head, (kill_at, delay)
            assert git(root, "rev-parse", "HEAD^{tree}") == approved_tree, (kill_at, delay)
            assert now[1:] == approved[1:], (kill_at, delay, result)
            outcomes["approved"] += 1
        assert not (root / ".truth-plane-results" / "pending-commit.json").exists()
        assert not (root / ".git" / "index.lock").exists()
    assert outcomes["untouched"] and outcomes["approved"], outcomes


def test_wrapper_kills_truthplane(crash_repo) -> None:
    """The harness itself works: killing before the first git call gives a SIGKILL exit."""
    root, work = crash_repo
    assert run_fix(root, work, kill_at=1) == -signal.SIGKILL
