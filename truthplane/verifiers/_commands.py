"""The command lines of the built-in file-local analysers, spelled from plain values.

A verifier builds its command here, and so does a gate that starts the tools on the changed files before
the verifiers' modules (and pydantic) are even imported (truthplane.truth.ahead): one spelling for both, so
the two agree on every argument. Nothing here imports more than the standard library.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from truthplane.verifiers._targets import TargetMemo

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


# semgrep's launcher, a Python script, spends CPU starting an interpreter only to exec its
# native engine (semgrep/console_scripts/entrypoint.py: `main`, `exec_osemgrep`); how it decides, mirrored
# here so that truthplane can exec the engine itself where the launcher would
_SEMGREP_PRO_FLAGS = frozenset({"--pro", "--pro-languages", "--pro-intrafile"})
_SEMGREP_COLOUR_VARIABLES = ("NO_COLOR", "FORCE_COLOR", "SEMGREP_FORCE_COLOR")


@functools.lru_cache(maxsize=8)
def semgrep_engine(launcher: str) -> tuple[str, str] | None:
    """The semgrep-core that the semgrep launcher script at `launcher` would exec, and the directory of the
    launcher's interpreter (which it adds to PATH); None when that is not certain: not a Python launcher, no
    packaged engine beside it, or more than one that it could import."""
    if os.name != "posix":
        return None
    try:
        with open(launcher, "rb") as script:
            first = script.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = first[2:].decode("utf-8", "replace").split()
    if not words or "python" not in os.path.basename(words[0]):
        return None
    # the package beside the launcher's own installation (a venv, pipx, --user) or its interpreter's
    prefixes = {
        os.path.dirname(os.path.dirname(os.path.realpath(launcher))),
        os.path.dirname(os.path.dirname(words[0])),
    }
    found = {
        os.path.realpath(path)
        for prefix in prefixes
        for path in glob.glob(
            os.path.join(glob.escape(prefix), "lib", "python3*", "site-packages", "semgrep", "bin", "semgrep-core")
        )
        if os.access(path, os.X_OK)
    }
    return (found.pop(), os.path.dirname(words[0])) if len(found) == 1 else None


def exec_form(executable: str, argv: list[str], env: dict[str, str]) -> tuple[str, list[str], dict[str, str]]:
    """What to execute for `argv` (its argv[0] found at `executable`): the file, its arguments and environment.

    Every tool runs as named, except that `semgrep scan --experimental` (its native engine) starts semgrep-core
    itself, as its launcher would, with the launcher's arguments and environment: the same run, less start-up.
    """
    name = os.path.basename(argv[0])
    if name == "semgrep" and "--experimental" in argv and "--legacy" not in argv and not _SEMGREP_PRO_FLAGS & set(argv):
        found = semgrep_engine(os.path.realpath(executable))
        if found is not None:
            engine, scripts = found
            engine_env = {**env, "PATH": env.get("PATH", "") + os.pathsep + scripts}
            if not any(engine_env.get(variable) for variable in _SEMGREP_COLOUR_VARIABLES):
                engine_env["NO_COLOR"] = "1"  # the launcher's rule for a stderr that is not a terminal (ours never is)
            return engine, ["osemgrep", *argv[1:]], engine_env
    return executable, [executable, *argv[1:]], env


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


def pruned_dirs(target: Path, roots: list[str], files: list[str]) -> list[str]:
    """The directories under `roots` that hold none of `files`, at the top of each such subtree: semgrep need not
    walk them. A changed file's directory can be a whole package; semgrep walking it to find one file took 4 s in
    a 28k-file repository, where the pruned walk takes a fraction of that with the same result (what it finds,
    it still filters through the ignore files)."""
    on_path = set()
    for rel in files:
        parent = PurePosixPath(rel).parent
        while str(parent) != ".":
            on_path.add(str(parent))
            parent = parent.parent
    pruned: list[str] = []
    todo = list(roots)
    while todo:
        directory = todo.pop()
        try:
            entries = sorted(os.scandir(target / directory), key=lambda entry: entry.name)
        except OSError:
            continue
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            rel = entry.name if directory == "." else f"{directory}/{entry.name}"
            (todo if rel in on_path else pruned).append(rel)
    return sorted(pruned)


def semgrep_memo(inputs: dict[str, Any], target: Path) -> TargetMemo | None:
    """The memo of semgrep's decisions on this setup's files (truthplane.verifiers._targets), where a gate keeps one
    and `target` is the root of semgrep's project: a git repository's, or a directory in no repository (a commit's
    exported tree); else None."""
    if not inputs.get("memo"):
        return None
    if not (target / ".git").exists() and any((parent / ".git").exists()
                                              for parent in Path(os.path.abspath(target)).parents):
        return None
    from truthplane.verifiers._targets import TargetMemo

    executable = which("semgrep")
    return TargetMemo(Path(inputs["memo"]), inputs, tool_identity(executable) if executable else None)


def semgrep_plan(inputs: dict[str, Any], target: Path, files: list[str]) -> tuple[list[str], list[str]]:
    """Which of `files` semgrep is handed by name (its walk is known to scan them) and which it must find in a
    walk of their directories (not known yet); the rest its walk is known to skip. Both empty: nothing to run."""
    memo = semgrep_memo(inputs, target)
    decided = memo.decided(target, files) if memo is not None else {}
    named = [rel for rel in files if decided.get(rel) is True]
    walked = [rel for rel in files if rel not in decided]
    return named, walked


def _semgrep_files(inputs: dict[str, Any], target: Path, files: list[str]) -> list[str]:
    named, walked = semgrep_plan(inputs, target, files)
    return sorted(named + walked)


def _semgrep(inputs: dict[str, Any], target: Path, files: list[str] | None) -> Command:
    includes: list[str] = []
    targets = ["."]
    if files is not None and len(files) <= MAX_INCLUDES:
        named, walked = semgrep_plan(inputs, target, files)
        if not named and not walked:
            walked = files  # asked anyway about files its walk skips: it shows they have no findings
        includes = [f"--include={include_pattern(rel)}" for rel in walked]
        if not walked:
            targets = []
        elif (target / ".git").exists():  # root-anchored includes hold under a subdirectory only in git
            targets = walk_roots(walked)
            # and root-anchored excludes: the subtrees that hold no requested file are not walked
            includes += [f"--exclude={include_pattern(rel)}/" for rel in pruned_dirs(target, targets, walked)]
        targets = [*named, *targets]  # a file named on the command line is scanned without a walk
    # a whole scan says why it skipped what it found (--verbose): the memo learns what its walk decided
    report = "--verbose" if files is None and semgrep_memo(inputs, target) is not None else "--quiet"
    return Command(
        [
            "semgrep", "scan", *(["--experimental"] if inputs["native"] else []),
            "--json", report, "--metrics=off", "--disable-version-check", "--error",
            *(f"--config={rule}" for rule in inputs["rules"]), *includes, *inputs["args"], "--", *targets,
        ],
        {"SEMGREP_ENABLE_VERSION_CHECK": "0", "SEMGREP_SEND_METRICS": "off"},
    )


_SPELLINGS: dict[str, Callable[[dict[str, Any], Path, list[str] | None], Command]] = {
    "ruff": _ruff, "bandit": _bandit, "semgrep": _semgrep,
}
# which of the selected files a tool is run on at all (default: every one)
_NARROWINGS: dict[str, Callable[[dict[str, Any], Path, list[str]], list[str]]] = {"semgrep": _semgrep_files}


@dataclass(frozen=True)
class Recipe:
    """What a verifier's command line is made of besides the files: JSON values, so a gate can keep it."""

    spelling: str
    inputs: dict[str, Any]

    def command(self, target: Path, files: list[str] | None) -> Command:
        """The command scanning `files` (already selected: select_files, then `narrow`), or everything for None."""
        return _SPELLINGS[self.spelling](self.inputs, target, files)

    def narrow(self, target: Path, files: list[str]) -> list[str]:
        """Those of `files` (select_files) the tool must be run on: none left, it need not run, for it is known
        to report nothing on them (semgrep's walk skips them)."""
        narrowing = _NARROWINGS.get(self.spelling)
        return narrowing(self.inputs, target, files) if narrowing is not None else files

    def to_json(self) -> dict[str, Any]:
        return {"spelling": self.spelling, "inputs": self.inputs}

    @classmethod
    def from_json(cls, data: Any) -> Recipe | None:
        """A kept recipe, or None for one this version cannot spell."""
        if (
            not isinstance(data, dict)
            or data.get("spelling") not in _SPELLINGS
            or not isinstance(data.get("inputs"), dict)
        ):
            return None
        return cls(data["spelling"], data["inputs"])
