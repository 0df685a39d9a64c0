"""A run-all task on a Dask worker: its tree made from the run's snapshot (unpacked once per worker) and the
changes this run committed before it, the task run and judged there in the worker machine's sandbox, and the
answer sent back: the verdict and the files the change writes. Committing is the client's, on its own machine.

The tree of a generation and its scan are shared by the tasks one worker runs from it, and removed when a newer
generation has replaced it and no task uses it any more.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from truthplane.config import Config
from truthplane.executors._on_worker import announce, run_here, sandbox, scratch, unpacked
from truthplane.git.checkout import Write
from truthplane.git.tree_writer import UnsafeWrite
from truthplane.models import Finding, Scan, Verdict
from truthplane.runall.task_run import Outcome, Runner, Tree, Worker, _materialise
from truthplane.runall.tasks import Task


@dataclass
class TaskOrder:
    """What a worker needs to run one task."""

    run_id: str
    task: Task
    config: Config
    snapshot: str  # the content hash of the run's snapshot
    generation: int
    changes: list[Write]  # what this run committed before the generation, over the snapshot
    files: dict[str, str]
    links: dict[str, str]
    sandbox: str
    sandbox_options: dict[str, Any]
    patch: str | None = None
    candidates: dict[str, bytes] = field(default_factory=dict)  # a fix task's candidate patch files
    root: str = ""  # the user's checkout, on the client's host
    client_host: str = ""


@dataclass
class TaskAnswer:
    verdict: Verdict
    reasons: list[str]
    touched: list[str]
    writes: list[Write]
    diff: str
    new: list[Finding]
    fixed: list[Finding]
    checks: dict[str, Any]
    scanned: set[str]
    builds: int
    title: str
    where: dict[str, str]  # the worker's address, name and host


class _Generations:
    """This worker's trees, by (run, generation), counted while tasks use them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.trees: dict[tuple[str, int], tuple[Path, threading.Lock]] = {}
        self.users: dict[tuple[str, int], int] = {}
        self.scans: dict[tuple[str, int], Scan] = {}

    def take(self, order: TaskOrder, base: Path) -> Path:
        key = (order.run_id, order.generation)
        with self.lock:
            self.users[key] = self.users.get(key, 0) + 1
            if key not in self.trees:
                self.trees[key] = (scratch() / "runs" / order.run_id / f"gen-{order.generation}", threading.Lock())
            directory, made = self.trees[key]
        with made:
            if not directory.is_dir():
                partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=scratch()))
                shutil.rmtree(partial)
                _materialise(base, partial, order.changes)
                directory.parent.mkdir(parents=True, exist_ok=True)
                partial.rename(directory)
        return directory

    def release(self, order: TaskOrder) -> None:
        key = (order.run_id, order.generation)
        with self.lock:
            self.users[key] -= 1
            stale = [k for k, n in self.users.items()
                     if n == 0 and k[0] == order.run_id and any(o[0] == k[0] and o[1] > k[1] for o in self.trees)]
            gone = [self.trees.pop(k)[0] for k in stale]
            for k in stale:
                self.users.pop(k, None)
                self.scans.pop(k, None)
        for directory in gone:
            shutil.rmtree(directory, ignore_errors=True)

    def scan(self, order: TaskOrder, compute: Any) -> Scan:
        key = (order.run_id, order.generation)
        with self.lock:
            _, made = self.trees[key]
        with made:
            if key not in self.scans:
                self.scans[key] = compute()
            return self.scans[key]


GENERATIONS = _Generations()


class WorkerRunner(Runner):
    """The Runner, with the tree's scan shared by every task this worker runs from the same generation."""

    def __init__(self, order: TaskOrder, *args: Any) -> None:
        super().__init__(*args)
        self.order = order

    async def tree_scan(self, tree: Tree) -> Scan:
        import asyncio

        if tree.scan is None:
            label = f"generation {tree.generation}"
            tree.scan = await asyncio.to_thread(
                GENERATIONS.scan, self.order, lambda: self.scan_now(tree.directory, tree.files, label))
        return tree.scan


def run_task(order: TaskOrder, snapshot_key: str) -> TaskAnswer:
    """Run one task here and answer with its verdict and the writes of its change."""
    from truthplane.git.checkout import planned_writes

    where = announce(kind="task", run=order.run_id, task=order.task.id)
    base = unpacked(order.snapshot, snapshot_key)
    directory = GENERATIONS.take(order, base)
    taskdir = Path(tempfile.mkdtemp(prefix=f"task-{order.task.id}-", dir=scratch()))
    outcome: Outcome | None = None
    try:
        candidates = taskdir / "candidates"
        for rel, data in order.candidates.items():
            (candidates / rel).parent.mkdir(parents=True, exist_ok=True)
            (candidates / rel).write_bytes(data)
        same_host = order.client_host == socket.gethostname() and Path(order.root).is_dir()
        executor = sandbox(order.sandbox, order.sandbox_options)
        runner = WorkerRunner(order, order.config, order.sandbox, 2, {order.task.id: order.patch or ""}, candidates,
                              Path(order.root) if same_host else None)
        tree = Tree(order.generation, directory, order.files, order.links)

        def report(doing: str) -> None:
            announce(kind="doing", run=order.run_id, task=order.task.id, doing=doing)

        worker = Worker(where["name"], where["name"], executor, order.sandbox, order.config, report=report)
        outcome = run_here(lambda: runner.run(order.task, tree, worker, taskdir / "work"))
        try:
            writes = planned_writes(outcome.after, outcome.touched) if outcome.after is not None else []
        except UnsafeWrite as exc:  # a path the checkout could never take
            outcome.verdict, writes = Verdict.REJECT, []
            outcome.reasons.insert(0, f"the change cannot be carried: {exc}")
        return TaskAnswer(outcome.verdict, outcome.reasons, outcome.touched, writes, outcome.diff, outcome.new,
                          outcome.fixed, outcome.checks, outcome.scanned, outcome.builds, outcome.title, where)
    finally:
        if outcome is not None and outcome.cleanup is not None:
            outcome.cleanup()
        shutil.rmtree(taskdir, ignore_errors=True)
        GENERATIONS.release(order)
