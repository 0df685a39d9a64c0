"""An executor that answers jobs in this process, through a function: for tests of what runs jobs (the patch
loop, run-all's scheduler) where a real sandbox adds nothing to what is tested, as httpx's MockTransport serves
tests of what sends requests.

    def handler(job: Job) -> JobResult:
        return JobResult(returncode=0 if "pytest" in job.command[-1] else 1, executor="inprocess")

    run = await run_fix(request, config, options, executor=InProcessExecutor(handler))

The handler may be a coroutine function. It sees every job as the loop or the scheduler made it (command,
files, source directory, limits); what it returns is the job's result. It runs no sandbox and starts no process
of its own, so it is never a user's choice: it is not in the plugin registry and cannot be named with
--executor. An exception in the handler is the job failing to run (an ExecutorError), as a real backend's
broken connection would be.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from truthplane.errors import ExecutorError
from truthplane.executors.interface import Executor
from truthplane.executors.jobs import Job, JobResult
from truthplane.models import ToolInfo

Handler = Callable[[Job], JobResult | Awaitable[JobResult]]


class InProcessExecutor(Executor):
    name = "inprocess"
    runs_host_interpreter = True

    def __init__(self, handler: Handler, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.handler = handler
        self.jobs: list[Job] = []  # every job it was given, in order

    @classmethod
    def available(cls, options: dict[str, Any] | None = None) -> ToolInfo:
        return ToolInfo(name=cls.name, installed=True,
                        reason="answers jobs in this process through a handler: no sandbox, for tests only")

    async def run(self, job: Job) -> JobResult:
        self.jobs.append(job)
        try:
            answer = self.handler(job)
            result = await answer if inspect.isawaitable(answer) else answer
        except ExecutorError:
            raise
        except Exception as exc:  # noqa: BLE001 -- the handler's failure is the job's, as a backend's would be
            raise ExecutorError(f"inprocess: the handler failed on {job.label or job.command[0]}: "
                                f"{type(exc).__name__}: {exc}".splitlines()[0]) from None
        if not isinstance(result, JobResult):
            raise ExecutorError(f"inprocess: the handler returned {type(result).__name__}, not a JobResult")
        return result
