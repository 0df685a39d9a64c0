"""DockerExecutor against the real Docker Engine and the locally built sandbox image."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import missing
from tests.executors.conftest import SANDBOX_IMAGE, run_job
from truthplane.errors import ExecutorError
from truthplane.executors.docker import DockerExecutor
from truthplane.executors.jobs import Job, Limits

engine = pytest.mark.tool("docker-engine")
image = pytest.mark.tool("sandbox-image")


@pytest.fixture
def docker_executor() -> Any:
    executor = DockerExecutor({"image": SANDBOX_IMAGE, "kill_grace_s": 0.5})
    yield executor
    asyncio.run(executor.close())


def _labelled(token: str, running_only: bool = False) -> list[str]:
    import docker

    client = docker.from_env()
    try:
        # one listing call: the high-level list() inspects each container afterwards, and one removed in between
        # (a job finishing) raised NotFound in the test's watcher thread
        found = client.api.containers(all=not running_only, filters={"label": f"truthplane.job={token}"})
        return [c["Id"] for c in found]
    finally:
        client.close()


@engine
@image
def test_prints_42(docker_executor: DockerExecutor) -> None:
    result = run_job(docker_executor, Job(command=["python", "-c", "print(6*7)"]))
    assert result.stdout == "42\n" and result.returncode == 0
    assert result.executor == "docker" and result.sandboxed


@engine
@image
def test_container_is_hardened(docker_executor: DockerExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUTHPLANE_TEST_API_KEY", "sk-host-secret")
    code = r"""
import json, os
status = dict(line.split(':\t', 1) for line in open('/proc/self/status').read().splitlines() if ':\t' in line)
def writable(path):
    try:
        open(path, 'w').close(); return True
    except OSError:
        return False
def read(path):
    try:
        return open(path).read().strip()
    except OSError:
        return None
print(json.dumps({
    'uid': os.getuid(), 'cap_eff': status['CapEff'].strip(), 'no_new_privs': status['NoNewPrivs'].strip(),
    'root_writable': writable('/usr/pwned'), 'tmp_writable': writable('/tmp/ok'),
    'workspace_writable': writable('/workspace/ok'), 'cwd': os.getcwd(),
    'docker_sock': os.path.exists('/var/run/docker.sock') or os.path.exists('/run/docker.sock'),
    'interfaces': sorted(os.listdir('/sys/class/net')), 'env': sorted(os.environ),
    'memory_limit': read('/sys/fs/cgroup/memory/memory.limit_in_bytes') or read('/sys/fs/cgroup/memory.max'),
    'pids_max': read('/sys/fs/cgroup/pids/pids.max') or read('/sys/fs/cgroup/pids.max'),
}))
"""
    result = run_job(docker_executor, Job(command=["python", "-c", code], limits=Limits(memory_mb=200, pids=77)))
    facts = json.loads(result.stdout)
    assert facts["uid"] == 1000
    assert int(facts["cap_eff"], 16) == 0 and facts["no_new_privs"] == "1"
    assert not facts["root_writable"] and facts["tmp_writable"] and facts["workspace_writable"]
    assert facts["cwd"] == "/workspace"
    assert facts["docker_sock"] is False
    assert facts["interfaces"] == ["lo"]
    assert "TRUTHPLANE_TEST_API_KEY" not in facts["env"]
    assert set(facts["env"]) <= {"PATH", "HOME", "LANG", "PYTHONDONTWRITEBYTECODE", "HOSTNAME"}
    assert int(facts["memory_limit"]) == 200 * 1024 * 1024
    assert facts["pids_max"] == "77"


@engine
@image
def test_files_source_dir_workdir_and_stdin(docker_executor: DockerExecutor, tmp_path: Path) -> None:
    source = tmp_path / "repo"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "__init__.py").write_text("NAME = 'pkg'\n")
    job = Job(
        command=["python", "-c", "import os, sys, pkg, extra; print(os.getcwd(), pkg.NAME, extra.X, sys.stdin.read())"],
        source_dir=str(source), files={"extra.py": b"X = 1\n"}, stdin=b"from stdin", env={"PYTHONPATH": "/workspace"},
        workdir="sub",
    )
    result = run_job(docker_executor, job)
    assert result.stdout == "/workspace/sub pkg 1 from stdin\n", result.stderr


@engine
@image
def test_exit_status_and_stderr(docker_executor: DockerExecutor) -> None:
    result = run_job(docker_executor, Job(command=["python", "-c", "import sys; sys.stderr.write('bad'); sys.exit(7)"]))
    assert result.returncode == 7 and result.stderr == "bad" and result.stdout == ""


@engine
def test_missing_image_says_how_to_build_it() -> None:
    executor = DockerExecutor({"image": f"truthplane-absent-{uuid.uuid4().hex[:8]}:latest"})
    with pytest.raises(ExecutorError, match="run truthplane sandbox build"):
        run_job(executor, Job(command=["true"]))
    info = DockerExecutor.available({"image": "truthplane-absent:latest"})
    assert not info.installed and "truthplane sandbox build" in (info.reason or "")


def test_unreachable_engine_is_one_clear_error(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/no-docker.sock"
    executor = DockerExecutor({"base_url": url})
    with pytest.raises(ExecutorError) as caught:
        run_job(executor, Job(command=["true"]))
    assert str(caught.value) == f"Docker engine not reachable at {url}: start dockerd, or use --executor local"
    assert DockerExecutor.available({"base_url": url}).reason == str(caught.value)


@engine
@image
def test_cancelled_job_leaves_no_container(docker_executor: DockerExecutor) -> None:
    token = f"tp-cancel-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        task = asyncio.ensure_future(docker_executor.run(Job(command=["sleep", "60"], label=token)))
        for _ in range(400):
            if await asyncio.to_thread(_labelled, token, True):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the job's container never started")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert _labelled(token) == []


@engine
@image
def test_run_many_runs_containers_side_by_side(docker_executor: DockerExecutor) -> None:
    token = f"tp-fanout-{uuid.uuid4().hex[:8]}"
    seen: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            seen.append(len(_labelled(token, running_only=True)))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    jobs = [Job(command=["python", "-c", "import time; time.sleep(4); print('ok')"], label=token) for _ in range(3)]
    try:
        results = asyncio.run(docker_executor.run_many(jobs))
    finally:
        done.set()
        watcher.join()
    assert [r.stdout for r in results] == ["ok\n"] * 3
    assert max(seen) == 3


@engine
@pytest.mark.slow
def test_sandbox_build_from_cached_rootfs_imports_a_working_image() -> None:
    from truthplane.executors.sandbox import BuildRequest, build, cache_dir, rootfs_tarball

    if not (cache_dir() / "rootfs-bookworm-v1.tar").exists():
        missing("there is no cached rootfs tarball (run .ci/docker.sh once)")
    assert rootfs_tarball(False) == cache_dir() / "rootfs-bookworm-v1.tar"
    tag = f"truthplane-sandbox-test:{uuid.uuid4().hex[:8]}"
    summary = build(BuildRequest(executor="docker", source="rootfs", tag=tag))
    assert summary.startswith(f"built {tag}")
    executor = DockerExecutor({"image": tag})
    try:
        result = run_job(executor, Job(command=["python", "-c", "import os; print(os.getuid())"]))
        assert result.stdout == "1000\n"
    finally:
        asyncio.run(executor.close())
        import docker

        client = docker.from_env()
        client.images.remove(tag)
        client.close()


@engine
@image
def test_containers_left_by_a_killed_run_are_swept(docker_executor: DockerExecutor) -> None:
    import socket
    import subprocess
    import sys

    import docker

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    token = f"tp-sweep-{uuid.uuid4().hex[:8]}"
    client = docker.from_env()
    try:
        orphans = {}
        for owner in (f"{socket.gethostname()}:{dead.pid}", f"{socket.gethostname()}:{__import__('os').getpid()}"):
            container = client.containers.create(
                SANDBOX_IMAGE, ["true"], network_mode="none",
                labels={"truthplane.job": token, "truthplane.owner": owner},
            )
            container.start()
            container.wait()
            orphans[owner] = container.id
        run_job(docker_executor, Job(command=["true"]))
        left = set(_labelled(token))
        assert orphans[f"{socket.gethostname()}:{dead.pid}"] not in left
        assert orphans[f"{socket.gethostname()}:{__import__('os').getpid()}"] in left  # a live run's: not ours to touch
    finally:
        for container_id in _labelled(token):
            client.api.remove_container(container_id, force=True)
        client.close()


@engine
@image
def test_large_stdin_with_a_job_that_writes_before_reading(docker_executor: DockerExecutor) -> None:
    code = "import sys\nsys.stdout.write('x' * (4 << 20)); sys.stdout.flush()\nprint(len(sys.stdin.buffer.read()))\n"
    job = Job(
        command=["python", "-c", code], stdin=b"y" * (4 << 20), limits=Limits(timeout_s=60, max_output_bytes=5 << 20)
    )
    result = run_job(docker_executor, job)
    assert not result.timed_out and result.returncode == 0, result.stderr
    assert result.stdout.endswith("x" + str(4 << 20) + "\n") and not result.stdout_truncated


@engine
@pytest.mark.slow
def test_sandbox_build_from_dockerfile_builds_or_points_to_rootfs() -> None:
    from truthplane.executors.sandbox import BuildRequest, build

    tag = f"truthplane-sandbox-test:df-{uuid.uuid4().hex[:8]}"
    try:
        summary = build(BuildRequest(executor="docker", source="dockerfile", tag=tag))
    except ExecutorError as exc:  # no registry reachable (as on the CI machine): one line, with the way out
        assert "docker build of the sandbox failed" in str(exc) and "--from rootfs" in str(exc)
        return
    import docker

    client = docker.from_env()
    try:
        assert summary.startswith(f"built {tag}")
        result = run_job(DockerExecutor({"image": tag}), Job(command=["python", "-c", "import os; print(os.getuid())"]))
        assert result.stdout == "1000\n"
    finally:
        client.images.remove(tag, force=True)
        client.close()
