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

A file is added to (or removed from, or renamed in) a directory only by changing that directory's modification
and change times. So a move leaves beside the tree the times and inode of each of its directories, and the next
move cleans only the directories whose stamp changed since (on 70,000 files, a stat of 32,000 directories instead
of git's walk of them all). A stamp within RACY_NS of the moment it was taken is never trusted (a file system
counts time coarsely: a file added in the same tick would leave it as it was); the top directory changed, more
than MAX_DIRTY changed, or no stamps left by a move that ended (a move stopped halfway leaves none): git cleans
the whole tree.

A slot is held under an exclusive lock (`flock`) from the moment it is taken until the export is closed: two
gates at once take two slots (SLOTS of them per repository), and a third writes a temporary tree as before. A
cache directory inside the repository keeps no tree: the tree would be part of the working tree it copies.
"""

from __future__ import annotations

import fcntl
import hashlib
import marshal
import os
import shutil
import stat
import struct
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from truthplane.errors import GitError
from truthplane.git.untracked import RACY_NS  # the untracked listing's snapshot trusts directories' times alike

SLOTS = 2  # trees kept per repository: a gate's base and head, or two gates at once
MAX_DIRTY = 2000  # more directories changed than this: git cleans the whole tree (as quick, and one command line)
_STAMPS = "directories"  # in a slot: its tree's directories and their stamps, as the last move left them
_STAMPS_VERSION = 1
_PACKED = struct.Struct("<qqQ")  # (mtime_ns, ctime_ns, inode) of a directory
_RACY = bytes(_PACKED.size)  # never equal to a directory's stamp: checked again next time
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
        stamps = _Stamps.taken(self.slot)  # gone from the slot until this move ends
        if (self.slot / "index").is_file() and self.tree.is_dir() and not self.tree.is_symlink():
            try:
                checked = stamps.check(self.tree) if stamps is not None else None
                if checked is None:
                    self._git("clean", "-ffdxq")
                elif checked.dirty:
                    self._git("--literal-pathspecs", "clean", "-ffdxq", "--", *checked.dirty)
                self._git("read-tree", "--reset", "-u", commit)
                self._leave_stamps(commit, stamps, checked)
                return self.tree
            except GitError:
                pass
        (self.slot / "index").unlink(missing_ok=True)
        if self.tree.is_symlink():
            self.tree.unlink()
        shutil.rmtree(self.tree, ignore_errors=True)
        self.tree.mkdir()
        self._git("read-tree", "--reset", "-u", commit)
        self._leave_stamps(commit, None, None)
        return self.tree

    def _leave_stamps(self, commit: str, before: _Stamps | None, checked: _Checked | None) -> None:
        """Leave the stamps of the tree's directories as this move left them, for the next move: those the move
        could have changed (the ones cleaned, and above every path the two commits tell apart) stat now, the others
        as the check found them. Best effort: without them, the next move cleans the whole tree."""
        try:
            if before is None or checked is None:
                listed = self._git("ls-files", "-z").split(b"\0")
                restat = sorted(_above(os.fsdecode(path) for path in listed if path))
                kept: dict[str, bytes | None] = {}
            else:
                differ = self._git("diff-tree", "-r", "-z", "--name-only", "--no-renames", before.commit, commit, "--")
                restat = sorted(_above(os.fsdecode(path) for path in differ.split(b"\0") if path) |
                                {path for path in checked.changed})
                kept = dict(zip(before.directories, checked.stamps, strict=True))
            kept.update(zip(restat, _stamps_of(self.tree, restat), strict=True))
            found = {path: stamp for path, stamp in kept.items() if stamp is not None}
            directories = sorted(found)
            _Stamps(commit, directories, [found[path] for path in directories]).leave(self.slot)
        except (GitError, OSError, ValueError):
            pass

    def release(self) -> None:
        if self._lock is not None:
            os.close(self._lock)  # closing the descriptor drops the lock
            self._lock = None

    def _git(self, *args: str) -> bytes:
        proc = subprocess.run(["git", *_CONFIG, *args], cwd=self.tree, env=self._env, capture_output=True,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            message = proc.stderr.decode(errors="replace").strip()[:200]
            command = next(arg for arg in args if not arg.startswith("-"))
            raise GitError(f"cannot keep a tree: git {command} failed: {message}")
        return proc.stdout


class _Checked:
    """A kept tree's directories against the stamps the last move left: `changed`, those whose stamp is not the
    same (or was not to be trusted); `dirty`, the fewest of them that hold all the others; `stamps`, every
    directory's now (in the order of _Stamps.directories; None where it is gone)."""

    def __init__(self, changed: list[str], stamps: list[bytes | None]) -> None:
        self.changed = changed
        self.stamps = stamps
        chosen: set[str] = set()
        for path in sorted(changed, key=lambda path: (path.count("/"), path)):  # parents first
            if not (_above([path]) - {""}) & chosen:
                chosen.add(path)
        self.dirty = sorted(chosen)


class _Stamps:
    """The directories of a kept tree (paths relative to it, "" the tree itself) and each one's stamp, as the move
    to `commit` left them."""

    def __init__(self, commit: str, directories: list[str], stamps: list[bytes]) -> None:
        self.commit = commit
        self.directories = directories
        self.stamps = stamps

    @classmethod
    def taken(cls, slot: Path) -> _Stamps | None:
        """The stamps the last move left in `slot`, removed from it: a move that does not end leaves none."""
        path = slot / _STAMPS
        try:
            with open(path, "rb") as handle:
                data = marshal.load(handle)
        except (OSError, EOFError, ValueError, TypeError):
            return None
        finally:
            try:
                path.unlink()
            except OSError:
                pass
        try:
            version, commit, names, packed = data
            if version != _STAMPS_VERSION or not isinstance(commit, str) or not isinstance(packed, bytes):
                return None
            directories = os.fsdecode(names).split("\0")
            size = _PACKED.size
            stamps = [packed[i:i + size] for i in range(0, len(packed), size)]
        except (TypeError, ValueError):
            return None
        if len(stamps) != len(directories) or "" not in directories:
            return None
        return cls(commit, directories, stamps)

    def check(self, tree: Path) -> _Checked | None:
        """What changed in `tree` since; None where git should clean all of it (the tree itself changed, or too
        many of its directories)."""
        now = _stamps_of(tree, self.directories)
        changed = [path for path, was, stamp in zip(self.directories, self.stamps, now, strict=True)
                   if stamp is None or stamp == _RACY or stamp != was]
        if "" in changed or len(changed) > MAX_DIRTY:
            return None
        return _Checked(changed, now)

    def leave(self, slot: Path) -> None:
        names = os.fsencode("\0".join(self.directories))
        data = (_STAMPS_VERSION, self.commit, names, b"".join(self.stamps))
        partial = slot / (_STAMPS + ".partial")
        with open(partial, "wb") as handle:
            marshal.dump(data, handle)
        os.replace(partial, slot / _STAMPS)


def _stamps_of(tree: Path, directories: list[str]) -> list[bytes | None]:
    """Each directory's stamp now (in the order given): _RACY if it changed within RACY_NS of now, None if it is no
    directory. The one loop a move of a large tree spends its time in: it does nothing else."""
    trusted_before = time.time_ns() - RACY_NS
    stamps: list[bytes | None] = []
    note, lstat, pack, isdir = stamps.append, os.lstat, _PACKED.pack, stat.S_ISDIR
    top = os.open(tree, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for path in directories:
            try:
                found = lstat(path or ".", dir_fd=top)  # relative to the tree: no path to join, fewer to resolve
            except OSError:
                note(None)
                continue
            if not isdir(found.st_mode):
                note(None)
            elif found.st_mtime_ns < trusted_before and found.st_ctime_ns < trusted_before:
                note(pack(found.st_mtime_ns, found.st_ctime_ns, found.st_ino))
            else:
                note(_RACY)
    finally:
        os.close(top)
    return stamps


def _above(paths: Iterable[str]) -> set[str]:
    """Every directory above each of `paths` (relative to the tree), the tree itself ("") among them."""
    above = {""}
    for path in paths:
        parts = path.split("/")
        for end in range(1, len(parts)):
            above.add("/".join(parts[:end]))
    return above


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
