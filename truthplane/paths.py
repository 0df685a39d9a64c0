"""Where truthplane keeps its files: the directories it writes into a repository (and the one function that
makes them), and the per-user cache.

Both ignore themselves, as pytest's and ruff's caches do: a `.gitignore` holding `*` is written when the
directory is made, and into one that exists without it, so `git status` stays clean and `git add -A`
never commits the history. A `.gitignore` already there is the user's choice and is kept.
"""

from __future__ import annotations

import os
from pathlib import Path

from truthplane.errors import InputError

RESULTS_DIR = ".truth-plane-results"
# the journal of a `fix --commit` under way (truthplane.git.checkout): every command finishes one killed midway
PENDING_COMMIT = f"{RESULTS_DIR}/pending-commit.json"
SARIF_DIR = ".sarif-results"
GITIGNORE = ".gitignore"
IGNORE_EVERYTHING = "# written by truthplane: this directory ignores itself\n*\n"


def self_ignoring(directory: Path) -> Path:
    """`directory`, made if missing, with its `.gitignore` holding `*` unless it has one. A link or a file
    in its place is refused: a repository could point it anywhere, and nothing is written outside it."""
    if directory.is_symlink() or (os.path.lexists(directory) and not directory.is_dir()):
        raise InputError(f"{directory} is a symbolic link or a file, not a directory: truthplane writes its "
                         "results only into a real directory there; remove it and run again")
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / GITIGNORE
    if not os.path.lexists(marker):
        try:  # O_EXCL|O_NOFOLLOW: never through a link, never over a file another writer made meanwhile
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except FileExistsError:
            return directory
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(IGNORE_EVERYTHING)
    return directory


def results_dir(root: Path) -> Path:
    """`<root>/.truth-plane-results/`, self-ignoring: baselines, records, logs, the history."""
    return self_ignoring(root / RESULTS_DIR)


def sarif_dir(root: Path) -> Path:
    """`<root>/.sarif-results/`, self-ignoring: one SARIF log per verifier."""
    return self_ignoring(root / SARIF_DIR)


_PSEUDO_FILESYSTEMS = ("/proc", "/sys", "/dev")


def check_cache_dir(path: Path) -> None:
    """A cache directory must be (or be creatable as) a directory on a real filesystem."""
    resolved = path.expanduser().resolve()
    if any(resolved.is_relative_to(pseudo) for pseudo in _PSEUDO_FILESYSTEMS):
        raise ValueError(f"{path} is on the kernel's pseudo-filesystem {resolved.parts[1]!r}: choose a real directory")
    existing = next((p for p in (resolved, *resolved.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ValueError(f"{existing} is a file, not a directory: choose a directory for the cache")


def default_cache_dir() -> Path:
    """$TRUTHPLANE_CACHE_DIR, else the standard per-user cache location."""
    override = os.environ.get("TRUTHPLANE_CACHE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("truthplane", appauthor=False))
