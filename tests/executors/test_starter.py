"""Starters: job processes made ahead of time inside their job cgroup (`executors/_starter.py`)."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from truthplane.executors._cgroup import _parents
from truthplane.executors.local import LocalExecutor
from truthplane.executors.jobs import Job, Limits

pytestmark = pytest.mark.tool("bwrap")
ROOT = Path(__file__).resolve().parents[2]


def job_cgroup_dirs() -> set[Path]:
    """The job cgroups this test process made (their names carry its pid), not every truthplane's here."""
    return {p for parent in _parents() for p in parent.glob(f"truthplane-*-p{os.getpid()}.*") if p.is_dir()}


@pytest.fixture
def another_truthplane() -> Iterator[Callable[[], None]]:
    """Starts another truthplane on the same machine, which holds a job cgroup until the test ends."""
    code = (
        "import sys; from truthplane.executors._cgroup import JobCgroup; from truthplane.executors.jobs import Limits; "
        "g = JobCgroup.create(Limits()); print('ready', flush=True); sys.stdin.read(); g.remove()"
    )
    started: list[subprocess.Popen[str]] = []

    def start() -> None:
        proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"

    yield start
    for proc in started:
        proc.communicate("", timeout=30)


# unsandboxed, so /proc/self/cgroup shows the host's view: which cgroup, and the memory limit set on it
REPORT = """
lines = open('/proc/self/cgroup').read().splitlines()
v1 = [l.split(':', 2)[2] for l in lines if l.split(':')[1] == 'memory']
own = v1[0] if v1 else lines[0].split(':', 2)[2]
path = '/sys/fs/cgroup/memory' + own + '/memory.limit_in_bytes' if v1 else '/sys/fs/cgroup' + own + '/memory.max'
print(own, open(path).read().strip())
"""
JOB = Job(command=["python", "-c", REPORT], limits=Limits(memory_mb=256, pids=64))
needs_cgroup = pytest.mark.tool("job-cgroup")


@needs_cgroup
def test_each_job_runs_in_its_own_cgroup_with_its_limits_and_nothing_is_left(
    another_truthplane: Callable[[], None],
) -> None:
    before = job_cgroup_dirs()
    another_truthplane()
    executor = LocalExecutor({"sandbox": False, "warm": 2})

    async def session() -> list[list[str]]:
        results = [await executor.run(JOB) for _ in range(3)]  # the later ones get warm starters
        assert all(r.returncode == 0 and not [n for n in r.notes if "not enforced" in n] for r in results), results
        return [r.stdout.split() for r in results]

    reports = asyncio.run(session())
    assert len({group for group, _ in reports}) == 3 and all("truthplane-" in group for group, _ in reports)
    assert {limit for _, limit in reports} == {str(256 * 1024 * 1024)}
    # the same executor serves a second event loop (idle starters belong to none)
    again = asyncio.run(executor.run(JOB))
    assert again.returncode == 0 and "truthplane-" in again.stdout
    asyncio.run(executor.close())
    assert job_cgroup_dirs() == before


@needs_cgroup
def test_an_executor_never_closed_still_removes_its_starters_when_collected(
    another_truthplane: Callable[[], None],
) -> None:
    before = job_cgroup_dirs()
    another_truthplane()
    executor = LocalExecutor({"warm": 2})
    assert asyncio.run(executor.run(JOB)).returncode == 0
    del executor
    gc.collect()
    assert job_cgroup_dirs() == before


@needs_cgroup
def test_a_job_that_is_not_found_or_reads_stdin_behaves_as_without_starters() -> None:
    async def session() -> tuple:
        async with LocalExecutor({"sandbox": False, "warm": 1}) as executor:
            missing = await executor.run(Job(command=["no-such-command-here"]))
            echoed = await executor.run(Job(command=["cat"], stdin=b"hello\n"))
            silent = await executor.run(Job(command=["cat"]))
        return missing, echoed, silent

    missing, echoed, silent = asyncio.run(session())
    assert missing.returncode == 127 and "command not found: no-such-command-here" in missing.stderr
    assert echoed.stdout == "hello\n" and silent.returncode == 0 and silent.stdout == ""
