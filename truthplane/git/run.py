"""Running git: one place that starts git processes for reading and writing a repository, the argument lists
of the calls a gate makes, and those calls started ahead of the code that asks for them."""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from truthplane.errors import GitError
from truthplane.git.monitored import worktree_diff
from truthplane.git.untracked import LISTING, Later, lists_here, untracked_apart

GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}


def resolve_args(ref: str) -> tuple[str, ...]:
    return ("rev-parse", "--verify", "-q", f"{ref}^{{commit}}")


def tree_args(commit: str) -> tuple[str, ...]:
    return ("ls-tree", "-r", "-z", "--full-tree", commit)


def changes_args(commit: str, head: str) -> tuple[tuple[str, ...], ...]:
    """Repo.changes_since's listings: the working tree against HEAD (`head`, its commit), untracked files, and
    unless `head` is `commit` itself, HEAD's tree against `commit`'s. One stat pass over the working tree: the
    commits' trees are compared in git's objects."""
    return (
        ("diff-index", "--raw", "-z", "--no-renames", "--no-abbrev", head, "--"),
        LISTING,
    ) + ((tree_changes_args(commit, head),) if head != commit else ())


def tree_changes_args(commit: str, head: str) -> tuple[str, ...]:
    """What `head`'s tree changes against `commit`'s, compared in git's objects (Repo.commit_changes)."""
    return ("diff-tree", "-r", "-z", "--no-renames", "--no-abbrev", commit, head, "--")


def listing_file(store: Path, commit: str, variant: str) -> Path:
    """Where a gate keeps a commit's listing (truthplane.truth.sources.commit_source), one per `variant` (a digest
    of the excludes it was made under); with one there, a gate need not ask git for that commit's tree."""
    return store / "listings" / f"{commit}-{variant}.listing"


def listing_kept(store: Path | None, commit: str) -> bool:
    if store is None:
        return False
    pattern = listing_file(store, commit, "*")
    return any(pattern.parent.glob(pattern.name))


def renames_args(old: str) -> tuple[str, ...]:
    return ("diff", "-M", "--name-status", "-z", "--no-ext-diff", old)


# git calls started before anybody asked for them (see gate_calls_ahead): (cwd, args) -> the call's answer
_ahead: dict[tuple[str, tuple[str, ...]], Later] = {}
_ahead_lock = threading.Lock()
# set once a chain has started the listings (or given up): until then, a gate's own listing waits for it, rather
# than run the same walk of the working tree beside it
_chains: list[threading.Event] = []
_LISTINGS = ("ls-tree", "diff-index", "ls-files", "diff-tree", "diff")
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@contextmanager
def gate_calls_ahead(
    path: Path, base_ref: str, head_ref: str | None,
    on_listed: Callable[[tuple[Path, str | None, str | None, str | None] | None], None] | None = None,
    store: Path | None = None,
) -> Iterator[None]:
    """Start the git calls a gate of `path` against `base_ref` will make, and let the gate take their answers.

    Resolving the refs, the merge-base, its listing and what changed since it cost a large repository about
    as long as Python takes to import what a gate needs, and need not wait for it: the calls run on other
    threads while the caller goes on. The first identical call inside the block (same directory, same
    arguments) takes the answer instead of running git again; whatever is not taken is dropped at the end.
    Best effort: a call that fails here is made again where it is needed, and its error reported there.

    `on_listed` is called on a git thread, last when the calls are over: for a gate of the working tree with
    (top directory, what `changes_args`' calls printed: the working tree's diff, the untracked files, the trees'
    diff or None), else with None (a gate of commits, or git failed). A gate starts its tools on the change
    there (truthplane.truth.ahead.tools_ahead). Git compares the branch's commits in its objects before its stat
    pass over the working tree ends, and lists the tracked changes long before its walk for untracked files
    ends: `on_listed` is called as each is known, with None for what is not yet (the working tree's diff, the
    untracked files), so the tools start on what is known; the last call has the untracked files.

    With a `store` (the cache directory), the untracked files come from the snapshot of the working tree's
    directories kept there (truthplane.git.untracked): git walks only what changed since the last gate.
    """
    started: list[tuple[str, tuple[str, ...]]] = []
    listings_started = threading.Event()
    # the chain itself, and each call it starts (both listings, the untracked walk, the trees, renames), on a thread
    calls: list[Later] = []

    def submit(call: Callable[[], str]) -> Later:
        calls.append(Later(call))
        return calls[-1]

    def start(cwd: Path, *args: str, call: Callable[[], str] | None = None) -> Later:
        future = submit(call if call is not None else lambda: run(cwd, *args))
        key = (str(cwd), args)
        with _ahead_lock:
            _ahead[key] = future
            started.append(key)
        return future

    def answered(cwd: Path, args: tuple[str, ...], answer: str) -> None:
        with _ahead_lock:
            _ahead[(str(cwd), args)] = Later(known=answer)
            started.append((str(cwd), args))

    def one_round() -> tuple[Path, str, str, str] | None:
        """The top directory, both commits and their merge-base from two calls side by side, not four in a row;
        their answers are the gate's to take as if it had made its own calls. None if that cannot be told apart
        from an error (the calls one at a time then say what is wrong)."""
        head_name = head_ref or "HEAD"
        if base_ref.startswith("-") or head_name.startswith("-"):
            return None
        joined = submit(lambda: run(path, "merge-base", head_name, base_ref))
        try:
            found = run(path, "rev-parse", "--show-toplevel", f"{base_ref}^{{commit}}", f"{head_name}^{{commit}}")
            merge_base = joined.result().strip()
        except GitError:
            return None
        lines = found.splitlines()
        if len(lines) != 3 or not all(_COMMIT.fullmatch(line) for line in lines[1:] + [merge_base]):
            return None
        root, base_commit, head_commit = Path(lines[0]), lines[1], lines[2]
        answered(path, ("rev-parse", "--show-toplevel"), lines[0] + "\n")
        answered(root, resolve_args(base_ref), base_commit + "\n")
        answered(root, resolve_args(head_name), head_commit + "\n")
        answered(root, ("merge-base", head_commit, base_commit), merge_base + "\n")
        return root, base_commit, head_commit, merge_base

    def chain() -> tuple[Path, str | None, str | None, str | None] | None:
        known = one_round()
        if known is not None:
            root, base_commit, head_commit, merge_base = known
        else:
            try:
                root = Path(start(path, "rev-parse", "--show-toplevel").result().strip())
                base = start(root, *resolve_args(base_ref))
                head = start(root, *resolve_args(head_ref or "HEAD"))
                base_commit, head_commit = base.result().strip(), head.result().strip()
                merge_base = start(root, "merge-base", head_commit, base_commit).result().strip()
            except GitError:
                return None  # the gate will say what is wrong
        if not listing_kept(store, merge_base):
            start(root, *tree_args(merge_base))
        if head_ref is not None:
            # the commit is the merge-base's listing plus what changed since (the gate's commit_over): no listing
            if head_commit != merge_base:
                start(root, *tree_changes_args(merge_base, head_commit))
            start(root, *renames_args(merge_base), head_commit)
            listings_started.set()
            return None
        def untracked() -> str:
            return untracked_apart(root, head_commit, store, GIT_ENV, lambda: run(root, *LISTING))

        # the branch's commits first: compared in git's objects, they are known long before the working tree's
        # stat pass ends, and the tools start on them (a committed change needs nothing else)
        diff_args, listing_args, *trees_args = changes_args(merge_base, head_commit)
        trees = [start(root, *args) for args in trees_args]
        diff = start(root, *diff_args, call=lambda: worktree_diff(root, head_commit, store, diff_args, run))
        # a small tree's untracked files are listed in this process, whose interpreter lock the tools' start
        # needs: listed once they have started (a large tree's, in a process of its own, at once)
        launched = threading.Event()
        if on_listed is None or not lists_here(root, store):
            launched.set()

        def untracked_once_launched() -> str:
            launched.wait()
            return untracked()

        listed = start(root, *listing_args, call=untracked_once_launched)
        listings_started.set()
        if on_listed is None:
            return None
        try:
            committed = trees[0].result() if trees else None
            if committed is not None and not diff.done():
                # the branch's commits, compared in git's objects, are known before the working tree's stat pass
                on_listed((root, None, None, committed))
                launched.set()
            tracked = diff.result()
            if not listed.done():
                on_listed((root, tracked, None, committed))
            launched.set()
            return root, tracked, listed.result(), committed
        except GitError:
            return None
        finally:
            launched.set()

    def chain_and_tell() -> None:
        listing = None
        try:
            listing = chain()
        finally:
            listings_started.set()
            if on_listed is not None:
                on_listed(listing)

    with _ahead_lock:
        _chains.append(listings_started)
    try:
        chained = Later(chain_and_tell)  # answers nothing: its calls do
        yield
    finally:
        listings_started.set()
        chained.wait()  # every call is started by now: no git left running behind the caller
        for call in calls:
            call.wait()
        with _ahead_lock:
            _chains.remove(listings_started)
            for key in started:
                _ahead.pop(key, None)


def git(cwd: Path, *args: str, input_bytes: bytes | None = None, env: dict[str, str] | None = None) -> str:
    """git's output for `args` in `cwd`: the answer of the same call started ahead, if there is one."""
    if input_bytes is None and env is None:
        answer = _taken(cwd, args)
        if answer is not None:
            return answer.result()
    return run(cwd, *args, input_bytes=input_bytes, env=env)


def worktree_git(cwd: Path, args: tuple[str, ...], head: str, store: Path | None) -> str:
    """git(cwd, *args) for changes_args' diff of the working tree against `head`: the answer started ahead, if
    there is one, else git asked only about what a watchman server saw change (truthplane.git.monitored)."""
    answer = _taken(cwd, args)
    return answer.result() if answer is not None else worktree_diff(cwd, head, store, args, run)


def _taken(cwd: Path, args: tuple[str, ...]) -> Later | None:
    if _chains and args[0] in _LISTINGS:
        for chain in list(_chains):
            chain.wait(timeout=60)
    if _ahead:
        with _ahead_lock:
            return _ahead.pop((str(cwd), args), None)
    return None


def run(cwd: Path, *args: str, input_bytes: bytes | None = None, env: dict[str, str] | None = None) -> str:
    """Run git now; a failure is a GitError that ends with git's own last line."""
    try:
        proc = subprocess.run(
            ["git", *args], cwd=cwd, input=input_bytes, capture_output=True,
            env={**os.environ, **GIT_ENV, **(env or {})}, timeout=300,
        )
    except FileNotFoundError:
        raise GitError("git is not installed: install git (apt-get install git)") from None
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} took longer than 300 s") from None
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        raise GitError(f"git {args[0]} failed: {message[-1] if message else 'exit ' + str(proc.returncode)}")
    return proc.stdout.decode("utf-8", errors="surrogateescape")
