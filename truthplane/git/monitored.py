"""The working tree against HEAD (`git diff-index`, truthplane.git.run.changes_args) asking git only about what
a watchman server saw change (truthplane.git.watchman).

`git diff-index HEAD` stats every tracked file: on a repository of 70,000 files, 0.3 s of CPU for a one-file
change. What it prints for a path can differ from what it printed at the last gate only if, since then, the file
changed on disk (watchman says which), HEAD's entry for it changed (`diff-tree` of the two commits, in git's
objects), or its index entry did (the index file is another one: `diff-index --cached`, which stats nothing,
names the paths the index holds apart from HEAD). So the last gate's answer is kept with watchman's clock, and
git is asked about those paths alone, with literal pathspecs, plus the ones that last answer named.

Git is asked about everything, as without watchman, when: no watchman note, or watchman cannot say what changed
(a server started again, or slow); a `.gitattributes` changed (its rules decide how files compare); git's
configuration, its attributes files, environment or executable changed; a `.gitmodules` (a submodule's own
files are not the superproject's paths); another index (GIT_INDEX_FILE); or more paths to ask about than
MAX_ASKED (git matches each path against every pathspec: past some dozens, its whole pass is as quick).

The one difference from git's whole pass: an index entry git smudged when it wrote the index (racy git) and
whose file did not change is not listed again; it lists as "only its stat data changed", which the gate drops
(truthplane.git.changes.parse_changes) either way.
"""

from __future__ import annotations

import marshal
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from truthplane.errors import GitError
from truthplane.git.untracked import watchman_note
from truthplane.git.watchman import Unanswered, Watchman, keep

MAX_ASKED = 64
_VERSION = 1

Run = Callable[..., str]  # truthplane.git.run.run: (cwd, *args) -> git's output


def worktree_diff(root: Path, head: str, store: Path | None, args: tuple[str, ...], run: Run) -> str:
    """What git prints for `args` (changes_args' diff of the working tree against `head`, ending with `--`) in
    `root`, asking it only about what changed since the last gate where a watchman server watches the tree."""
    if store is None or "GIT_INDEX_FILE" in os.environ or os.path.lexists(os.path.join(root, ".gitmodules")):
        return run(root, *args)
    note = watchman_note(store, root)
    monitor = Watchman.noted(note, os.fspath(root))
    if monitor is None:
        return run(root, *args)
    path = note.removesuffix(".watchman") + ".diff"
    try:
        git_dir, key = _key(root, run)
    except (GitError, OSError):
        return run(root, *args)
    index = _index_stamp(git_dir)
    old = _load(path, key)
    answer: str | None = None
    staged: list[str] | None = None
    try:
        if old is not None:
            try:
                clock, names, dirs = monitor.since(old["clock"])
            except Unanswered:
                pass  # a server started again since, say: a clock of its own, below
            else:
                if index is not None and old["index"] == index and old["head"] == head:
                    staged = old["staged"]
                try:
                    asked = _asked(root, head, old, names, dirs, staged, run)
                    if asked is not None:
                        answer = run(root, *args, *(":(literal)" + p for p in sorted(asked[0]))) if asked[0] else ""
                        staged = asked[1]
                except GitError:
                    answer, staged = None, None  # the last gate's HEAD gone from the repository, say: git's pass
        if answer is None:
            clock = monitor.clock()  # before git's pass: what changes during it is seen next time
    except Unanswered:
        return run(root, *args)  # no server: the last answer and its clock stay for the next gate
    if answer is None:
        answer = run(root, *args)
    if staged is None:
        staged = _staged(root, head, run)
    state = {"version": _VERSION, "key": key, "clock": clock, "head": head, "index": index, "staged": staged,
             "raw": answer}
    if state != old:
        keep(path, state)
    return answer


def _asked(root: Path, head: str, old: dict, names: list[str], dirs: set[str], staged: list[str] | None, run: Run
           ) -> tuple[set[str], list[str]] | None:
    """(the paths git's answer may differ on from `old`'s, the paths the index holds apart from `head` now), or
    None where git must be asked about everything. `staged`: those paths, if `old` still knows them (the same
    index and HEAD)."""
    if len(names) > MAX_ASKED or any(name.rpartition("/")[2] == ".gitattributes" for name in names):
        return None
    # a directory now: its entries that changed are named each; the directory itself is asked about only where
    # HEAD or the index has a file of that name (asked about, its name would have git compare every file below)
    asked = {name for name in names if name not in dirs} | set(_named(old["raw"]))
    if old["head"] != head:
        asked.update(run(root, "diff-tree", "-r", "-z", "--name-only", "--no-renames", old["head"], head, "--")
                     .split("\0"))
    if staged is None:
        staged = _staged(root, head, run)
        asked.update(staged)  # the index changed: whatever it holds apart from HEAD
    if dirs:
        asked.update(_files_in_head(root, head, sorted(dirs), run) | (dirs & set(staged)))
    asked.discard("")
    return (asked, staged) if len(asked) <= MAX_ASKED else None


def _staged(root: Path, head: str, run: Run) -> list[str]:
    """The paths the index holds apart from `head`'s tree (added, changed, removed, unmerged): compared in the
    index and git's objects, no file statted."""
    return [p for p in run(root, "diff-index", "--cached", "--name-only", "-z", "--no-renames", head, "--")
            .split("\0") if p]


def _files_in_head(root: Path, head: str, paths: list[str], run: Run) -> set[str]:
    """Which of `paths` `head`'s tree has as anything but a directory (or cannot be asked about by name)."""
    plain = [p for p in paths if "\n" not in p]
    out = run(root, "cat-file", "--batch-check=%(objecttype)",
              input_bytes="".join(f"{head}:{p}\n" for p in plain).encode("utf-8", "surrogateescape"))
    kinds = out.splitlines()
    if len(kinds) != len(plain):
        return set(paths)
    return {p for p, kind in zip(plain, kinds) if kind != "tree" and not kind.endswith(" missing")} | (
        set(paths) - set(plain))


def _named(raw: str) -> list[str]:
    """The paths of git's raw -z output."""
    fields = raw.split("\0")
    return [path for meta, path in zip(fields[0::2], fields[1::2], strict=False) if meta.startswith(":")]


def _key(root: Path, run: Run) -> tuple[str, bytes]:
    """(git's directory, a digest of what decides how git compares files besides the files, the index and HEAD:
    its configuration, attributes files, environment and executable)."""
    from hashlib import blake2b

    dot_git = os.path.join(root, ".git")
    git_dir = dot_git if os.path.isdir(dot_git) and not os.path.islink(dot_git) else (
        run(root, "rev-parse", "--absolute-git-dir").strip())
    config = run(root, "config", "-z", "--list")
    digest = blake2b(b"truthplane monitored diff %d\0" % _VERSION, digest_size=20)
    executable = shutil.which("git")
    found = os.stat(executable) if executable else None
    digest.update(f"{os.path.realpath(root)}\0{git_dir}\0{executable}\0"
                  f"{(found.st_ino, found.st_size, found.st_mtime_ns) if found else None}\0{config}\0"
                  .encode("utf-8", "surrogateescape"))
    for name in sorted(os.environ):
        if name.startswith("GIT_") or name in ("HOME", "XDG_CONFIG_HOME"):
            digest.update(f"{name}={os.environ[name]}\0".encode("utf-8", "surrogateescape"))
    settings = dict(item.partition("\n")[::2] for item in config.split("\0") if item)
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.environ.get("HOME", ""), ".config")
    attributes = settings.get("core.attributesfile") or os.path.join(xdg, "git", "attributes")
    for rules in (os.path.join(git_dir, "info", "attributes"), os.path.join(root, os.path.expanduser(attributes))):
        try:
            with open(rules, "rb") as handle:
                content = handle.read()
        except (FileNotFoundError, NotADirectoryError):
            digest.update(b"-\0")
        else:
            digest.update(b"%d\0%s\0" % (len(content), content))
    return git_dir, digest.digest()


def _index_stamp(git_dir: str) -> tuple[int, int, int, int] | None:
    """(mtime_ns, ctime_ns, size, inode) of the index file: git writes a new file for every change (another inode
    while the old one is still there), so the same stamp is the same index."""
    try:
        found = os.stat(os.path.join(git_dir, "index"))
    except OSError:
        return None
    return found.st_mtime_ns, found.st_ctime_ns, found.st_size, found.st_ino


def _load(path: str, key: bytes) -> dict | None:
    try:
        with open(path, "rb") as handle:
            state = marshal.loads(handle.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not isinstance(state, dict) or state.get("version") != _VERSION or state.get("key") != key:
        return None
    if not isinstance(state.get("clock"), str) or not isinstance(state.get("raw"), str) or not isinstance(
            state.get("staged"), list):
        return None
    return state
