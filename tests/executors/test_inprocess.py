"""The in-process executor: a handler's answers are the jobs' results, its failures the jobs' failures."""

from __future__ import annotations

import asyncio

import pytest

from truthplane.errors import ExecutorError
from truthplane.executors.inprocess import InProcessExecutor
from truthplane.executors.jobs import Job, JobResult
from truthplane.registry import names


def jobs(*labels: str) -> list[Job]:
    return [Job(command=["echo", label], label=label) for label in labels]


def test_answers_come_back_in_the_order_of_the_jobs_from_a_plain_or_an_async_handler() -> None:
    def plain(job: Job) -> JobResult:
        return JobResult(returncode=0, stdout=job.label, executor="inprocess")

    async def later(job: Job) -> JobResult:
        await asyncio.sleep(0.01 if job.label == "a" else 0)  # the first finishes last
        return JobResult(returncode=len(job.label), stdout=job.label, executor="inprocess")

    for handler in (plain, later):
        executor = InProcessExecutor(handler)
        results = asyncio.run(executor.run_many(jobs("a", "bb", "ccc")))
        assert [r.stdout for r in results] == ["a", "bb", "ccc"]
        assert [j.label for j in executor.jobs] == ["a", "bb", "ccc"]


def test_at_most_concurrency_jobs_are_answered_at_once() -> None:
    running, most = 0, 0

    async def handler(job: Job) -> JobResult:
        nonlocal running, most
        running += 1
        most = max(most, running)
        for _ in range(5):
            await asyncio.sleep(0)
        running -= 1
        return JobResult(returncode=0, executor="inprocess")

    asyncio.run(InProcessExecutor(handler, {"concurrency": 2}).run_many(jobs(*"abcdef")))
    assert most == 2


def test_a_failing_handler_is_a_job_that_could_not_run_in_one_line() -> None:
    def handler(job: Job) -> JobResult:
        raise RuntimeError("boom\nsecond line")

    with pytest.raises(ExecutorError) as caught:
        asyncio.run(InProcessExecutor(handler).run(jobs("build")[0]))
    assert str(caught.value) == "inprocess: the handler failed on build: RuntimeError: boom"

    with pytest.raises(ExecutorError, match="returned dict, not a JobResult"):
        asyncio.run(InProcessExecutor(lambda job: {"returncode": 0}).run(jobs("x")[0]))


def test_it_is_no_executor_a_user_can_name() -> None:
    assert "inprocess" not in names("executors")
    assert InProcessExecutor.available().reason
