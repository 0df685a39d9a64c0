"""The Executor interface: run a Job somewhere isolated, get a JobResult back.

Backends translate their own exceptions (docker, botocore, asyncssh) into ExecutorError inside
their own module; nothing else ever sees them.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from truthplane.errors import ExecutorError
from truthplane.executors.jobs import Job, JobResult
from truthplane.models import ToolInfo

__all__ = ["Executor", "ExecutorError", "Job", "JobResult", "TRUNCATION_MARKER", "cap_output"]

TRUNCATION_MARKER = "\n[truthplane: output truncated, {dropped} more bytes not shown]\n"


def cap_output(data: bytes, limit: int) -> tuple[str, bool]:
    """Decode and cap a stream, with a visible marker saying how much was dropped."""
    if len(data) <= limit:
        return data.decode("utf-8", errors="replace"), False
    kept = data[:limit].decode("utf-8", errors="replace")
    return kept + TRUNCATION_MARKER.format(dropped=len(data) - limit), True


class Executor(ABC):
    """A place to run jobs. Subclasses are named `<Backend>Executor`, one per module."""

    name: ClassVar[str]
    # runs jobs on this host, so a Job's interpreter (a path here) is the one `python` means in it
    runs_host_interpreter: ClassVar[bool] = False

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = options or {}

    @property
    def concurrency(self) -> int:
        return int(self.options.get("concurrency", 2))

    @classmethod
    @abstractmethod
    def available(cls, options: dict[str, Any] | None = None) -> ToolInfo:
        """Usable here? `reason` says why not (or, for an unsandboxed local run, says so)."""

    @abstractmethod
    async def run(self, job: Job) -> JobResult:
        """Run one job. Limits are enforced; a job that breaks them is reported, not raised."""

    async def run_many(self, jobs: list[Job]) -> list[JobResult]:
        """Run jobs concurrently, at most `concurrency` at a time; results in the order of jobs."""
        gate = asyncio.Semaphore(max(1, self.concurrency))

        async def one(job: Job) -> JobResult:
            async with gate:
                return await self.run(job)

        return list(await asyncio.gather(*(one(job) for job in jobs)))

    async def close(self) -> None:
        """Release connections, pools, temporary images."""

    async def __aenter__(self) -> Executor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
