"""Run jobs on remote machines over ssh (asyncssh). A node needs sshd and python3, nothing else.

truthplane.toml::

    [executors.ssh]
    accept_unknown_hosts = false   # true: connect to hosts missing from known_hosts (keys that changed stay refused)
    connect_timeout_s = 10

    [[executors.ssh.nodes]]
    host = "10.0.0.5"
    port = 22
    user = "runner"
    key = "~/.ssh/truthplane_ed25519"
    slots = 4                      # jobs at once on this node
    known_hosts = "~/.ssh/known_hosts"
    cache_dir = ".cache/truthplane" # on the node
    python = "python3"             # runs truthplane's runner on the node
    path = "/opt/venv/bin:/usr/bin:/bin"  # PATH for jobs; default: the ssh session's own

One connection per node, `slots` jobs at a time on it. A job's source_dir travels once per node as
a tar keyed by its content hash (cache_dir/<sha256>); each job runs in its own copy of it in a temp
dir on the node, with `Job.files` written over it, killed (its whole process group) at the timeout
or when the connection to it drops. A node lost mid-job: the job is retried on another node and the
result says so; every node down: ExecutorError. A down node stays down for this executor's life.

What a node does not enforce: network, memory, pids and CPU limits (the job runs as the ssh user,
unconfined); results say so (sandboxed=False). Use dedicated, disposable machines.
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from truthplane.errors import ConfigError, ExecutorError
from truthplane.executors import _transfer
from truthplane.executors._ssh_node import Node, NodeLost, NodeOptions
from truthplane.executors._jobdir import OutputCap
from truthplane.executors.interface import Executor
from truthplane.executors.preflight import preflight_untrusted
from truthplane.executors.jobs import Job, JobResult
from truthplane.models import ToolInfo
from truthplane.registry import install_hint, require


class SSHOptions(BaseModel):
    """[executors.ssh]"""

    model_config = ConfigDict(extra="forbid")

    nodes: list[NodeOptions] = Field(default_factory=list)
    accept_unknown_hosts: bool = False
    connect_timeout_s: float = 10.0
    concurrency: int | None = Field(default=None, description="default: the sum of the nodes' slots")


def parse_options(options: dict[str, Any] | None) -> SSHOptions:
    try:
        parsed = SSHOptions.model_validate(options or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"[executors.ssh] {where}: {first['msg']}") from None
    if not parsed.nodes:
        raise ConfigError("[executors.ssh] has no nodes: add [[executors.ssh.nodes]] with host, user and key")
    return parsed


def _stream(answer: dict[str, Any], name: str, limit: int) -> tuple[str, bool]:
    cap = OutputCap(limit)
    cap.kept = bytearray(base64.b64decode(answer.get(f"{name}_b64", "")))
    cap.total = int(answer.get(f"{name}_total", len(cap.kept)))
    return cap.text()


class SSHExecutor(Executor):
    name = "ssh"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.settings = parse_options(options)
        self.nodes = [Node(node, self.settings.accept_unknown_hosts, self.settings.connect_timeout_s)
                      for node in self.settings.nodes]
        names = [node.name for node in self.nodes]
        if len(set(names)) != len(names):
            raise ConfigError("[executors.ssh] two nodes have the same name: give each a distinct name or host:port")
        self._slot_freed: asyncio.Condition | None = None
        self._packed: dict[str, tuple[Any, str, bytes]] = {}

    @property
    def concurrency(self) -> int:
        return self.settings.concurrency or sum(node.options.slots for node in self.nodes)

    @classmethod
    def available(cls, options: dict[str, Any] | None = None) -> ToolInfo:
        try:
            import asyncssh
        except ImportError:
            return ToolInfo(
                name=cls.name, installed=False, reason=f"asyncssh is not installed: {install_hint('asyncssh')}"
            )
        try:
            settings = parse_options(options)
        except ConfigError as exc:
            return ToolInfo(name=cls.name, installed=False, version=asyncssh.__version__, reason=str(exc))
        hosts = ", ".join(node.label for node in settings.nodes)
        return ToolInfo(name=cls.name, installed=True, version=asyncssh.__version__, path=hosts)

    def uploads(self) -> dict[str, int]:
        """Snapshots actually stored on each node (a snapshot already there is not counted)."""
        return {node.name: node.uploads for node in self.nodes}

    async def _acquire(self, excluded: set[str]) -> Node:
        """The live node with the most free slots, waiting while all of them are busy."""
        if self._slot_freed is None:
            self._slot_freed = asyncio.Condition()
        async with self._slot_freed:
            while True:
                live = [n for n in self.nodes if n.down is None and n.name not in excluded]
                if not live:
                    raise ExecutorError(self._all_down_message())
                best = max(live, key=lambda n: n.free)
                if best.free > 0:
                    best.free -= 1
                    return best
                await self._slot_freed.wait()

    async def _release(self, node: Node) -> None:
        assert self._slot_freed is not None
        async with self._slot_freed:
            node.free += 1
            self._slot_freed.notify_all()

    async def _mark_down(self, node: Node, reason: str) -> None:
        node.down = reason
        await node.close()
        assert self._slot_freed is not None
        async with self._slot_freed:
            self._slot_freed.notify_all()  # waiters re-check: perhaps no node is left

    def _all_down_message(self) -> str:
        reasons = "; ".join(f"{n.name}: {n.down}" for n in self.nodes if n.down)
        return f"ssh: every node is down ({reasons or 'none usable'}): check the nodes and [[executors.ssh.nodes]]"

    async def _snapshot(self, source_dir: str) -> tuple[str, bytes]:
        """The packed source_dir and its digest, packed again only when the tree changed."""
        signature = await asyncio.to_thread(_transfer.tree_signature, source_dir)
        cached = self._packed.get(source_dir)
        if cached is None or cached[0] != signature:
            archive = await asyncio.to_thread(_transfer.pack, source_dir)
            cached = (signature, _transfer.digest(archive), archive)
            self._packed[source_dir] = cached
        return cached[1], cached[2]

    def _spec(self, job: Job, snapshot: str | None) -> dict[str, Any]:
        overlay = _transfer.pack(None, job.files) if job.files else b""
        return {
            "command": job.command, "env": job.env, "workdir": job.workdir, "snapshot": snapshot,
            "timeout_s": job.limits.timeout_s, "max_output_bytes": job.limits.max_output_bytes,
            "archive_b64": base64.b64encode(overlay).decode("ascii"),
            "stdin_b64": base64.b64encode(job.stdin).decode("ascii") if job.stdin else "",
        }

    async def run(self, job: Job) -> JobResult:
        require("asyncssh", needed_by="the ssh executor")
        started = time.monotonic()
        snapshot = await self._snapshot(job.source_dir) if job.source_dir else None
        spec = self._spec(job, snapshot[0] if snapshot else None)
        attempts, notes, excluded = 0, [], set[str]()
        lost_mid_job: list[str] = []
        while True:
            node = await self._acquire(excluded)
            try:
                answer = await self._run_on(node, spec, snapshot)
                attempts += 1
            except NodeLost as lost:
                attempts += 1 if lost.started else 0
                excluded.add(node.name)
                await self._mark_down(node, lost.reason)
                if lost.started:
                    lost_mid_job.append(node.name)
                else:
                    notes.append(f"ssh: node {node.name} unusable ({lost.reason})")
                continue
            finally:
                await self._release(node)
            break
        notes.extend(f"ssh: node {name} lost mid-job; retried on {node.name}" for name in lost_mid_job)
        result = self._result(job, node, answer, attempts, notes, time.monotonic() - started)
        result.preflight = preflight_untrusted(job)
        return result

    async def _run_on(self, node: Node, spec: dict[str, Any], snapshot: tuple[str, bytes] | None) -> dict[str, Any]:
        if snapshot is not None:
            await node.upload(*snapshot)
        if node.options.path:
            spec = {**spec, "path": node.options.path}
        answer = await node.run_spec(spec)
        if "missing_snapshot" in answer and snapshot is not None:
            # the cache on the node was cleared since it was filled: send it again, once
            await node.upload(*snapshot)
            answer = await node.run_spec(spec)
        if "missing_snapshot" in answer:
            raise ExecutorError(f"ssh node {node.name}: the snapshot vanished from {node.cache} twice: "
                                "is something cleaning that directory?")
        if "error" in answer:
            raise ExecutorError(f"ssh node {node.name}: the job could not be set up: {answer['error']}")
        return answer

    def _result(self, job: Job, node: Node, answer: dict[str, Any], attempts: int, notes: list[str],
                duration: float) -> JobResult:
        user = node.options.user or "the login user"
        notes.append(f"ssh: ran as {user} on {node.name} without a sandbox: network, memory and pids are not limited")
        if node.accepted_unknown_host:
            notes.append(f"ssh: {node.name}'s host key was not verified (accept_unknown_hosts = true)")
        base: dict[str, Any] = {"executor": self.name, "node": node.name, "duration_s": duration, "sandboxed": False,
                "attempts": attempts, "notes": notes}
        if "abandoned" in answer:
            notes.append(f"ssh: no answer from {node.name} within {answer['abandoned']:g} s; the job was given up")
            return JobResult(returncode=None, timed_out=True, **base)
        limit = job.limits.max_output_bytes
        stdout, stdout_truncated = _stream(answer, "stdout", limit)
        stderr, stderr_truncated = _stream(answer, "stderr", limit)
        return JobResult(returncode=answer.get("returncode"), stdout=stdout, stderr=stderr,
                         stdout_truncated=stdout_truncated, stderr_truncated=stderr_truncated,
                         timed_out=bool(answer.get("timed_out")), **base)

    async def close(self) -> None:
        await asyncio.gather(*(node.close() for node in self.nodes))
