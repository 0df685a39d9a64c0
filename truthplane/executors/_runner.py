"""The remote half of the lambda backend: unpack a job's files, run its command with a timeout and capped output,
report what happened as JSON. `safe_extract` also unpacks a snapshot on a cluster worker.

Standard library only, and Python 3.7+ syntax: the Lambda image imports it from truthplane.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time

READ_CHUNK = 65536


class UnsafeArchive(Exception):
    """A member of the job's archive would land outside its directory."""


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def safe_extract(data: bytes, dest: str) -> None:
    """Unpack a gzip'd tar into dest: regular files, directories and symlinks only, nothing written
    through a symlink and nothing outside dest. Symlinks are recreated as they are, never followed."""
    root = os.path.realpath(dest)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive:
            name = member.name
            parts = [p for p in name.split("/") if p not in ("", ".")]
            if not parts:
                continue
            if name.startswith("/") or ".." in parts:
                raise UnsafeArchive(f"archive member {member.name!r} leaves the workspace")
            target = os.path.join(root, *parts)
            parent = os.path.dirname(target)
            os.makedirs(parent, exist_ok=True)
            if not _inside(os.path.realpath(parent), root):
                raise UnsafeArchive(f"archive member {member.name!r} goes through a symlink out of the workspace")
            if member.isdir():
                if os.path.islink(target):
                    raise UnsafeArchive(f"archive directory {member.name!r} is already a symlink")
                os.makedirs(target, exist_ok=True)
                os.chmod(target, (member.mode & 0o777) | 0o700)
            elif member.issym():
                if os.path.lexists(target):
                    os.unlink(target)
                os.symlink(member.linkname, target)
            elif member.isfile():
                source = archive.extractfile(member)
                if source is None:
                    continue
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0)
                fd = os.open(target, flags, (member.mode & 0o777) | 0o600)
                with os.fdopen(fd, "wb") as handle:
                    shutil.copyfileobj(source, handle)
                os.chmod(target, (member.mode & 0o777) | 0o600)


class _Capture(threading.Thread):
    """Read a pipe to its end, keeping the first `limit` bytes and counting all of them."""

    def __init__(self, pipe, limit: int) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.limit = limit
        self.kept = bytearray()
        self.total = 0

    def run(self) -> None:
        while True:
            chunk = self.pipe.read1(READ_CHUNK) if hasattr(self.pipe, "read1") else self.pipe.read(READ_CHUNK)
            if not chunk:
                break
            room = self.limit - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]
            self.total += len(chunk)
        self.pipe.close()


def _feed(pipe, data: bytes) -> None:
    try:
        if data:
            pipe.write(data)
    except (BrokenPipeError, OSError):
        pass
    finally:
        try:
            pipe.close()
        except OSError:
            pass


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_command(command, cwd, env, stdin, timeout_s, limit, cancel=None):
    """Run command in its own process group; kill the whole group at the timeout (or when `cancel`,
    a threading.Event, is set). Returns the result fields, outputs base64-encoded and capped."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            command, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,
        )
    except OSError as exc:
        message = "cannot start {}: {}\n".format(command[0] if command else "(empty command)", exc.strerror)
        return _result(127, b"", 0, message.encode(), len(message), False, time.monotonic() - started)
    readers = [_Capture(proc.stdout, limit), _Capture(proc.stderr, limit)]
    for reader in readers:
        reader.start()
    threading.Thread(target=_feed, args=(proc.stdin, stdin or b""), daemon=True).start()
    deadline = started + max(0.0, timeout_s)
    timed_out = False
    # a blocking wait in a thread notices the exit at once (Popen.wait(timeout) polls with sleeps)
    exited = threading.Event()
    threading.Thread(target=lambda: (proc.wait(), exited.set()), daemon=True).start()
    while not exited.wait(min(0.1, max(0.0, deadline - time.monotonic()))):
        if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
            timed_out = time.monotonic() >= deadline
            _kill_group(proc.pid)
            exited.wait()
            break
    duration = time.monotonic() - started
    _kill_group(proc.pid)  # whatever the job left running in its group goes with it
    for reader in readers:
        reader.join(timeout=5)
    out, err = readers
    return _result(proc.returncode, bytes(out.kept), out.total, bytes(err.kept), err.total, timed_out, duration)


def _result(returncode, stdout, stdout_total, stderr, stderr_total, timed_out, duration):
    return {
        "returncode": None if timed_out else returncode,
        "stdout_b64": base64.b64encode(stdout).decode("ascii"),
        "stdout_total": stdout_total,
        "stderr_b64": base64.b64encode(stderr).decode("ascii"),
        "stderr_total": stderr_total,
        "timed_out": timed_out,
        "duration_s": duration,
    }


def job_environment(home: str, extra, path=None) -> dict:
    """Nothing of this process's environment (a function's AWS credentials!) except PATH."""
    env = {"PATH": path or os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "HOME": home, "LANG": "C.UTF-8",
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.update(extra or {})
    return env


def run_spec(spec: dict, snapshot=None, cancel=None, max_timeout_s=None) -> dict:
    """Make a temporary workspace (a copy of `snapshot`, then the spec's own archive), run, clean up."""
    root = tempfile.mkdtemp(prefix="truthplane-job-")
    try:
        work = os.path.join(root, "work")
        if snapshot:
            shutil.copytree(snapshot, work, symlinks=True)
        else:
            os.mkdir(work)
        if spec.get("archive_b64"):
            safe_extract(base64.b64decode(spec["archive_b64"]), work)
        cwd = os.path.join(work, spec.get("workdir") or ".")
        if not _inside(os.path.realpath(cwd), os.path.realpath(work)):
            raise UnsafeArchive("workdir {!r} leaves the workspace".format(spec.get("workdir")))
        os.makedirs(cwd, exist_ok=True)
        timeout_s = float(spec["timeout_s"])
        capped = max_timeout_s is not None and max_timeout_s < timeout_s
        env = job_environment(root, spec.get("env"), spec.get("path"))
        stdin = base64.b64decode(spec["stdin_b64"]) if spec.get("stdin_b64") else b""
        result = run_command(spec["command"], cwd, env, stdin,
                             min(timeout_s, max_timeout_s) if capped else timeout_s,
                             int(spec["max_output_bytes"]), cancel)
        result["timeout_capped_s"] = max_timeout_s if capped else None
        return result
    finally:
        for dirpath, dirnames, _ in os.walk(root):
            for name in dirnames:
                path = os.path.join(dirpath, name)
                if not os.path.islink(path):
                    os.chmod(path, 0o700)
        shutil.rmtree(root, ignore_errors=True)
