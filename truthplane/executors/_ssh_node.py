"""One ssh node of SSHExecutor: its connection, its runner, its snapshot cache, one job on it.

asyncssh is imported here and in ssh.py only, inside functions, and its exceptions stop here: a
connection that breaks becomes NodeLost (the executor retries elsewhere), anything the user must
fix (host key, login) becomes ExecutorError.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shlex
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from truthplane.errors import ExecutorError

RUNNER_SOURCE = (Path(__file__).with_name("_runner.py")).read_text(encoding="utf-8")
RUNNER_DIGEST = hashlib.sha256(RUNNER_SOURCE.encode("utf-8")).hexdigest()[:16]
# how long past the job's own timeout to wait for the node's answer before giving the job up
ANSWER_GRACE_S = 30.0


class NodeOptions(BaseModel):
    """One `[[executors.ssh.nodes]]` entry."""

    model_config = ConfigDict(extra="forbid")

    host: str
    port: int = 22
    user: str | None = None
    key: str | None = Field(default=None, description="private key file; default: ~/.ssh keys and the agent")
    slots: int = Field(default=1, ge=1)
    known_hosts: str | None = Field(default=None, description="default ~/.ssh/known_hosts")
    name: str | None = None
    cache_dir: str = Field(default=".cache/truthplane", description="on the node; relative to the login directory")
    python: str = "python3"
    path: str | None = Field(default=None, description="PATH for jobs on the node; default: the ssh session's own")

    @property
    def label(self) -> str:
        return self.name or (self.host if self.port == 22 else f"{self.host}:{self.port}")


class NodeLost(Exception):
    """The node went away (refused, reset, timed out): try the job elsewhere."""

    def __init__(self, node: str, reason: str, *, started: bool) -> None:
        super().__init__(f"{node}: {reason}")
        self.node = node
        self.reason = reason
        self.started = started


def _connection_errors() -> tuple[type[BaseException], ...]:
    import asyncssh

    return (asyncssh.ConnectionLost, asyncssh.ChannelOpenError, asyncssh.DisconnectError, OSError,
            asyncio.IncompleteReadError, asyncio.TimeoutError, EOFError)


class Node:
    def __init__(self, options: NodeOptions, accept_unknown_hosts: bool, connect_timeout_s: float) -> None:
        self.options = options
        self.name = options.label
        self.accept_unknown_hosts = accept_unknown_hosts
        self.connect_timeout_s = connect_timeout_s
        self.free = options.slots
        self.down: str | None = None
        self.uploads = 0
        self.accepted_unknown_host = False
        self._conn: Any = None
        self._connect_lock = asyncio.Lock()
        self._snapshots: set[str] = set()
        self._snapshot_locks: dict[str, asyncio.Lock] = {}
        self._agent: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0

    @property
    def cache(self) -> str:
        return self.options.cache_dir

    @property
    def runner(self) -> str:
        return f"{self.cache}/runner-{RUNNER_DIGEST}.py"

    def _known_hosts(self) -> tuple[Any, bool, str]:
        """(known_hosts for asyncssh, whether this host has no entry there, the file's path)."""
        import asyncssh

        path = os.path.expanduser(self.options.known_hosts or "~/.ssh/known_hosts")
        if self.options.known_hosts and not os.path.isfile(path):
            raise ExecutorError(
                f"ssh node {self.name}: known_hosts file {path} does not exist: create it or fix the path"
            )
        known = asyncssh.read_known_hosts(path) if os.path.isfile(path) else asyncssh.import_known_hosts("")
        unknown = not any(known.match(self.options.host, "", self.options.port))
        if unknown and self.accept_unknown_hosts:
            return None, True, path  # opted in; a host that is known is always checked
        return known, unknown, path

    async def connection(self) -> Any:
        if self._conn is not None:
            return self._conn
        async with self._connect_lock:
            if self._conn is None:
                self._conn = await self._connect()
        return self._conn

    async def _connect(self) -> Any:
        import asyncssh

        opts = self.options
        known_hosts, unknown, known_hosts_path = self._known_hosts()
        accepting = known_hosts is None
        kwargs: dict[str, Any] = {
            "port": opts.port,
            "known_hosts": known_hosts,
            "connect_timeout": self.connect_timeout_s,
            "keepalive_interval": 5,
            "keepalive_count_max": 3,
        }
        if opts.user:
            kwargs["username"] = opts.user
        if opts.key:
            kwargs["client_keys"] = [os.path.expanduser(opts.key)]
        try:
            conn = await asyncssh.connect(opts.host, **kwargs)
        except asyncssh.HostKeyNotVerifiable as exc:
            if unknown:
                hint = f"ssh-keyscan -p {opts.port} {opts.host} >> {known_hosts_path}"
                raise ExecutorError(
                    f"ssh node {self.name}: host key is not in {known_hosts_path}: add it ({hint}) "
                    "after checking it, or set accept_unknown_hosts = true in [executors.ssh]"
                ) from None
            raise ExecutorError(f"ssh node {self.name}: host key verification failed ({exc.reason}): "
                                "the host key changed or is wrong; check it before updating known_hosts") from None
        except asyncssh.PermissionDenied:
            raise ExecutorError(f"ssh node {self.name}: login refused for {opts.user or 'the current user'}: "
                                "check the key and the node's authorized_keys") from None
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
            raise ExecutorError(f"ssh node {self.name}: cannot use key {opts.key}: {exc}") from None
        except _connection_errors() as exc:
            raise NodeLost(self.name, f"cannot connect ({_describe(exc)})", started=False) from None
        self.accepted_unknown_host = accepting
        try:
            # a node that dies mid-setup may never answer: bounded, and then it is lost like any other
            await asyncio.wait_for(self._install_runner(conn), timeout=self.connect_timeout_s + 10)
            await asyncio.wait_for(self._start_agent(conn), timeout=self.connect_timeout_s + 10)
        except (ExecutorError, NodeLost):
            conn.close()
            raise
        except TimeoutError:
            conn.close()
            raise NodeLost(self.name, f"no answer while setting up within {self.connect_timeout_s + 10:g} s",
                           started=False) from None
        except _connection_errors() as exc:
            conn.close()
            raise NodeLost(self.name, f"lost while setting up ({_describe(exc)})", started=False) from None
        return conn

    async def _install_runner(self, conn: Any) -> None:
        runner, cache = shlex.quote(self.runner), shlex.quote(self.cache)
        script = (f"test -f {runner} || {{ mkdir -p {cache} && cat > {runner}.$$ && mv {runner}.$$ {runner}; }}"
                  f" && command -v {shlex.quote(self.options.python)} >/dev/null")
        result = await conn.run(script, input=RUNNER_SOURCE, check=False)
        if result.exit_status is None:  # the channel closed without a status: the node went away
            raise NodeLost(self.name, "lost while setting up (no exit status)", started=False)
        if result.exit_status != 0:
            raise ExecutorError(f"ssh node {self.name}: cannot set up {self.cache} or {self.options.python} is missing "
                                f"({(result.stderr or '').strip() or 'exit ' + str(result.exit_status)}): "
                                "the node needs python3 and a writable cache_dir")

    def _python(self, *args: str) -> str:
        return " ".join(shlex.quote(a) for a in (self.options.python, "-I", "-S", self.runner, *args))

    async def upload(self, digest: str, archive: bytes) -> None:
        """Send a snapshot once: later jobs with the same content reuse cache/<digest> on the node."""
        lock = self._snapshot_locks.setdefault(digest, asyncio.Lock())
        async with lock:
            if digest in self._snapshots:
                return
            conn = await self.connection()
            try:
                result = await conn.run(self._python("receive", self.cache, digest), input=archive, encoding=None,
                                        check=False)
            except _connection_errors() as exc:
                raise NodeLost(
                    self.name, f"lost while sending the snapshot ({_describe(exc)})", started=False
                ) from None
            if result.exit_status != 0:
                raise ExecutorError(f"ssh node {self.name}: storing the snapshot failed: "
                                    f"{result.stderr.decode('utf-8', 'replace').strip()[-300:]}")
            if json.loads(result.stdout or b"{}").get("stored"):
                self.uploads += 1
            self._snapshots.add(digest)

    async def _start_agent(self, conn: Any) -> None:
        """One runner process per connection takes every job: no ssh session (nor login shell) per job."""
        self._agent = await conn.create_process(self._python("agent", self.cache), encoding=None)
        self._reader = asyncio.create_task(self._read_answers(self._agent))

    async def _read_answers(self, agent: Any) -> None:
        reason = "the connection closed"
        try:
            while True:
                line = await agent.stdout.readline()
                if not line:
                    break
                answer = json.loads(line)
                waiter = self._pending.pop(answer.pop("id"), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(answer)
        except _connection_errors() as exc:
            reason = _describe(exc)
        if self._agent is agent:
            self._forget()
        lost = NodeLost(self.name, f"connection lost mid-job ({reason})", started=True)
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(lost)
        self._pending.clear()

    async def run_spec(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Run one job spec on the node; its answer, or {"missing_snapshot": digest}."""
        await self.connection()
        agent = self._agent
        self._next_id += 1
        job_id = self._next_id
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[job_id] = waiter
        wait = float(spec["timeout_s"]) + ANSWER_GRACE_S
        try:
            agent.stdin.write(json.dumps({"id": job_id, "spec": spec}).encode("utf-8") + b"\n")
            answer = await asyncio.wait_for(asyncio.shield(waiter), wait)
        except TimeoutError:
            self._cancel(agent, job_id)
            return {"abandoned": wait}
        except asyncio.CancelledError:
            self._cancel(agent, job_id)  # the caller gave up: the job must not run on without it
            raise
        except NodeLost:
            raise
        except _connection_errors() as exc:
            self._pending.pop(job_id, None)
            self._forget()
            raise NodeLost(self.name, f"connection lost mid-job ({_describe(exc)})", started=True) from None
        if "missing_snapshot" in answer:
            self._snapshots.discard(answer["missing_snapshot"])
        return answer

    def _cancel(self, agent: Any, job_id: int) -> None:
        self._pending.pop(job_id, None)
        if self._agent is agent and not agent.stdin.is_closing():
            agent.stdin.write(json.dumps({"id": job_id, "cancel": True}).encode("utf-8") + b"\n")

    def _forget(self) -> None:
        conn, self._conn, self._agent = self._conn, None, None
        if conn is not None:
            conn.close()

    async def close(self) -> None:
        conn, self._conn, self._agent = self._conn, None, None
        if conn is not None:
            conn.close()
            try:
                await asyncio.wait_for(conn.wait_closed(), 5)
            except (TimeoutError, OSError):
                pass
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=5)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
