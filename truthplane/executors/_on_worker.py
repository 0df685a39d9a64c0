"""What runs inside a Dask worker: the snapshot a job needs, unpacked once per worker; the worker machine's own
sandbox executor; a job (or a run-all task) run to its end or cancelled with its future.

Each worker thread keeps one event loop and one executor per sandbox for its life, so an executor's warm
processes serve every job the thread runs. A future cancelled by its client (Ctrl-C, or the client gone) stops the
job: the worker marks the task cancelled, a watcher sees it and cancels the coroutine, and the executor kills what
it started.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from truthplane.errors import ExecutorError
from truthplane.executors.interface import Executor
from truthplane.executors.jobs import Job, JobResult

T = TypeVar("T")
TOPIC = "truthplane"  # the events a task's start sends to the client (where it runs)
CANCEL_POLL_S = 0.25

# sandboxes a test hands in for an in-process cluster (the name stands for the object)
IN_PROCESS_SANDBOXES: dict[str, Executor] = {}

_local = threading.local()
_unpacking = threading.Lock()
_digest_locks: dict[str, threading.Lock] = {}


def here() -> dict[str, str]:
    """This worker: its address, its name and its host."""
    from distributed import get_worker

    worker = get_worker()
    return {"worker": worker.address, "name": str(worker.name), "host": socket.gethostname()}


def announce(**what: Any) -> dict[str, str]:
    """Tell the client where this task runs and what it does (the live display; the record names the worker;
    a rerun elsewhere shows a lost worker). Called from the task's own thread."""
    from distributed import get_worker

    where = here()
    worker = get_worker()
    worker.log_event(TOPIC, {**what, **where, "key": str(worker.get_current_task())})
    return where


def scratch() -> Path:
    """This worker's own directory for truthplane (removed with the worker's local directory)."""
    from distributed import get_worker

    path = Path(get_worker().local_directory) / "truthplane"
    path.mkdir(parents=True, exist_ok=True)
    return path


def snapshot(archive: bytes) -> bytes:
    """A snapshot as a task of the graph, not scattered data: the scheduler keeps the bytes, so when the worker
    holding them dies it makes them again elsewhere (scattered data would be lost with that worker)."""
    return archive


def fetch(key: str) -> bytes:
    """The bytes of a snapshot the client holds in the cluster under `key`, from whichever worker has them
    (the scheduler makes them again if none has)."""
    from distributed import worker_client

    with worker_client() as client:  # the thread leaves the pool while it waits: the snapshot's task may need it
        return client.get_dataset(key).result()  # type: ignore[no-any-return]


def unpacked(digest: str, key: str) -> Path:
    """The snapshot with this content hash, fetched and unpacked once on this worker and shared by its jobs
    (read-only to them: every job works in its own copy). A task does not depend on the snapshot's future, so
    the scheduler places it by free threads and priority alone."""
    from truthplane.executors._runner import safe_extract
    from truthplane.executors._transfer import digest as sha256

    final = scratch() / "snapshots" / digest
    if final.is_dir():
        return final
    archive = fetch(key)  # no lock held here: the thread leaves the pool while it waits, and must get back in
    with _unpacking:
        lock = _digest_locks.setdefault(digest, threading.Lock())
    with lock:
        if final.is_dir():
            return final
        if sha256(archive) != digest:
            raise ExecutorError(f"the snapshot received does not match its content hash {digest[:12]}")
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=final.parent))
        try:
            safe_extract(archive, str(partial))
            os.rename(partial, final)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return final


_sandboxes: dict[str, Executor] = {}
_sandboxes_lock = threading.Lock()


def sandbox(name: str, options: dict[str, Any]) -> Executor:
    """This worker's executor of that name (bubblewrap, docker, ...), made on first use and shared by its threads
    (the local executor's ready processes belong to no event loop)."""
    if name in IN_PROCESS_SANDBOXES:
        return IN_PROCESS_SANDBOXES[name]
    from truthplane.registry import load

    key = f"{name}:{sorted(options.items())!r}"
    with _sandboxes_lock:
        if key not in _sandboxes:
            if name in ("ssh", "cluster"):
                raise ExecutorError(f"a worker's sandbox cannot be the {name} executor: use local (bubblewrap) or "
                                    "docker")
            executor = load("executors", name)(options)
            bwrap = getattr(executor, "bwrap", None)
            if bwrap is not None and bwrap() is None and options.get("sandbox", True) not in (False, "false", "off"):
                raise ExecutorError(f"worker on {socket.gethostname()} has no bubblewrap: a task never runs "
                                    "unsandboxed on a worker (apt-get install bubblewrap there, or sandbox = "
                                    "\"docker\")")
            _sandboxes[key] = executor
        return _sandboxes[key]


def _loop() -> asyncio.AbstractEventLoop:
    loop = getattr(_local, "loop", None)
    if loop is None or loop.is_closed():
        loop = _local.loop = asyncio.new_event_loop()
    return loop


def _cancelled(worker: Any, key: Any) -> bool:
    task = worker.state.tasks.get(key)
    return task is None or task.state in ("cancelled", "released", "forgotten")


def run_here(work: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine on this thread's loop; if the task's future is cancelled meanwhile, cancel it."""
    from distributed import get_worker

    worker = get_worker()  # known in the task's own thread only
    key = worker.get_current_task()
    loop = _loop()
    main = loop.create_task(_as_coroutine(work))
    done = threading.Event()

    def watch() -> None:
        while not done.wait(CANCEL_POLL_S):
            if key is not None and _cancelled(worker, key):
                loop.call_soon_threadsafe(main.cancel)
                return

    watcher = threading.Thread(target=watch, name="truthplane-cancel-watch", daemon=True)
    watcher.start()
    try:
        return loop.run_until_complete(main)
    finally:
        done.set()
        watcher.join()


async def _as_coroutine(work: Callable[[], Awaitable[T]]) -> T:
    return await work()


def run_job(job: Job, digest: str | None, key: str | None, sandbox_name: str,
            options: dict[str, Any]) -> JobResult:
    """One job of the cluster executor, in this worker machine's sandbox."""
    where = announce(kind="job", label=job.label)
    if digest is not None:
        assert key is not None
        job = job.model_copy(update={"source_dir": str(unpacked(digest, key)), "origin": None,
                                     "interpreter": None})
    executor = sandbox(sandbox_name, options)
    result = run_here(lambda: executor.run(job))
    return result.model_copy(update={"node": where["name"], "notes": [*result.notes,
                                                                       f"ran on worker {where['worker']}"]})


def readiness(sandbox_name: str, options: dict[str, Any]) -> dict[str, Any]:
    """What `truthplane doctor` asks every worker: its host, its Python, its truthplane, its sandbox."""
    import platform
    import sys

    import distributed

    import truthplane
    from truthplane.errors import PluginError
    from truthplane.registry import load

    try:
        info = load("executors", sandbox_name).available(options)
        usable, reason = info.installed, info.reason
    except PluginError as exc:
        usable, reason = False, str(exc)
    return {"host": socket.gethostname(), "python": platform.python_version(), "executable": sys.executable,
            "truthplane": truthplane.__version__, "distributed": distributed.__version__, "sandbox": sandbox_name,
            "sandbox_usable": usable, "sandbox_reason": reason}


def version() -> str:
    """truthplane's version where this runs (the scheduler must import truthplane to read a run's tasks)."""
    import truthplane

    return truthplane.__version__
