"""Building the sandbox image each backend runs jobs in (`truthplane sandbox build`).

One builder per executor in `BUILDERS`; a backend that needs an image adds its entry. The docker
builder has two sources: `dockerfile` (this directory's Dockerfile, python:3.12-slim base; needs a
registry) and `rootfs` (debootstrap a minimal Debian into a cached tarball with
`build-rootfs.sh`, then `docker import`; works offline from a Debian mirror).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from truthplane.errors import ExecutorError, UsageError

SANDBOX_DIR = Path(__file__).resolve().parent
ROOTFS_SCRIPT = SANDBOX_DIR / "build-rootfs.sh"
ROOTFS_VERSION = "v1"  # bump when build-rootfs.sh changes what it produces, so caches are rebuilt
SYSTEM_CACHE = Path("/var/cache/truthplane")


@dataclass(frozen=True)
class BuildRequest:
    executor: str = "docker"
    source: str = "rootfs"  # rootfs | dockerfile
    data_science: bool = False
    tag: str | None = None
    cache_dir: Path | None = None


def cache_dir() -> Path:
    """/var/cache/truthplane when we may write there (root, CI), else the per-user cache."""
    if os.access(SYSTEM_CACHE, os.W_OK) or (not SYSTEM_CACHE.exists() and os.access(SYSTEM_CACHE.parent, os.W_OK)):
        return SYSTEM_CACHE
    from truthplane.paths import default_cache_dir

    return default_cache_dir() / "sandbox"


def rootfs_tarball(data_science: bool, cache: Path | None = None, suite: str | None = None) -> Path:
    """The cached Debian rootfs tarball, built on first use (a few minutes), reused afterwards."""
    suite = suite or os.environ.get("TRUTHPLANE_DEBIAN_SUITE", "bookworm")
    flavour = "-ds" if data_science else ""
    tarball = (cache or cache_dir()) / f"rootfs-{suite}{flavour}-{ROOTFS_VERSION}.tar"
    argv = ["/bin/sh", str(ROOTFS_SCRIPT), str(tarball)] + (["--data-science"] if data_science else [])
    try:
        # debootstrap's progress goes to our stderr: this step can take minutes
        proc = subprocess.run(argv, check=False, stdout=sys.stderr, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "TRUTHPLANE_DEBIAN_SUITE": suite})
    except OSError as exc:
        raise ExecutorError(f"cannot run {ROOTFS_SCRIPT.name}: {exc.strerror}") from None
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        raise ExecutorError(
            f"building the sandbox rootfs failed: {last}; check the Debian mirror (TRUTHPLANE_DEBIAN_MIRROR)"
        )
    return tarball


def _build_docker(request: BuildRequest) -> str:
    from truthplane.executors import docker as docker_backend

    tag = request.tag or docker_backend.DEFAULT_IMAGE
    if request.source == "dockerfile":
        image_id = docker_backend.build_dockerfile(SANDBOX_DIR, tag, data_science=request.data_science)
    else:
        tarball = rootfs_tarball(request.data_science, request.cache_dir)
        image_id = docker_backend.import_rootfs(tarball, tag)
    return f"built {tag} ({image_id[:19]}) from {request.source}"


BUILDERS: dict[str, Callable[[BuildRequest], str]] = {"docker": _build_docker}


def build(request: BuildRequest) -> str:
    """Build the sandbox image for one executor; returns a one-line summary."""
    if request.source not in ("rootfs", "dockerfile"):
        raise UsageError(f"unknown sandbox source {request.source!r}: use rootfs or dockerfile")
    builder = BUILDERS.get(request.executor)
    if builder is None:
        raise UsageError(
            f"executor {request.executor!r} has no sandbox image to build; buildable: {', '.join(sorted(BUILDERS))}"
        )
    return builder(request)
