"""Git: which files a tree holds, renames between states, trees materialised elsewhere.

Reading never changes the user's checkout, index or HEAD: a past tree is written into a temporary directory
by git's `checkout-index` from an index file of its own (no worktree registration, no `git reset`, no
`git clean`). The writes to a user's repository live in checkout.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from truthplane.git.changes import REGULAR_MODES, blob_id, parse_changes, raw_diff
from truthplane.git.kept import KeptTree, trees_dir
from truthplane.git.run import (
    GIT_ENV, changes_args, renames_args, resolve_args, tree_args, tree_changes_args, worktree_git,
)
from truthplane.git.run import git as _git
from truthplane.errors import GitError, UsageError
from truthplane.leftovers import owned_prefix

def directory_files(root: Path) -> dict[str, str]:
    """Files under a directory that is not a git checkout, with their git blob ids; symlinks are never followed."""
    files: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        for name in filenames:
            full = Path(dirpath) / name
            if full.is_symlink() or not full.is_file():
                continue
            try:
                files[full.relative_to(root).as_posix()] = blob_id(full.read_bytes())
            except OSError:
                continue  # unreadable: the tools will say so if it matters
    return files


def files_after(files: dict[str, str], tree: Path, touched: list[str]) -> dict[str, str]:
    """A listing (path -> blob id) after a change: each touched path as it is in `tree`, gone if it is no file
    (a symlink is no file to analyse)."""
    after = dict(files)
    for rel in touched:
        path = tree / rel
        if path.is_file() and not path.is_symlink():
            after[rel] = blob_id(path.read_bytes())
        else:
            after.pop(rel, None)
    return after


@dataclass(frozen=True)
class TreeFile:
    path: str  # repo-relative POSIX
    blob: str  # git blob id of the content


class Repo:
    """A git repository, driven through the git command line."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def discover(cls, path: Path) -> Repo | None:
        if shutil.which("git") is None:
            return None
        try:
            top = _git(path, "rev-parse", "--show-toplevel").strip()
        except GitError:
            refuse_git_dir(path)
            return None
        return cls(Path(top))

    @classmethod
    def require(cls, path: Path) -> Repo:
        repo = cls.discover(path)
        if repo is None:
            raise GitError(f"{path} is not inside a git repository (git init, or run from a clone)")
        return repo

    def git(self, *args: str, input_bytes: bytes | None = None) -> str:
        return _git(self.root, *args, input_bytes=input_bytes)

    def head(self) -> str | None:
        try:
            return self.git(*resolve_args("HEAD")).strip() or None
        except GitError:
            return None  # no commits yet

    def resolve(self, ref: str) -> str:
        try:
            return self.git(*resolve_args(ref)).strip()
        except GitError:
            hint = "fetch it first (in GitHub Actions: actions/checkout with fetch-depth: 0)"
            if ref.startswith("origin/"):
                hint = f"git fetch origin {ref.removeprefix('origin/')}, or checkout with fetch-depth: 0"
            raise GitError(f"base ref {ref!r} not found in this clone: {hint}") from None

    def is_shallow(self) -> bool:
        return self.git("rev-parse", "--is-shallow-repository").strip() == "true"

    def merge_base(self, a: str, b: str) -> str:
        try:
            return self.git("merge-base", a, b).strip()
        except GitError:
            if self.is_shallow():
                raise GitError(
                    "no merge base found: this clone is shallow, so the history that joins HEAD and the base "
                    "is missing; fetch full history (actions/checkout with fetch-depth: 0, or git fetch --unshallow)"
                ) from None
            raise GitError(f"{a[:12]} and {b[:12]} share no history: nothing to compare against") from None

    def tree_files(self, commit: str) -> list[TreeFile]:
        """Regular files of a commit (symlinks and submodules are not code to analyse)."""
        return [TreeFile(path, blob) for path, blob in self.tree_blobs(commit).items()]

    def tree_blobs(self, commit: str) -> dict[str, str]:
        """Path -> blob id of a commit's regular files, in git's order."""
        out = self.git(*tree_args(commit))
        files: dict[str, str] = {}
        for entry in out.split("\0"):
            meta, _, path = entry.partition("\t")
            # "<mode> blob <id>": a regular file; symlinks (120000) and submodules (160000 commit) are no code
            if meta[:7] in ("100644 ", "100755 ") and meta[7:12] == "blob ":
                files[path] = meta[12:]
        return files

    def worktree_files(self) -> list[TreeFile]:
        """Files of the working tree as it is now: tracked (dirty ones rehashed) plus untracked, not ignored."""
        return self.worktree_state()[0]

    def worktree_state(self, skip: Callable[[str], bool] | None = None) -> tuple[list[TreeFile], bool]:
        """The working tree's files and whether it differs from HEAD; the four listings run at once.

        Paths for which `skip` is true (a scan's excludes) are left out unread: neither listed nor hashed,
        nor counted as a difference (a directory of past results is not an uncommitted change to code).
        """
        listings = (
            ("ls-files", "-s", "-z"),
            ("diff", "--name-only", "-z", "--no-renames"),
            ("ls-files", "-o", "--exclude-standard", "-z"),
            ("diff-index", "--cached", "--name-only", "-z", "HEAD"),
        )
        has_head = self.head() is not None
        with ThreadPoolExecutor(max_workers=len(listings), thread_name_prefix="git") as pool:
            outputs = list(pool.map(lambda args: self.git(*args), listings if has_head else listings[:3]))
        blobs: dict[str, str] = {}
        for entry in outputs[0].split("\0"):
            if entry:
                meta, _, path = entry.partition("\t")
                mode, blob, _stage = meta.split()
                if mode in ("100644", "100755"):
                    blobs[path] = blob
        kept = (lambda p: bool(p)) if skip is None else (lambda p: bool(p) and not skip(p))
        if skip is not None:
            blobs = {p: b for p, b in blobs.items() if not skip(p)}
        changed = [p for p in outputs[1].split("\0") if kept(p)]
        untracked = [p for p in outputs[2].split("\0") if kept(p)]
        staged = [p for p in outputs[3].split("\0") if kept(p)] if has_head else list(blobs)
        for path in [*changed, *untracked]:
            full = self.root / path
            if full.is_symlink() or not full.is_file():
                blobs.pop(path, None)  # deleted, or a symlink: nothing to analyse
                continue
            blobs[path] = blob_id(full.read_bytes())
        files = [TreeFile(p, b) for p, b in sorted(blobs.items())]
        return files, bool(changed or untracked or staged)

    def changes_since(
        self, commit: str, skip: Callable[[str], bool] | None = None, head: str | None = None,
        store: Path | None = None,
    ) -> tuple[dict[str, str | None], bool]:
        """What the working tree changes against `commit`: path -> blob id of its content now, or None where
        the path is no regular file any more (deleted, a symlink, a submodule); and whether the working
        tree differs from HEAD. Together with `commit`'s own listing, this is the working tree's listing:
        three git calls at once (two when `head`, HEAD's commit, is `commit`). Git names the blob of every change it
        has in its index; only files edited since (and untracked ones) are read and hashed. Paths `skip` names are
        left out. With `store` (the cache directory), git is asked only about what a watchman server that watches
        the tree saw change, where it can say (truthplane.git.monitored)."""
        if head is None:
            head = self.head()
            if head is None:
                raise GitError("this repository has no commits yet: commit first, then gate")
        listings = changes_args(commit, head)
        commit_now = head

        def listed(args: tuple[str, ...]) -> str:
            return worktree_git(self.root, args, commit_now, store) if args is listings[0] else self.git(*args)

        with ThreadPoolExecutor(max_workers=len(listings), thread_name_prefix="git") as pool:
            raw, untracked_out, *trees = pool.map(listed, listings)
        return parse_changes(self.root, raw, untracked_out, trees[0] if trees else None, skip)

    def commit_changes(self, commit: str, head: str, skip: Callable[[str], bool] | None = None
                       ) -> dict[str, str | None]:
        """What `head`'s tree changes against `commit`'s: path -> blob id there, or None where the path is no regular
        file any more. Together with `commit`'s own listing, this is `head`'s listing: one comparison of the two
        trees in git's objects, whatever their size. Paths `skip` names are left out."""
        if head == commit:
            return {}
        wanted = (lambda p: bool(p)) if skip is None else (lambda p: bool(p) and not skip(p))
        raw = self.git(*tree_changes_args(commit, head))
        return {path: dst if dst_mode in REGULAR_MODES else None
                for _src_mode, dst_mode, _src, dst, _status, path in raw_diff(raw, wanted)}

    def is_dirty(self) -> bool:
        return bool(self.git("status", "--porcelain", "--untracked-files=normal").strip())

    def renames(self, old: str, new: str | None = None, skip: Callable[[str], bool] | None = None) -> dict[str, str]:
        """old path -> new path by git's rename detection (content similarity >= 50%).

        `new=None` compares with the working tree, including files not yet added (a plain `mv`): they
        are marked intent-to-add in a copy of the index, so the real index is never touched. Untracked
        paths for which `skip` is true (a scan's excludes) are not candidates.
        """
        args = list(renames_args(old))
        if new is not None:
            return _parse_renames(self.git(*args, new))
        untracked = [
            p
            for p in self.git("ls-files", "-o", "--exclude-standard", "-z").split("\0")
            if p and not (skip and skip(p))
        ]
        git_dir = Path(self.git("rev-parse", "--absolute-git-dir").strip())
        if not untracked or not (git_dir / "index").is_file():
            return _parse_renames(self.git(*args))
        with tempfile.TemporaryDirectory(prefix=owned_prefix("index")) as tmp:
            env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            shutil.copyfile(git_dir / "index", Path(tmp) / "index")
            _git(self.root, "add", "--intent-to-add", "--", *untracked, env=env)
            return _parse_renames(_git(self.root, *args, env=env))

    @contextmanager
    def exported(self, commit: str) -> Iterator[Path]:
        """The tree of `commit` as plain files in a temporary directory, removed afterwards."""
        with self.export(commit) as export:
            export.whole()
            yield export.root

    @contextmanager
    def export(self, commit: str, keep: Path | None = None) -> Iterator[TreeExport]:
        """An empty temporary directory that `commit`'s files are written into as they are asked for
        (TreeExport), removed afterwards. With `keep` (the cache directory), the whole tree, if asked for, is a
        tree kept there between gates (truthplane.git.kept)."""
        tmp = Path(tempfile.mkdtemp(prefix=owned_prefix("tree")))
        export = None
        try:
            (tmp / "tree").mkdir()
            export = TreeExport(self.root, commit, tmp / "tree", tmp / "index", keep)
            yield export
        finally:
            if export is not None:
                export.close()
            shutil.rmtree(tmp, ignore_errors=True)


_INDEX_ONLY_PATHS = 1000  # more paths asked for at once than this: git reads the commit's whole tree


class TreeExport:
    """A commit's files in a temporary directory, written as they are asked for: a few paths of a large tree cost
    what those paths hold, not what the tree holds. Git writes them (`checkout-index` from an index of the commit's
    own, kept outside the directory and the repository): no path outside the directory, none through a link, none
    into a `.git`. The whole tree, asked for with a cache directory to `keep` it in, is a tree kept there between
    gates (truthplane.git.kept), held until close(). add() and whole() may be called on several threads at once:
    files are written to this export's own directory while a kept tree moves."""

    def __init__(self, root: Path, commit: str, directory: Path, index: Path, keep: Path | None = None) -> None:
        self.root = directory
        self.commit = commit
        self._repo = root
        self._env = {**os.environ, **GIT_ENV, "GIT_INDEX_FILE": str(index)}
        self._read = False
        self._written: set[str] = set()
        self._whole = False
        self._keep = keep
        self._kept: KeptTree | None = None
        self._whole_root: Path | None = None
        self._whole_lock = threading.Lock()  # whole(): one caller takes and moves a kept tree, the others wait
        self._own_lock = threading.Lock()  # this export's own directory and index, written by add() and whole()

    def whole(self) -> Path:
        """Every file of the commit (links as links), and the directory holding them: a tree kept in the cache
        directory, moved to the commit, where there is one to take; else this export's own directory."""
        with self._whole_lock:
            if self._whole_root is not None:
                return self._whole_root
            kept = self._take_kept()
            if kept is not None:
                try:
                    self._whole_root = kept.move_to(self.commit)
                    self._kept = kept
                    return self._whole_root
                except (GitError, OSError):
                    kept.release()  # git could not write it (a full disk, say): this export writes its own
            with self._own_lock:
                self._read_tree()
                listed = self._git(["ls-files", "-z"]).decode("utf-8", "surrogateescape").split("\0")
                self._checkout([path for path in listed if path and path not in self._written])
                self._whole = True
            self._whole_root = self.root
            return self.root

    def _take_kept(self) -> KeptTree | None:
        if self._keep is None:
            return None
        try:
            git_dir = Path(self._git(["rev-parse", "--absolute-git-dir"]).decode("utf-8", "surrogateescape").strip())
        except GitError:
            return None
        trees = trees_dir(self._keep, self._repo, git_dir)
        try:
            return None if trees is None else KeptTree.take(trees, self._repo, git_dir)
        except OSError:
            return None  # a tree of this export's own instead

    def close(self) -> None:
        """Let other gates take the kept tree this export used, if any."""
        with self._whole_lock:
            if self._kept is not None:
                self._kept.release()
                self._kept = None

    def add(self, paths: Iterable[str]) -> None:
        """These paths of the commit (each one a file of its tree), besides those written already."""
        with self._own_lock:
            if self._whole:
                return
            wanted = sorted(set(paths) - self._written)
            if wanted:
                if self._read or not self._index_only(wanted):
                    self._read_tree()
                self._checkout(wanted)

    def _index_only(self, paths: list[str]) -> bool:
        """Put these paths into this export's index as the commit has them, and no others: a few files of a large
        tree need not wait for git to read all of it (0.2 s on 70,000 files). False where git would not (too many
        paths for one command line, or a path git refuses): the whole tree is read instead."""
        if len(paths) > _INDEX_ONLY_PATHS:
            return False
        try:
            # ls-tree's lines are what update-index reads (mode, type, object, path), and both check each path
            # as read-tree does: a `.git`, a `..` or an absolute path is refused
            entries = self._git(["--literal-pathspecs", "ls-tree", "-z", "--full-tree", self.commit, "--", *paths])
            self._git(["update-index", "--add", "-z", "--index-info"], entries)
        except GitError:
            return False
        return True

    def _read_tree(self) -> None:
        if not self._read:
            self._git(["read-tree", self.commit])
            self._read = True

    def _checkout(self, paths: list[str]) -> None:
        """Git writes these paths (never one written already: a tool may be reading it)."""
        stdin = b"".join(os.fsencode(path) + b"\0" for path in paths)
        self._git(["checkout-index", "-z", "--stdin", f"--prefix={self.root}{os.sep}"], stdin)
        self._written.update(paths)

    def _git(self, args: list[str], stdin: bytes | None = None) -> bytes:
        proc = subprocess.run(["git", *args], cwd=self._repo, input=stdin, capture_output=True, env=self._env,
                              stdin=None if stdin is not None else subprocess.DEVNULL)
        if proc.returncode != 0:
            message = proc.stderr.decode(errors="replace").strip()[:200]
            command = next(arg for arg in args if not arg.startswith("-"))
            raise GitError(f"cannot export {self.commit[:12]}: git {command} failed: {message}")
        return proc.stdout


def refuse_git_dir(path: Path) -> None:
    """A bare repository, or a directory inside .git, has no working tree: nothing there is to scan or write."""
    try:
        bare, inside = _git(path, "rev-parse", "--is-bare-repository", "--is-inside-git-dir").split()[:2]
    except (GitError, ValueError):
        return  # not in a repository at all: a plain directory
    if bare == "true":
        raise UsageError(f"{path.resolve()} is a bare git repository, with no working tree to scan, judge or change: "
                         f"run truthplane in a clone of it (git clone {path.resolve()})")
    if inside == "true":
        raise UsageError(f"{path.resolve()} is inside git's own directory, not a working tree: "
                         "run truthplane from the repository's working tree")


def _parse_renames(name_status: str) -> dict[str, str]:
    fields = name_status.split("\0")
    renames: dict[str, str] = {}
    i = 0
    while i < len(fields):
        status = fields[i]
        if status[:1] in ("R", "C") and i + 2 < len(fields):
            if status.startswith("R"):
                renames[fields[i + 1]] = fields[i + 2]
            i += 3
        else:
            i += 2
    return renames
