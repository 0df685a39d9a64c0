"""Dask distributed clusters, and the executor that runs jobs on their workers.

A `Cluster` is a connected client and, when truthplane started the cluster, the cluster itself:

- `local` (the default): a LocalCluster of this machine, a worker process per CPU (or `workers`);
- `address`: your own running scheduler, with the TLS credentials `[cluster]` names; never stopped by truthplane;
- `ssh`: a scheduler here and a worker on each `[[executors.ssh.nodes]]` node, started over ssh (`ssh.py`);
- `azure-vm`: VMs created by dask-cloudprovider's AzureVMCluster from `[cluster.azure]`.

A scheduler runs whatever a connected client sends it, so every scheduler and worker truthplane starts uses TLS
with credentials made for the run (`temporary_security()`), and listens on 127.0.0.1 unless ssh
nodes must reach it (`scheduler_host`).

`ClusterExecutor` (`--executor cluster`) and `SSHExecutor` (`--executor ssh`: the cluster of the ssh nodes) run
a Job on a worker: its source directory travels once per worker, keyed by its content hash; the job runs in the
worker machine's sandbox (`sandbox = "local"`: bubblewrap, or docker); a worker lost mid-job, the job reruns on
another (Dask reschedules it) and the result says so.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import logging
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from truthplane.config.cluster import AzureVMSettings, ClusterSettings, cluster_settings
from truthplane.errors import ConfigError, ExecutorError
from truthplane.executors import _transfer
from truthplane.executors._on_worker import TOPIC, run_job
from truthplane.executors.interface import Executor
from truthplane.executors.jobs import Job, JobResult
from truthplane.executors.ssh import NodeUnreachable, SSHOptions, SSHWorker, parse_options
from truthplane.leftovers import owned_prefix
from truthplane.models import ToolInfo
from truthplane.registry import install_hint, require

if TYPE_CHECKING:
    from truthplane.config import Config

QUIET = logging.CRITICAL + 1  # distributed's own logging is not truthplane's output


def quiet_logs() -> None:
    if os.environ.get("TRUTHPLANE_DASK_LOGS"):
        return
    for name in ("distributed", "tornado", "asyncssh", "bokeh"):
        logging.getLogger(name).setLevel(QUIET)


def temporary_security() -> Any:
    """TLS credentials made for one run, in memory, as distributed's `Security.temporary()` makes them, with an
    elliptic-curve key: made in well under a millisecond where an RSA key takes 50-200 ms of the run's start."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from distributed import Security

    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dask-internal")])
    now = datetime.datetime.now(tz=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("dask-internal")]), critical=False)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=7))
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    return Security(require_encryption=True, tls_ca_file=cert_pem, tls_client_key=key_pem, tls_client_cert=cert_pem,
                    tls_scheduler_key=key_pem, tls_scheduler_cert=cert_pem, tls_worker_key=key_pem,
                    tls_worker_cert=cert_pem)


def azure_arguments(settings: ClusterSettings) -> dict[str, Any]:
    """What AzureVMCluster is given: `[cluster.azure]` by its own names, the worker count, TLS on, and truthplane
    installed in the scheduler's and workers' containers (the Dask image installs EXTRA_PIP_PACKAGES at start)."""
    import truthplane

    azure: AzureVMSettings | None = settings.azure
    assert azure is not None
    arguments: dict[str, Any] = azure.model_dump(exclude_none=True, exclude={"pip_packages"})
    arguments["n_workers"] = settings.workers or 1
    arguments["security"] = True  # credentials made for the cluster, as for every cluster truthplane starts
    packages = azure.pip_packages or [f"truthplane=={truthplane.__version__}"]
    arguments["env_vars"] = {"EXTRA_PIP_PACKAGES": " ".join(packages)}
    return arguments


def azure_cluster(settings: ClusterSettings) -> Any:
    """dask-cloudprovider's AzureVMCluster made from the settings, not started yet (awaiting it creates the VMs)."""
    try:
        from dask_cloudprovider.azure import AzureVMCluster
    except ImportError:
        raise ExecutorError("kind = \"azure-vm\" needs dask-cloudprovider with its Azure extras: "
                            "pip install 'truthplane[azure]'") from None
    return AzureVMCluster(asynchronous=True, **azure_arguments(settings))


@dataclass
class WorkerInfo:
    address: str
    name: str
    host: str
    threads: int


@dataclass
class Cluster:
    """A client of a cluster; `owned`: truthplane started the cluster and stops it in `close()`."""

    settings: ClusterSettings
    ssh: SSHOptions | None = None
    run_id: str = ""
    processes: bool = True
    local_workers: int = 0  # ssh: worker processes on this machine beside the nodes
    preload: list[str] = field(default_factory=list)  # modules every worker imports as it starts
    client: Any = None
    owned: bool = False
    dashboard: str | None = None
    lost: dict[str, str] = field(default_factory=dict)  # nodes that never started, and why
    _cluster: Any = None
    _scheduler: Any = None
    _ssh_workers: list[SSHWorker] = field(default_factory=list)
    _nannies: list[Any] = field(default_factory=list)
    _scratch: str | None = None
    _config: Any = None
    _held: dict[str, Any] = field(default_factory=dict)  # published snapshots, by name
    node_names: dict[str, str] = field(default_factory=dict)  # worker address -> the node it runs on

    async def start(self) -> Cluster:
        if importlib.util.find_spec("distributed") is None:
            raise ExecutorError(f"Dask distributed is not installed: {install_hint('distributed')}")
        kind = self.settings.kind
        if kind != "ssh":  # ssh nodes connect while distributed is imported (_start_ssh)
            importlib.import_module("distributed")
        quiet_logs()  # after distributed's import, which sets its loggers up
        try:
            if kind == "address":
                await self._connect()
            elif kind == "ssh":
                await self._start_ssh()
            elif kind == "azure-vm":
                await self._start_azure()
            else:
                await self._start_local()
        except BaseException:
            await self.close()
            raise
        return self

    def describe(self) -> str:
        if self.settings.kind == "address":
            return f"the cluster at {self.settings.address}"
        if self.settings.kind == "ssh":
            return "a cluster of ssh nodes (scheduler on this machine)"
        if self.settings.kind == "azure-vm":
            return "Azure VMs"
        return "a local cluster"

    async def _start_local(self) -> None:
        from distributed import Client, LocalCluster

        workers = self.settings.workers or os.cpu_count() or 2
        security = temporary_security() if self.processes else None
        self.owned = True
        where = {"host": "127.0.0.1"} if self.processes else {}  # in-process workers talk inproc://
        self._own_scratch()
        self._cluster = await LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=self.processes, **where, security=security,
            dashboard_address="127.0.0.1:0", scheduler_kwargs={"dashboard": self.settings.dashboard},
            worker_dashboard_address="127.0.0.1:0", asynchronous=True, silence_logs=QUIET, preload=self.preload,
        )
        self.client = await Client(self._cluster, asynchronous=True, security=security)
        self.dashboard = self._cluster.dashboard_link if self.settings.dashboard else None

    async def _connect(self) -> None:
        from distributed import Client, Security

        settings = self.settings
        security = None
        if (settings.address or "").startswith("tls://") and not settings.tls_ca_file:
            raise ExecutorError(f"the Dask scheduler at {settings.address} talks TLS: name its certificate files in "
                                "[cluster] (tls_ca_file, tls_cert, tls_key)")
        if settings.tls_ca_file:
            for path in (settings.tls_ca_file, settings.tls_cert, settings.tls_key):
                if not os.path.isfile(os.path.expanduser(path or "")):
                    raise ConfigError(f"[cluster] TLS file {path} does not exist")
            security = Security(tls_ca_file=os.path.expanduser(settings.tls_ca_file),
                                tls_client_cert=os.path.expanduser(settings.tls_cert or ""),
                                tls_client_key=os.path.expanduser(settings.tls_key or ""), require_encryption=True)
        try:
            self.client = await Client(settings.address, asynchronous=True, security=security,
                                       timeout=settings.connect_timeout_s)
        except (OSError, TimeoutError, TypeError, ValueError) as exc:
            raise ExecutorError(f"cannot reach the Dask scheduler at {settings.address} within "
                                f"{settings.connect_timeout_s:g} s ({exc}): is it running, and is the address "
                                "(and TLS) right?") from None
        self.dashboard = self.client.dashboard_link if "dashboard" in self.client.scheduler_info().get(
            "services", {}) else None

    async def _start_ssh(self) -> None:
        if self.ssh is None or not self.ssh.nodes:
            raise ConfigError("[cluster] kind = \"ssh\" needs nodes: [[executors.ssh.nodes]] or --node")
        require("asyncssh", needed_by="ssh nodes")
        # the nodes connect and import (most of a worker's start) while the scheduler comes up here
        self._ssh_workers = [SSHWorker(node, self.ssh, self.run_id, self.preload) for node in self.ssh.nodes]
        launching = [asyncio.ensure_future(w.launch()) for w in self._ssh_workers]
        try:
            await asyncio.to_thread(importlib.import_module, "distributed")  # the connections go on meanwhile
            quiet_logs()  # again: importing distributed sets its loggers up
            from distributed import Client, Nanny, Scheduler

            security = temporary_security()
            self.owned = True
            self._own_scratch()
            self._scheduler = await Scheduler(host=self.settings.scheduler_host, port=0, protocol="tls",
                                              security=security, dashboard=self.settings.dashboard,
                                              dashboard_address=f"{self.settings.scheduler_host}:0")
        except BaseException:
            await asyncio.gather(*launching, return_exceptions=True)
            raise
        address = self._scheduler.address
        pems = (security.tls_worker_cert, security.tls_worker_key)

        async def node_worker(worker: SSHWorker, launched: asyncio.Future[None]) -> str:
            await launched
            return await worker.start(address, pems)

        starting = [asyncio.ensure_future(node_worker(w, f)) for w, f in zip(self._ssh_workers, launching, strict=True)]
        for n in range(self.local_workers):
            nanny = await Nanny(address, nthreads=1, security=security, name=f"local-{n + 1}",
                                host=self.settings.scheduler_host, silence_logs=QUIET, dashboard=False,
                                dashboard_address="127.0.0.1:0", preload=self.preload)
            self._nannies.append(nanny)
        self.client = await Client(address, asynchronous=True, security=security)  # while the workers start
        started = await asyncio.gather(*starting, return_exceptions=True)
        for worker, outcome in zip(self._ssh_workers, started, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, (ExecutorError, OSError)):
                    raise outcome
                self.lost[worker.name] = str(outcome)
            else:
                self.node_names[outcome] = worker.name
        if self.node_names or self.local_workers:
            await self.client.wait_for_workers(len(self.node_names) + self.local_workers)
        if self.settings.dashboard and "dashboard" in self._scheduler.services:
            port = self._scheduler.services["dashboard"].port
            self.dashboard = f"http://{self.settings.scheduler_host}:{port}/status"

    def _own_scratch(self) -> None:
        """The scheduler's and this machine's workers' scratch space: a directory of this run, removed at the end."""
        import dask

        self._scratch = tempfile.mkdtemp(prefix=owned_prefix("cluster"))
        self._config = dask.config.set({"temporary-directory": self._scratch})

    async def _start_azure(self) -> None:
        from distributed import Client

        self.owned = True
        self._cluster = await azure_cluster(self.settings)
        self.client = await Client(self._cluster, asynchronous=True)
        self.dashboard = getattr(self._cluster, "dashboard_link", None)

    # ---- what runs on it ---------------------------------------------------------------------

    async def workers(self) -> list[WorkerInfo]:
        """The workers the scheduler has now."""
        info = await self.client.scheduler.identity()
        found = []
        for address, worker in (info.get("workers") or {}).items():
            name = str(worker.get("name", address))
            found.append(WorkerInfo(address, name, str(worker.get("host", "")), int(worker.get("nthreads", 1))))
        return found

    def node_of(self, address: str, name: str) -> str:
        """The node a worker runs on, as the record names it: the ssh node, local-N for a worker of this machine
        that truthplane started, else the worker's own name."""
        if address in self.node_names:
            return self.node_names[address]
        if self.owned and self.settings.kind == "local" and name.isdigit():
            return f"local-{int(name) + 1}"
        return name

    async def hold(self, archive: bytes, digest: str) -> str:
        """The snapshot in the cluster, under the name a worker fetches it by (once per worker): a task of the
        graph published under that name, so it survives the loss of any worker and a task that needs it does
        not depend on where it is."""
        import warnings

        from truthplane.executors._on_worker import snapshot

        name = f"truthplane-snapshot-{digest}"
        if name not in self._held:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "large graph": the snapshot is meant to travel in it, once
                future = self.client.submit(snapshot, archive, key=name, pure=False)
            await self.client.publish_dataset(**{name: future}, override=True)
            self._held[name] = future
        return name

    def connected(self) -> bool:
        return self.client is not None and self.client.status == "running"

    async def check_scheduler(self) -> None:
        """A scheduler reads a run's tasks, so it must import truthplane too: say so plainly if it cannot."""
        from truthplane.executors._on_worker import version

        try:
            await self.client.run_on_scheduler(version)
        except Exception as exc:  # noqa: BLE001 -- whatever the scheduler's environment says, it is not ready
            raise ExecutorError(f"the Dask scheduler at {self.client.scheduler.address} cannot run truthplane's "
                                f"tasks ({type(exc).__name__}): install truthplane where the scheduler runs, the "
                                "same version as here (pip install truthplane)") from None

    async def readiness(self, sandbox: str, options: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Every worker's host, Python, truthplane and sandbox, by the node it runs on."""
        from truthplane.executors._on_worker import readiness

        workers = {w.address: w for w in await self.workers()}
        answers = await self.client.run(readiness, sandbox, options)
        return {self.node_of(address, workers[address].name if address in workers else address): {
            "worker": address, **answer} for address, answer in answers.items()}

    async def close(self) -> None:
        """The client closes; a cluster truthplane started stops with every worker (on every node)."""
        client, self.client = self.client, None
        if client is not None:
            try:
                if not self.owned:  # a team's scheduler keeps nothing of this run
                    for name in self._held:
                        await asyncio.wait_for(client.unpublish_dataset(name), 5)
                await asyncio.wait_for(client.close(), 10)
            except Exception:  # noqa: BLE001 -- a scheduler already gone has nothing to release
                pass
        self._held.clear()
        scheduler, self._scheduler = self._scheduler, None
        await asyncio.gather(*(w.close() for w in self._ssh_workers), *(n.close() for n in self._nannies),
                             *([asyncio.wait_for(scheduler.close(), 15)] if scheduler is not None else []),
                             return_exceptions=True)
        if self._cluster is not None:
            cluster, self._cluster = self._cluster, None
            await cluster.close()
        if self._scratch is not None:
            self._config.__exit__(None, None, None)
            await asyncio.to_thread(shutil.rmtree, self._scratch, True)
            self._scratch = None


def settings_for(config: Config | None, executor: str) -> tuple[ClusterSettings, SSHOptions | None]:
    """The cluster the named executor runs on: `ssh` makes the nodes' cluster; `cluster` takes [cluster]."""
    from truthplane.executors.loader import executor_options

    raw = config.cluster.model_dump(exclude_none=True) if config is not None else {}
    ssh = parse_options(executor_options("ssh", config), need_nodes=executor == "ssh")
    if executor == "ssh":
        return cluster_settings({**raw, "kind": "ssh"}), ssh
    return cluster_settings(raw), ssh


class ClusterExecutor(Executor):
    """Jobs on the workers of a Dask cluster ([cluster]); each in the worker machine's sandbox."""

    name = "cluster"

    def __init__(self, options: dict[str, Any] | None = None, settings: ClusterSettings | None = None,
                 ssh: SSHOptions | None = None, sandbox_options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.settings = settings or cluster_settings(self.options.get("cluster"))
        self.ssh = ssh
        self.sandbox_options = sandbox_options or {}
        self.cluster: Cluster | None = None
        self._starting: asyncio.Lock | None = None
        self._snapshots: dict[str, tuple[Any, str, str]] = {}  # source_dir -> (signature, digest, name)
        self.lost_workers: dict[str, str] = {}
        self._placed: dict[str, list[str]] = {}  # job key -> the workers it started on

    @classmethod
    def from_config(cls, config: Config | None) -> ClusterExecutor:
        settings, ssh = settings_for(config, cls.name)
        from truthplane.executors.loader import executor_options

        return cls(settings=settings, ssh=ssh, sandbox_options=executor_options(settings.sandbox, config))

    @property
    def concurrency(self) -> int:
        if self.settings.kind == "ssh" and self.ssh is not None:
            return sum(node.slots for node in self.ssh.nodes)
        return int(self.settings.workers or os.cpu_count() or 2)

    @classmethod
    def available(cls, options: dict[str, Any] | None = None) -> ToolInfo:
        try:
            import distributed
        except ImportError:
            return ToolInfo(name=cls.name, installed=False,
                            reason=f"Dask distributed is not installed: {install_hint('distributed')}")
        return ToolInfo(name=cls.name, installed=True, version=distributed.__version__)

    async def _ready(self) -> Cluster:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self.cluster is None:
                cluster = await Cluster(self.settings, self.ssh, run_id=uuid.uuid4().hex[:12]).start()
                self.cluster = cluster
                if not await cluster.workers():
                    lost = "; ".join(f"{name}: {why}" for name, why in cluster.lost.items())
                    raise ExecutorError(f"{cluster.describe()} has no worker" + (f" ({lost})" if lost else ""))
                cluster.client.subscribe_topic(TOPIC, self._started)
                cluster.client.subscribe_topic("all", self._cluster_event)
        return self.cluster

    def _started(self, event: tuple[float, dict[str, Any]]) -> None:
        message = event[1]
        self._placed.setdefault(str(message.get("key")), []).append(str(message.get("name")))

    def _cluster_event(self, event: tuple[float, dict[str, Any]]) -> None:
        message = event[1]
        if message.get("action") == "remove-worker" and not message.get("expected", False):
            self.lost_workers[str(message.get("worker"))] = "the worker left the cluster mid-run"

    async def _snapshot(self, cluster: Cluster, source_dir: str) -> tuple[str, str]:
        """The directory packed and handed to the cluster once (again only when it changed): digest, name."""
        signature = await asyncio.to_thread(_transfer.tree_signature, source_dir)
        cached = self._snapshots.get(source_dir)
        if cached is None or cached[0] != signature:
            archive = await asyncio.to_thread(_transfer.pack, source_dir)
            digest = _transfer.digest(archive)
            cached = (signature, digest, await cluster.hold(archive, digest))
            self._snapshots[source_dir] = cached
        return cached[1], cached[2]

    async def run(self, job: Job) -> JobResult:
        from distributed.client import FutureCancelledError

        started = time.monotonic()
        cluster = await self._ready()
        digest, held = (await self._snapshot(cluster, job.source_dir)) if job.source_dir else (None, None)
        key = f"truthplane-job-{uuid.uuid4().hex}"
        future = cluster.client.submit(run_job, job, digest, held, self.settings.sandbox, self.sandbox_options,
                                       key=key, pure=False)
        try:
            result: JobResult = await future
        except asyncio.CancelledError:
            await future.cancel()  # the worker sees it and stops the job
            raise
        except FutureCancelledError as exc:
            raise ExecutorError(f"the cluster gave the job up ({exc}): was the scheduler lost?") from None
        except Exception as exc:  # noqa: BLE001 -- a worker-side error crosses the wire as itself
            if type(exc).__name__ == "KilledWorker":
                raise ExecutorError(f"the job was lost with every worker it ran on: {exc}") from None
            if isinstance(exc, ExecutorError):
                raise
            raise ExecutorError(f"the job failed on its worker: {type(exc).__name__}: {exc}") from None
        placed = self._placed.pop(key, [])
        notes = [f"{self.name}: node {name} is down ({why})" for name, why in cluster.lost.items()]
        notes += [f"{self.name}: worker {name} was lost mid-job; the job reran on {result.node}"
                  for name in placed[:-1]]
        return result.model_copy(update={"attempts": max(1, len(placed)), "notes": [*result.notes, *notes],
                                         "duration_s": time.monotonic() - started, "executor": self.name})

    async def close(self) -> None:
        cluster, self.cluster = self.cluster, None
        if cluster is not None:
            await cluster.close()


class SSHExecutor(ClusterExecutor):
    """`--executor ssh`: the cluster of the `[[executors.ssh.nodes]]`: a scheduler here, a worker on each node."""

    name = "ssh"

    def __init__(self, options: dict[str, Any] | None = None, settings: ClusterSettings | None = None,
                 ssh: SSHOptions | None = None, sandbox_options: dict[str, Any] | None = None) -> None:
        super().__init__(options, settings or cluster_settings({"kind": "ssh"}), ssh or parse_options(options),
                         sandbox_options)

    @classmethod
    def available(cls, options: dict[str, Any] | None = None) -> ToolInfo:
        found = super().available(options)
        if not found.installed:
            return found
        try:
            import asyncssh  # noqa: F401
        except ImportError:
            return ToolInfo(name=cls.name, installed=False, reason=f"asyncssh is not installed: "
                                                                   f"{install_hint('asyncssh')}")
        try:
            settings = parse_options(options)
        except ConfigError as exc:
            return ToolInfo(name=cls.name, installed=False, version=found.version, reason=str(exc))
        hosts = ", ".join(node.label for node in settings.nodes)
        return ToolInfo(name=cls.name, installed=True, version=found.version, path=hosts)


__all__ = ["Cluster", "ClusterExecutor", "NodeUnreachable", "SSHExecutor", "WorkerInfo", "azure_arguments"]
