"""What changed in a working tree, read from what git's listings printed (truthplane.git.run.changes_args), and
git's object id of a blob.

A module of its own, importing nothing but hashlib: a gate starts its tools on the change as soon as git has
listed it (truthplane.truth.ahead), before the rest of what reads git (truthplane.git.repo) is imported.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path


def blob_id(content: bytes) -> str:
    """Git's object id for a blob: the same content hash git keeps in its index and trees."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


REGULAR_MODES = ("100644", "100755")  # a file (not a symlink, a submodule) in git's modes


def raw_diff(raw: str, wanted: Callable[[str], bool]) -> Iterator[tuple[str, str, str, str, str, str]]:
    """(source mode, destination mode, source blob, destination blob, status, path) of git's raw -z output."""
    fields = raw.split("\0")
    for meta, path in zip(fields[0::2], fields[1::2], strict=False):
        if meta.startswith(":") and wanted(path):
            src_mode, dst_mode, src, dst, status = meta[1:].split()
            yield src_mode, dst_mode, src, dst, status, path


def parse_changes(
    root: Path, worktree_raw: str, untracked_out: str, trees_raw: str | None = None,
    skip: Callable[[str], bool] | None = None,
) -> tuple[dict[str, str | None], bool]:
    """Repo.changes_since from what its git calls (changes_args) printed in `root`: the working tree against
    HEAD, the untracked files, and HEAD's tree against the commit's (None: HEAD is the commit)."""
    wanted = (lambda p: bool(p)) if skip is None else (lambda p: bool(p) and not skip(p))
    changes: dict[str, str | None] = {}
    at_commit: dict[str, str | None] = {}  # the blob at the commit of each path HEAD changed (None: no file)
    for src_mode, dst_mode, src, dst, _status, path in raw_diff(trees_raw or "", wanted):
        at_commit[path] = src if src_mode in REGULAR_MODES else None
        changes[path] = dst if dst_mode in REGULAR_MODES else None
    dirty = False
    for src_mode, dst_mode, src, dst, status, path in raw_diff(worktree_raw, wanted):
        if status.startswith("U"):
            now = _blob_now(root, path)  # unmerged: the file as it stands, conflict markers and all
        elif dst_mode not in REGULAR_MODES:
            now = None  # deleted, or now a symlink or a submodule: nothing to analyse
        elif dst.strip("0"):
            now = dst  # the index holds this content and the file is as the index says
        else:
            now = _blob_now(root, path)  # edited since it was staged (or only touched): read it
        at_head = src if src_mode in REGULAR_MODES else None
        if now is not None and now == at_head and dst_mode == src_mode:
            continue  # only its stat data changed: the file is as HEAD has it
        dirty = True
        if at_commit.get(path, at_head) == now:
            changes.pop(path, None)  # back as the commit has it
        else:
            changes[path] = now
    for path in untracked_out.split("\0"):
        if wanted(path):
            dirty = True
            changes[path] = _blob_now(root, path)
    return changes, dirty


def _blob_now(root: Path, path: str) -> str | None:
    full = root / path
    return None if full.is_symlink() or not full.is_file() else blob_id(full.read_bytes())
