"""LocalExecutor: run a job as a subprocess in a temporary copy, inside bubblewrap when it exists.

Under bwrap the job sees the installed system read-only (/usr, /etc, /opt, ... and the interpreter) and
nothing of the places files live (homes, /var, /srv, /mnt, /run with the Docker socket); the checkout,
its snapshot, the temp dir holding every job's directory and the caches are masked wherever they are,
and an empty /tmp; only its own workspace is writable; it has no network
unless asked, its own pid/ipc/uts/user namespaces, no capabilities, and it dies with us. Memory,
process count and CPU are capped by a cgroup made for the job (`_cgroup.py`), because
RLIMIT_NPROC does not bind root. Without bwrap the job still runs, and every result says it was
unsandboxed.

Options ([executors.local]): `sandbox = false` runs unsandboxed on purpose; `kill_grace_s`
(default 2) is how long a timed-out job has between SIGTERM and SIGKILL.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import Any

from truthplane.errors import ExecutorError
from truthplane.executors._cgroup import CgroupUnavailable, JobCgroup, sweep_dead
from truthplane.executors._starter import JobProcess, Starter, StarterPool
from truthplane.executors._jobdir import (
    OutputCap,
    create_workspace,
    job_env,
    job_path,
    remove_workspace,
)
from truthplane.executors.interface import Executor
from truthplane.executors.preflight import preflight_untrusted
from truthplane.executors.jobs import Interpreter, Job, JobResult, Limits
from truthplane.leftovers import owned_prefix, sweep_tempdirs
from truthplane.models import ToolInfo

NO_BWRAP = "bubblewrap not found: apt-get install bubblewrap; jobs would run unsandboxed"
UNSANDBOXED_NOTE = "ran unsandboxed: the job could read and write anything this user can"

# all a job sees of the host, read-only: the installed system, none of the places users keep files
# (homes, /var, /srv, /mnt, /tmp, /run: the Docker socket) wherever a repository or a job directory may be
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/nix", "/snap")
# inside those, hidden behind an empty tmpfs
HIDDEN_DIRS = ("/etc/ssh", "/etc/ssl/private", "/etc/sudoers.d")
# the job's uid maps to ours, so root-only files would be readable as their owner: mask them
HIDDEN_FILES = ("/etc/shadow", "/etc/shadow-", "/etc/gshadow", "/etc/gshadow-", "/etc/sudoers")
# empty and writable, as programs expect
SCRATCH_DIRS = ("/tmp", "/var/tmp")
_SANDBOX_UID = 1000


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _interpreter_dirs(interpreter: Interpreter | None = None) -> list[str]:
    """Where this python (and the job's own interpreter) lives, so it stays usable wherever it is installed."""
    candidates = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))}
    if interpreter is not None:
        candidates.update(interpreter.prefixes)
    return sorted({os.path.realpath(p) for p in candidates})


def _hideable(path: str) -> bool:
    """A host directory can be masked unless that would hide the system itself."""
    return path != "/" and not any(_inside(d, path) for d in SYSTEM_DIRS)


def host_places(root: Path, source_dir: str | None = None, origin: str | None = None) -> list[str]:
    """Where the host keeps what no job may see: the checkout, its snapshot, every job's directory (the
    temp dir), the working directory truthplane was started in, and truthplane's caches."""
    try:
        cwd: str | None = os.getcwd()
    except OSError:
        cwd = None  # removed under us: nothing there to hide
    places = [str(root.parent), tempfile.gettempdir()]
    places += [
        p
        for p in (cwd, source_dir, origin, os.environ.get("TRUTHPLANE_CACHE_DIR"), os.environ.get("XDG_CACHE_HOME"))
        if p
    ]
    return sorted({os.path.realpath(p) for p in places})


def bwrap_argv(bwrap: str, root: Path, workdir: Path, limits: Limits, source_dir: str | None = None,
               origin: str | None = None, interpreter: Interpreter | None = None) -> list[str]:
    argv = [bwrap]
    visible: list[str] = []
    for directory in SYSTEM_DIRS:
        if os.path.islink(directory):
            argv += ["--symlink", os.readlink(directory), directory]
        elif os.path.isdir(directory):
            argv += ["--ro-bind", directory, directory]
            visible.append(directory)
    argv += ["--ro-bind-try", "/sys", "/sys", "--dev", "/dev", "--proc", "/proc"]
    for directory in SCRATCH_DIRS:
        argv += ["--tmpfs", directory]
    masked = [d for d in HIDDEN_DIRS if os.path.isdir(d) and not os.path.islink(d)]
    masked += [p for p in host_places(root, source_dir, origin)
               if _hideable(p) and any(_inside(p, d) for d in visible) and os.path.isdir(p)]
    for directory in masked:
        argv += ["--tmpfs", directory]
    for secret in HIDDEN_FILES:
        if os.path.isfile(secret):
            argv += ["--ro-bind", "/dev/null", secret]
    argv += ["--bind", str(root), str(root)]
    at = str(workdir)
    if origin is not None and _hideable(os.path.realpath(origin)):
        # the job's copy of the checkout appears where the checkout is: an editable install in the repository's
        # .venv, or an absolute path in its configuration, reaches the copy under test, never the checkout
        at = os.path.realpath(origin)
        argv += ["--bind", str(workdir), at]
    for prefix in _interpreter_dirs(interpreter):
        shown = any(_inside(prefix, d) for d in visible) and not any(_inside(prefix, m) for m in masked)
        if (not shown or (origin is not None and _inside(prefix, at))) and os.path.isdir(prefix):
            argv += ["--ro-bind", prefix, prefix]
    if limits.network:
        resolv = os.path.realpath("/etc/resolv.conf")  # often a link into /run, which a job does not see
        if os.path.isfile(resolv) and not any(_inside(resolv, d) for d in visible):
            argv += ["--ro-bind", resolv, resolv]
    uid = _SANDBOX_UID if os.getuid() == 0 else os.getuid()
    gid = _SANDBOX_UID if os.getgid() == 0 else os.getgid()
    argv += ["--remount-ro", "/", "--chdir", at]
    argv += ["--unshare-user", "--uid", str(uid), "--gid", str(gid), "--disable-userns", "--cap-drop", "ALL"]
    argv += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "truthplane"]
    if not limits.network:
        argv.append("--unshare-net")
    argv += ["--die-with-parent", "--new-session", "--"]
    return argv


@cache
def _bwrap_works(bwrap: str) -> str | None:
    """None if bwrap can build our sandbox here, else its complaint (checked once per process)."""
    with tempfile.TemporaryDirectory(prefix=owned_prefix("probe")) as scratch:
        probe = bwrap_argv(bwrap, Path(scratch), Path(scratch), Limits())
        try:
            proc = subprocess.run([*probe, "true"], check=False, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
    return None if proc.returncode == 0 else (proc.stderr.strip() or f"exit status {proc.returncode}")


# caps CPU time (SIGXCPU, then SIGKILL a second later) and joins the cgroups named, then execs the job: for
# jobs started without a starter (`_starter.py`); a shell, because a Python preexec_fn forces a full fork
_ENTER = (
    'cpu=$1; shift; while [ "$1" != -- ]; do echo $$ > "$1" || '
    '{ echo "truthplane: cannot join the job cgroup $1" >&2; exit 125; }; shift; done; '
    'shift; ulimit -S -t "$cpu" 2>/dev/null && ulimit -H -t $((cpu + 1)) 2>/dev/null; exec "$@"'
)


def enter_argv(procs_files: list[str], cpu_seconds: int) -> list[str]:
    return ["/bin/sh", "-c", _ENTER, "truthplane-enter", str(cpu_seconds), *procs_files, "--"]


def _descendants(pid: int) -> list[int]:
    """Processes below pid, from /proc (used only when there is no cgroup to list them)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill(pid: int, sig: int, group: bool = False) -> None:
    try:
        os.killpg(pid, sig) if group else os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


async def _pump(stream: asyncio.StreamReader, cap: OutputCap) -> None:
    while chunk := await stream.read(1 << 18):
        cap.feed(chunk)


async def _feed_stdin(proc: asyncio.subprocess.Process, data: bytes) -> None:
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        await proc.stdin.drain()
        proc.stdin.close()
    except (BrokenPipeError, ConnectionResetError):
        pass  # the job did not read its input: its business


def sweep_leftovers() -> list[str]:
    """Remove what runs killed before they could clean up left behind: temp dirs and job cgroups."""
    removed = [str(path) for path in sweep_tempdirs()]
    try:
        removed += [f"cgroup {name}" for name in sweep_dead()]
    except OSError:
        pass  # no cgroup hierarchy to look in: nothing of ours can be there
    return removed


@cache
def _sweep_once() -> None:
    sweep_leftovers()


class LocalExecutor(Executor):
    """Subprocess in a temporary copy; bubblewrap + a cgroup where available."""

    name = "local"
    runs_host_interpreter = True

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        _sweep_once()
        # job processes kept ready inside their cgroups (`_starter.py`); `warm = 0` starts each on demand
        self._starters = StarterPool(int(self.options.get("warm", min(self.concurrency, 4))))

    @property
    def concurrency(self) -> int:
        return int(self.options.get("concurrency", os.cpu_count() or 2))

    @property
    def kill_grace_s(self) -> float:
        return float(self.options.get("kill_grace_s", 2.0))

    def bwrap(self) -> str | None:
        if self.options.get("sandbox", True) in (False, "false", "off"):
            return None
        return shutil.which("bwrap")

    @classmethod
    def available(cls, options: dict[str, Any] | None = None) -> ToolInfo:
        executor = cls(options)
        bwrap = executor.bwrap()
        if bwrap is None:
            reason = NO_BWRAP if shutil.which("bwrap") is None else "sandbox = false: jobs run unsandboxed"
            return ToolInfo(name=cls.name, installed=True, reason=reason)
        output = subprocess.run([bwrap, "--version"], check=False, capture_output=True, text=True).stdout.split()
        version = output[-1] if output else None
        problem = _bwrap_works(bwrap)
        if problem:
            return ToolInfo(
                name=cls.name, installed=False, path=bwrap, reason=f"bubblewrap cannot build a sandbox here: {problem}"
            )
        try:
            JobCgroup.create(Limits()).remove()
        except CgroupUnavailable as exc:
            return ToolInfo(name=cls.name, installed=True, version=version, path=bwrap,
                            reason=f"memory and process limits not enforced: {exc}")
        return ToolInfo(name=cls.name, installed=True, version=version, path=bwrap)

    async def run(self, job: Job) -> JobResult:
        bwrap = self.bwrap()
        notes: list[str] = []
        if bwrap is not None and (problem := _bwrap_works(bwrap)):
            raise ExecutorError(
                f"bubblewrap cannot build a sandbox here ({problem}): fix it, or set sandbox = false "
                "under [executors.local] to run unsandboxed on purpose"
            )
        if bwrap is None:
            notes.append(UNSANDBOXED_NOTE + ("" if shutil.which("bwrap") else f" ({NO_BWRAP})"))
        # copying a repository and removing it are blocking work: off the event loop, so jobs overlap
        root, workdir = await asyncio.to_thread(create_workspace, job)
        starter: Starter | None = None
        try:
            starter = await asyncio.to_thread(self._starters.take)
            if starter is None:
                notes.append(f"memory and process limits not enforced: {self._starters.unavailable}")
            argv = job.command
            if bwrap is not None:
                argv = (
                    bwrap_argv(bwrap, root, workdir, job.limits, job.source_dir, job.origin, job.interpreter)
                    + job.command
                )
            env = job_env(job, home=str(root), path=job_path(job))
            result = await self._execute(job, argv, env, workdir, starter, sandboxed=bwrap is not None)
        finally:
            if starter is not None:
                await asyncio.to_thread(starter.cgroup.remove)
            await asyncio.to_thread(remove_workspace, root)
        result.sandboxed = bwrap is not None
        result.notes = notes + result.notes
        result.interpreter = job.interpreter.executable if job.interpreter is not None else None
        result.preflight = preflight_untrusted(job)
        return result

    async def _execute(
        self, job: Job, argv: list[str], env: dict[str, str], workdir: Path, starter: Starter | None, sandboxed: bool
    ) -> JobResult:
        limits = job.limits
        cpu_seconds = max(1, math.ceil(limits.timeout_s * max(limits.cpus, 0.01)) + 1)
        cgroup = starter.cgroup if starter is not None else None
        started = time.monotonic()
        proc: asyncio.subprocess.Process | JobProcess
        if starter is not None:
            try:
                proc = await starter.start(argv, env, str(workdir), cpu_seconds, limits, job.stdin)
            except OSError as exc:
                starter.discard()
                raise ExecutorError(f"cannot hand the job to its starter: {exc}") from None
        else:
            try:
                proc = await asyncio.create_subprocess_exec(
                    *enter_argv([], cpu_seconds), *argv,
                    stdin=subprocess.PIPE if job.stdin is not None else subprocess.DEVNULL,
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(workdir), start_new_session=True,
                )
            except FileNotFoundError:
                return JobResult(
                    returncode=127,
                    stderr=f"truthplane: command not found: {argv[0]}\n",
                    executor=self.name,
                    duration_s=time.monotonic() - started,
                )
            except OSError as exc:
                raise ExecutorError(
                    f"cannot start {argv[0]}: {exc.strerror}: check the command and the workspace"
                ) from None
        assert proc.stdout is not None and proc.stderr is not None
        out, err = OutputCap(limits.max_output_bytes), OutputCap(limits.max_output_bytes)
        readers = asyncio.gather(_pump(proc.stdout, out), _pump(proc.stderr, err))
        stdin_task = (asyncio.ensure_future(_feed_stdin(proc, job.stdin))
                      if job.stdin is not None and isinstance(proc, asyncio.subprocess.Process) else None)
        timed_out = False
        try:
            await asyncio.wait_for(proc.wait(), timeout=limits.timeout_s)
        except TimeoutError:
            timed_out = True
            await self._terminate(proc, cgroup, sandboxed)
        finally:
            self._kill_everything(proc, cgroup, group=not sandboxed)
            if proc.returncode is None:
                await proc.wait()
            try:
                await asyncio.wait_for(readers, timeout=5)
            except TimeoutError:
                readers.cancel()
            if stdin_task is not None:
                stdin_task.cancel()
            if isinstance(proc, JobProcess):
                proc.close()
        stdout, stdout_truncated = out.text()
        stderr, stderr_truncated = err.text()
        oom = cgroup.oom_killed() if cgroup is not None else False
        notes = []
        if timed_out:
            notes.append(f"killed after the {limits.timeout_s:g} s timeout")
        if oom:
            notes.append(f"killed for exceeding {limits.memory_mb} MB of memory")
        elif proc.returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            notes.append(f"killed for exceeding {cpu_seconds} s of CPU time")
        return JobResult(
            returncode=proc.returncode, stdout=stdout, stderr=stderr,
            stdout_truncated=stdout_truncated, stderr_truncated=stderr_truncated,
            duration_s=time.monotonic() - started, timed_out=timed_out, oom_killed=oom,
            executor=self.name, node="localhost", notes=notes,
        )

    async def _terminate(
        self, proc: asyncio.subprocess.Process | JobProcess, cgroup: JobCgroup | None, sandboxed: bool
    ) -> None:
        """SIGTERM the job's processes, give them the grace period, then SIGKILL everything."""
        if cgroup is not None:
            cgroup.signal(signal.SIGTERM, spare=proc.pid if sandboxed else None)
        elif sandboxed:
            for pid in _descendants(proc.pid):
                _kill(pid, signal.SIGTERM)
        else:
            _kill(proc.pid, signal.SIGTERM, group=True)
        try:
            await asyncio.wait_for(proc.wait(), timeout=self.kill_grace_s)
        except TimeoutError:
            pass

    async def close(self) -> None:
        await asyncio.to_thread(self._starters.close)

    @staticmethod
    def _kill_everything(proc: asyncio.subprocess.Process | JobProcess, cgroup: JobCgroup | None, group: bool) -> None:
        """Nothing of a job outlives it: its cgroup, its process group, bwrap (and so its pid namespace)."""
        if cgroup is not None:
            cgroup.signal(signal.SIGKILL)
        if group:
            _kill(proc.pid, signal.SIGKILL, group=True)
        if proc.returncode is None:
            _kill(proc.pid, signal.SIGKILL)
