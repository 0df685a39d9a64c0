"""`truthplane run-all`: every task of the task file, spread over local workers and ssh node slots.

One master scheduler: a queue of tasks ordered by priority and dependencies, and workers that pull
from it (so a fast slot takes the next task as soon as it is free). Each task works in its own tree,
a copy of the run's snapshot plus what this run committed before it started; the user's checkout is
written only by commits, one at a time under one lock, each carrying `Truthplane-Task: <id> <digest>`
so a task is never committed twice. A task whose dependency was not approved is skipped; a node that
dies takes its slots out and its tasks go back to the queue; Ctrl-C (SIGINT, SIGTERM) cancels running
jobs, removes every tree and writes the partial results marked incomplete; the next run picks up
what was not done.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from truthplane.runall import resume
from truthplane.runall.task_run import Outcome, Runner, Tree, Worker, _materialise, describe, worst
from truthplane.config import Config
from truthplane.errors import ExecutorError, UsageError
from truthplane.executors.interface import Executor
from truthplane.executors.jobs import Job, Limits
from truthplane.leftovers import owned_prefix
from truthplane.models import Verdict
from truthplane.paths import RESULTS_DIR
from truthplane.executors.loader import executor_options
from truthplane.runall.landing import Landing
from truthplane.runall.tasks import TaskFile, TaskState
from truthplane.runall.workers import make_workers, warm_up

RETRIES_ON_CONFLICT = 3


@dataclass
class RunOptions:
    root: Path
    tasks: TaskFile
    config: Config
    executor: str = "local"  # the local workers' executor
    workers: int = 2
    nodes: list[dict[str, Any]] = field(default_factory=list)  # [[executors.ssh.nodes]] entries
    handle_signals: bool = True


@dataclass
class RunResult:
    record: dict[str, Any]
    path: Path
    interrupted: bool

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return Verdict(self.record["overall_verdict"]).exit_code


class Scheduler:
    def __init__(self, options: RunOptions, say: Callable[[str], None] = lambda line: None,
                 executor: Executor | None = None) -> None:
        """`executor`: the local slots' executor, if not the one `options.executor` names (a test's in-process
        executor); a fix task's loop still makes its own from the name."""
        self.options = options
        self.say = say
        self.local_executor = executor
        self.states = {task.id: TaskState(task, i) for i, task in enumerate(options.tasks.tasks)}
        self.workers: list[Worker] = []
        self.started = time.monotonic()
        self.started_at = resume.now_utc()
        self.head: str | None = None
        self.run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + os.urandom(3).hex()
        self.interrupted = False
        self.resumed_from: str | None = None
        self.lost_nodes: dict[str, str] = {}
        # what happened, counted as it happens (commits and modified files: self.landing)
        self.scanned: set[str] = set()
        self.builds = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._commit_jobs: set[asyncio.Future[Any]] = set()

    # ---- what the live display reads -------------------------------------------------------

    @property
    def total(self) -> int:
        return len(self.states)

    @property
    def done(self) -> int:
        return sum(1 for s in self.states.values() if s.status == "DONE")

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def interrupt(self) -> None:
        if not self.interrupted:
            self.say("interrupted: cancelling running jobs, removing trees, writing partial results")
        self.interrupted = True
        for task in self._tasks:
            task.cancel()

    # ---- the run -----------------------------------------------------------------------------

    async def run(self) -> RunResult:
        from truthplane.git.checkout import recover_pending, refuse_busy
        from truthplane.git.repo import Repo

        root = self.options.root
        repo = Repo.require(root)
        lock = resume.lock_repo(repo)
        try:
            note = recover_pending(root)
            if note:
                self.say(note)
            self.head = repo.head()
            if self.head is None:
                raise UsageError("run-all commits approved results: the repository needs a first commit")
            refuse_busy(repo)
            self.resumed_from = resume.carry_over(repo, root, self.states)
            await self._run_tasks(repo)
        finally:
            resume.unlock(lock)
        record = run_record(self)
        from truthplane.change.record import write_execution

        path = write_execution(root, record)
        return RunResult(record, path, self.interrupted)

    async def _run_tasks(self, repo: Any) -> None:
        from truthplane.change.loop import snapshot_tree

        loop = asyncio.get_running_loop()
        if self.options.handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.interrupt)
        self.repo = repo
        self.cond = asyncio.Condition()
        self.git_lock = asyncio.Lock()
        self.tree_lock = asyncio.Lock()
        self.workdir = Path(tempfile.mkdtemp(prefix=owned_prefix("run-all")))
        self._warming: dict[str, asyncio.Future[None]] = {}
        try:
            self.workers = make_workers(self.options.config, self.options.executor, self.options.workers,
                                        self.options.nodes, self.local_executor)
            if not self.workers:
                raise UsageError("no workers: give --workers N (N > 0) or ssh nodes (--node, [executors.ssh])")
            bound = float(executor_options("ssh", self.options.config).get("connect_timeout_s", 10)) + 10
            base = self.workdir / "gen-0"
            snapshot_taken: asyncio.Future[Path | None] = loop.create_future()
            self._warming = {w.pool: asyncio.ensure_future(warm_up(w.executor, bound, snapshot_taken))
                             for w in self._pools() if w.pool != "local"}
            taken = False
            try:
                files = await asyncio.to_thread(snapshot_tree, self.options.root, base)
                # truthplane's own results (and history database) are no task's input
                files = {rel: blob for rel, blob in files.items() if not rel.startswith(RESULTS_DIR + "/")}
                await asyncio.to_thread(shutil.rmtree, base / RESULTS_DIR, True)
                taken = True
            finally:
                snapshot_taken.set_result(base if taken else None)  # a half-taken snapshot is never sent
            self.base = self.tree = Tree(0, base, files)
            self.landing = Landing(repo, self.run_id, self.head or "", files)
            self.runner = Runner(self.options.tasks, self.options.config, self.options.root,
                                 self.options.executor, os.cpu_count() or 2)
            self._tasks = [asyncio.create_task(self._work(w)) for w in self.workers]
            if self.interrupted:
                self.interrupt()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await asyncio.gather(*self._commit_jobs, return_exceptions=True)  # a commit under way finishes
        finally:
            for warming in self._warming.values():
                warming.cancel()
            if self.options.handle_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
            executors = {id(w.executor): w.executor for w in self.workers}
            await asyncio.gather(*(e.close() for e in executors.values()), return_exceptions=True)
            await asyncio.to_thread(shutil.rmtree, self.workdir, True)

    def _pools(self) -> list[Worker]:
        """One worker of each pool (the slots of a pool share its executor)."""
        return list({w.pool: w for w in self.workers}.values())

    # ---- the queue ---------------------------------------------------------------------------

    def _approved(self, task_id: str) -> bool:
        state = self.states[task_id]
        return state.status == "DONE" and state.verdict is Verdict.APPROVE

    def _skip_blocked(self) -> None:
        changed = True
        while changed:
            changed = False
            for state in self.states.values():
                if state.status != "PENDING":
                    continue
                failed = [d for d in state.task.depends_on
                          if self.states[d].status == "DONE" and not self._approved(d)]
                if failed:
                    dep = self.states[failed[0]]
                    why = dep.verdict.value if dep.verdict else dep.record["status"] if dep.record else "not done"
                    reason = f"skipped: dependency {failed[0]!r} was not approved ({why})"
                    state.status, state.record = "DONE", resume.bare_record(state.task, "SKIPPED", reason)
                    self.say(f"{state.task.id}: {reason}")
                    changed = True

    async def _next(self, worker: Worker) -> TaskState | None:
        async with self.cond:
            while True:
                if self.interrupted or not worker.alive:
                    return None
                self._skip_blocked()
                pending = [s for s in self.states.values() if s.status == "PENDING"]
                ready = [s for s in pending if all(self._approved(d) for d in s.task.depends_on)]
                if ready:
                    state = max(ready, key=lambda s: (s.task.priority, -s.index))
                    state.status, state.worker = "RUNNING", worker.name
                    return state
                if not pending:
                    return None
                await self.cond.wait()

    async def _wake(self) -> None:
        async with self.cond:
            self.cond.notify_all()

    async def _current_tree(self) -> Tree:
        """The newest state: a new tree is made (from the snapshot and this run's commits) when needed."""
        async with self.tree_lock:
            landing = self.landing
            if self.tree.generation != landing.version:
                directory = self.workdir / f"gen-{landing.version}"
                changes, files = list(landing.changes.values()), dict(landing.files)
                links = {w.path: w.data.decode("utf-8", "surrogateescape") for w in changes if w.kind == "symlink"}
                await asyncio.to_thread(_materialise, self.base.directory, directory, changes)
                old, self.tree = self.tree, Tree(landing.version, directory, files, links)
                self._drop(old)
            self.tree.users += 1
            return self.tree

    def _drop(self, tree: Tree) -> None:
        if tree is not self.tree and tree is not self.base and tree.users == 0:
            shutil.rmtree(tree.directory, ignore_errors=True)

    # ---- a worker ----------------------------------------------------------------------------

    async def _work(self, worker: Worker) -> None:
        if worker.pool in self._warming:  # a node's slots start once it is connected (or given up on)
            await asyncio.shield(self._warming[worker.pool])
        while True:
            state = await self._next(worker)
            if state is None:
                worker.doing = None
                return
            try:
                await self._one(worker, state)
            except asyncio.CancelledError:
                if state.status == "RUNNING":
                    state.status = "INTERRUPTED"
                raise
            except Exception as exc:  # noqa: BLE001 -- a failure around one task is its verdict, not the run's end
                if state.status == "RUNNING":
                    state.status, state.verdict = "DONE", Verdict.UNVERIFIED
                    state.record = resume.bare_record(state.task, "UNVERIFIED", describe(exc))
                    state.record["truth_gate"]["verdict"] = Verdict.UNVERIFIED.value
                    self.say(f"{state.task.id}: UNVERIFIED: {describe(exc)}")
            finally:
                worker.doing = None
                if not self.interrupted:
                    await self._wake()

    async def _one(self, worker: Worker, state: TaskState) -> None:
        task = state.task
        worker.doing = f"{task.id}: starting"
        self.say(f"{task.id}: started on {worker.name}")
        tree = await self._current_tree()
        outcome: Outcome | None = None
        taskdir: Path | None = None
        try:
            taskdir = Path(tempfile.mkdtemp(prefix=f"task-{task.id}-", dir=self.workdir))
            started = time.monotonic()
            try:
                outcome = await self.runner.run(task, tree, worker, taskdir)
            except ExecutorError as exc:
                if worker.pool != "local" and await self._node_lost(worker, exc):
                    state.status, state.worker = "PENDING", None
                    state.lost_on.append(worker.pool)
                    self.say(f"{task.id}: node {worker.pool} lost mid-task: re-queued")
                    return
                outcome = Outcome(Verdict.UNVERIFIED, [describe(exc)])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 -- one task's failure is its verdict, not the run's end
                outcome = Outcome(Verdict.UNVERIFIED, [describe(exc)])
            await self._finish(state, tree, outcome, worker, time.monotonic() - started)
        finally:
            if outcome is not None and outcome.cleanup is not None:
                outcome.cleanup()
            if taskdir is not None:
                await asyncio.to_thread(shutil.rmtree, taskdir, True)
            tree.users -= 1
            self._drop(tree)

    async def _node_lost(self, worker: Worker, exc: ExecutorError) -> bool:
        """Is the node itself gone (rather than this task failing)? Then its slots stop taking tasks."""
        down = worker.node_down()
        if not down and worker.executor_name == "ssh" and worker.pool not in self.lost_nodes:
            try:  # the fix loop's own connection broke: is the node still there?
                await worker.executor.run(Job(command=["true"], limits=Limits(timeout_s=15)))
            except ExecutorError:
                down = True
        if down or worker.pool in self.lost_nodes:
            if worker.pool not in self.lost_nodes:
                self.lost_nodes[worker.pool] = str(exc)
                self.say(f"node {worker.pool} is down ({exc}): its slots take no more tasks")
            for other in self.workers:
                if other.pool == worker.pool:
                    other.alive = False
            return True
        return False

    async def _finish(self, state: TaskState, tree: Tree, outcome: Outcome, worker: Worker, duration: float) -> None:
        self.scanned |= outcome.scanned
        self.builds += outcome.builds
        commit: str | None = None
        if outcome.verdict is Verdict.APPROVE and outcome.touched:
            worker.doing = f"{state.task.id}: committing"
            async with self.git_lock:
                job = asyncio.ensure_future(asyncio.to_thread(self.landing.commit, state.task, tree, outcome))
                self._commit_jobs.add(job)
                try:
                    commit = await asyncio.shield(job)
                except asyncio.CancelledError:
                    commit = await job  # a commit is never left half-recorded: finish it, then stop
                    self._finished(state, tree, outcome, worker, duration, commit)
                    raise
                finally:
                    self._commit_jobs.discard(job)
            if commit == "retry":
                state.conflicts += 1
                if state.conflicts <= RETRIES_ON_CONFLICT:
                    self.say(f"{state.task.id}: an earlier task of this run changed the same files: re-running it")
                    state.status, state.worker = "PENDING", None
                    return
                outcome.verdict = Verdict.UNVERIFIED
                outcome.reasons.append("other tasks of this run kept changing the same files: nothing was committed")
                commit = None
        if (
            outcome.touched
            and outcome.after is not None
            and not (commit or "").startswith(("retry", "error: ", "refused: "))
        ):
            async with self.git_lock:
                state.branch, state.branch_commit = await asyncio.shield(
                    asyncio.to_thread(self.landing.branch, state.task, tree, outcome, commit))
        self._finished(state, tree, outcome, worker, duration, commit)

    def _finished(self, state: TaskState, tree: Tree, outcome: Outcome, worker: Worker, duration: float,
                  commit: str | None) -> None:
        if commit == "retry":
            outcome.verdict = Verdict.UNVERIFIED
            outcome.reasons.append("interrupted while other tasks of this run changed the same files")
            commit = None
        elif commit is not None and commit.startswith("error: "):
            outcome.verdict = Verdict.UNVERIFIED
            outcome.reasons.append(commit.removeprefix("error: "))
            commit = None
        elif commit is not None and commit.startswith("refused: "):
            outcome.verdict = Verdict.REJECT  # the change would write through a link, into .git or outside
            outcome.reasons.insert(0, commit.removeprefix("refused: "))
            commit = None
        state.verdict, state.commit = outcome.verdict, commit
        state.record = resume.task_record(state, tree, outcome, worker, duration)
        state.status = "DONE"
        where = f", committed {commit[:12]}" if commit else ""
        self.say(f"{state.task.id}: {outcome.verdict.value} on {worker.name} in {duration:.1f}s{where}")

async def run_all(options: RunOptions, say: Callable[[str], None] = lambda line: None,
                  scheduler: Scheduler | None = None) -> RunResult:
    return await (scheduler or Scheduler(options, say)).run()


def run_record(run: Scheduler) -> dict[str, Any]:
    """The execution record: every task once, the figures counted as things happened."""
    tasks = []
    for state in run.states.values():
        if state.record is None or state.status not in ("DONE",):
            why = ("interrupted before it finished" if run.interrupted
                   else "not run: no worker left (every node is down: " + "; ".join(run.lost_nodes.values()) + ")")
            status = "INTERRUPTED" if run.interrupted else "NOT_RUN"
            state.record = resume.bare_record(state.task, status, why)
        tasks.append(state.record)
    judged = [s for s in run.states.values() if s.verdict is not None]
    fresh = [s for s in judged if s.carried is None]
    overall = worst(Verdict.APPROVE, *(s.verdict for s in judged if s.verdict is not None))
    if any(r["status"] == "NOT_RUN" for r in tasks):
        overall = worst(overall, Verdict.UNVERIFIED)
    base = getattr(run, "base", None)
    record: dict[str, Any] = {
        "tool": "truthplane",
        "kind": "run-all",
        "run_id": run.run_id,
        "start_time": run.started_at,
        "end_time": resume.now_utc(),
        "baseline": resume.baseline_record(run.head, base),
        "tasks_file": run.options.tasks.source,
        "resumed_from": run.resumed_from,
        "workers": [{"name": w.name, "node": w.pool, "alive": w.alive} for w in run.workers],
        "nodes_lost": run.lost_nodes,
        "tasks": tasks,
        "honest_metrics": {
            "files_verified": len(run.scanned),
            "files_modified": len(run.landing.modified),
            "builds_tested": run.builds,
            "git_commits": run.landing.commits,
            "truth_gate_approvals": sum(1 for s in fresh if s.verdict is Verdict.APPROVE),
            "truth_gate_rejections": sum(1 for s in fresh if s.verdict is Verdict.REJECT),
        },
        "overall_verdict": overall.value,
    }
    if run.interrupted:
        record["incomplete"] = True
    return record
