"""Job processes started ahead of time, already inside their own job cgroup.

Joining a cgroup (a write to cgroup.procs) stalls the joining process tree for an RCU grace period on
some kernels: about 10 ms a job here, more than the sandbox itself costs. A starter is a tiny python
(`-S -E`) that joins a fresh cgroup as soon as it is spawned, then waits on stdin for the job (argv, env,
cwd, CPU seconds) and execs it, so the stall happens while the previous job runs. The job's own
limits are written into the cgroup when it is handed over, before the starter is told what to run.

The starter's stdout and stderr are the job's. If truthplane dies, the starter reads EOF and exits.
Idle starters are plain processes, bound to no event loop; a job's pipes and exit (a pidfd) are
followed on the loop that runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import marshal
import os
import subprocess
import sys
import threading
import weakref
from concurrent.futures import Future, ThreadPoolExecutor

from truthplane.executors._cgroup import CgroupUnavailable, JobCgroup
from truthplane.executors.jobs import Limits

# exit 125: could not join the cgroup or no job came; 127: command not found; 126: could not exec
_SCRIPT = r"""
import marshal, os, resource, sys
for procs in sys.argv[1:]:
    try:
        with open(procs, "w") as handle:
            handle.write("0")
    except OSError as exc:
        os.write(2, ("truthplane: cannot join the job cgroup %s: %s\n" % (procs, exc)).encode())
        os._exit(125)
def read(n):
    data = b""
    while len(data) < n:
        chunk = os.read(0, n - len(data))
        if not chunk:
            os._exit(125)
        data += chunk
    return data
argv, env, cwd, cpu = marshal.loads(read(int(read(10))))
os.chdir(cwd)
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
try:
    os.execvpe(argv[0], argv, env)
except FileNotFoundError:
    os.write(2, ("truthplane: command not found: %s\n" % argv[0]).encode())
    os._exit(127)
except OSError as exc:
    os.write(2, ("truthplane: cannot start %s: %s\n" % (argv[0], exc.strerror)).encode())
    os._exit(126)
"""


class Starter:
    """One waiting starter: a plain Popen (bound to no event loop) and its cgroup."""

    def __init__(self, popen: subprocess.Popen[bytes], cgroup: JobCgroup) -> None:
        self.popen = popen
        self.cgroup = cgroup

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def discard(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()
        self.popen.wait()
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream is not None:
                stream.close()
        self.cgroup.remove()

    async def start(self, argv: list[str], env: dict[str, str], cwd: str, cpu_seconds: int, limits: Limits,
                    stdin: bytes | None) -> JobProcess:
        """Set the job's limits on the cgroup, tell the starter what to exec, and follow it on this loop."""
        self.cgroup.set_limits(limits)
        payload = marshal.dumps((argv, env, cwd, cpu_seconds))
        assert self.popen.stdin is not None
        self.popen.stdin.write(b"%010d" % len(payload) + payload)
        self.popen.stdin.flush()
        return await JobProcess.follow(self.popen, stdin)


class JobProcess:
    """What the executor needs of a started job, as asyncio.subprocess.Process offers it: pid,
    returncode, wait(), stdout and stderr readers. The exit is seen through a pidfd: no thread."""

    def __init__(self, popen: subprocess.Popen[bytes], stdout: asyncio.StreamReader, stderr: asyncio.StreamReader,
                 transports: list[asyncio.ReadTransport], exited: asyncio.Event, feeding: asyncio.Future[None]) -> None:
        self._popen = popen
        self.pid = popen.pid
        self.stdout, self.stderr = stdout, stderr
        self._transports = transports
        self._exited = exited
        self._feeding = feeding

    @classmethod
    async def follow(cls, popen: subprocess.Popen[bytes], stdin: bytes | None) -> JobProcess:
        loop = asyncio.get_running_loop()
        readers: list[asyncio.StreamReader] = []
        transports: list[asyncio.ReadTransport] = []
        for pipe in (popen.stdout, popen.stderr):
            reader = asyncio.StreamReader()

            def protocol(reader: asyncio.StreamReader = reader) -> asyncio.StreamReaderProtocol:
                return asyncio.StreamReaderProtocol(reader)

            transport, _ = await loop.connect_read_pipe(protocol, pipe)
            readers.append(reader)
            transports.append(transport)
        exited = asyncio.Event()
        pidfd = os.pidfd_open(popen.pid)

        def on_exit() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            popen.wait()
            exited.set()

        loop.add_reader(pidfd, on_exit)
        feeding = asyncio.ensure_future(asyncio.to_thread(_feed, popen, stdin or b""))
        return cls(popen, readers[0], readers[1], transports, exited, feeding)

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode if self._exited.is_set() else None

    async def wait(self) -> int:
        await self._exited.wait()
        assert self._popen.returncode is not None
        return self._popen.returncode

    def close(self) -> None:
        """After the job: its pipes and the stdin feeder (the job may not have read its input)."""
        for transport in self._transports:
            transport.close()
        self._feeding.cancel()


def _feed(popen: subprocess.Popen[bytes], data: bytes) -> None:
    """The job's input, then EOF (a job without input sees EOF at once)."""
    assert popen.stdin is not None
    try:
        if data:
            popen.stdin.write(data)
        popen.stdin.close()
    except (BrokenPipeError, ConnectionResetError, ValueError):
        pass  # the job did not read its input: its business


def spawn() -> Starter:
    """A starter in a fresh cgroup (raises CgroupUnavailable when there is none to make)."""
    cgroup = JobCgroup.create(Limits())
    try:
        popen = subprocess.Popen(
            [sys.executable, "-S", "-E", "-c", _SCRIPT, *cgroup.procs_files()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={"PATH": "/usr/bin:/bin"}, cwd="/", start_new_session=True,
        )
    except BaseException:
        cgroup.remove()
        raise
    return Starter(popen, cgroup)


class StarterPool:
    """Up to `size` starters kept ready; refilled in the background after each take. Idle starters
    belong to no event loop, so one executor can serve several asyncio.run calls; `close()` (or, for an
    executor never closed, garbage collection) kills them and removes their cgroups.

    Every starter is spawned by one long-lived thread: bwrap's --die-with-parent is a parent-death
    signal, and Linux sends it when the *thread* that forked the process exits, so a starter forked by a
    short-lived worker thread would be killed mid-job."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._ready: list[Starter] = []
        self._lock = threading.Lock()
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="truthplane-starters")
        self._filling: Future[None] | None = None
        self._closed = False
        self.unavailable: str | None = None  # why no cgroup can be made here, once that is known
        weakref.finalize(self, _shut, self._ready, self._lock, self._spawner)

    def take(self) -> Starter | None:
        """A ready starter, else a new one; None when cgroups cannot be made here (see `unavailable`)."""
        starter = None
        while starter is None:
            with self._lock:
                candidate = self._ready.pop() if self._ready else None
            if candidate is None:
                break
            if candidate.alive:
                starter = candidate
            else:
                candidate.discard()
        if starter is None and self.unavailable is None:
            try:
                starter = self._spawner.submit(spawn).result()
            except CgroupUnavailable as exc:
                self.unavailable = str(exc)
        self._refill()
        return starter

    def _refill(self) -> None:
        with self._lock:
            if self.size <= 0 or self.unavailable or self._closed or (self._filling and not self._filling.done()):
                return
            self._filling = self._spawner.submit(self._fill)

    def _fill(self) -> None:
        while True:
            with self._lock:
                if self._closed or len(self._ready) >= self.size:
                    return
            try:
                starter = spawn()
            except (CgroupUnavailable, OSError):
                return
            with self._lock:
                if not self._closed:
                    self._ready.append(starter)
                    continue
            starter.discard()
            return

    def close(self) -> None:
        with self._lock:
            self._closed = True
            filling = self._filling
        if filling is not None:
            filling.result()
        _shut(self._ready, self._lock, self._spawner)


def _shut(ready: list[Starter], lock: threading.Lock, spawner: ThreadPoolExecutor) -> None:
    _discard_all(ready, lock)
    spawner.shutdown(wait=False)


def _discard_all(ready: list[Starter], lock: threading.Lock) -> None:
    with lock:
        starters = list(ready)
        ready.clear()
    for starter in starters:
        starter.discard()
