"""What a scan reads: a list of files with their git blob ids, and a way to get them on disk.

A working tree, a commit's tree (exported only if some verifier has to read it), or a commit's listing with
the working tree's changes laid over it; the configured excludes are left out of every listing.
"""

from __future__ import annotations

import functools
import hashlib
import marshal
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator
from collections.abc import Set as AbstractSet
from contextlib import AbstractContextManager, ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from truthplane.errors import TruthplaneError
from truthplane.files import atomic_write
from truthplane.git.repo import Repo, TreeExport, directory_files
from truthplane.git.run import listing_file
from truthplane.truth.excludes import Excluder

if TYPE_CHECKING:
    from truthplane.config import Config


@dataclass
class Source:
    """What to scan. `open_tree` yields a directory holding exactly `files` (called at most once)."""

    files: dict[str, str]  # repo-relative POSIX path -> git blob id
    open_tree: Callable[[], AbstractContextManager[Path]]
    label: str
    commit: str | None = None
    dirty: bool = False
    whole_tree_cacheable: bool = False  # a commit's tree: worth one cache entry for all its files
    # what `files` is made from, where that names it for good: a commit and the excludes (commit_source)
    listing: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _root: Path | None = field(default=None, repr=False)
    _stack: ExitStack = field(default_factory=ExitStack, repr=False)
    _named: dict[frozenset[str], list[tuple[str, str]]] = field(default_factory=dict, repr=False)
    # a listing made from another (worktree_over): that one, and the paths whose entry differs from it
    _over: tuple[Source, frozenset[str]] | None = field(default=None, repr=False)
    _components: dict[str, list[str]] | None = field(default=None, repr=False)
    # where named()'s answers about a commit's listing are kept between processes (commit_source with a store)
    named_store: Path | None = field(default=None, repr=False)
    # (named()'s answers by names, and counts of files by suffixes: count_suffixed)
    _stored_named: dict[Any, Any] | None = field(default=None, repr=False)
    _suffixed: dict[tuple[str, ...], dict[str, str]] = field(default_factory=dict, repr=False)
    # a commit's tree written as it is asked for (commit_source): `root(paths)` writes only those paths
    export: Callable[[], AbstractContextManager[TreeExport]] | None = field(default=None, repr=False)
    _export: TreeExport | None = field(default=None, repr=False)
    _tree_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def suffixed(self, suffixes: tuple[str, ...]) -> dict[str, str]:
        """The files whose names end with one of `suffixes` (all files for none), computed once per set of suffixes;
        for a listing laid over another, from that one's answer and the paths that differ. Not to be changed."""
        with self._lock:
            found = self._suffixed.get(suffixes)
        if found is not None:
            return found
        if not suffixes:
            found = self.files
        elif self._over is not None:
            under, differ = self._over
            found = dict(under.suffixed(suffixes))
            for path in differ:
                found.pop(path, None)
                if path in self.files and path.endswith(suffixes):
                    found[path] = self.files[path]
        else:
            found = {p: b for p, b in self.files.items() if p.endswith(suffixes)}
        with self._lock:
            return self._suffixed.setdefault(suffixes, found)

    def count_suffixed(self, suffixes: tuple[str, ...]) -> int:
        """len(suffixed(suffixes)), without making that listing where the count is known otherwise: for a listing
        laid over another, from that one's count and the paths that differ; for a commit's listing kept in a store,
        from the count kept beside it (a large tree's listing is tens of thousands of paths to go through)."""
        if not suffixes:
            return len(self.files)
        with self._lock:
            found = self._suffixed.get(suffixes)
        if found is not None:
            return len(found)
        if self._over is not None:
            under, differ = self._over
            count = under.count_suffixed(suffixes)
            for path in differ:
                if path.endswith(suffixes):
                    count += (path in self.files) - (path in under.files)
            return count
        key = ("count", suffixes)
        if self.named_store is not None and isinstance(counted := self._stored(key), int):
            return counted
        counted = len(self.suffixed(suffixes))
        if self.named_store is not None:
            self._store(key, counted)
        return counted

    def differing(self, files: dict[str, str], suffixes: tuple[str, ...]) -> dict[str, str] | None:
        """The files of suffixed(suffixes) that `files` has not, or has with another blob, sorted by path: for a
        listing laid over the one `files` is of, from the paths that differ; None for any other listing."""
        if self._over is None or self._over[0].files is not files:
            return None
        mine = self.files
        return {p: mine[p] for p in sorted(self._over[1])
                if p in mine and (not suffixes or p.endswith(suffixes)) and files.get(p) != mine[p]}

    def differing_below(self, under: Source, suffixes: tuple[str, ...]) -> set[str] | None:
        """The files of `under`.suffixed(suffixes) that this listing has not, or has with another blob: for a
        listing laid over `under`, from the paths that differ; None for any other."""
        if self._over is None or self._over[0] is not under:
            return None
        mine, theirs = self.files, under.files
        return {p for p in self._over[1]
                if p in theirs and (not suffixes or p.endswith(suffixes)) and mine.get(p) != theirs[p]}

    def same_as(self, files: dict[str, str], among: dict[str, str]) -> set[str]:
        """The paths of `among` (some of this listing's files) that `files` has with the same blob; for a listing
        laid over the one `files` is of, from the paths that differ."""
        if self._over is not None and self._over[0].files is files:
            return among.keys() - {p for p in self._over[1] if files.get(p) != self.files.get(p)}
        return {p for p, b in among.items() if files.get(p) == b}

    def changed_from(self, base: Source) -> list[str]:
        """The paths this listing adds to `base` or has with another blob, sorted; for a listing laid over `base`,
        from the paths that differ."""
        candidates = self._over[1] if self._over is not None and self._over[0].files is base.files else self.files
        files, before = self.files, base.files
        return sorted(p for p in candidates if p in files and before.get(p) != files[p])

    def named(self, names: frozenset[str]) -> list[tuple[str, str]]:
        """(path, blob) of every file with one of `names` as its name or as a directory above it, sorted.
        Asked by every verifier of a scan with its config file names: computed once per set of names, from an
        index of the paths' components, or for a listing laid over another, from that one's answer and the
        paths that differ."""
        if not names:
            return []
        with self._lock:
            found = self._named.get(names)
            if found is not None:
                return found
        if self._over is not None:
            under, differ = self._over
            found = sorted([(p, b) for p, b in under.named(names) if p not in differ] + [
                (p, self.files[p]) for p in differ if p in self.files and not names.isdisjoint(p.split("/"))])
        elif self.named_store is not None and (found := self._stored(names)) is not None:
            pass
        else:
            with self._lock:
                if self._components is None:
                    components: dict[str, list[str]] = {}
                    for path in self.files:
                        for part in path.split("/"):
                            components.setdefault(part, []).append(path)
                    self._components = components
                index = self._components
            paths = set().union(*(index.get(name, ()) for name in names))
            found = sorted((p, self.files[p]) for p in paths)
            if self.named_store is not None:
                self._store(names, found)
        with self._lock:
            return self._named.setdefault(names, found)

    def _stored(self, names: frozenset[str] | tuple[str, tuple[str, ...]]) -> Any:
        """What `_store` kept about this commit's listing under `names` (named()'s answers, counts of files)."""
        assert self.named_store is not None
        with self._lock:
            if self._stored_named is None:
                stored: object = _read_listing(self.named_store)
                self._stored_named = stored if isinstance(stored, dict) else {}
            return self._stored_named.get(names)

    def _store(self, names: frozenset[str] | tuple[str, tuple[str, ...]], found: Any) -> None:
        assert self.named_store is not None
        with self._lock:
            stored = dict(self._stored_named or {})
            stored[names] = found
            self._stored_named = stored
            _write_listing(self.named_store, stored)  # type: ignore[arg-type]

    def root(self, paths: Collection[str] | None = None) -> Path:
        """The directory holding the files: all of them, or for a commit's tree written as asked (commit_source),
        at least `paths` (of `files`), and those asked for before."""
        with self._tree_lock:
            if self._root is None:
                if self.export is not None:
                    self._export = self._stack.enter_context(self.export())
                    self._root = self._export.root
                else:
                    self._root = self._stack.enter_context(self.open_tree())
            export, root = self._export, self._root
        if export is not None:
            # outside the lock: a verifier that asks for a few files does not wait while another's whole tree
            # (perhaps a tree kept in the cache directory, truthplane.git.kept) moves; the export orders its writes
            if paths is None:
                return export.whole()
            export.add(paths)
        return root

    def close(self) -> None:
        self._stack.close()


class AllBut(AbstractSet[str]):
    """The paths of a listing but a few, without a copy of the listing: what a gate's two states have alike when
    one is laid over the other (a large tree's listing is tens of thousands of paths to copy)."""

    def __init__(self, files: dict[str, str], but: AbstractSet[str]) -> None:
        self._files = files
        self._but = but

    def __contains__(self, path: object) -> bool:
        return path in self._files and path not in self._but

    def __iter__(self) -> Iterator[str]:
        return (path for path in self._files if path not in self._but)

    def __len__(self) -> int:
        return len(self._files) - sum(1 for path in self._but if path in self._files)


def worktree_source(path: Path, config: Config) -> Source:
    """The directory as it is now, uncommitted changes included."""
    root = path.resolve()
    if not root.is_dir():
        raise TruthplaneError(f"{path} is not a directory")
    repo = Repo.discover(root)
    excluded = Excluder(config.all_excludes())
    if repo is not None and repo.root.resolve() == root:
        listed, dirty = repo.worktree_state(excluded)  # listed without the excluded paths
        files, commit = {f.path: f.blob for f in listed}, repo.head()
    else:
        files, commit, dirty = directory_files(root), None, False
        files = {p: b for p, b in files.items() if not excluded(p)}
    return Source(files, lambda: nullcontext(root), label=str(path), commit=commit, dirty=dirty)


def _variant(excludes: tuple[str, ...]) -> str:
    """A digest of what makes a listing from a commit's tree: the excludes, and the code that lists and matches
    them (another version of truthplane lists afresh)."""
    return hashlib.sha256(repr(excludes).encode() + _code_digest()).hexdigest()[:16]


@functools.cache
def _code_digest() -> bytes:
    """This module, the git ones and the excludes', read once per process (a server gates again and again)."""
    import truthplane.git.changes
    import truthplane.git.repo
    import truthplane.truth.excludes

    modules = (truthplane.git.repo, truthplane.git.changes, truthplane.truth.excludes)
    files = [__file__, *(str(module.__file__) for module in modules)]
    return hashlib.sha256(b"".join(Path(file).read_bytes() for file in files)).digest()


def _read_listing(path: Path) -> dict[str, str] | None:
    try:
        with open(path, "rb") as handle:
            listed = marshal.loads(handle.read())  # load() reads the file piece by piece: four times slower
    except (OSError, EOFError, ValueError, TypeError):
        return None
    return listed if isinstance(listed, dict) else None


def _write_listing(path: Path, listed: dict[str, str]) -> None:
    """Best effort, written whole or not at all; the oldest listings beyond _STORED_KEPT are dropped."""
    try:
        atomic_write(path, marshal.dumps(listed))
        kept = sorted(path.parent.glob("*.listing"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for old in kept[_STORED_KEPT:]:
            old.unlink(missing_ok=True)
            old.with_suffix(".named").unlink(missing_ok=True)  # Source.named's answers about that listing
    except OSError:
        pass


def worktree_over(base: Source, root: Path, changes: dict[str, str | None], *, commit: str | None,
                  dirty: bool) -> Source:
    """The working tree as `base` (a commit's listing) with `changes` (Repo.changes_since that commit)
    laid over it: the same files as worktree_source lists, without listing the whole tree again."""
    return Source(_laid_over(base, changes), lambda: nullcontext(root), label=str(root), commit=commit, dirty=dirty,
                  _over=(base, frozenset(changes)))


def commit_over(base: Source, repo: Repo, commit: str, changes: dict[str, str | None],
                store: Path | None = None) -> Source:
    """`commit`'s tree as `base` (another commit's listing) with `changes` (Repo.commit_changes from that commit)
    laid over it: the same files as commit_source lists, without listing the whole tree again; its files are
    written to a temporary directory as a verifier asks for them (the whole tree, to one kept in the cache
    directory `store`)."""
    return Source(_laid_over(base, changes), lambda: repo.exported(commit), label=commit[:12], commit=commit,
                  export=lambda: repo.export(commit, store), _over=(base, frozenset(changes)))


def _laid_over(base: Source, changes: dict[str, str | None]) -> dict[str, str]:
    files = dict(base.files)  # in the base's order, what the change added after it: no consumer needs an order
    for path, blob in changes.items():
        if blob is None:
            files.pop(path, None)
        else:
            files[path] = blob
    return files


# a commit's listing never changes: a process that gates again and again (truthplane mcp) lists its base once
_LISTED: OrderedDict[tuple[str, str, tuple[str, ...]], dict[str, str]] = OrderedDict()
_LISTED_KEPT = 4
_listed_lock = threading.Lock()


# listings kept in a cache directory: a listing of a large repository is megabytes
_STORED_KEPT = 6


def commit_source(repo: Repo, commit: str, config: Config, store: Path | None = None) -> Source:
    """A commit's tree, exported to a temporary directory only if some verifier needs the files.

    With a `store` (the cache directory), the listing (path -> blob, the excludes applied) is kept there: a later
    gate against the same base reads it back, where git would list the tree again and every path would be
    matched against the excludes again (on a tree of 70,000 files, 0.15 s of work, against 0.02 s)."""
    excludes = tuple(config.all_excludes())
    key = (str(repo.root), commit, excludes)
    kept = None if store is None else listing_file(store, commit, _variant(excludes))
    with _listed_lock:
        listed = _LISTED.get(key)
        if listed is not None:
            _LISTED.move_to_end(key)
    if listed is None:
        listed = _read_listing(kept) if kept is not None else None
        if listed is None:
            excluded = Excluder(list(excludes))
            listed = {path: blob for path, blob in repo.tree_blobs(commit).items() if not excluded(path)}
            if kept is not None:
                _write_listing(kept, listed)
        with _listed_lock:
            _LISTED[key] = listed
            while len(_LISTED) > _LISTED_KEPT:
                _LISTED.popitem(last=False)
    named = None if kept is None else kept.with_suffix(".named")
    return Source(dict(listed), lambda: repo.exported(commit), label=commit[:12], commit=commit,
                  whole_tree_cacheable=True, listing=repr((commit, excludes)), named_store=named,
                  export=lambda: repo.export(commit, store))
