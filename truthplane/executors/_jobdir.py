"""What every backend does the same way: materialise a Job into a directory, build its base
environment, and cap its output while it streams.

A workspace holds copies, never links to the caller's files: a symlink in the source tree is
recreated as a symlink (its target is never read), and `Job.files` paths must stay inside.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from truthplane.errors import ExecutorError
from truthplane.executors.interface import TRUNCATION_MARKER
from truthplane.executors.jobs import Job
from truthplane.leftovers import owned_tempdir, remove_tree

STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def base_env(home: str, path: str = STANDARD_PATH) -> dict[str, str]:
    """The only variables a job gets besides its own `Job.env`: nothing of the host's."""
    return {"PATH": path, "HOME": home, "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}


def host_python_path() -> str:
    """PATH with the running interpreter's bin dir first, so `python` is this host's python."""
    bin_dir = str(Path(sys.executable).parent)
    return f"{bin_dir}:{STANDARD_PATH}"


def job_path(job: Job) -> str:
    """PATH for a job on this host: its interpreter's bin dir first (truthplane's own last), else this python's."""
    if job.interpreter is None:
        return host_python_path()
    return f"{job.interpreter.bin_dir}:{STANDARD_PATH}:{Path(sys.executable).parent}"


def job_env(job: Job, home: str, path: str = STANDARD_PATH) -> dict[str, str]:
    return {**base_env(home, path), **job.env}


def safe_relative(path: str, what: str = "path") -> PurePosixPath:
    """A repo-relative path that cannot leave its root: no absolute paths, no '..'."""
    pure = PurePosixPath(path.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or not str(path).strip():
        raise ExecutorError(f"job {what} {path!r} escapes the workspace: use a relative path inside it")
    return pure


def copy_tree(source: Path, dest: Path, skip: tuple[int, int] | None = None) -> None:
    """Copy a directory tree; symlinks stay symlinks, special files (fifos, sockets) are skipped,
    and so is the directory `skip` (device, inode): the workspace itself when it lies inside the source."""
    skip = skip or _identity(dest)
    with os.scandir(source) as entries:
        for entry in entries:
            target = dest / entry.name
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), target)
            elif entry.is_dir(follow_symlinks=False):
                if _identity(entry.path) == skip:
                    continue
                target.mkdir()
                copy_tree(Path(entry.path), target, skip)
                shutil.copystat(entry.path, target, follow_symlinks=False)
            elif entry.is_file(follow_symlinks=False):
                shutil.copy2(entry.path, target, follow_symlinks=False)


def _identity(path: str | Path) -> tuple[int, int]:
    info = os.lstat(path)
    return info.st_dev, info.st_ino


def _write_inside(root: Path, rel: PurePosixPath, content: bytes) -> None:
    """Write root/rel without following any symlink on the way (a copied link could point out)."""
    current = root
    for part in rel.parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise ExecutorError(f"job file {rel} goes through the symlink {part!r}: write it elsewhere")
        current.mkdir(exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
    try:
        fd = os.open(current / rel.name, flags, 0o644)
    except OSError as exc:
        raise ExecutorError(f"cannot write job file {rel}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)


def materialise(job: Job, root: Path) -> Path:
    """Fill `root` with the job's files; return the working directory inside it."""
    if job.source_dir is not None:
        source = Path(job.source_dir)
        if not source.is_dir():
            raise ExecutorError(f"job source_dir {job.source_dir} is not a directory: pass an existing directory")
        try:
            copy_tree(source, root)
        except OSError as exc:
            raise ExecutorError(
                f"cannot copy {exc.filename or job.source_dir} into the workspace: {exc.strerror}"
            ) from None
    for rel, content in job.files.items():
        _write_inside(root, safe_relative(rel, "file"), content)
    workdir = root if job.workdir in ("", ".") else root / safe_relative(job.workdir, "workdir")
    if workdir.is_symlink() or (workdir.exists() and not workdir.is_dir()):
        raise ExecutorError(f"job workdir {job.workdir!r} is not a directory inside the workspace")
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def create_workspace(job: Job, kind: str = "job") -> tuple[Path, Path]:
    """A fresh temporary directory holding the job's files: (root, working directory)."""
    root = owned_tempdir(kind)
    try:
        return root, materialise(job, root)
    except BaseException:
        remove_workspace(root)
        raise


def remove_workspace(root: Path) -> None:
    remove_tree(root)


@contextmanager
def workspace(job: Job, kind: str = "job") -> Iterator[tuple[Path, Path]]:
    """(workspace root, working directory), removed afterwards whatever happens."""
    root, workdir = create_workspace(job, kind)
    try:
        yield root, workdir
    finally:
        remove_workspace(root)


class OutputCap:
    """Keep the first `limit` bytes of a stream and count the rest, so a flood never sits in memory."""

    def __init__(self, limit: int) -> None:
        self.limit = max(0, limit)
        self.kept = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> None:
        room = self.limit - len(self.kept)
        if room > 0:
            self.kept += chunk[:room]
        self.total += len(chunk)

    @property
    def truncated(self) -> bool:
        return self.total > self.limit

    def text(self) -> tuple[str, bool]:
        """The decoded output with the visible marker if anything was dropped (as cap_output does)."""
        kept = bytes(self.kept).decode("utf-8", errors="replace")
        if not self.truncated:
            return kept, False
        return kept + TRUNCATION_MARKER.format(dropped=self.total - self.limit), True
