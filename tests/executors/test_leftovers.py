"""A run killed with kill -9 leaves its temp dirs and job cgroups; the next run, or `truthplane gc`,
removes them, and never what a live run still uses."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from truthplane.executors._cgroup import _parents
from truthplane.leftovers import owned_prefix

ROOT = Path(__file__).resolve().parents[2]
LEFTOVERS = ROOT / "truthplane" / "leftovers.py"  # standard library only: runs inside a job as it is

# a real run: a local job that is still running when its truthplane is killed
KILLED_RUN = """
import asyncio
from truthplane.executors.local import LocalExecutor
from truthplane.executors.jobs import Job, Limits
job = Job(command=["sh", "-c", "echo up > started; sleep 120"], limits=Limits(timeout_s=300))
asyncio.run(LocalExecutor({"warm": 2}).run(job))
"""


def _env(tmpdir: Path) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": str(ROOT)}


def _cgroups_of(pid: int) -> list[Path]:
    return [p for parent in _parents() for p in parent.glob(f"truthplane-*-p{pid}.*")]


def _kill_mid_job(tmpdir: Path) -> int:
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN], env=_env(tmpdir), cwd=tmpdir.parent)
    try:
        for _ in range(600):  # until the job has started inside its workspace (at most a minute)
            if list(tmpdir.glob(f"truthplane-job-p{proc.pid}.*/started")):
                break
            assert proc.poll() is None, "the run ended before its job started"
            time.sleep(0.1)
        else:
            pytest.fail("the job never started")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return proc.pid


@pytest.mark.tool("bwrap")
@pytest.mark.tool("job-cgroup")
@pytest.mark.parametrize("next_run", [["gc"], ["exec", "--", "true"]], ids=["gc", "next-run"])
def test_what_a_killed_run_left_is_removed_by_the_next(tmp_path: Path, next_run: list[str]) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    dead = _kill_mid_job(tmpdir)
    left = list(tmpdir.glob(f"truthplane-*-p{dead}.*"))
    assert left, "the killed run left no directory: nothing to test"
    assert _cgroups_of(dead), "the killed run left no cgroup: nothing to test"
    # a directory of a run that is still alive (this test's own process) must stay
    alive = tmpdir / f"{owned_prefix('job')}inuse"
    alive.mkdir()
    (tmp_path / "work").mkdir()
    done = subprocess.run([sys.executable, "-m", "truthplane", *next_run], env=_env(tmpdir), cwd=tmp_path / "work",
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not any(path.exists() for path in left)
    assert _cgroups_of(dead) == []
    assert alive.is_dir()
    if next_run == ["gc"]:
        assert f"truthplane-job-p{dead}." in done.stdout


@pytest.mark.tool("bwrap")
def test_truthplane_inside_a_job_leaves_the_job_directory_alone() -> None:
    """Inside a job (another pid namespace) the owner of the job's own directory looks dead: it is not swept."""
    from truthplane.executors.local import LocalExecutor
    from truthplane.executors.jobs import Job

    sweep = "import os, leftovers; leftovers.sweep_tempdirs('/tmp'); print(os.path.exists('kept.txt'))"
    job = Job(command=["python3", "-c", sweep], files={"kept.txt": b"x", "leftovers.py": LEFTOVERS.read_bytes()})
    result = asyncio.run(LocalExecutor().run(job))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True\n"
