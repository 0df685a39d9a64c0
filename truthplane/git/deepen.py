"""Shallow clones deepen themselves: a gate in a shallow clone (CI's default checkout of one commit) fetches
the base branch and as much more history as it needs to find the merge-base, in growing steps, from the
base ref's remote, and says so on the way. Without a way to report (`note` is None) nothing is fetched.

`git fetch --deepen=N` moves every shallow boundary the remote can reach N commits further back: the head's
side as well as the base's, which is what a merge-base needs.
"""

from __future__ import annotations

from collections.abc import Callable

from truthplane.git.run import resolve_args, run
from truthplane.errors import GitError
from truthplane.git.repo import Repo

DEEPEN_STEPS = (100, 400, 1600, 6400)  # commits per fetch: 8,500 more in all before giving up
Note = Callable[[str], None]


def resolve_base(repo: Repo, base_ref: str, note: Note | None) -> str:
    """The base ref's commit; in a shallow clone that lacks it, fetched first from its remote."""
    if note is None:
        return repo.resolve(base_ref)
    try:
        return repo.resolve(base_ref)
    except GitError:
        remote, branch = (_source(repo, base_ref) if repo.is_shallow() else None) or ("", None)
        if branch is None:
            raise
    note(f"{base_ref} is not in this shallow clone: fetching it from {remote} ({DEEPEN_STEPS[0]} commits deep)")
    try:
        run(repo.root, "fetch", "-q", f"--depth={DEEPEN_STEPS[0]}", remote, _refspec(remote, branch))
    except GitError as exc:
        raise GitError(f"base ref {base_ref!r} not found in this clone, and fetching it failed: {exc}") from None
    # run, not repo.git: a lookup started ahead of the fetch (truthplane.git.run) may still hold the old answer
    return run(repo.root, *resolve_args(base_ref)).strip()


def merge_base(repo: Repo, head: str, base_commit: str, base_ref: str, note: Note | None) -> str:
    """The merge-base of `head` and `base_commit`; in a shallow clone that lacks it, deepened until it is there."""
    if note is None:
        return repo.merge_base(head, base_commit)
    try:
        return repo.merge_base(head, base_commit)
    except GitError:
        source = _source(repo, base_ref) if repo.is_shallow() else None
        if source is None:
            raise
    remote, branch = source
    fetched = 0
    for step in DEEPEN_STEPS:
        note(f"the merge-base of HEAD and {base_ref} is not in this shallow clone: "
             f"fetching {step} more commits of history from {remote}")
        try:
            run(repo.root, "fetch", "-q", f"--deepen={step}", remote, *([_refspec(remote, branch)] if branch else []))
        except GitError as exc:
            raise GitError(f"no merge base in this shallow clone, and deepening it failed: {exc}") from None
        fetched += step
        try:
            return run(repo.root, "merge-base", head, base_commit).strip()
        except GitError:
            if not repo.is_shallow():
                raise GitError(
                    f"{head[:12]} and {base_commit[:12]} share no history: nothing to compare against"
                ) from None
    raise GitError(f"no merge base of HEAD and {base_ref} within {fetched} more commits of history: fetch all of it "
                   "(actions/checkout with fetch-depth: 0, or git fetch --unshallow)")


def _source(repo: Repo, base_ref: str) -> tuple[str, str | None] | None:
    """The remote to fetch the base from, and its branch there when known: `origin/main` names both, a local
    branch has its upstream, anything else comes from `origin` if there is one."""
    remotes = run(repo.root, "remote").split()
    name = base_ref.removeprefix("refs/remotes/")
    for remote in sorted(remotes, key=len, reverse=True):
        if name.startswith(remote + "/"):
            return remote, name[len(remote) + 1:]
    branch = base_ref.removeprefix("refs/heads/")
    try:
        remote = run(repo.root, "config", f"branch.{branch}.remote").strip()
        merge = run(repo.root, "config", f"branch.{branch}.merge").strip()
    except GitError:
        return ("origin", None) if "origin" in remotes else None
    return (remote, merge.removeprefix("refs/heads/")) if remote in remotes else None


def _refspec(remote: str, branch: str) -> str:
    return f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}"
