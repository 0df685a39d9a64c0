"""`truthplane run-all`: every task of the task file on a Dask cluster, committed here in dependency order.

The cluster is the embedded LocalCluster of this machine, your own scheduler (`--cluster`), the ssh nodes (with
local workers beside them, if asked) or Azure VMs (`executors/cluster.py`). Each task is one Dask future: it runs
on a worker, in its own tree (the run's snapshot, sent once per worker, plus what this run committed before it),
in the worker machine's sandbox, and answers with its verdict and its change. What stays here: which tasks are
ready (dependencies approved and committed first, higher priority first), committing approved changes one at a
time under one lock, each carrying `Truthplane-Task: <id> <digest>` so a task is never committed twice, and the
record.

Dask reruns a task whose worker died mid-task on another worker; the record names the lost worker and the tasks
that reran. A scheduler lost mid-run leaves the remaining tasks NOT_RUN (exit 4) and the partial results written;
Ctrl-C (SIGINT, SIGTERM) cancels the running tasks (their workers stop their jobs), stops a cluster truthplane
started and writes the partial results marked incomplete; the next run picks up what was not done.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from truthplane.config import Config
from truthplane.config.cluster import ClusterSettings
from truthplane.errors import ExecutorError, UsageError
from truthplane.executors.cluster import Cluster
from truthplane.executors.interface import Executor
from truthplane.executors.loader import executor_options
from truthplane.executors.ssh import parse_options
from truthplane.leftovers import owned_prefix
from truthplane.models import Verdict
from truthplane.paths import RESULTS_DIR
from truthplane.runall import resume
from truthplane.runall.landing import Landing
from truthplane.runall.task_run import Outcome, Tree, _materialise, describe, worst
from truthplane.runall.tasks import TaskFile, TaskState

RETRIES_ON_CONFLICT = 3
REFRESH_S = 0.5  # how often the run looks at the cluster's workers (and at Ctrl-C) while tasks run


@dataclass
class RunOptions:
    root: Path
    tasks: TaskFile
    config: Config
    executor: str = "local"  # the sandbox a task runs in on its worker: local (bubblewrap) or docker
    workers: int | None = None  # local worker processes (default: the CPU count; beside ssh nodes: none)
    nodes: list[dict[str, Any]] = field(default_factory=list)  # ssh nodes ([[executors.ssh.nodes]] entries)
    cluster: ClusterSettings | None = None  # default: the configuration's [cluster]
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


@dataclass
class WorkerView:
    """A worker as the live display and the record see it."""

    address: str
    name: str  # the node it runs on (an ssh node's name, local-N, or the worker's own name)
    host: str = ""
    threads: int = 1
    doing: str | None = None
    alive: bool = True


@dataclass
class Running:
    state: TaskState
    tree: Tree
    future: Any
    started: float


class Scheduler:
    def __init__(self, options: RunOptions, say: Callable[[str], None] = lambda line: None,
                 executor: Executor | None = None) -> None:
        """`executor`: the sandbox of every worker, if not the one `options.executor` names (a test's in-process
        executor: the cluster is then an in-process one)."""
        self.options = options
        self.say = say
        self.sandbox_override = executor
        self.states = {task.id: TaskState(task, i) for i, task in enumerate(options.tasks.tasks)}
        self.workers: list[WorkerView] = []
        self._views: dict[str, WorkerView] = {}
        self._keys: dict[str, TaskState] = {}
        self.started = time.monotonic()
        self.started_at = resume.now_utc()
        self.head: str | None = None
        self.run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + os.urandom(3).hex()
        self.interrupted = False
        self.resumed_from: str | None = None
        self.lost_nodes: dict[str, str] = {}
        self.cluster_lost: str | None = None  # why the run could not go on (the scheduler lost, no worker)
        self.cluster: Cluster | None = None
        # what happened, counted as it happens (commits and modified files: self.landing)
        self.scanned: set[str] = set()
        self.builds = 0
        self._running: dict[asyncio.Future[Any], Running] = {}
        self._commit_jobs: set[asyncio.Future[Any]] = set()
        self._changes_at: dict[int, list[Any]] = {0: []}
        self._teardown: asyncio.Future[None] | None = None

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
            self.say("interrupted: cancelling running tasks, stopping the cluster, writing partial results")
        self.interrupted = True

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
        try:
            record = run_record(self)
            from truthplane.change.record import write_execution

            path = write_execution(root, record)
        finally:
            if self._teardown is not None:  # the cluster stops (and the trees go) before the run returns
                await self._teardown
        return RunResult(record, path, self.interrupted)

    def _make_cluster(self) -> Cluster:
        options = self.options
        settings = options.cluster or options.config.cluster
        ssh = None
        if options.nodes:
            ssh = parse_options({**executor_options("ssh", options.config), "nodes": options.nodes})
            settings = settings.model_copy(update={"kind": "ssh"})
        elif settings.kind == "ssh":
            ssh = parse_options(executor_options("ssh", options.config))
        if options.workers is not None:
            settings = settings.model_copy(update={"workers": options.workers})
        in_process = self.sandbox_override is not None
        return Cluster(settings, ssh, run_id=self.run_id, processes=not in_process,
                       local_workers=(options.workers or 0) if settings.kind == "ssh" else 0,
                       preload=["truthplane.runall.remote"] if not in_process else [])

    def _sandbox(self) -> tuple[str, dict[str, Any]]:
        if self.sandbox_override is not None:
            from truthplane.executors._on_worker import IN_PROCESS_SANDBOXES

            name = f"in-process-{self.run_id}"
            IN_PROCESS_SANDBOXES[name] = self.sandbox_override
            return name, {}
        return self.options.executor, executor_options(self.options.executor, self.options.config)

    async def _run_tasks(self, repo: Any) -> None:
        from truthplane.change.loop import snapshot_tree
        from truthplane.executors import _transfer
        from truthplane.executors._on_worker import TOPIC

        loop = asyncio.get_running_loop()
        if self.options.handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.interrupt)
        self.repo = repo
        self.git_lock = asyncio.Lock()
        self.tree_lock = asyncio.Lock()
        self.workdir = Path(tempfile.mkdtemp(prefix=owned_prefix("run-all")))
        self.sandbox, self.sandbox_options = self._sandbox()
        cluster = self.cluster = self._make_cluster()
        try:
            base = self.workdir / "gen-0"
            starting = asyncio.ensure_future(cluster.start())  # the cluster comes up while the snapshot is taken
            try:
                files = await asyncio.to_thread(snapshot_tree, self.options.root, base)
                # truthplane's own results (and history database) are no task's input
                files = {rel: blob for rel, blob in files.items() if not rel.startswith(RESULTS_DIR + "/")}
                await asyncio.to_thread(shutil.rmtree, base / RESULTS_DIR, True)
                archive = await asyncio.to_thread(_transfer.pack, str(base))
            finally:
                outcome = (await asyncio.gather(starting, return_exceptions=True))[0]
                failed = outcome if isinstance(outcome, BaseException) else None
            self.base = self.tree = Tree(0, base, files)
            self.landing = Landing(repo, self.run_id, self.head or "", files)
            if failed is None and not cluster.owned:
                failed = (await asyncio.gather(cluster.check_scheduler(), return_exceptions=True))[0]
            if isinstance(failed, ExecutorError):
                self.cluster_lost = str(failed)
                self.say(f"no cluster: {failed}")
                return
            if isinstance(failed, BaseException):
                raise failed
            for name, why in cluster.lost.items():
                self.lost_nodes[name] = why
                self.say(f"node {name} is down ({why}): the run goes on without it")
            if cluster.owned and not await cluster.workers():
                self.cluster_lost = "no worker left (" + ("; ".join(f"{k}: {v}" for k, v in cluster.lost.items())
                                                          or "none started") + ")"
                self.say(f"{self.cluster_lost}: the tasks are not run")
                return
            if cluster.dashboard:
                self.say(f"Dask dashboard: {cluster.dashboard}")
            client = cluster.client
            client.subscribe_topic(TOPIC, self._on_start)
            client.subscribe_topic("all", self._on_cluster_event)
            self.digest = _transfer.digest(archive)
            self.snapshot_name = await cluster.hold(archive, self.digest)  # workers fetch it once each
            self.client_host = socket.gethostname()
            await self._loop(cluster)
        finally:
            await self._stop_running()
            await asyncio.gather(*self._commit_jobs, return_exceptions=True)  # a commit under way finishes
            if self.options.handle_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
            self._teardown = asyncio.ensure_future(self._tear_down(cluster))  # while the record is written

    async def _tear_down(self, cluster: Cluster) -> None:
        try:
            await cluster.close()
        finally:
            if self.sandbox_override is not None:
                from truthplane.executors._on_worker import IN_PROCESS_SANDBOXES

                IN_PROCESS_SANDBOXES.pop(self.sandbox, None)
                await self.sandbox_override.close()
            await asyncio.to_thread(shutil.rmtree, self.workdir, True)

    async def _stop_running(self) -> None:
        """Cancel what still runs (its workers stop its jobs); its tasks were interrupted or not run."""
        running, self._running = self._running, {}
        for view in self.workers:
            view.doing = None
        for waiter, item in running.items():
            waiter.cancel()
            if item.state.status == "RUNNING":
                item.state.status = "INTERRUPTED" if self.interrupted else "PENDING"
            item.tree.users -= 1
        if running and self.cluster is not None and self.cluster.client is not None:
            try:
                await asyncio.wait_for(self.cluster.client.cancel([item.future for item in running.values()]), 10)
            except Exception:  # noqa: BLE001 -- a lost scheduler has nothing left to cancel
                pass
        await asyncio.gather(*running, return_exceptions=True)

    # ---- the cluster's workers and events ------------------------------------------------------

    async def _refresh(self, cluster: Cluster) -> int:
        """The workers now (the live display's rows); their threads: how many tasks can run at once."""
        found = await asyncio.wait_for(cluster.workers(), max(10.0, cluster.settings.connect_timeout_s))
        present = set()
        for worker in found:
            present.add(worker.address)
            view = self._views.get(worker.address)
            if view is None:
                view = self._views[worker.address] = WorkerView(worker.address, cluster.node_of(worker.address,
                                                                                                 worker.name),
                                                                worker.host, worker.threads)
                self.workers.append(view)
            view.threads = worker.threads
        for view in self.workers:
            if view.address not in present:
                view.alive, view.doing = False, None
        return sum(view.threads for view in self.workers if view.alive)

    def _on_start(self, event: tuple[float, dict[str, Any]]) -> None:
        message = event[1]
        if message.get("run") != self.run_id:
            return
        state = self._keys.get(str(message.get("key")))
        if state is None:
            return
        view = self._views.get(str(message.get("worker")))
        if message.get("kind") == "doing":
            if view is not None and state.status == "RUNNING":
                view.doing = str(message.get("doing"))[:80]
            return
        name = view.name if view else str(message.get("name"))
        state.worker = name
        if view is not None:
            view.doing = f"{state.task.id}: starting"
        again = " again" if state.lost_on else ""
        self.say(f"{state.task.id}: started{again} on {name}")

    def _on_cluster_event(self, event: tuple[float, dict[str, Any]]) -> None:
        message = event[1]
        if message.get("action") != "remove-worker" or self.interrupted:
            return
        address = str(message.get("worker"))
        view = self._views.get(address)
        name = view.name if view else address
        if view is not None:
            view.alive, view.doing = False, None
        keys = message.get("processing-tasks") or []
        ours = [self._keys[str(k)] for k in keys if str(k) in self._keys]
        if ours or not message.get("expected", False):
            self.lost_nodes[name] = f"worker {address} left the cluster mid-run"
            self.say(f"worker {name} was lost" + (f" mid-task: {', '.join(s.task.id for s in ours)} rerun(s) on "
                                                   "another worker" if ours else ""))
        for state in ours:
            state.lost_on.append(name)

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

    def _ready(self) -> list[TaskState]:
        pending = [s for s in self.states.values() if s.status == "PENDING"]
        ready = [s for s in pending if all(self._approved(d) for d in s.task.depends_on)]
        return sorted(ready, key=lambda s: (-s.task.priority, s.index))

    async def _loop(self, cluster: Cluster) -> None:
        """Submit the ready tasks (as many as the workers have threads, so each starts from the newest tree),
        land each answer as it comes, until nothing is left to run."""
        grace = cluster.settings.connect_timeout_s + 40
        without = None  # since when the cluster has had no worker (or no answer)
        while not self.interrupted:
            try:
                capacity = await self._refresh(cluster)
            except Exception as exc:  # noqa: BLE001 -- the scheduler does not answer: lost, if it lasts
                capacity, reason = 0, f"the Dask scheduler does not answer ({describe(exc)})"
            else:
                reason = "the cluster has no worker left"
            without = None if capacity else (without or time.monotonic())
            if without is not None and time.monotonic() - without > grace:
                self.cluster_lost = f"{reason} after {grace:g} s"
                self.say(f"{self.cluster_lost}: the remaining tasks are not run")
                return
            self._skip_blocked()
            for state in self._ready()[: max(0, capacity - len(self._running))]:
                await self._submit(cluster, state)
            if not self._running and not self._ready():
                return  # everything is done (or blocked behind a task that was not approved)
            if not self._running:
                await asyncio.sleep(REFRESH_S)
                continue
            done, _ = await asyncio.wait(list(self._running), timeout=REFRESH_S, return_when=asyncio.FIRST_COMPLETED)
            for waiter in done:
                item = self._running.pop(waiter)
                await self._landed(waiter, item)
                if self.cluster_lost:
                    return

    async def _submit(self, cluster: Cluster, state: TaskState) -> None:
        from truthplane.runall.remote import TaskOrder, run_task

        task = state.task
        tree = await self._current_tree()
        candidates = {}
        for rel in task.candidates:
            try:
                candidates[rel] = (self.options.root / rel).read_bytes()
            except OSError:
                pass  # the fix loop says the file is missing
        order = TaskOrder(run_id=self.run_id, task=task, config=self.options.config, snapshot=self.digest,
                          generation=tree.generation, changes=self._changes_at[tree.generation], files=tree.files,
                          links=tree.links, sandbox=self.sandbox, sandbox_options=self.sandbox_options,
                          patch=self.options.tasks.patches.get(task.id), candidates=candidates,
                          root=str(self.options.root), client_host=self.client_host)
        state.attempts += 1
        key = f"truthplane-{self.run_id}-{task.id}-{state.attempts}"
        self._keys[key] = state
        future = cluster.client.submit(run_task, order, self.snapshot_name, key=key, priority=task.priority,
                                       pure=False)
        state.status, state.worker = "RUNNING", None
        waiter = asyncio.ensure_future(_result(future, cluster))
        self._running[waiter] = Running(state, tree, future, time.monotonic())

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
                self._changes_at[landing.version] = changes
                self._drop(old)
            self.tree.users += 1
            return self.tree

    def _drop(self, tree: Tree) -> None:
        if tree is not self.tree and tree is not self.base and tree.users == 0:
            shutil.rmtree(tree.directory, ignore_errors=True)

    # ---- an answer -----------------------------------------------------------------------------

    async def _landed(self, waiter: asyncio.Future[Any], item: Running) -> None:
        state, tree = item.state, item.tree
        taskdir = Path(tempfile.mkdtemp(prefix=f"task-{state.task.id}-", dir=self.workdir))
        where: dict[str, str] = {"worker": "", "name": state.worker or "", "host": ""}
        try:
            try:
                answer = waiter.result()
            except _SchedulerLost as lost:
                self.cluster_lost = str(lost)
                state.status = "PENDING"
                self.say(f"{self.cluster_lost}: the remaining tasks are not run")
                return
            except Exception as exc:  # noqa: BLE001 -- one task's failure is its verdict, not the run's end
                outcome = Outcome(Verdict.UNVERIFIED, [_failure(exc)])
            else:
                where = answer.where
                outcome = await asyncio.to_thread(_outcome, answer, tree, taskdir)
            view = self._views.get(where.get("worker", ""))
            if view is not None:
                view.doing = None
            await self._finish(state, tree, outcome, where, time.monotonic() - item.started)
        finally:
            await asyncio.to_thread(shutil.rmtree, taskdir, True)
            tree.users -= 1
            self._drop(tree)

    async def _finish(self, state: TaskState, tree: Tree, outcome: Outcome, where: dict[str, str],
                      duration: float) -> None:
        self.scanned |= outcome.scanned
        self.builds += outcome.builds
        commit: str | None = None
        if outcome.verdict is Verdict.APPROVE and outcome.touched:
            async with self.git_lock:
                job = asyncio.ensure_future(asyncio.to_thread(self.landing.commit, state.task, tree, outcome))
                self._commit_jobs.add(job)
                try:
                    commit = await asyncio.shield(job)
                except asyncio.CancelledError:
                    commit = await job  # a commit is never left half-recorded: finish it, then stop
                    self._finished(state, tree, outcome, where, duration, commit)
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
        self._finished(state, tree, outcome, where, duration, commit)

    def _finished(self, state: TaskState, tree: Tree, outcome: Outcome, where: dict[str, str], duration: float,
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
        view = self._views.get(where.get("worker", ""))
        node = view.name if view else where.get("name", "")
        state.record = resume.task_record(state, tree, outcome, {**where, "node": node}, duration)
        state.status = "DONE"
        place = f" on {node}" if node else ""
        committed = f", committed {commit[:12]}" if commit else ""
        self.say(f"{state.task.id}: {outcome.verdict.value}{place} in {duration:.1f}s{committed}")


class _SchedulerLost(Exception):
    """The client lost its scheduler: no task of this run can finish any more."""


async def _result(future: Any, cluster: Cluster) -> Any:
    """A future's result. One the cluster gave up because the scheduler went away is _SchedulerLost; one it gave
    up otherwise is that task's failure."""
    from distributed.client import FutureCancelledError
    from distributed.comm.core import CommClosedError

    try:
        return await future
    except (FutureCancelledError, CommClosedError, OSError) as exc:
        if not cluster.connected():
            raise _SchedulerLost(f"the Dask scheduler was lost ({type(exc).__name__})") from None
        raise ExecutorError(f"the cluster gave the task up: {exc}") from None


def _failure(exc: BaseException) -> str:
    if type(exc).__name__ == "KilledWorker":
        return f"the task was lost with every worker it ran on ({exc}): it may be what kills them"
    return describe(exc)


def _outcome(answer: Any, tree: Tree, taskdir: Path) -> Outcome:
    """The worker's answer as an Outcome, the change's files made here (the checks a checkout needs, again)."""
    from truthplane.git.tree_writer import UnsafeWrite

    outcome = Outcome(answer.verdict, list(answer.reasons), touched=list(answer.touched), diff=answer.diff,
                      new=answer.new, fixed=answer.fixed, checks=answer.checks, scanned=set(answer.scanned),
                      builds=answer.builds, title=answer.title)
    if answer.touched and answer.writes:
        after = taskdir / "after"
        try:
            _materialise(tree.directory, after, answer.writes)
        except UnsafeWrite as exc:
            outcome.verdict = Verdict.REJECT
            outcome.reasons.insert(0, f"the change cannot be carried: {exc}")
            return outcome
        outcome.after = after
    return outcome


async def run_all(options: RunOptions, say: Callable[[str], None] = lambda line: None,
                  scheduler: Scheduler | None = None) -> RunResult:
    return await (scheduler or Scheduler(options, say)).run()


def run_record(run: Scheduler) -> dict[str, Any]:
    """The execution record: every task once, the figures counted as things happened."""
    tasks = []
    for state in run.states.values():
        if state.record is None or state.status not in ("DONE",):
            if run.interrupted:
                why = "interrupted before it finished"
            else:
                why = f"not run: {run.cluster_lost or 'no worker left'}"
            status = "INTERRUPTED" if run.interrupted else "NOT_RUN"
            state.record = resume.bare_record(state.task, status, why)
        tasks.append(state.record)
    judged = [s for s in run.states.values() if s.verdict is not None]
    fresh = [s for s in judged if s.carried is None]
    overall = worst(Verdict.APPROVE, *(s.verdict for s in judged if s.verdict is not None))
    if any(r["status"] == "NOT_RUN" for r in tasks):
        overall = worst(overall, Verdict.UNVERIFIED)
    base = getattr(run, "base", None)
    landing = getattr(run, "landing", None)
    record: dict[str, Any] = {
        "tool": "truthplane",
        "kind": "run-all",
        "run_id": run.run_id,
        "start_time": run.started_at,
        "end_time": resume.now_utc(),
        "baseline": resume.baseline_record(run.head, base),
        "tasks_file": run.options.tasks.source,
        "resumed_from": run.resumed_from,
        "cluster": _cluster_record(run),
        "workers": [{"address": w.address, "node": w.name, "host": w.host, "threads": w.threads, "alive": w.alive}
                    for w in run.workers],
        "nodes_lost": run.lost_nodes,
        "tasks": tasks,
        "honest_metrics": {
            "files_verified": len(run.scanned),
            "files_modified": len(landing.modified) if landing else 0,
            "builds_tested": run.builds,
            "git_commits": landing.commits if landing else 0,
            "truth_gate_approvals": sum(1 for s in fresh if s.verdict is Verdict.APPROVE),
            "truth_gate_rejections": sum(1 for s in fresh if s.verdict is Verdict.REJECT),
        },
        "overall_verdict": overall.value,
    }
    if run.interrupted or run.cluster_lost:
        record["incomplete"] = True  # the next run resumes from here
    return record


def _cluster_record(run: Scheduler) -> dict[str, Any]:
    cluster = run.cluster
    if cluster is None:
        return {}
    return {"kind": cluster.settings.kind, "started_by_truthplane": cluster.owned,
            "address": cluster.settings.address if cluster.settings.kind == "address" else None,
            "dashboard": cluster.dashboard, "lost": run.cluster_lost}
