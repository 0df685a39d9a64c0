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
from truthplane.git.checkout import Write
from truthplane.config import Config
from truthplane.errors import ExecutorError, GitError, UsageError
from truthplane.executors.interface import Executor
from truthplane.executors.jobs import Job, Limits
from truthplane.leftovers import owned_prefix
from truthplane.models import Verdict
from truthplane.paths import RESULTS_DIR
from truthplane.executors.loader import executor_options
from truthplane.runall.tasks import TaskFile, TaskState

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
    def __init__(self, options: RunOptions, say: Callable[[str], None] = lambda line: None) -> None:
        self.options = options
        self.say = say
        self.states = {task.id: TaskState(task, i) for i, task in enumerate(options.tasks.tasks)}
        self.workers: list[Worker] = []
        self.started = time.monotonic()
        self.started_at = resume.now_utc()
        self.head: str | None = None
        self.run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + os.urandom(3).hex()
        self.interrupted = False
        self.resumed_from: str | None = None
        self.lost_nodes: dict[str, str] = {}
        # what happened, counted as it happens
        self.commits = 0
        self.modified: set[str] = set()
        self.scanned: set[str] = set()
        self.builds = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._commit_jobs: set[asyncio.Future[Any]] = set()
        self._changes: dict[str, Write] = {}  # what this run committed so far
        self._version = 0
        self._version_commits: dict[int, str] = {}  # generation -> the commit it is (0: HEAD at the start)

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
            self._version_commits[0] = self.head or ""
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
            self.workers = self._make_workers()
            if not self.workers:
                raise UsageError("no workers: give --workers N (N > 0) or ssh nodes (--node, [executors.ssh])")
            bound = float(executor_options("ssh", self.options.config).get("connect_timeout_s", 10)) + 10
            base = self.workdir / "gen-0"
            snapshot_taken: asyncio.Future[Path | None] = loop.create_future()
            self._warming = {w.pool: asyncio.ensure_future(_warm_up(w.executor, bound, snapshot_taken))
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

    def _make_workers(self) -> list[Worker]:
        from truthplane.config import ExecutorSettings
        from truthplane.executors.loader import create_executor, executor_options

        config, workers = self.options.config, []
        if self.options.workers > 0:
            local = create_executor(self.options.executor, config)
            workers += [Worker(f"local-{n + 1}", "local", local, self.options.executor, config)
                        for n in range(self.options.workers)]
        ssh = {k: v for k, v in executor_options("ssh", config).items() if k != "nodes"}
        extra = dict(getattr(config.executors, "model_extra", None) or {})
        for node in self.options.nodes:
            options = {**ssh, "nodes": [node]}
            executor = create_executor("ssh", config.model_copy(update={"executors": ExecutorSettings(
                default=config.executors.default, **{**extra, "ssh": options})}))
            narrowed = config.model_copy(update={"executors": ExecutorSettings(default="ssh", **{**extra, "ssh": options})})
            pool = executor.nodes[0].name  # type: ignore[attr-defined]
            slots = int(node.get("slots", 1))
            workers += [Worker(f"{pool}/{n + 1}", pool, executor, "ssh", narrowed) for n in range(slots)]
        return workers

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
            if self.tree.generation != self._version:
                directory = self.workdir / f"gen-{self._version}"
                changes, files = list(self._changes.values()), dict(self._files)
                links = {w.path: w.data.decode("utf-8", "surrogateescape") for w in changes if w.kind == "symlink"}
                await asyncio.to_thread(_materialise, self.base.directory, directory, changes)
                old, self.tree = self.tree, Tree(self._version, directory, files, links)
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
                job = asyncio.ensure_future(asyncio.to_thread(self._commit, state, tree, outcome))
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
        if outcome.touched and outcome.after is not None and not (commit or "").startswith(("retry", "error: ", "refused: ")):
            async with self.git_lock:
                state.branch, state.branch_commit = await asyncio.shield(
                    asyncio.to_thread(self._branch, state, tree, outcome, commit))
        self._finished(state, tree, outcome, worker, duration, commit)

    def _branch(self, state: TaskState, tree: Tree, outcome: Outcome, commit: str | None) -> tuple[str | None, str | None]:
        """Every task that changed something gets its own branch, truthplane/<run>/<task>: the approved
        commit, or the change on the commit its tree started from, for a person to look at or merge."""
        from truthplane.git.checkout import create_branch
        from truthplane.git.tree_writer import UnsafeWrite

        name = f"truthplane/{self.run_id}/{_ref_safe(state.task.id)}"
        try:
            if commit:
                sha = create_branch(self.repo, name, commit=commit)
            else:
                assert outcome.after is not None
                sha = create_branch(self.repo, name, parent=self._version_commits[tree.generation], tree=outcome.after,
                                    touched=outcome.touched, message=resume.commit_message(state.task, outcome, self.run_id))
        except (GitError, UnsafeWrite) as exc:
            outcome.reasons.append(f"no branch for this task: {exc}")
            return None, None
        return name, sha

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

    def _commit(self, state: TaskState, tree: Tree, outcome: Outcome) -> str | None:
        """Runs in a thread under the git lock; a Ctrl-C waits for it, so HEAD and the record agree."""
        from truthplane.git.checkout import ChangedSinceSnapshot, commit_files, keep_file_form, planned_writes
        from truthplane.git.tree_writer import UnsafeWrite
        from truthplane.git.repo import files_after

        task = state.task
        existing = resume.committed(self.repo).get((task.id, task.digest()))
        if existing:
            return existing  # committed already (an earlier run): never twice
        if any(self._files.get(rel) != tree.files.get(rel) for rel in outcome.touched):
            return "retry"
        assert outcome.after is not None
        if task.kind == "fix":  # a fix's tools may rewrite a whole file: only its approved lines change
            keep_file_form(tree.directory, outcome.after, outcome.touched)
        message = resume.commit_message(task, outcome, self.run_id)
        try:
            sha = commit_files(self.repo, tree.files, outcome.after, outcome.touched, message)
        except UnsafeWrite as exc:
            return f"refused: {exc}"
        except (ChangedSinceSnapshot, GitError) as exc:
            return f"error: {exc}"
        for write in planned_writes(outcome.after, outcome.touched):
            self._changes[write.path] = write
        self._latest_files = files_after(self._files, outcome.after, outcome.touched)
        self._version += 1
        self._version_commits[self._version] = sha
        self.commits += 1
        self.modified |= set(outcome.touched)
        state.commit = sha
        return sha

    @property
    def _files(self) -> dict[str, str]:
        if not hasattr(self, "_latest_files"):
            self._latest_files = dict(self.base.files)
        return self._latest_files


def _ref_safe(task_id: str) -> str:
    """A task id (letters, digits, '.', '_', '-') as a ref name component: no '..', no '.lock' or '.' end."""
    safe = task_id.replace("..", "_")
    if safe.endswith(".lock"):
        safe = safe[: -len(".lock")] + "_lock"
    return safe.rstrip(".") or "task"


async def _warm_up(executor: Executor, bound_s: float, snapshot: asyncio.Future[Path | None]) -> None:
    """Connect to a node while the snapshot is taken, then send the node the snapshot, so the first tasks
    find it there. Bounded: a node that dies while it is being set up can leave the setup waiting; giving
    up lets the first task find the node down and move on."""
    async def warm() -> None:
        # the first job waits for the node's runner to start; sending the snapshot (a session of its own)
        # need not wait for that
        connected = asyncio.ensure_future(executor.run(Job(command=["true"], limits=Limits(timeout_s=30), label="connect")))
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
            "files_modified": len(run.modified),
            "builds_tested": run.builds,
            "git_commits": run.commits,
            "truth_gate_approvals": sum(1 for s in fresh if s.verdict is Verdict.APPROVE),
            "truth_gate_rejections": sum(1 for s in fresh if s.verdict is Verdict.REJECT),
        },
        "overall_verdict": overall.value,
    }
    if run.interrupted:
        record["incomplete"] = True
    return record
