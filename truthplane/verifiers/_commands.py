"""The command lines of the built-in file-local analysers, spelled from plain values.

A verifier builds its command here, and so does a gate that starts the tools on the changed files before
the verifiers' modules (and pydantic) are even imported (truthplane._ahead): one spelling for both, so
the two agree on every argument. Nothing here imports more than the standard library.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

# beyond this many files, semgrep scans everything and the requested files' findings are kept (command-line length)
MAX_INCLUDES = 400
_GLOB_SPECIALS = re.compile(r"([*?\[\]\\!#])")


def which(executable: str) -> str | None:
    """Find an executable on PATH, or beside the running interpreter (a venv's bin/ not on PATH)."""
    found = shutil.which(executable)
    if found:
        return found
    beside = Path(sys.executable).parent / executable
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def tool_identity(executable: str) -> str | None:
    """The installed executable behind `executable` as "realpath|size|mtime_ns": changes when it is upgraded."""
    try:
        real = os.path.realpath(executable)
        stat = os.stat(real)
    except OSError:
        return None
    return f"{real}|{stat.st_size}|{stat.st_mtime_ns}"


def select_files(target: Path, files: list[str], suffixes: tuple[str, ...]) -> list[str]:
    """The requested files this tool looks at and that exist (a deleted file has no findings)."""
    chosen = []
    for rel in files:
        if suffixes and not rel.endswith(suffixes):
            continue
        if (target / rel).is_file():
            chosen.append(rel)
    return sorted(set(chosen))


def include_pattern(rel: str) -> str:
    """A repo-relative path as a root-anchored, glob-escaped gitignore pattern."""
    return "/" + _GLOB_SPECIALS.sub(r"\\\1", rel)


def walk_roots(files: list[str]) -> list[str]:
    """The fewest directories that hold `files`: semgrep walks only those (its ignore rules still
    apply to what it finds there, so a subset scan agrees with a whole scan), not the whole tree."""
    dirs = sorted({str(PurePosixPath(rel).parent) for rel in files})
    if "." in dirs:
        return ["."]
    roots: list[str] = []
    for directory in dirs:
        if not any(directory == root or directory.startswith(root + "/") for root in roots):
            roots.append(directory)
    return roots


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str] | None = None


def _ruff(inputs: dict[str, Any], target: Path, files: list[str] | None) -> Command:
    # --force-exclude: the repository's exclude settings apply to files named on the command line too
    return Command([
        "ruff", "check", "--output-format=json", "--no-fix", "--no-cache", "--force-exclude",
        *inputs["args"], "--", *(files if files is not None else ["."]),
    ])


def _bandit(inputs: dict[str, Any], target: Path, files: list[str] | None) -> Command:
    # "./x.py", as `-r .` names files, so the repository's exclude patterns match the same way
    targets = [f"./{rel}" for rel in files] if files is not None else ["-r", "."]
    return Command(["bandit", "-f", "json", "-q", *inputs["config_args"], *inputs["args"], *targets])


def _semgrep(inputs: dict[str, Any], target: Path, files: list[str] | None) -> Command:
    includes: list[str] = []
    targets = ["."]
    if files is not None and len(files) <= MAX_INCLUDES:
        includes = [f"--include={include_pattern(rel)}" for rel in files]
        if (target / ".git").exists():  # root-anchored includes hold under a subdirectory only in git
            targets = walk_roots(files)
    return Command(
        [
            "semgrep", "scan", *(["--experimental"] if inputs["native"] else []),
            "--json", "--quiet", "--metrics=off", "--disable-version-check", "--error",
            *(f"--config={rule}" for rule in inputs["rules"]), *includes, *inputs["args"], "--", *targets,
        ],
        {"SEMGREP_ENABLE_VERSION_CHECK": "0", "SEMGREP_SEND_METRICS": "off"},
    )


_SPELLINGS: dict[str, Callable[[dict[str, Any], Path, list[str] | None], Command]] = {
    "ruff": _ruff, "bandit": _bandit, "semgrep": _semgrep,
}


@dataclass(frozen=True)
class Recipe:
    """What a verifier's command line is made of besides the files: JSON values, so a gate can keep it."""

    spelling: str
    inputs: dict[str, Any]

    def command(self, target: Path, files: list[str] | None) -> Command:
        """The command scanning `files` (already selected: select_files), or everything for None."""
        return _SPELLINGS[self.spelling](self.inputs, target, files)

    def to_json(self) -> dict[str, Any]:
        return {"spelling": self.spelling, "inputs": self.inputs}

    @classmethod
    def from_json(cls, data: Any) -> Recipe | None:
        """A kept recipe, or None for one this version cannot spell."""
        if not isinstance(data, dict) or data.get("spelling") not in _SPELLINGS or not isinstance(data.get("inputs"), dict):
            return None
        return cls(data["spelling"], data["inputs"])
