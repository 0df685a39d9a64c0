"""Jobs' files as gzip'd tar archives for the remote backends (lambda, ssh).

Archives are deterministic (sorted names, zero times and owners), so the same tree gives the same
bytes and the same content hash, which is what the ssh node cache is keyed by. Symlinks travel as
symlinks, never followed; fifos, sockets and devices are left out; `Job.files` paths are checked
the way the local workspace checks them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

from truthplane.errors import ExecutorError
from truthplane.executors._jobdir import safe_relative

COMPRESS_LEVEL = 6


def _info(name: str, kind: bytes, mode: int = 0o644, size: int = 0, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, linkname
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    return info


def _add_tree(archive: tarfile.TarFile, root: Path, skip: frozenset[str] = frozenset()) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, root)
        for name in sorted([*dirnames, *filenames]):
            full = os.path.join(dirpath, name)
            arcname = name if rel_dir == "." else f"{rel_dir}/{name}"
            if arcname in skip:
                continue
            info = os.lstat(full)
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode):
                archive.addfile(_info(arcname, tarfile.SYMTYPE, 0o777, linkname=os.readlink(full)))
            elif stat.S_ISDIR(info.st_mode):
                archive.addfile(_info(arcname, tarfile.DIRTYPE, mode))
            elif stat.S_ISREG(info.st_mode):
                with open(full, "rb") as handle:
                    archive.addfile(_info(arcname, tarfile.REGTYPE, mode, info.st_size), handle)
        # os.walk lists symlinked directories as directories but never descends into them
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]


def pack(source_dir: str | None = None, files: dict[str, bytes] | None = None) -> bytes:
    """A gzip'd tar of source_dir (if given) with `files` written over it."""
    raw = io.BytesIO()
    files = files or {}
    checked = {str(safe_relative(rel, "file")): content for rel, content in sorted(files.items())}
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        if source_dir is not None:
            root = Path(source_dir)
            if not root.is_dir():
                raise ExecutorError(f"job source_dir {source_dir} is not a directory: pass an existing directory")
            try:
                _add_tree(archive, root, frozenset(checked))
            except OSError as exc:
                raise ExecutorError(f"cannot read {exc.filename or source_dir} to send it: {exc.strerror}") from None
        for rel, content in checked.items():
            archive.addfile(_info(rel, tarfile.REGTYPE, 0o644, len(content)), io.BytesIO(content))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0) as zipped:
        zipped.write(raw.getvalue())
    return out.getvalue()


def tree_signature(source_dir: str) -> tuple[tuple[str, int, int, int], ...]:
    """Cheap identity of a tree's current state (names, sizes, mtimes, modes) to reuse a packed archive."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(source_dir):
        for name in [*dirnames, *filenames]:
            full = os.path.join(dirpath, name)
            info = os.lstat(full)
            entries.append((full, info.st_size, info.st_mtime_ns, info.st_mode))
    return tuple(sorted(entries))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def human_size(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB" if size >= 100_000 else f"{size / 1024:.1f} KB"
