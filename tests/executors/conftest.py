"""Executor test harness: probes for components that are not one executable on PATH, and the
`hostile_executor` fixture that drives the same jobs through every sandboxing backend."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import register_probe

SANDBOX_IMAGE = os.environ.get("TRUTHPLANE_SANDBOX_IMAGE", "truthplane-sandbox:latest")


def _docker_engine() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _sandbox_image() -> bool:
    if not _docker_engine():
        return False
    import docker

    client = docker.from_env(timeout=5)
    try:
        client.images.get(SANDBOX_IMAGE)
        return True
    except Exception:
        return False
    finally:
        client.close()


def _job_cgroup() -> bool:
    from truthplane.executors._cgroup import CgroupUnavailable, JobCgroup
    from truthplane.executors.jobs import Limits

    try:
        JobCgroup.create(Limits()).remove()
        return True
    except CgroupUnavailable:
        return False


register_probe("docker-engine", _docker_engine)
register_probe("sandbox-image", _sandbox_image)
register_probe("job-cgroup", _job_cgroup)


def run_job(executor: Any, job: Any) -> Any:
    return asyncio.run(executor.run(job))


# each hostile test runs on every backend that claims to contain it
SANDBOXES = [
    pytest.param("local-bwrap", marks=[pytest.mark.tool("bwrap"), pytest.mark.tool("job-cgroup")], id="local-bwrap"),
    pytest.param("docker", marks=[pytest.mark.tool("docker-engine"), pytest.mark.tool("sandbox-image")], id="docker"),
]


@pytest.fixture(params=SANDBOXES)
def sandbox(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "local-bwrap":
        from truthplane.executors.local import LocalExecutor

        executor: Any = LocalExecutor({"kill_grace_s": 0.5})
    else:
        from truthplane.executors.docker import DockerExecutor

        executor = DockerExecutor({"image": SANDBOX_IMAGE, "kill_grace_s": 0.5})
    yield executor
    asyncio.run(executor.close())
