"""What a run leaves in the temp dir if it is killed (kill -9, a lost machine), and how a later run finds it.

Every temporary directory truthplane makes is named `truthplane-<kind>-p<pid>-<random>`: the pid is the
run that owns it. A later run, or `truthplane gc`, removes the ones whose owner process is gone and never
touches those of a run still alive.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

_OWNED = re.compile(r"^truthplane-(?:[a-z]+-)+p(\d+)-")


def owned_prefix(kind: str) -> str:
    """A tempfile prefix that names this process as the owner."""
    return f"truthplane-{kind}-p{os.getpid()}-"


def owned_tempdir(kind: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=owned_prefix(kind)))


def owner_of(name: str) -> int | None:
    match = _OWNED.match(name)
    return int(match.group(1)) if match else None


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
