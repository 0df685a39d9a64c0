"""The Verifier interface: the base class, the values that cross it and its error.

Running a tool is `truthplane.verifiers.tool`, asking its version `truthplane.verifiers.versions`.

A verifier turns a tool's output into `Finding`s. It never fingerprints (truthplane.truth.fingerprint does,
from the scanned content) and never applies severity overrides (the scanner does, from config).
Findings are data; "the tool could not run" is a `VerifierError`, never an empty result.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from truthplane.config import VerifierConfig
from truthplane.errors import VerifierError
from truthplane.models import ScanResult, ToolInfo
from truthplane.verifiers._commands import Recipe

__all__ = ["Verifier", "VerifierContext", "VerifierError"]


@dataclass(frozen=True)
class VerifierContext:
    """What a verifier is handed besides its own options.

    `executor` names the executor for verifiers that execute the repository's code (pytest):
    DESIGN.md's sandbox rule. Static analysers that only read code run on the host.
    """

    executor: str = "local"
    timeout_s: float = 600.0
    env: dict[str, str] = field(default_factory=dict)
    #: where the gate keeps its result cache, for what a verifier learns between runs; None: nothing is kept
    cache_dir: Path | None = None


class Verifier(ABC):
    """One analyser. Subclasses are named `<Tool>Verifier` and live one per module."""

    #: the type name used in truthplane.toml
    name: ClassVar[str]
    #: can scan a subset of files (`scan(target, files=[...])`)
    incremental: ClassVar[bool] = False
    #: a file's findings depend only on that file's content: results are cached per file
    file_local: ClassVar[bool] = False
    #: the tool reads nothing of the tree but the files it is given and its config_files (no imports followed, no
    #: package layout looked at): a commit's tree is written for it only as far as those go
    reads_only_given: ClassVar[bool] = False
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
        files before this class is even imported (truthplane.truth.ahead). None for every other verifier."""
        return None

    def config_fingerprint(self) -> str:
        """Anything besides config_files that changes results (options, shipped rules)."""
        return self.options.model_dump_json()
