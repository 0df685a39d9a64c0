"""Writes into a user's working tree that never pass through a symlink or into git's own directory."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from truthplane.errors import ExitCode, TruthplaneError


class UnsafeWrite(TruthplaneError):
    """A change would be written through a symlink, into git's own directory, or outside the repository."""

    exit_code = ExitCode.REJECT


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def checked_parts(rel: str) -> list[str]:
    """The components of a repo-relative POSIX path, refusing anything that is not one plain relative path."""
    parts = rel.split("/")
    if not rel or rel.startswith("/") or "\\" in rel or "\0" in rel or any(p in ("", ".", "..") for p in parts):
        raise UnsafeWrite(f"refused to write {rel!r}: not a plain path inside the repository")
    if any(p.casefold() == ".git" for p in parts):
        raise UnsafeWrite(f"refused to write {rel}: it is inside git's own directory")
    return parts


class TreeWriter:
    """Writes into a working tree one directory descriptor at a time, never following a link.

    Each directory on the way to a file is opened relative to the one before with O_NOFOLLOW, so a symlink
    anywhere on the path (committed, or swapped in while truthplane runs) is refused, not followed, and the
    file is created and renamed inside the directory actually opened. `guarded` directories (git's own) are
    refused by identity, whatever they are called.
    """

    def __init__(self, root: Path, guarded: list[Path] | None = None) -> None:
        self.root = root
        self.guarded = set()
        for path in guarded or []:
            try:
                info = os.stat(path)
            except OSError:
                continue
            self.guarded.add((info.st_dev, info.st_ino))

    def problem(self, rel: str, *, kind: str = "file") -> str | None:
        """Why `rel` may not be written (or removed, kind "absent") in the tree as it is now; None when it may."""
        try:
            fd = self._parent(rel, create=False)
        except UnsafeWrite as exc:
            return str(exc)
        if fd is None:
            return None  # a directory on the way does not exist yet: it will be made, plainly
        try:
            return self._target_problem(fd, rel, kind)
        finally:
            os.close(fd)

    def write(self, rel: str, data: bytes, *, executable: bool) -> None:
        """Replace (or create) the regular file `rel` atomically; its permissions follow the old file's."""
        fd = self._parent(rel, create=True)
        assert fd is not None
        try:
            self._refuse(self._target_problem(fd, rel, "file"))
            name = rel.rsplit("/", 1)[-1]
            try:
                mode: int | None = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode & 0o7777
            except FileNotFoundError:
                mode = None  # a new file: created 0666 or 0777 less the umask, as git checks files out
            if mode is not None:
                mode = (mode | (mode & 0o444) >> 2) if executable else (mode & ~0o111)
            self._replace(fd, name, lambda tmp: self._write_temp(fd, tmp, data, executable, mode))
        finally:
            os.close(fd)

    def symlink(self, rel: str, target: str) -> None:
        """Replace (or create) `rel` as a symlink to `target` (a link is made, never followed)."""
        fd = self._parent(rel, create=True)
        assert fd is not None
        try:
            self._refuse(self._target_problem(fd, rel, "symlink"))
            self._replace(fd, rel.rsplit("/", 1)[-1], lambda tmp: os.symlink(target, tmp, dir_fd=fd))
        finally:
            os.close(fd)

    def remove(self, rel: str) -> None:
        fd = self._parent(rel, create=False)
        if fd is None:
            return
        try:
            self._refuse(self._target_problem(fd, rel, "absent"))
            try:
                os.unlink(rel.rsplit("/", 1)[-1], dir_fd=fd)
            except FileNotFoundError:
                pass
        finally:
            os.close(fd)

    def _refuse(self, problem: str | None) -> None:
        if problem:
            raise UnsafeWrite(problem)

    def _parent(self, rel: str, *, create: bool) -> int | None:
        """A descriptor of `rel`'s directory, walked without following links; None if it does not exist."""
        parts = checked_parts(rel)
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for depth, name in enumerate(parts[:-1]):
                where = "/".join(parts[: depth + 1])
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    os.mkdir(name, 0o777, dir_fd=fd)
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError:
                    raise UnsafeWrite(self._describe(fd, name, where, rel)) from None
                os.close(fd)
                fd = child
                info = os.fstat(fd)
                if (info.st_dev, info.st_ino) in self.guarded:
                    raise UnsafeWrite(f"refused to write {rel}: {where} is git's own directory")
            return fd
        except BaseException:
            os.close(fd)
            raise

    def _describe(self, fd: int, name: str, where: str, rel: str) -> str:
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except OSError as exc:
            return f"refused to write {rel}: cannot open {where}: {exc.strerror}"
        if stat.S_ISLNK(info.st_mode):
            return (f"refused to write {rel}: {where} is a symlink in the working tree "
                    f"(-> {os.readlink(name, dir_fd=fd)}), and nothing is written through a link")
        return f"refused to write {rel}: {where} is not a directory in the working tree"

    def _target_problem(self, fd: int, rel: str, kind: str) -> str | None:
        try:
            info = os.stat(rel.rsplit("/", 1)[-1], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(info.st_mode):
            return None if kind != "file" else (
                f"refused to write {rel}: it is a symlink in the working tree, and nothing is written through a link")
        if stat.S_ISDIR(info.st_mode):
            return f"refused to write {rel}: it is a directory in the working tree"
        if not stat.S_ISREG(info.st_mode):
            return f"refused to write {rel}: it is not a regular file in the working tree"
        return None

    @staticmethod
    def _write_temp(fd: int, tmp: str, data: bytes, executable: bool, mode: int | None) -> None:
        created = 0o777 if executable else 0o666
        handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, created, dir_fd=fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(handle, view):]
            if mode is not None:
                os.fchmod(handle, mode)
            os.fsync(handle)
        finally:
            os.close(handle)

    @staticmethod
    def _replace(fd: int, name: str, make: Callable[[str], None]) -> None:
        tmp = f".{name}.{os.urandom(4).hex()}.tmp"  # the pattern recovery looks for beside a target
        try:
            make(tmp)
            os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=fd)
            except FileNotFoundError:
                pass
            raise
