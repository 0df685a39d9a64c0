"""Reading a file handed in from outside (a baseline, a SARIF log, truthplane.toml, a task file), and writing
truthplane's own files atomically: a reader sees the old file or the new one, never half of either.

Only a regular file is read, and only up to a size limit: a device, a FIFO or a socket could stall the
read forever or never end (`/dev/zero`), so it is refused before a byte is read. The file is opened
non-blocking, because opening a FIFO or a terminal device may itself wait for the other side.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from truthplane.errors import TruthplaneError

MAX_INPUT_BYTES = 256 * 1024 * 1024  # a baseline or SARIF log; a large monorepo's baseline is tens of MB
MAX_CONFIG_BYTES = 4 * 1024 * 1024  # truthplane.toml, pyproject.toml, a task file
_CHUNK = 1024 * 1024


def size_text(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB"


def read_regular_file(path: Path, limit: int, error: type[TruthplaneError]) -> bytes:
    """The bytes of `path`, which must be a regular file of at most `limit` bytes; else one line as `error`."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise error(f"{path} is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path} is not a regular file (a device, FIFO or socket): give a file")
        if info.st_size > limit:
            raise error(f"{path} is larger than the {size_text(limit)} limit for an input file")
        chunks: list[bytes] = []
        total = 0
        while True:  # st_size can lie (files under /proc say 0): stop at the limit whatever it said
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise error(f"{path} is larger than the {size_text(limit)} limit for an input file")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise error(f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write via a temporary file in the same directory, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
