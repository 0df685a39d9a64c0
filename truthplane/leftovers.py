"""What a run leaves in the temp dir if it is killed (kill -9, a lost machine), and how a later run finds it.

Every temporary directory truthplane makes is named `truthplane-<kind>-p<pid>.<pidns>-<random>`: the run
that owns it, and the pid namespace that pid means something in. A later run, or `truthplane gc`, removes
the ones whose owner process is gone and never touches those of a run still alive, nor any made in another
pid namespace (a truthplane running inside a job sees its job directory, whose owner it cannot see).
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

_OWNED = re.compile(r"^truthplane-(?:[a-z]+-)+p(\d+)\.(\d+)-")


@functools.cache
def _pid_namespace() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


def owned_prefix(kind: str) -> str:
    """A tempfile prefix that names this process (and its pid namespace) as the owner."""
    return f"truthplane-{kind}-p{os.getpid()}.{_pid_namespace()}-"


def owned_tempdir(kind: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=owned_prefix(kind)))


def owner_of(name: str) -> int | None:
    """The owner pid a name records, if it was made in this pid namespace (else None: not ours to judge)."""
    match = _OWNED.match(name)
    if match is None or int(match.group(2)) != _pid_namespace():
        return None
    return int(match.group(1))


def is_dead(pid: int) -> bool:
    """No such process here (another user's process counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _make_removable(path: str) -> None:
    """A job may leave read-only directories behind; make them deletable."""
    for dirpath, dirnames, _ in os.walk(path):
        for name in dirnames:
            full = os.path.join(dirpath, name)
            if not os.path.islink(full):
                os.chmod(full, stat.S_IRWXU)


def remove_tree(path: Path) -> None:
    _make_removable(str(path))
    shutil.rmtree(path, ignore_errors=True)


def sweep_tempdirs(parent: Path | None = None) -> list[Path]:
    """Remove our user's truthplane temp dirs whose owner process is dead; return what was removed."""
    parent = Path(parent or tempfile.gettempdir())
    removed = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return []
    for entry in entries:
        pid = owner_of(entry.name)
        if pid is None or pid == os.getpid() or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
        except OSError:
            continue
        if is_dead(pid):
            remove_tree(Path(entry.path))
            removed.append(Path(entry.path))
    return removed
