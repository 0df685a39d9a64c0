"""git objects written by hand, for trees no checkout would make (a link beside a directory of the same name, a
`.git`, a `..`): what tests of a commit reaching the disk feed git."""

from __future__ import annotations

import subprocess
from pathlib import Path


def fed(root: Path, args: list[str], text: str) -> str:
    return subprocess.run(["git", *args], cwd=root, input=text, capture_output=True, text=True,
                          check=True).stdout.strip()


def blob(root: Path, content: str) -> str:
    return fed(root, ["hash-object", "-w", "--stdin"], content)


def tree(root: Path, lines: str) -> str:
    """A tree of `lines` (git ls-tree's form), whatever git would refuse to check out."""
    return fed(root, ["mktree", "--missing"], lines)
