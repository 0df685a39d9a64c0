"""The Verifier interface, the values that cross it, and helpers every verifier shares.

A verifier turns a tool's output into `Finding`s. It never fingerprints (truthplane.fingerprint does,
from the scanned content) and never applies severity overrides (the scanner does, from config).
Findings are data; "the tool could not run" is a `VerifierError`, never an empty result.
"""

from __future__ import annotations

import os
import subprocess
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from truthplane.config import VerifierConfig
from truthplane.errors import VerifierError
from truthplane.models import ScanResult, ToolInfo, ToolStatus
from truthplane.verifiers._commands import Recipe, exec_form, tool_identity, which

__all__ = ["Verifier", "VerifierContext", "VerifierError", "run_tool", "ToolOutput", "tool_version", "which"]


@dataclass(frozen=True)
class VerifierContext:
    """What a verifier is handed besides its own options.

    `executor` names the executor for verifiers that execute the repository's code (pytest):
    DESIGN.md's sandbox rule. Static analysers that only read code run on the host.
    """

    executor: str = "local"
    timeout_s: float = 600.0
    env: dict[str, str] = field(default_factory=dict)


class Verifier(ABC):
    """One analyser. Subclasses are named `<Tool>Verifier` and live one per module."""

    #: the type name used in truthplane.toml
    name: ClassVar[str]
    #: can scan a subset of files (`scan(target, files=[...])`)
    incremental: ClassVar[bool] = False
    #: a file's findings depend only on that file's content: results are cached per file
    file_local: ClassVar[bool] = False
    #: whole-program results that depend only on the tree: cached by the hash of every relevant file
    tree_cacheable: ClassVar[bool] = False
    #: which files the tool looks at; () means "not file based" (pip-audit, pytest)
    suffixes: ClassVar[tuple[str, ...]] = (".py",)
    #: repository files whose content changes the tool's results (part of the cache key)
    config_files: ClassVar[tuple[str, ...]] = ()
    #: the files among those that configure what the tool reports (rules, excludes), as opposed to what it
    #: checks (a lockfile for an audit): a gate tells apart what a change to them silences; None: config_files
    settings_files: ClassVar[tuple[str, ...] | None] = None

    def dependency_files(self, paths: Iterable[str]) -> list[str] | None:
        """For an audit of declared dependencies: which of `paths` declare them. A gate runs an audit only
        when the change alters what they declare (an unchanged lockfile cannot bring an advisory).
        None: not an audit, it always runs."""
        return None

    def dependency_state(self, path: str, text: str | None) -> object:
        """What a dependency file declares, for telling a real change from an unrelated edit of the file."""
        return text

    #: where in pyproject.toml its settings live (dotted keys): an edit elsewhere in the file changes nothing
    pyproject_keys: ClassVar[tuple[str, ...]] = ()

    def configured_by(self) -> tuple[str, ...]:
        """The names of the files that configure what this verifier reports."""
        return self.config_files if self.settings_files is None else self.settings_files

    def settings_state(self, path: str, text: str | None) -> object:
        """What a configuring file sets for this verifier, for telling a real change from an unrelated edit."""
        if text is None or not self.pyproject_keys or path.rsplit("/", 1)[-1] != "pyproject.toml":
            return text
        import tomllib

        try:
            document: object = tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            return text
        state = []
        for dotted in self.pyproject_keys:
            value = document
            for key in dotted.split("."):
                value = value.get(key) if isinstance(value, dict) else None
            state.append(value)
        return state

    def __init__(self, instance_name: str, options: VerifierConfig, context: VerifierContext) -> None:
        self.instance_name = instance_name
        self.options = options
        self.context = context

    @property
    def timeout_s(self) -> float:
        return self.options.timeout_s or self.context.timeout_s

    @abstractmethod
    def available(self) -> ToolInfo:
        """Installed? Which version? If not usable, `reason` says why and what to do."""

    @abstractmethod
    def scan(self, target: Path, files: list[str] | None = None) -> ScanResult:
        """Scan `target` (a directory). `files` (repo-relative POSIX paths) limits the scan when
        the verifier is incremental; None scans everything. Raises VerifierError when it cannot run."""

    def recipe(self, target: Path) -> Recipe | None:
        """The plain values this verifier's command line is made of, for a verifier whose command a built-in
        spelling builds (truthplane.verifiers._commands): a gate can then start its tool on the changed
        files before this class is even imported (truthplane._ahead). None for every other verifier."""
        return None

    def config_fingerprint(self) -> str:
        """Anything besides config_files that changes results (options, shipped rules)."""
        return self.options.model_dump_json()


@dataclass(frozen=True)
class ToolOutput:
    returncode: int
    stdout: str
    stderr: str


def run_tool(
    verifier: str,
    command: list[str],
    *,
    cwd: Path,
    timeout_s: float,
    ok_exit_codes: tuple[int, ...] | list[int] = (0,),
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> ToolOutput:
    """Run an analyser that only reads code. Missing, hung or crashed tools become VerifierError.

    The exit code is checked against the tool's documented "findings" codes; anything else means
    the tool could not run, and its stderr tail says why.
    """
    from truthplane import _ahead

    executable = which(command[0])
    if executable is None:
        raise VerifierError(verifier, f"{command[0]} is not installed", status=ToolStatus.MISSING.value)
    program, argv, full_env = exec_form(executable, command, _ahead.tool_env(env))
    # a gate may have started this very command already (truthplane._ahead)
    proc = _ahead.take(program, argv, cwd, full_env) if stdin is None else None
    try:
        if proc is None:
            proc = _ahead.start(program, argv, cwd, full_env, stdin=stdin is not None)
        stdout, stderr = proc.communicate(stdin, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _ahead.stop(proc)
        raise VerifierError(verifier, f"timed out after {timeout_s:g}s", status=ToolStatus.TIMEOUT.value) from None
    except OSError as exc:
        raise VerifierError(verifier, f"cannot start {command[0]}: {exc.strerror}") from None
    if proc.returncode not in ok_exit_codes:
        tail = (stderr.strip() or stdout.strip()).splitlines()[-3:]
        detail = " | ".join(line.strip() for line in tail) or "no output"
        raise VerifierError(verifier, f"exited with {proc.returncode}: {detail}")
    return ToolOutput(proc.returncode, stdout, stderr)


def _version_key(executable: str, command: list[str]) -> str | None:
    identity = tool_identity(executable)
    return f"{identity}|{' '.join(command[1:])}" if identity else None


def _version_store() -> Path:
    from truthplane.cache import default_cache_dir

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

    from truthplane.fsutil import atomic_write

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
