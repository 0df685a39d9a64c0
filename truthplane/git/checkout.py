"""The only writes to a user's repository: an approved change applied, committed, or given its own branch,
and a commit killed midway finished on the next run.

Every write is checked twice on the real working tree, not on the snapshot the change was judged in: all
paths before the first byte is written (so a refused change writes nothing), then each file again as it is
written, through directory descriptors that never follow a link (fsutil.TreeWriter). A path under a
symlinked directory, inside git's own directory or outside the repository is refused with the reason.
"""

from __future__ import annotations

import glob
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from truthplane.git.run import git as _git
from truthplane.errors import GitError, UsageError
from truthplane.git.tree_writer import TreeWriter, UnsafeWrite, checked_parts
from truthplane.leftovers import owned_prefix
from truthplane.git.lineform import keep_form
from truthplane.paths import PENDING_COMMIT, results_dir
from truthplane.git.repo import Repo, blob_id

PENDING = PENDING_COMMIT
NO_REF = "0" * 40  # update-ref's "must not exist yet"
SYMLINK_MODE = "120000"


class ChangedSinceSnapshot(GitError):
    """A file the change touches was edited after the snapshot: applying would lose that edit."""


class CheckoutBusy(UsageError):
    """A merge, rebase, cherry-pick or revert is under way: a commit now would record a half-done state."""


@dataclass(frozen=True)
class Write:
    """One touched path as the change leaves it: a file (with its exec bit), a symlink, or nothing."""

    path: str
    kind: str  # "file", "symlink" or "absent"
    data: bytes = b""  # a file's content, or a symlink's target
    executable: bool = False

    @property
    def mode(self) -> str | None:
        return {"file": "100755" if self.executable else "100644", "symlink": SYMLINK_MODE}.get(self.kind)


def planned_writes(tree: Path, touched: list[str]) -> list[Write]:
    """What each touched path is in `tree`, read without following a link."""
    writes = []
    for rel in touched:
        checked_parts(rel)
        source = tree / rel
        if source.is_symlink():
            writes.append(Write(rel, "symlink", os.readlink(source).encode("utf-8", "surrogateescape")))
        elif source.is_file():
            writes.append(Write(rel, "file", source.read_bytes(), bool(source.stat().st_mode & 0o111)))
        else:
            writes.append(Write(rel, "absent"))
    return writes


def link_problem(write: Write) -> str | None:
    """A symlink the change makes must point inside the repository, and not into .git."""
    target = write.data.decode("utf-8", "surrogateescape")
    inside = os.path.normpath(PurePosixPath(write.path).parent / target)
    if target.startswith("/") or inside == ".." or inside.startswith("../"):
        return f"refused to write {write.path}: a symlink to {target}, outside the repository"
    if any(part.casefold() == ".git" for part in PurePosixPath(inside).parts):
        return f"refused to write {write.path}: a symlink to {target}, inside git's own directory"
    return None


def git_dirs(repo: Repo) -> list[Path]:
    out = repo.git("rev-parse", "--absolute-git-dir", "--git-common-dir").splitlines()
    return [(repo.root / line).resolve() for line in out if line]


def writer_for(repo: Repo) -> TreeWriter:
    return TreeWriter(repo.root, guarded=git_dirs(repo))


def refuse_unsafe(writer: TreeWriter, writes: list[Write], repo: Repo | None = None, parent: str | None = None) -> None:
    """Raise UnsafeWrite naming every refused path: in the working tree as it is now, and in `parent`'s tree."""
    in_parent = tree_problems(repo, parent, writes) if repo is not None and parent is not None else {}
    problems = [p for w in writes if (p := (link_problem(w) if w.kind == "symlink" else None)
                                          or writer.problem(w.path, kind=w.kind) or in_parent.get(w.path))]
    if problems:
        raise UnsafeWrite("; ".join(dict.fromkeys(problems)) + "; nothing was written")


def tree_problems(repo: Repo, parent: str, writes: list[Write]) -> dict[str, str]:
    """Paths the commit `parent` cannot take, by path: a directory on the way is a symlink or a submodule there."""
    prefixes = {"/".join(w.path.split("/")[:n]): w.path for w in writes for n in range(1, w.path.count("/") + 1)}
    if not prefixes:
        return {}
    problems = {}
    for entry in repo.git("ls-tree", "-z", parent, "--", *sorted(prefixes)).split("\0"):
        meta, _, path = entry.partition("\t")
        if meta and meta.split()[0] in (SYMLINK_MODE, "160000") and path in prefixes:
            what = "a symlink" if meta.split()[0] == SYMLINK_MODE else "a submodule"
            problems[prefixes[path]] = f"refused to write {prefixes[path]}: {path} is {what} in commit {parent[:12]}"
    return problems


def refuse_busy(repo: Repo) -> None:
    """Refuse to commit while git is in the middle of something, as git's own partial commit does."""
    git_dir = Path(repo.git("rev-parse", "--absolute-git-dir").strip())
    states = (("MERGE_HEAD", "a merge", "git merge --continue, or git merge --abort"),
              ("rebase-merge", "a rebase", "git rebase --continue, or git rebase --abort"),
              ("rebase-apply", "a rebase (or git am)", "git rebase --continue / git am --continue, or --abort"),
              ("CHERRY_PICK_HEAD", "a cherry-pick", "git cherry-pick --continue, or git cherry-pick --abort"),
              ("REVERT_HEAD", "a revert", "git revert --continue, or git revert --abort"))
    for marker, what, how in states:
        if (git_dir / marker).exists():
            raise CheckoutBusy(f"{what} is in progress ({marker} exists): finish it ({how}) before committing; "
                               "nothing was committed")
    unmerged = sorted({line.split("\t", 1)[1] for line in repo.git("ls-files", "-u", "-z").split("\0") if "\t" in line})
    if unmerged:
        raise CheckoutBusy(f"unmerged paths in the index ({', '.join(unmerged[:3])}): resolve them and commit "
                           "before committing a fix; nothing was committed")


def check_unchanged(root: Path, snapshot: dict[str, str], touched: list[str]) -> None:
    changed = [rel for rel in touched if _current_blob(root / rel) != snapshot.get(rel)]
    if changed:
        raise ChangedSinceSnapshot(
            f"{', '.join(changed[:3])} changed since truthplane took its snapshot: nothing was applied"
        )


def _current_blob(path: Path) -> str | None:
    return blob_id(path.read_bytes()) if path.is_file() and not path.is_symlink() else None


def keep_file_form(snapshot: Path, tree: Path, touched: list[str]) -> None:
    """Give each touched file in `tree` the line endings, BOM and final newline its snapshot had, outside the
    lines the change rewrote (lineform.keep_form), so the evidence hashes what will be written."""
    for rel in touched:
        old, new = snapshot / rel, tree / rel
        if old.is_symlink() or new.is_symlink() or not old.is_file() or not new.is_file():
            continue
        kept = keep_form(old.read_bytes(), new.read_bytes())
        if kept != new.read_bytes():
            mode = new.stat().st_mode
            new.write_bytes(kept)
            os.chmod(new, mode & 0o7777)


def apply_files(root: Path, snapshot: dict[str, str], tree: Path, touched: list[str]) -> None:
    """Write the touched paths of `tree` into the working tree at `root`: all refused, or all written."""
    repo = Repo.discover(root)
    writer = writer_for(repo) if repo is not None and repo.root.resolve() == root.resolve() else TreeWriter(root)
    writes = planned_writes(tree, touched)
    check_unchanged(root, snapshot, touched)
    refuse_unsafe(writer, writes)
    for write in writes:
        _write(writer, write)


def _write(writer: TreeWriter, write: Write) -> None:
    if write.kind == "file":
        writer.write(write.path, write.data, executable=write.executable)
    elif write.kind == "symlink":
        writer.symlink(write.path, write.data.decode("utf-8", "surrogateescape"))
    else:
        writer.remove(write.path)


def commit_files(repo: Repo, snapshot: dict[str, str], tree: Path, touched: list[str], message: str) -> str:
    """Commit exactly the touched files as they are in `tree`, on top of HEAD, then update the checkout.

    The commit object is built first in a temporary index (invisible), then a journal is written, then HEAD
    moves with a compare-and-swap, then the index entries and files follow. A crash before HEAD moves leaves
    everything untouched; after it, `recover_pending` (run by the next `truthplane fix`) finishes the job.
    """
    refuse_busy(repo)
    head = repo.head()
    if head is None:
        raise GitError("the repository has no commits yet: commit once before `fix --commit`")
    writes = planned_writes(tree, touched)
    check_unchanged(repo.root, snapshot, touched)
    writer = writer_for(repo)
    refuse_unsafe(writer, writes, repo, head)
    commit, entries = _build_commit(repo, head, writes, message)
    results_dir(repo.root)  # self-ignoring before the journal is written into it
    writer.write(
        PENDING, json.dumps({"commit": commit, "old_head": head, "entries": entries}).encode(), executable=False
    )
    _git(repo.root, "update-ref", "-m", "truthplane fix --commit", "HEAD", commit, head)
    _finish_commit(repo, writer, entries)
    writer.remove(PENDING)
    return commit


def _build_commit(
    repo: Repo, parent: str, writes: list[Write], message: str
) -> tuple[str, list[tuple[str, str | None, str | None]]]:
    """A commit object on `parent` whose tree differs from it in exactly the given paths, built in a
    temporary index: no ref, index or file of the user's is touched. (sha, index entries)."""
    entries: list[tuple[str, str | None, str | None]] = []
    with tempfile.TemporaryDirectory(prefix=owned_prefix("index")) as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        _git(repo.root, "read-tree", parent, env=env)
        for write in writes:
            if write.mode is None:
                _git(repo.root, "update-index", "--force-remove", "--", write.path, env=env)
                entries.append((write.path, None, None))
                continue
            # a file is cleaned as `git add` would (the path's attributes: eol, filters); a link's target is its blob
            path_args = (f"--path={write.path}",) if write.kind == "file" else ("--no-filters",)
            blob = _git(repo.root, "hash-object", "-w", "--stdin", *path_args, input_bytes=write.data).strip()
            _git(repo.root, "update-index", "--add", "--cacheinfo", f"{write.mode},{blob},{write.path}", env=env)
            entries.append((write.path, write.mode, blob))
        new_tree = _git(repo.root, "write-tree", env=env).strip()
    commit = _git(repo.root, "commit-tree", new_tree, "-p", parent, input_bytes=message.encode()).strip()
    return commit, entries


def create_branch(repo: Repo, branch: str, *, commit: str | None = None, parent: str | None = None,
                  tree: Path | None = None, touched: list[str] | None = None, message: str = "") -> str:
    """A new branch `branch` at `commit`, or at a new commit on `parent` holding the touched files of `tree`.

    Only the ref is written (never over an existing one): the checkout, index and HEAD are left alone. The
    paths are held to the same rules as a commit into the checkout, against `parent`'s tree."""
    if commit is None:
        if parent is None or tree is None or touched is None:
            raise ValueError("create_branch needs a commit, or a parent, a tree and the touched files")
        writes = planned_writes(tree, touched)
        problems = [p for w in writes if w.kind == "symlink" and (p := link_problem(w))]
        problems += tree_problems(repo, parent, writes).values()
        if problems:
            raise UnsafeWrite("; ".join(problems) + "; no branch was made")
        commit, _ = _build_commit(repo, parent, writes, message)
    _git(repo.root, "update-ref", "-m", "truthplane run-all", f"refs/heads/{branch}", commit, NO_REF)
    return commit


def _finish_commit(repo: Repo, writer: TreeWriter, entries: list[tuple[str, str | None, str | None]]) -> None:
    for rel, mode, blob in entries:
        if blob is None:
            _git(repo.root, "update-index", "--force-remove", "--", rel)
            writer.remove(rel)
            continue
        _git(repo.root, "update-index", "--add", "--cacheinfo", f"{mode},{blob},{rel}")
        if mode == SYMLINK_MODE:
            target = _git_bytes(repo, "cat-file", "blob", blob)
            writer.symlink(rel, target.decode("utf-8", "surrogateescape"))
        else:  # the working tree's form of the blob (the path's eol and smudge filters), as checkout writes it
            writer.write(
                rel, _git_bytes(repo, "cat-file", "--filters", f"--path={rel}", blob), executable=mode == "100755"
            )


def _git_bytes(repo: Repo, *args: str) -> bytes:
    import subprocess

    from truthplane.git.run import GIT_ENV

    proc = subprocess.run(["git", *args], cwd=repo.root, capture_output=True, env={**os.environ, **GIT_ENV})
    if proc.returncode != 0:
        raise GitError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()[-200:]}")
    return proc.stdout


def recover_pending(root: Path) -> str | None:
    """Finish (or drop) a `fix --commit` that was killed midway. Returns what was done, or None."""
    repo = Repo.discover(root)
    journal = root / PENDING
    if repo is None or journal.is_symlink() or not journal.is_file():
        return None
    writer = writer_for(repo)
    try:
        data = json.loads(journal.read_text(encoding="utf-8"))
        commit, old_head, entries = data["commit"], data["old_head"], data["entries"]
    except (OSError, ValueError, KeyError, TypeError):
        writer.remove(PENDING)
        return "dropped an unreadable pending-commit journal"
    head = repo.head()
    if head == commit:
        _finish_commit(repo, writer, entries)
        _remove_partial_writes(root, [rel for rel, _, _ in entries])
        writer.remove(PENDING)
        return f"finished the interrupted commit {commit[:12]}"
    _remove_partial_writes(root, [])
    writer.remove(PENDING)
    return f"the interrupted commit never reached HEAD (still {str(old_head)[:12]}): nothing changed"


def _remove_partial_writes(root: Path, paths: list[str]) -> None:
    """A kill inside a write leaves its temporary file beside the target: remove exactly those."""
    for rel in [*paths, PENDING]:
        target = root / rel
        if target.parent.is_symlink():
            continue
        for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
            leftover.unlink(missing_ok=True)
