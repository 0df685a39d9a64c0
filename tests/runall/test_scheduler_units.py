"""run-all's scheduler with its jobs answered in-process (InProcessExecutor): what the executor reports of a
command task (its exit, the files it changed) and of its acceptance tests decides what is committed. Real git
and real ruff; no sandbox, because what is tested is the scheduling and landing, not where the jobs ran
(tests/runall/test_scheduler.py runs run-all end to end on the real local executor)."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import pytest

from tests.conftest import git
from truthplane.config import load_config
from truthplane.executors.inprocess import InProcessExecutor
from truthplane.executors.jobs import Job, JobResult
from truthplane.runall.scheduler import RunOptions, RunResult, Scheduler
from truthplane.runall.tasks import load_tasks

pytestmark = pytest.mark.tool("ruff")

TASKS = """
[[tasks]]
id = "first"
kind = "command"
command = "write first.txt"
files = ["first.txt"]
acceptance = { test_cmd = "check first" }

[[tasks]]
id = "second"
kind = "command"
command = "write second.txt"
files = ["second.txt"]
depends_on = ["first"]
acceptance = { test_cmd = "check second" }

[[tasks]]
id = "rejected"
kind = "command"
command = "write third.txt"
files = ["third.txt"]
acceptance = { test_cmd = "check rejected" }

[[tasks]]
id = "slow"
kind = "command"
command = "write slow.txt"
files = ["slow.txt"]
"""


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))


class Answers:
    """Answers a command task as its capture would (the files it wrote, after a marker line), an acceptance test
    by its name; the slow task times out. Remembers the order in which it saw the jobs."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, job: Job) -> JobResult:
        self.seen.append(job.label)
        command = job.env.get("TRUTHPLANE_COMMAND")
        if command is not None:
            if command == "write slow.txt":
                return JobResult(returncode=None, timed_out=True, executor="inprocess")
            name = command.split()[1]
            changed = {"changed": {name: base64.b64encode(f"{name}\n".encode()).decode()}, "deleted": []}
            stdout = f"wrote {name}\n\n{job.env['TRUTHPLANE_MARKER']}\n{json.dumps(changed)}"
            return JobResult(returncode=0, stdout=stdout, executor="inprocess")
        test = job.command[-1]
        return JobResult(returncode=1 if test == "check rejected" else 0, executor="inprocess")


def run_all(root: Path, answers: Answers) -> RunResult:
    options = RunOptions(root=root, tasks=load_tasks(root), config=load_config(root), workers=2,
                         handle_signals=False)
    return asyncio.run(Scheduler(options, executor=InProcessExecutor(answers)).run())


def test_what_the_executor_reports_decides_what_is_committed(make_repo) -> None:  # noqa: ANN001
    root = make_repo({"app.py": "x = 1\n", "truthplane.toml": 'verifiers = ["ruff"]\n', "tasks.toml": TASKS})
    answers = Answers()
    result = run_all(root, answers)
    status = {task["task_id"]: task["status"] for task in result.record["tasks"]}
    assert status == {"first": "SUCCESS", "second": "SUCCESS", "rejected": "REJECTED", "slow": "UNVERIFIED"}, status
    # the approved tasks' files are committed with what the command wrote, in the order of their dependencies
    assert (root / "first.txt").read_text() == "first.txt\n" and (root / "second.txt").read_text() == "second.txt\n"
    assert not (root / "third.txt").exists() and not (root / "slow.txt").exists()
    subjects = git(root, "log", "--format=%s", "-3").splitlines()
    assert [s for s in subjects if "second" in s or "first" in s] == [subjects[0], subjects[1]]
    assert "second" in subjects[0] and "first" in subjects[1]
    assert answers.seen.index("second: command") > answers.seen.index("first: tests")
    slow = next(task for task in result.record["tasks"] if task["task_id"] == "slow")
    assert "the command timed out" in json.dumps(slow)
    assert result.record["honest_metrics"]["git_commits"] == 2

