"""A tool's version, asked once (`<tool> --version` costs seconds for some) and remembered on disk per
installed executable, so an upgrade is noticed at once."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from truthplane.files import atomic_write
from truthplane.models import ToolInfo
from truthplane.paths import default_cache_dir
from truthplane.verifiers._commands import tool_identity, which


def _version_key(executable: str, command: list[str]) -> str | None:
    identity = tool_identity(executable)
    return f"{identity}|{' '.join(command[1:])}" if identity else None


def _version_store() -> Path:
    return default_cache_dir() / "tool-versions.json"


_version_locks: dict[str, threading.Lock] = {}
_version_locks_guard = threading.Lock()


def _version_lock(key: str) -> threading.Lock:
    """One lock per executable: the scans of a gate ask for the same version at the same moment."""
    with _version_locks_guard:
        return _version_locks.setdefault(key, threading.Lock())


def _read_versions(path: Path) -> dict[str, str]:
    import json

    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in known.items() if isinstance(v, str)} if isinstance(known, dict) else {}


def _remembered_version(key: str) -> str | None:
    return _read_versions(_version_store()).get(key)


def _remember_version(key: str, version: str) -> None:
    """Asking `semgrep --version` costs seconds: remember the answer until the executable changes.

    Read, merged and written under a lock shared with other truthplane processes, so two verifiers that
    learn their versions at once both keep them; entries of executables that are gone are dropped."""
    import fcntl
    import json


    path = _version_store()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{path}.lock", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            known = {k: v for k, v in _read_versions(path).items() if os.path.exists(k.split("|", 1)[0])}
            known[key] = version
            atomic_write(path, json.dumps(known, indent=1, sort_keys=True))
    except OSError:
        pass  # only costs time next run


def tool_version(verifier: str, command: list[str], *, install_hint: str) -> ToolInfo:
    """`<tool> --version` as a ToolInfo; the first version-looking token of the first line.

    Remembered on disk per executable (path, size, mtime), so an upgrade is noticed at once.
    """
    executable = which(command[0])
    if executable is None:
        return ToolInfo(name=verifier, installed=False, reason=f"{command[0]} is not installed: {install_hint}")
    key = _version_key(executable, command)
    if key is None:
        return _ask_version(verifier, executable, command, None)
    with _version_lock(key):
        remembered = _remembered_version(key)
        if remembered:
            return ToolInfo(name=verifier, installed=True, path=executable, version=remembered)
        return _ask_version(verifier, executable, command, key)


def _ask_version(verifier: str, executable: str, command: list[str], key: str | None) -> ToolInfo:
    import re

    try:
        proc = subprocess.run(
            [executable, *command[1:]], capture_output=True, text=True, timeout=60,
            env={**os.environ, "SEMGREP_ENABLE_VERSION_CHECK": "0"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return ToolInfo(name=verifier, installed=True, path=executable, reason=f"`{' '.join(command)}` failed: {exc}")
    text = (proc.stdout or proc.stderr).strip()
    match = re.search(r"\d+\.\d+(?:\.\d+)?\S*", text)
    if proc.returncode != 0 or match is None:
        return ToolInfo(
            name=verifier, installed=True, path=executable,
            reason=f"`{' '.join(command)}` exited with {proc.returncode}: {text[:200]}",
        )
    if key:
        _remember_version(key, match.group(0))
    return ToolInfo(name=verifier, installed=True, path=executable, version=match.group(0))
