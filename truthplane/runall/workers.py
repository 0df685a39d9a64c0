"""A run's workers: slots of the local executor and of each ssh node, and warming a node up while the
snapshot is taken."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from truthplane.config import Config, ExecutorSettings
from truthplane.errors import ExecutorError
from truthplane.executors.interface import Executor
from truthplane.executors.jobs import Job, Limits
from truthplane.executors.loader import create_executor, executor_options
from truthplane.runall.task_run import Worker


def make_workers(config: Config, executor: str, local_slots: int, nodes: list[dict[str, Any]],
                 local: Executor | None = None) -> list[Worker]:
    """`local_slots` slots of the executor named `executor` (or of `local`, when one is handed in), and each ssh
    node's slots (the slots of a pool share its executor)."""
    workers = []
    if local_slots > 0:
        local = local or create_executor(executor, config)
        workers += [Worker(f"local-{n + 1}", "local", local, executor, config) for n in range(local_slots)]
    ssh = {k: v for k, v in executor_options("ssh", config).items() if k != "nodes"}
    extra = dict(getattr(config.executors, "model_extra", None) or {})
    for node in nodes:
        node_options = {**ssh, "nodes": [node]}
        remote = create_executor("ssh", config.model_copy(update={"executors": ExecutorSettings(
            default=config.executors.default, **{**extra, "ssh": node_options})}))
        narrowed = config.model_copy(
            update={"executors": ExecutorSettings(default="ssh", **{**extra, "ssh": node_options})}
        )
        pool = remote.nodes[0].name  # type: ignore[attr-defined]
        slots = int(node.get("slots", 1))
        workers += [Worker(f"{pool}/{n + 1}", pool, remote, "ssh", narrowed) for n in range(slots)]
    return workers


async def warm_up(executor: Executor, bound_s: float, snapshot: asyncio.Future[Path | None]) -> None:
    """Connect to a node while the snapshot is taken, then send the node the snapshot, so the first tasks
    find it there. Bounded: a node that dies while it is being set up can leave the setup waiting; giving
    up lets the first task find the node down and move on."""
    async def warm() -> None:
        # the first job waits for the node's runner to start; sending the snapshot (a session of its own)
        # need not wait for that
        connected = asyncio.ensure_future(
            executor.run(Job(command=["true"], limits=Limits(timeout_s=30), label="connect"))
        )
        try:
            base = await asyncio.shield(snapshot)
            if base is not None:
                await executor.run(Job(command=["true"], source_dir=str(base), limits=Limits(timeout_s=30),
                                       label="snapshot"))
            await connected
        finally:
            connected.cancel()
            await asyncio.gather(connected, return_exceptions=True)  # its failure, if any, is not left unread

    try:
        await asyncio.wait_for(warm(), bound_s)
    except (ExecutorError, TimeoutError):
        pass
