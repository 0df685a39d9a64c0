"""SSH nodes: the `[executors.ssh]` settings, connecting to a node with its host key verified, and starting a Dask
worker there for a cluster whose scheduler runs on this machine (`executors/cluster.py`).

truthplane.toml::

    [executors.ssh]
    accept_unknown_hosts = false   # true: connect to hosts missing from known_hosts (keys that changed stay refused)
    connect_timeout_s = 10

    [[executors.ssh.nodes]]
    host = "10.0.0.5"
    port = 22
    user = "runner"
    key = "~/.ssh/truthplane_ed25519"
    slots = 4                      # tasks at once on this node (the worker's threads)
    known_hosts = "~/.ssh/known_hosts"
    cache_dir = ".cache/truthplane" # on the node: the worker's TLS credentials and scratch space for this run
    python = "python3"             # the node's Python, with truthplane installed (pip install truthplane)
    path = "/opt/venv/bin:/usr/bin:/bin"  # PATH for the worker; default: the ssh session's own
    env = { GEMINI_API_KEY = "..." }      # the worker's environment (what a fix task's LLM needs)

A node needs sshd, python3 and `pip install truthplane` (which brings distributed); `truthplane doctor` checks
each node. The worker connects back to the scheduler over TLS with credentials made for the run, written to the
node readable by the login user only and removed when the run ends. asyncssh is imported inside functions only,
and its exceptions stop here.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from truthplane.errors import ConfigError, ExecutorError

START_GRACE_S = 60.0  # a worker's own start (importing distributed and truthplane) beyond the connection


class NodeOptions(BaseModel):
    """One `[[executors.ssh.nodes]]` entry."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    host: str
    port: int = Field(default=22, gt=0, lt=65536)
    user: str | None = None
    key: str | None = Field(default=None, description="private key file; default: ~/.ssh keys and the agent")
    slots: int = Field(default=1, ge=1)
    known_hosts: str | None = Field(default=None, description="default ~/.ssh/known_hosts")
    name: str | None = None
    cache_dir: str = Field(default=".cache/truthplane", description="on the node; relative to the login directory")
    python: str = "python3"
    path: str | None = Field(default=None, description="PATH for the worker on the node; default: the ssh session's")
    env: dict[str, str] = Field(default_factory=dict, description="environment of the worker on the node (an LLM "
                                "key for fix tasks, PYTHONPATH); sent in a file only the login user can read")

    @field_validator("env")
    @classmethod
    def _names(cls, env: dict[str, str]) -> dict[str, str]:
        for name in env:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not an environment variable name")
        return env

    @property
    def label(self) -> str:
        return self.name or (self.host if self.port == 22 else f"{self.host}:{self.port}")


class SSHOptions(BaseModel):
    """[executors.ssh]"""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    nodes: list[NodeOptions] = Field(default_factory=list)
    accept_unknown_hosts: bool = False
    connect_timeout_s: float = Field(default=10.0, gt=0, le=600)


def parse_options(options: dict[str, Any] | None, *, need_nodes: bool = True) -> SSHOptions:
    try:
        parsed = SSHOptions.model_validate(options or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"[executors.ssh] {where}: {first['msg']}") from None
    if need_nodes and not parsed.nodes:
        raise ConfigError("[executors.ssh] has no nodes: add [[executors.ssh.nodes]] with host, user and key")
    names = [node.label for node in parsed.nodes]
    if len(set(names)) != len(names):
        raise ConfigError("[executors.ssh] two nodes have the same name: give each a distinct name or host:port")
    return parsed


class NodeUnreachable(ExecutorError):
    """The node did not answer (refused, reset, timed out): the run goes on without it."""


def _connection_errors() -> tuple[type[BaseException], ...]:
    import asyncssh

    return (asyncssh.ConnectionLost, asyncssh.ChannelOpenError, asyncssh.DisconnectError, OSError,
            asyncio.IncompleteReadError, asyncio.TimeoutError, EOFError)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _known_hosts(node: NodeOptions, accept_unknown: bool) -> tuple[Any, bool, str]:
    """(known_hosts for asyncssh, whether this host has no entry there, the file's path)."""
    import asyncssh

    path = os.path.expanduser(node.known_hosts or "~/.ssh/known_hosts")
    if node.known_hosts and not os.path.isfile(path):
        raise ExecutorError(f"ssh node {node.label}: known_hosts file {path} does not exist: create it or fix the path")
    known = asyncssh.read_known_hosts(path) if os.path.isfile(path) else asyncssh.import_known_hosts("")
    unknown = not any(known.match(node.host, "", node.port))
    if unknown and accept_unknown:
        return None, True, path  # opted in; a host that is known is always checked
    return known, unknown, path


async def connect(node: NodeOptions, accept_unknown: bool, timeout_s: float) -> Any:
    """An asyncssh connection to the node, its host key checked against known_hosts. What the user must fix
    (host key, login, key file) is an ExecutorError; a node that does not answer is NodeUnreachable."""
    import asyncssh

    known_hosts, unknown, known_hosts_path = _known_hosts(node, accept_unknown)
    kwargs: dict[str, Any] = {"port": node.port, "known_hosts": known_hosts, "connect_timeout": timeout_s,
                              "keepalive_interval": 5, "keepalive_count_max": 3}
    if node.user:
        kwargs["username"] = node.user
    if node.key:
        kwargs["client_keys"] = [os.path.expanduser(node.key)]
    try:
        return await asyncssh.connect(node.host, **kwargs)
    except asyncssh.HostKeyNotVerifiable as exc:
        if unknown:
            hint = f"ssh-keyscan -p {node.port} {node.host} >> {known_hosts_path}"
            raise ExecutorError(f"ssh node {node.label}: host key is not in {known_hosts_path}: add it ({hint}) "
                                "after checking it, or set accept_unknown_hosts = true in [executors.ssh]") from None
        raise ExecutorError(f"ssh node {node.label}: host key verification failed ({exc.reason}): "
                            "the host key changed or is wrong; check it before updating known_hosts") from None
    except asyncssh.PermissionDenied:
        raise ExecutorError(f"ssh node {node.label}: login refused for {node.user or 'the current user'}: "
                            "check the key and the node's authorized_keys") from None
    except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
        raise ExecutorError(f"ssh node {node.label}: cannot use key {node.key}: {exc}") from None
    except _connection_errors() as exc:
        raise NodeUnreachable(f"ssh node {node.label}: cannot connect ({_describe(exc)})") from None


# What a node runs: the worker's bootstrap. Started as soon as the node's ssh session is up, it imports distributed
# and the preload modules (most of a worker's start) while the scheduler is still coming up here; then it reads
# the worker's arguments and the run's TLS credentials from stdin, writes the credentials to files only the login
# user can read, and runs the worker in the same process. The node's `env` arrives first, on stdin too (never on
# a command line): with it the bootstrap starts again, so the interpreter itself sees it (PYTHONPATH).
# argv: the run's directory on the node, then the preload modules. A line on stdin (or its end) stops the worker.
BOOTSTRAP = """\
import atexit, json, os, shutil, signal, sys, threading
def line():
    got = bytearray()
    while True:
        c = os.read(0, 1)
        if not c or c == b"\\n":
            if not c or got == b"stop":
                sys.exit(0)  # the run ended (or this machine went away) before the worker started
            return json.loads(got)
        got += c
if os.environ.pop("TRUTHPLANE_NODE_ENV", None) is None:
    env = line()
    if env:
        env = {**os.environ, **env, "TRUTHPLANE_NODE_ENV": "1"}
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
d = sys.argv[1]
os.makedirs(d, 0o700, exist_ok=True)
atexit.register(shutil.rmtree, d, True)
os.makedirs(os.path.join(d, "work"), exist_ok=True)
import importlib
import distributed.cli.dask_worker as dask_worker
for name in sys.argv[2:]:
    try:
        importlib.import_module(name)
    except Exception:
        pass  # the worker's own preload says what is wrong
spec = line()
for name, text in spec["files"].items():
    f = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(f, text.encode())
    os.close(f)
def stop():
    os.read(0, 1)  # told to stop, or stdin closed (this machine went away)
    children = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat") as f:
                children.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            pass
    todo, found = [os.getpid()], []
    while todo:  # every process the worker started (its jobs' sandboxes, in sessions of their own), collected
        for child in children.get(todo.pop(), []):  # before any is killed, so none is reparented away
            found.append(child)
            todo.append(child)
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    shutil.rmtree(d, True)  # the run's files, then the worker with its session
    os.killpg(0, signal.SIGKILL)
threading.Thread(target=stop, daemon=True).start()
sys.argv = ["dask-worker", *spec["argv"]]
dask_worker.main()
"""


class SSHWorker:
    """A Dask worker on one node, started over ssh for this run and stopped at its end.

    `launch()` connects and starts the worker's bootstrap (the imports, before the scheduler exists); `start()`
    hands it the scheduler's address and the run's TLS credentials (`pems`: certificate, key), which are written
    to the node readable by the login user only. The worker runs with `--death-timeout`, so a worker whose
    scheduler is gone (this machine killed) stops by itself."""

    def __init__(self, node: NodeOptions, options: SSHOptions, run_id: str, preload: list[str] | None = None) -> None:
        self.node = node
        self.preload = preload or []
        self.options = options
        self.directory = f"{node.cache_dir.rstrip('/')}/cluster-{run_id}"
        self.address: str | None = None
        self.accepted_unknown_host = False
        self._conn: Any = None
        self._proc: Any = None
        self._pid: int | None = None
        self._drain: asyncio.Task[None] | None = None
        self.log: list[str] = []

    @property
    def name(self) -> str:
        return self.node.label

    def command(self) -> str:
        """The bootstrap's command line: nothing secret on it (the environment and credentials come on stdin)."""
        q = shlex.quote
        path = f"PATH={q(self.node.path)} " if self.node.path else ""
        args = [self.node.python, "-c", BOOTSTRAP, self.directory, *self.preload]
        # `echo $$` then exec: the first line is the worker's pid, the leader of the session sshd made for it
        return f"echo $$ && exec env {path}" + " ".join(q(a) for a in args)

    def worker_args(self, scheduler: str, tls: bool) -> list[str]:
        args = [scheduler, "--name", self.name, "--nthreads", str(self.node.slots), "--no-nanny",
                "--death-timeout", "60",
                # the worker's own http server (health, metrics) stays on the node's loopback
                "--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--local-directory", f"{self.directory}/work"]
        for module in self.preload:  # imported by the bootstrap already, set up as the worker starts
            args += ["--preload", module]
        if tls:
            args += ["--tls-ca-file", f"{self.directory}/cert.pem", "--tls-cert", f"{self.directory}/cert.pem",
                     "--tls-key", f"{self.directory}/key.pem"]
        return args

    async def launch(self) -> None:
        """Connect and start the worker's bootstrap (what the node can do before the scheduler exists)."""
        timeout = self.options.connect_timeout_s
        known_hosts, _, _ = _known_hosts(self.node, self.options.accept_unknown_hosts)
        self.accepted_unknown_host = known_hosts is None
        self._conn = await connect(self.node, self.options.accept_unknown_hosts, timeout)
        try:
            self._proc = await asyncio.wait_for(self._conn.create_process(self.command()), timeout)
            self._proc.stdin.write(json.dumps(self.node.env) + "\n")
            first = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
            self._pid = int(first) if first.strip().isdigit() else None
        except TimeoutError:
            await self.close()
            raise NodeUnreachable(f"ssh node {self.name}: no answer within {timeout:g} s of connecting") from None
        except _connection_errors() as exc:
            await self.close()
            raise NodeUnreachable(f"ssh node {self.name}: lost while starting its worker ({_describe(exc)})") from None

    async def start(self, scheduler: str, pems: tuple[str, str] | None) -> str:
        """The worker started for `scheduler` (after `launch()`): its address once it has registered."""
        timeout = self.options.connect_timeout_s + START_GRACE_S
        try:
            return await asyncio.wait_for(self._start(scheduler, pems), timeout)
        except TimeoutError:
            await self.close()
            raise NodeUnreachable(f"ssh node {self.name}: the worker did not start within {timeout:g} s") from None
        except _connection_errors() as exc:
            await self.close()
            raise NodeUnreachable(f"ssh node {self.name}: lost while starting its worker ({_describe(exc)})") from None

    async def _start(self, scheduler: str, pems: tuple[str, str] | None) -> str:
        files = dict(zip(("cert.pem", "key.pem"), pems, strict=True)) if pems else {}
        # read by the bootstrap once its imports are done
        self._proc.stdin.write(json.dumps({"argv": self.worker_args(scheduler, bool(pems)), "files": files}) + "\n")
        while True:
            line = await self._proc.stderr.readline()
            if not line:
                raise ExecutorError(self._exited())
            self.log.append(line.strip())
            if "Start worker at:" in line:
                self.address = line.split("Start worker at:", 1)[1].strip()
                break
        self._drain = asyncio.create_task(self._read_rest())  # a full pipe would stop the worker
        return self.address

    def _exited(self) -> str:
        tail = " | ".join(self.log[-3:]) or "no output"
        hint = ""
        if "No module named" in tail:
            hint = f": the node needs truthplane installed for {self.node.python} (pip install truthplane)"
        elif "PermissionError" in tail or "Permission denied" in tail or "NotADirectoryError" in tail:
            hint = f": check cache_dir ({self.node.cache_dir}) on the node"
        elif self.node.python in tail and ("No such file" in tail or "not found" in tail):
            hint = f": check python ({self.node.python}) on the node"
        return f"ssh node {self.name}: the worker exited before it started ({tail}){hint}"

    async def _read_rest(self) -> None:
        try:
            while line := await self._proc.stderr.readline():
                self.log = self.log[-50:] + [line.strip()]
        except _connection_errors():
            pass

    async def close(self) -> None:
        """Stop the worker (and every job it started) and remove the run's files: asked on the worker's own
        stdin; a worker that does not stop is killed with its whole session through a session of its own."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self._proc is not None and await self._stopped():
                return
            gone = f"rm -rf {shlex.quote(self.directory)}"
            if self._pid:  # TERM, up to 1 s to stop, then KILL: the whole session goes
                group = f"-- -{self._pid}"
                gone = (f"kill -TERM {group} 2>/dev/null; i=0; while kill -0 {group} 2>/dev/null && [ $i -lt 50 ]; "
                        f"do sleep 0.02; i=$((i+1)); done; kill -KILL {group} 2>/dev/null; {gone}")
            await asyncio.wait_for(conn.run(gone, check=False), 15)
        except _connection_errors():
            pass  # the node is gone: so is its worker (and --death-timeout stops one that is not)
        finally:
            conn.close()
            if self._drain is not None:
                self._drain.cancel()

    async def _stopped(self) -> bool:
        """The bootstrap told to stop (a line on stdin): the run's directory goes and the worker is killed with its
        session, by itself."""
        failed: tuple[type[BaseException], ...] = (TimeoutError, *_connection_errors())
        try:
            self._proc.stdin.write("stop\n")
            await asyncio.wait_for(self._proc.wait(), 5)
            return True
        except failed:
            return False
