"""What a gate reads of the change itself, besides the findings: the changed files' contents on both sides,
and the suppressions the change adds to them (truthplane.suppressions)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from truthplane.errors import GitError
from truthplane.sources import Source
from truthplane.suppressions import added_suppressions
from truthplane.workspace import Repo

MAX_READ_BYTES = 4 * 1024 * 1024  # a larger file is data, not code someone annotates


def changed_paths(base: Source, head: Source) -> list[str]:
    """Files the head adds or whose content differs from the base's."""
    return sorted(p for p, blob in head.files.items() if base.files.get(p) != blob)


def read_blobs(repo: Repo, blobs: list[str]) -> dict[str, bytes]:
    """The content of each blob git has (one `git cat-file --batch` for all); a missing one is left out."""
    wanted = sorted(set(blobs))
    if not wanted:
        return {}
    try:
        proc = subprocess.run(["git", "cat-file", "--batch"], cwd=repo.root, input="\n".join(wanted).encode() + b"\n",
                              capture_output=True, check=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        raise GitError(f"cannot read the changed files from git: {exc}") from None
    out, found, at = proc.stdout, {}, 0
    for blob in wanted:
        end = out.index(b"\n", at)
        header = out[at:end].split()
        at = end + 1
        if len(header) == 3 and header[1] == b"blob":
            size = int(header[2])
            found[blob] = out[at:at + size]
            at += size + 1
    return found


def _text(content: bytes | None) -> str | None:
    if content is None or len(content) > MAX_READ_BYTES or b"\0" in content:
        return None
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return None


def changed_contents(repo: Repo, base: Source, head: Source, worktree: Path | None) -> list[tuple[str, str | None, str]]:
    """(path, base text or None for a new file, head text) of each changed text file. `worktree` is where the
    head's files are when the head is the working tree (its changed files are not in git's objects)."""
    paths = changed_paths(base, head)
    blobs = [base.files[p] for p in paths if p in base.files]
    if worktree is None:
        blobs += [head.files[p] for p in paths]
    contents = read_blobs(repo, blobs)
    changed = []
    for path in paths:
        if worktree is None:
            after = _text(contents.get(head.files[path]))
        else:
            full = worktree / path
            try:
                after = None if full.is_symlink() else _text(full.read_bytes())
            except OSError:
                after = None
        if after is not None:
            changed.append((path, _text(contents.get(base.files.get(path, ""))), after))
    return changed


def suppression_reasons(changed: list[tuple[str, str | None, str]]) -> list[str]:
    """One reason per suppression the change adds, naming file and line."""
    return [reason for path, before, after in changed for reason in added_suppressions(path, before, after)]
