"""What the JavaScript/TypeScript verifiers share: finding a tool the way npx does (the scanned tree's
node_modules/.bin, then the repository's and the directories above it, then PATH), and making the repository's
node_modules visible to a tree that lacks it.

A gate's base commit and the patch loop's worktrees are exported without node_modules (it is not in
git), but an eslint.config.js `import`s its plugins and tsc reads @types from there, and ES modules
ignore NODE_PATH: such a tree gets a node_modules symlink to the repository's for the length of a scan.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from truthplane.verifiers._commands import which

JS_SUFFIXES = (".js", ".jsx", ".mjs", ".cjs", ".ts", ".tsx", ".mts", ".cts")

_links: dict[str, int] = {}
_links_lock = threading.Lock()


def node_modules_dirs(*starts: Path | None) -> list[Path]:
    """Every node_modules directory from each start upwards, nearest first, without repeats."""
    seen: list[Path] = []
    for start in starts:
        if start is None:
            continue
        current = Path(os.path.abspath(start))
        while True:
            candidate = current / "node_modules"
            if candidate.is_dir() and candidate not in seen:
                seen.append(candidate)
            if current.parent == current:
                break
            current = current.parent
    return seen


def find_tool(executable: str, target: Path | None, project_root: Path | None) -> str | None:
    """The tool the repository pins (node_modules/.bin) before a global one on PATH."""
    for modules in node_modules_dirs(target, project_root):
        candidate = modules / ".bin" / executable
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return which(executable)


def find_package(package: str, target: Path | None, project_root: Path | None, beside: str | None) -> Path | None:
    """A package's directory: in the repository's node_modules, else beside the tool that will load it
    (a global eslint's formatter sits in the same node_modules as eslint itself)."""
    starts: list[Path | None] = [target, project_root]
    if beside:
        real = Path(os.path.realpath(beside))
        starts += [parent for parent in real.parents if parent.name == "node_modules"][:1]
    for modules in node_modules_dirs(*starts):
        if (modules / package / "package.json").is_file():
            return modules / package
    return None


@contextmanager
def borrowed_node_modules(target: Path, project_root: Path | None) -> Iterator[None]:
    """Give `target` a node_modules symlink to the repository's while it is scanned, if it has none.

    Only a tree other than the repository itself (an export, a worktree) is touched, and the link
    is removed afterwards; verifiers scanning the same tree at once share one link."""
    link = target / "node_modules"
    source = project_root / "node_modules" if project_root is not None else None
    usable = (
        source is not None
        and source.is_dir()
        and os.path.realpath(target) != os.path.realpath(project_root or target)
    )
    key = os.path.abspath(link)
    created = False
    with _links_lock:
        if usable and key in _links:
            _links[key] += 1
            created = True
        elif usable and not os.path.lexists(link):
            try:
                os.symlink(os.path.realpath(source or link), link)
                _links[key] = 1
                created = True
            except OSError:
                pass  # the tools will say what they miss
    try:
        yield
    finally:
        if created:
            with _links_lock:
                _links[key] -= 1
                if _links[key] == 0:
                    del _links[key]
                    try:
                        os.unlink(link)
                    except OSError:
                        pass


class NodeTool:
    """Mixin for verifiers whose tool lives in node_modules. The registry sets `project_root` (the
    repository the configuration came from) so a tree exported elsewhere still finds its tools."""

    project_root: Path | None = None

    def node_tool(self, executable: str, target: Path | None = None) -> str | None:
        return find_tool(executable, target, self.project_root)
