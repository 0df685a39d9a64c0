"""A commit's whole tree kept in the cache directory between gates, moved to the next commit asked for by writing
only what differs.

A tool that looks at a tree's layout (ruff's isort rules tell first-party modules by the files they find) gets a
commit's whole tree: written afresh for each gate of a commit, that is every file of the repository (on 70,000
files, 7 to 60 s of this machine's disk), for a change of one file. A kept tree is a directory and an index of its
own under `<cache>/trees/<repository>/<slot>/`: git moves it from the commit it holds to the one asked for
(`read-tree --reset -u`, the same checkout machinery as `checkout-index`: no path outside the directory, none
through a link, none into a `.git`), rewriting the files that differ and any a tool changed (it compares each
file's stat data with its index), after `git clean -ffdx` removed whatever is not the commit's (a tool's cache, a
file a tool wrote). So the tree is the commit's, byte for byte, however the last gate or a crash left it.

A slot is held under an exclusive lock (`flock`) from the moment it is taken until the export is closed: two
gates at once take two slots (SLOTS of them per repository), and a third writes a temporary tree as before. A
cache directory inside the repository keeps no tree: the tree would be part of the working tree it copies.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from truthplane.errors import GitError

SLOTS = 2  # trees kept per repository: a gate's base and head, or two gates at once
REPOSITORIES = 3  # repositories whose trees are kept: those a gate of a commit used last
_CONFIG = (  # the user's settings that would make the kept tree something else than the commit's whole tree
    "-c", "core.sparseCheckout=false", "-c", "core.fsmonitor=false", "-c", "core.splitIndex=false",
    "-c", "core.untrackedCache=false", "-c", "submodule.recurse=false",
)


def trees_dir(store: Path, repo: Path, git_dir: Path) -> Path | None:
    """Where trees of the repository whose git directory is `git_dir` are kept in the cache directory `store`;
    None when `store` lies inside the repository's working tree `repo`."""
    try:
        resolved, top = store.resolve(), repo.resolve()
    except OSError:
        return None
    if resolved == top or resolved.is_relative_to(top):
        return None
    key = hashlib.sha256(os.fsencode(git_dir.resolve())).hexdigest()[:16]
    return resolved / "trees" / key


class KeptTree:
    """One slot's tree, held (locked) from take() to release()."""

    def __init__(self, slot: Path, lock: int, repo: Path, git_dir: Path) -> None:
        self.slot = slot
        self.tree = slot / "tree"
        self._lock: int | None = lock
        self._repo = repo
        self._env = {
            **os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_DIR": str(git_dir),
            "GIT_WORK_TREE": str(self.tree), "GIT_INDEX_FILE": str(slot / "index"),
        }
        for name in ("GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY", "GIT_NAMESPACE", "GIT_CEILING_DIRECTORIES"):
            self._env.pop(name, None)

    @classmethod
    def take(cls, trees: Path, repo: Path, git_dir: Path) -> KeptTree | None:
        """The first slot under `trees` no other gate holds, locked; None if all are held (or none can be made).
        The trees of repositories no gate of a commit used lately are removed (REPOSITORIES are kept)."""
        for number in range(SLOTS):
            slot = trees / str(number)
            try:
                slot.mkdir(parents=True, exist_ok=True)
                lock = _locked(slot / "lock")
            except OSError:
                return None
            if lock is None:
                continue
            try:
                os.utime(lock)  # this repository's trees were used now
                _prune(trees.parent, keep=trees)
            except OSError:
                pass  # kept a while longer: removed by a later gate
            return cls(slot, lock, repo, git_dir)
        return None

    def move_to(self, commit: str) -> Path:
        """The tree as `commit` has it, every file (links as links) and nothing else; its directory. A slot git
        cannot move (its index unreadable, say) is written afresh."""
        (self.slot / "index.lock").unlink(missing_ok=True)  # a git of ours that was stopped: no other holds the slot
        if (self.slot / "index").is_file() and self.tree.is_dir() and not self.tree.is_symlink():
            try:
                self._git("clean", "-ffdxq")
                self._git("read-tree", "--reset", "-u", commit)
                return self.tree
            except GitError:
                pass
        (self.slot / "index").unlink(missing_ok=True)
        if self.tree.is_symlink():
            self.tree.unlink()
        shutil.rmtree(self.tree, ignore_errors=True)
        self.tree.mkdir()
        self._git("read-tree", "--reset", "-u", commit)
        return self.tree

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor drops the lock
            self._lock = None

    def _git(self, *args: str) -> None:
        proc = subprocess.run(["git", *_CONFIG, *args], cwd=self.tree, env=self._env, capture_output=True,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            message = proc.stderr.decode(errors="replace").strip()[:200]
            raise GitError(f"cannot keep a tree: git {args[0]} failed: {message}")


def _locked(path: Path) -> int | None:
    """A descriptor of `path` holding its exclusive lock; None if another process holds it. A lock file removed
    (by _prune) between its opening and its lock is opened again: a lock on a file no longer there locks nothing."""
    while True:
        lock = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(lock)
            return None
        try:
            if os.stat(path).st_ino == os.fstat(lock).st_ino:
                return lock
        except FileNotFoundError:
            pass
        os.close(lock)


def _prune(top: Path, keep: Path) -> None:
    """Remove the trees of all but the REPOSITORIES repositories under `top` used last (`keep` among them), each
    slot only while no gate holds it."""
    def used(trees: Path) -> float:
        stamps = []
        for number in range(SLOTS):
            try:
                stamps.append(os.stat(trees / str(number) / "lock").st_mtime)
            except OSError:
                pass
        return max(stamps, default=0.0)

    try:
        others = sorted((path for path in top.iterdir() if path != keep and path.is_dir() and not path.is_symlink()),
                        key=used, reverse=True)
    except OSError:
        return
    for trees in others[REPOSITORIES - 1:]:
        for slot in sorted(trees.iterdir()) if trees.is_dir() else []:
            try:
                lock = _locked(slot / "lock")
            except OSError:
                continue
            if lock is None:
                continue  # a gate is using it: removed another time
            try:
                shutil.rmtree(slot, ignore_errors=True)
            finally:
                os.close(lock)
        try:
            trees.rmdir()
        except OSError:
            pass
