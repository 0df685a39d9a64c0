"""DockerExecutor: run a job in a throwaway, hardened container on a real Docker Engine.

The container has no network (unless asked), a read-only root, a tmpfs /tmp, no capabilities,
no-new-privileges, a non-root user, pids/memory/CPU limits, and no Docker socket. The job's files
go in with put_archive into a per-job anonymous volume at /workspace (a tmpfs would hide what
put_archive wrote before start); the volume goes with the container, which is removed whatever
happens. Output is read from an attach stream while the job runs and capped as it arrives, with
the log driver off, so a flood never lands on the engine's disk or in our memory.

The SDK is synchronous: each job runs in a worker thread of the executor's own pool, so
`run_many` really runs jobs side by side. `import docker` happens only inside this module's
functions, and docker/requests exceptions never leave it (`_docker_errors`).

Options ([executors.docker]): `image` (default truthplane-sandbox:latest), `base_url` (default
DOCKER_HOST or the local socket), `user` (default 1000:1000), `kill_grace_s` (2), `concurrency` (4).
"""

from __future__ import annotations

import asyncio
import os
import socket
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from truthplane.errors import ExecutorError
from truthplane.executors._jobdir import OutputCap, job_env, workspace
from truthplane.executors.interface import Executor
from truthplane.executors.preflight import preflight_untrusted
from truthplane.executors.jobs import Job, JobResult
from truthplane.leftovers import sweep_tempdirs
from truthplane.models import ToolInfo
from truthplane.registry import require

DEFAULT_IMAGE = "truthplane-sandbox:latest"
WORKSPACE = "/workspace"
SANDBOX_UID = 1000
IMAGE_CHANGES = [
    f"USER {SANDBOX_UID}:{SANDBOX_UID}",
    f"WORKDIR {WORKSPACE}",
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    "ENV PYTHONDONTWRITEBYTECODE=1",
    'CMD ["python3"]',
]
_TMP_SIZE = "rw,nosuid,nodev,size=256m"
_OWNER = f"{socket.gethostname()}:{os.getpid()}"  # lets a later run sweep what a killed run left behind


def _engine_url(base_url: str | None) -> str:
    return base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"


@contextmanager
def _docker_errors(what: str, base_url: str | None = None, image: str | None = None) -> Iterator[None]:
    """The one place docker SDK and requests exceptions become ExecutorError."""
    _require_sdk()
    import docker.errors
    import requests.exceptions

    try:
        yield
    except docker.errors.ImageNotFound:
        raise ExecutorError(
            f"sandbox image {image or DEFAULT_IMAGE} is not present: run truthplane sandbox build"
        ) from None
    except requests.exceptions.ReadTimeout:
        raise ExecutorError(f"Docker engine did not answer while {what}: check dockerd's load and its log") from None
    except (requests.exceptions.ConnectionError, FileNotFoundError, ConnectionError):
        raise ExecutorError(
            f"Docker engine not reachable at {_engine_url(base_url)}: start dockerd, or use --executor local"
        ) from None
    except docker.errors.APIError as exc:
        raise ExecutorError(f"Docker engine refused {what}: {exc.explanation or exc}") from None
    except docker.errors.DockerException as exc:
        text = str(exc)
        if "Connection" in text or "No such file" in text:
            raise ExecutorError(
                f"Docker engine not reachable at {_engine_url(base_url)}: start dockerd, or use --executor local"
            ) from None
        raise ExecutorError(f"docker: {what} failed: {text}") from None
    except requests.exceptions.RequestException as exc:
        raise ExecutorError(f"docker: {what} failed: {exc}") from None


def _require_sdk() -> None:
    require("docker", "requests", needed_by="the docker executor")


def _client(base_url: str | None, timeout: int = 60, pool: int = 10) -> Any:
    _require_sdk()
    import docker

    with _docker_errors("connecting", base_url):
        if base_url:
            return docker.DockerClient(base_url=base_url, timeout=timeout, max_pool_size=pool)
        return docker.from_env(timeout=timeout, max_pool_size=pool)


def _tar_workspace(root: Path) -> Any:
    """The workspace as a tar stream owned by the sandbox user; symlinks stay symlinks."""

    def owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = SANDBOX_UID
        info.uname = info.gname = "sandbox"
        return info

    spool = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)
    with tarfile.open(fileobj=spool, mode="w") as archive:
        archive.add(str(root), arcname=".", filter=owned)
    spool.seek(0)
    return spool


def _frames(sock: Any) -> Iterator[tuple[int, bytes]]:
    """Docker's multiplexed stream: 8-byte header (stream id, length), then the payload."""
    raw = getattr(sock, "_sock", sock)
    reader = raw.makefile("rb", buffering=1 << 16)
    try:
        while header := reader.read(8):
            if len(header) < 8:
                return
            length = int.from_bytes(header[4:8], "big")
            while length > 0:
                chunk = reader.read1(min(length, 1 << 16))
                if not chunk:
                    return
                length -= len(chunk)
                yield header[0], chunk
    finally:
        reader.close()


class DockerExecutor(Executor):
    """A fresh hardened container per job, removed afterwards."""

    name = "docker"

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self._docker: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def image(self) -> str:
        return str(self.options.get("image", DEFAULT_IMAGE))

    @property
    def base_url(self) -> str | None:
        return self.options.get("base_url")

    @property
    def concurrency(self) -> int:
        return int(self.options.get("concurrency", 4))

    @property
    def kill_grace_s(self) -> float:
        return float(self.options.get("kill_grace_s", 2.0))

    @classmethod
    def available(cls, options: dict[str, Any] | None = None) -> ToolInfo:
        executor = cls(options)
        try:
            client = _client(executor.base_url, timeout=10)
        except ExecutorError as exc:
            return ToolInfo(name=cls.name, installed=False, reason=str(exc))
        try:
            with _docker_errors("answering a ping", executor.base_url, executor.image):
                version = client.version().get("Version")
                client.images.get(executor.image)
        except ExecutorError as exc:
            return ToolInfo(name=cls.name, installed=False, reason=str(exc))
        finally:
            client.close()
        return ToolInfo(name=cls.name, installed=True, version=version, path=_engine_url(executor.base_url))

    def client(self) -> Any:
        with self._lock:
            if self._docker is None:
                self._docker = _client(self.base_url, pool=max(10, self.concurrency * 2))
                _sweep_leftovers(self._docker)
                sweep_tempdirs()
            return self._docker

    def _threads(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.concurrency + 2, thread_name_prefix="truthplane-docker"
                )
            return self._pool

    async def run(self, job: Job) -> JobResult:
        loop = asyncio.get_running_loop()
        box: dict[str, Any] = {}
        try:
            result = await loop.run_in_executor(self._threads(), self._run_sync, job, box)
            result.preflight = preflight_untrusted(job)
            return result
        finally:
            # cancelled (Ctrl-C) while the worker still waits on the container: remove it now
            if box.get("container") is not None and not box.get("removed"):
                await asyncio.shield(loop.run_in_executor(self._threads(), self._remove, box))

    def _create(self, client: Any, job: Job, workdir: str) -> str:
        """Create (not start) the job's container through the low-level API, which knows StdinOnce."""
        from docker.types import LogConfig, Mount

        limits = job.limits
        memory = f"{limits.memory_mb}m"
        api = client.api
        host_config = api.create_host_config(
            network_mode="bridge" if limits.network else "none",
            read_only=True,
            tmpfs={"/tmp": _TMP_SIZE},
            mounts=[Mount(target=WORKSPACE, source=None, type="volume")],
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=limits.pids,
            mem_limit=memory,
            memswap_limit=memory,
            nano_cpus=int(limits.cpus * 1e9),
            log_config=LogConfig(type="none"),
        )
        config = api.create_container_config(
            self.image,
            job.command,
            hostname="truthplane",
            user=str(self.options.get("user", f"{SANDBOX_UID}:{SANDBOX_UID}")),
            environment=job_env(job, home=WORKSPACE),
            working_dir=workdir,
            labels={"truthplane.job": job.label or "1", "truthplane.owner": _OWNER},
            stdin_open=job.stdin is not None,
            host_config=host_config,
        )
        config["StdinOnce"] = job.stdin is not None
        return str(api.create_container_from_config(config)["Id"])

    def _run_sync(self, job: Job, box: dict[str, Any]) -> JobResult:
        client = self.client()
        with workspace(job, kind="docker") as (root, local_workdir):
            archive = _tar_workspace(root)
            rel = local_workdir.relative_to(root).as_posix()
        workdir = str(PurePosixPath(WORKSPACE) / rel) if rel != "." else WORKSPACE
        try:
            with _docker_errors("creating the job container", self.base_url, self.image):
                box["container"] = container = self._create(client, job, workdir)
                if job.files or job.source_dir or workdir != WORKSPACE:
                    client.api.put_archive(container, WORKSPACE, archive)  # an empty workspace needs no copy
            return self._attach_and_wait(client.api, container, job)
        finally:
            archive.close()
            self._remove(box)

    def _attach_and_wait(self, api: Any, container: str, job: Job) -> JobResult:
        limits = job.limits
        out, err = OutputCap(limits.max_output_bytes), OutputCap(limits.max_output_bytes)
        timed_out = threading.Event()

        def kill_at_timeout() -> None:
            timed_out.set()
            import docker.errors
            import requests.exceptions

            try:
                api.stop(container, timeout=max(1, round(self.kill_grace_s)))
            except (docker.errors.APIError, requests.exceptions.RequestException):
                _kill(api, container)

        params = {"stdout": 1, "stderr": 1, "stream": 1, "stdin": int(job.stdin is not None)}
        with _docker_errors("running the job", self.base_url, self.image):
            sock = api.attach_socket(container, params=params)
            started = time.monotonic()
            api.start(container)
            timer = threading.Timer(limits.timeout_s, kill_at_timeout)
            timer.daemon = True
            timer.start()
            try:
                if job.stdin is not None:
                    # fed from its own thread: a job that writes before it reads must not deadlock us
                    threading.Thread(target=_send_stdin, args=(sock, job.stdin), daemon=True).start()
                for stream, chunk in _frames(sock):
                    (err if stream == 2 else out).feed(chunk)
                status = api.wait(container, timeout=limits.timeout_s + self.kill_grace_s + 30)
            finally:
                timer.cancel()
                sock.close()
            duration = time.monotonic() - started
            state = api.inspect_container(container).get("State", {})
        oom = bool(state.get("OOMKilled"))
        stdout, stdout_truncated = out.text()
        stderr, stderr_truncated = err.text()
        notes = []
        if timed_out.is_set():
            notes.append(f"killed after the {limits.timeout_s:g} s timeout")
        if oom:
            notes.append(f"killed for exceeding {limits.memory_mb} MB of memory")
        return JobResult(
            returncode=status.get("StatusCode"), stdout=stdout, stderr=stderr,
            stdout_truncated=stdout_truncated, stderr_truncated=stderr_truncated,
            duration_s=duration, timed_out=timed_out.is_set(), oom_killed=oom,
            executor=self.name, node=_engine_url(self.base_url), notes=notes,
        )

    def _remove(self, box: dict[str, Any]) -> None:
        container = box.get("container")
        if container is None or box.get("removed"):
            return
        box["removed"] = True
        import docker.errors

        try:
            self.client().api.remove_container(container, force=True, v=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            if exc.status_code != 409:  # 409: removal already in progress
                raise ExecutorError(f"could not remove job container {container[:12]}: {exc.explanation}") from None

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        if self._docker is not None:
            self._docker.close()
            self._docker = None


def _send_stdin(sock: Any, data: bytes) -> None:
    raw = getattr(sock, "_sock", sock)
    try:
        raw.sendall(data)
        raw.shutdown(socket.SHUT_WR)
    except OSError:
        return  # the job exited without reading all of its input


def _sweep_leftovers(client: Any) -> None:
    """Remove stopped job containers whose truthplane process (on this host) was killed before cleaning up
    (their workspaces in the temp dir go with `sweep_tempdirs`)."""
    import docker.errors
    import requests.exceptions

    host = socket.gethostname()
    try:
        for status in ("exited", "dead"):
            for found in client.api.containers(all=True, filters={"label": "truthplane.owner", "status": status}):
                owner_host, _, pid = found.get("Labels", {}).get("truthplane.owner", "").partition(":")
                if owner_host == host and pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                    client.api.remove_container(found["Id"], force=True, v=True)
    except (docker.errors.APIError, requests.exceptions.RequestException):
        return  # best effort: the job itself will report a real engine problem


def _kill(api: Any, container: str) -> None:
    """Last resort at the timeout: SIGKILL, ignoring a container that is already gone."""
    import docker.errors
    import requests.exceptions

    try:
        api.kill(container)
    except (docker.errors.APIError, requests.exceptions.RequestException):
        return


def import_rootfs(tarball: Path, tag: str = DEFAULT_IMAGE, base_url: str | None = None) -> str:
    """`docker import` of a root filesystem tarball, with the sandbox's user, workdir and env."""
    repository, _, version = tag.rpartition(":") if ":" in tag.split("/")[-1] else (tag, "", "latest")
    client = _client(base_url, timeout=600)
    try:
        with _docker_errors("importing the sandbox rootfs", base_url):
            client.api.import_image_from_file(str(tarball), repository=repository, tag=version, changes=IMAGE_CHANGES)
            return str(client.images.get(tag).id)
    finally:
        client.close()


def build_dockerfile(
    context: Path, tag: str = DEFAULT_IMAGE, data_science: bool = False, base_url: str | None = None
) -> str:
    """`docker build` of the sandbox Dockerfile (needs a registry for the python base image)."""
    client = _client(base_url, timeout=1800)
    import docker.errors

    try:
        with _docker_errors("building the sandbox image", base_url):
            try:
                image, _ = client.images.build(
                    path=str(context), tag=tag, rm=True, buildargs={"DATA_SCIENCE": "1" if data_science else "0"}
                )
            except docker.errors.BuildError as exc:
                last = next(
                    (
                        str(line.get("error") or line.get("stream", "")).strip()
                        for line in reversed(list(exc.build_log))
                        if line.get("error") or line.get("stream")
                    ),
                    str(exc),
                )
                raise ExecutorError(
                    f"docker build of the sandbox failed ({last}); without a registry use --from rootfs"
                ) from None
            return str(image.id)
    finally:
        client.close()
