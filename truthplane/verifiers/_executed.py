"""Running a verifier's command through an executor (DESIGN.md's sandbox rule: whatever executes the
repository's code, such as builds and eslint configs, runs in one), from synchronous verifier code."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from truthplane.errors import ExecutorError, PluginError, VerifierError
from truthplane.executors.jobs import Job, JobResult
from truthplane.models import ToolInfo, ToolStatus


def run_coroutine(coroutine: Any) -> JobResult:
    """asyncio.run, also when the caller already runs an event loop (then in a helper thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="truthplane-job") as pool:
        return pool.submit(asyncio.run, coroutine).result()


def executor_problem(executor: str) -> str | None:
    """Why the configured executor cannot be used here, or None."""
    try:
        from truthplane.registry import load

        info: ToolInfo = load("executors", executor).available({})
    except PluginError as exc:
        return str(exc)
    return None if info.installed else info.reason or f"executor {executor!r} is not usable"


def run_job(verifier: str, executor: str, job: Job) -> JobResult:
    """One job in the named executor; an executor that cannot run it is a VerifierError, and so is
    a timeout or running out of memory (no evidence either way)."""
    from truthplane.executors.loader import create_executor

    async def run() -> JobResult:
        async with create_executor(executor) as backend:
            return await backend.run(job)

    try:
        result = run_coroutine(run())
    except (ExecutorError, PluginError) as exc:
        raise VerifierError(verifier, f"could not run in the {executor} executor: {exc}") from None
    if result.timed_out:
        raise VerifierError(
            verifier, f"timed out after {job.limits.timeout_s:g}s", status=ToolStatus.TIMEOUT.value
        )
    if result.oom_killed:
        raise VerifierError(verifier, "ran out of memory in the executor; raise its memory limit")
    return result
