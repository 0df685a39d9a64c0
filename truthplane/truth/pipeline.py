"""The truth plane's jobs, callable without the CLI: scan, scan against a baseline, gate two states."""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from truthplane.truth.ahead import LaunchPlans
from truthplane.git.deepen import Note, resolve_base
from truthplane.git.deepen import merge_base as find_merge_base
from truthplane.paths import default_cache_dir
from truthplane.truth.cache import ResultCache
from truthplane.truth.config_changes import ChangeReview, review_change, unchanged_audits, with_base_config
from truthplane.config import Config
from truthplane.errors import GitError
from truthplane.truth.verdict import ConfigChange, evaluate
from truthplane.models import GateResult, Scan
from truthplane.verifiers.loader import create_verifiers, preload_verifiers
from truthplane.truth.results import latest_baseline, load_scan
from truthplane.truth.scanner import Progress, Reference, launch_entries, scan
from truthplane.truth.sources import (
    AllBut, Excluder, Source, commit_over, commit_source, worktree_over, worktree_source,
)
from truthplane.verifiers.interface import Verifier, VerifierContext
from truthplane.git.repo import Repo


@dataclass
class ScanOptions:
    only: list[str] | None = None
    cache_dir: Path | None = None
    use_cache: bool = True
    executor: str = "local"

    def cache(self, config: Config) -> ResultCache | None:
        if not self.use_cache:
            return None
        return ResultCache(self.cache_directory(config))

    def cache_directory(self, config: Config) -> Path:
        return self.cache_dir or (Path(config.cache_dir) if config.cache_dir else default_cache_dir())

    def context(self, config: Config) -> VerifierContext:
        return VerifierContext(executor=self.executor, timeout_s=config.timeout_s,
                               cache_dir=self.cache_directory(config) if self.use_cache else None)


def run_scan(
    source: Source, config: Config, options: ScanOptions, progress: Progress | None = None,
    *, reference: Reference | None = None, share: Reference | None = None, verifiers: list[Verifier] | None = None,
) -> Scan:
    return scan(
        source, config, only=options.only, cache=options.cache(config),
        progress=progress, context=options.context(config), reference=reference, share=share, verifiers=verifiers,
    )


def scan_path(path: Path, config: Config, options: ScanOptions, progress: Progress | None = None) -> Scan:
    return run_scan(worktree_source(path, config), config, options, progress)


def renames_since(root: Path, commit: str | None, config: Config | None = None) -> dict[str, str]:
    """Renames from `commit` to the working tree, when both are known to git."""
    repo = Repo.discover(root)
    if repo is None or commit is None or repo.root.resolve() != root.resolve():
        return {}
    try:
        repo.resolve(commit)
        return repo.renames(commit, skip=Excluder(config.all_excludes()) if config else None)
    except GitError:
        return {}  # the baseline's commit is gone (rebased away): match by content alone


def load_baseline(root: Path, baseline: Path | None = None) -> tuple[Scan, str]:
    """The given baseline (or SARIF log), or the latest one: checked before any scanning starts."""
    path = baseline or latest_baseline(root)
    return load_scan(path), path.name


def scan_against(
    root: Path, config: Config, options: ScanOptions, before: Scan, before_label: str,
    progress: Progress | None = None,
) -> GateResult:
    after = scan_path(root, config, options, progress)
    renames = renames_since(root, before.commit, config)
    return evaluate(before, after, config.gate, renames, base=before_label, head="working tree")


class ProgressDisplay(Protocol):
    def scope(self, label: str) -> Progress: ...


def gate(
    root: Path, config: Config, options: ScanOptions, *, base_ref: str, head_ref: str | None = None,
    progress: ProgressDisplay | None = None, plans: LaunchPlans | None = None, deepen: Note | None = None,
    carry: bool = False,
) -> GateResult:
    """Scan the merge-base of HEAD (or head_ref) and base_ref, scan the head, diff and judge.

    With no head_ref the head is the working tree: HEAD plus uncommitted changes. The two scans run
    at the same time: the base is mostly cache reads, the head mostly the tools on what changed.
    A gate of the working tree leaves its launch plan in `plans`, for the next gate to start its tools
    ahead (truthplane.truth.ahead). With `deepen`, a shallow clone fetches the base and the history the merge-base
    needs, and each fetch is reported through it (truthplane.git.deepen); without, nothing is fetched.

    With `carry`, the unchanged findings and suppressed results on the files both states have alike are only
    counted (GateResult.unchanged_count), never decoded nor listed: for a caller that shows the verdict and
    counts, on a large repository most of a gate's own cost. A change to any configuration is judged without.
    """
    repo = Repo.require(root)
    root = repo.root  # git's spelling of the top directory: what the tools started ahead ran in
    base_commit = resolve_base(repo, base_ref, deepen)
    head_commit = repo.resolve(head_ref) if head_ref else repo.head()
    if head_commit is None:
        raise GitError("this repository has no commits yet: commit first, then gate")
    merge_base = find_merge_base(repo, head_commit, base_commit, base_ref, deepen)
    # listing both trees and finding renames need not wait for each other, nor the verifiers' modules
    # for them (run from the CLI, git has been at the listings since the gate started: gate_calls_ahead)
    excluded = Excluder(config.all_excludes())
    with ThreadPoolExecutor(max_workers=7, thread_name_prefix="gate") as pool:
        pool.submit(preload_verifiers, config, options.only)
        store = options.cache_directory(config) if options.use_cache else None
        base_listed = pool.submit(commit_source, repo, merge_base, config, store)
        renames_found: Future[dict[str, str]] | None
        if head_ref:
            renames_found = pool.submit(repo.renames, merge_base, head_commit)
            # the commit is the merge-base's listing plus what changed since: no second full listing
            changes = repo.commit_changes(merge_base, head_commit, excluded)
            head_label = f"{head_ref} ({head_commit[:12]})"
            base_source = base_listed.result()
            head_source = commit_over(base_source, repo, head_commit, changes, store)
        else:
            # the working tree is the merge-base's listing plus what changed since: no second full listing
            if store is not None:
                follow_watchman(root, store, config.gate.watchman)
            changes, dirty = repo.changes_since(merge_base, excluded, head_commit, store)
            # a rename needs a path that is gone: with none, git's rename detection has nothing to find
            renames_found = pool.submit(repo.renames, merge_base, None, excluded) if None in changes.values() else None
            base_source = base_listed.result()
            head_source = worktree_over(base_source, root, changes, commit=head_commit, dirty=dirty)
            head_label = "working tree" + (" (with uncommitted changes)" if dirty else f" ({head_commit[:12]})")
        # the head takes the base's findings for every file it has unchanged: only the change is scanned
        alike = _alike(base_source, head_source, create_verifiers(config, options.context(config), options.only)) if (
            carry and options.use_cache) else frozenset()
        shared = Reference(base_source.files, alike, head_source)
        worktree = None if head_ref else root
        # an audit of dependencies the change leaves as they were runs on neither side
        skipped = pool.submit(lambda: unchanged_audits(
            repo, create_verifiers(config, options.context(config), options.only), base_source, head_source, worktree))

        # what the change does besides its findings, read while the tools run
        reviewed = pool.submit(lambda: review_change(
            repo, create_verifiers(config, options.context(config), options.only), base_source, head_source, worktree,
            config))

        def gated_verifiers() -> list[Verifier]:
            made = create_verifiers(config, options.context(config), options.only)
            return [v for v in made if v.instance_name not in skipped.result()]

        def scanned_base(label: str) -> Scan:
            try:
                return run_scan(base_source, config, options, progress.scope(label) if progress else None, share=shared,
                                verifiers=gated_verifiers())
            finally:
                shared.release_all()  # whatever happened, the head never waits for a base that is not coming

        head_verifiers: list[Verifier] = []  # kept for the launch plan

        def scanned_head(label: str) -> Scan:
            try:
                head_verifiers.extend(gated_verifiers())
                return run_scan(head_source, config, options, progress.scope(label) if progress else None,
                                reference=shared, verifiers=head_verifiers)
            finally:
                shared.readers_done()  # the base never waits for a head that is not coming

        after_future = pool.submit(scanned_head, "head" if head_ref else "working tree")
        before_future = pool.submit(scanned_base, f"base {merge_base[:12]}")
        before, after = before_future.result(), after_future.result()
        renames = renames_found.result() if renames_found is not None else {}
        review = reviewed.result()
        if shared.carried and (review.config or review.settings is not None):
            # weighing a configuration change compares every finding of the head under both configurations
            pool.shutdown(wait=True)
            return gate(root, config, options, base_ref=base_ref, head_ref=head_ref, progress=progress, plans=plans,
                        deepen=deepen)
        notes = [f"{name} not run: the change leaves the dependencies declared in {', '.join(files) or 'no file'} "
                 "as they were" for name, files in skipped.result().items()]
        config_change = _under_base_config(
            repo, (merge_base, base_source), (head_commit if head_ref else None, head_source), review, config, options,
            progress, worktree)
    cache = options.cache(config)
    if plans is not None and head_ref is None and cache is not None:
        # the slowest tool first: it is the one the gate waits for
        took = {run.name: run.duration_s or 0.0 for run in after.verifiers}
        entries = launch_entries(head_verifiers, head_source)
        for entry in entries:
            entry["seconds"] = took.get(str(entry["name"]), 0.0)
        plans.keep(root, entries, config.all_excludes(), cache.path)
    base_label = f"merge-base of {base_ref} ({merge_base[:12]})"
    return evaluate(before, after, config.gate, renames, base=base_label, head=head_label, review=review.reasons,
                    config_change=config_change, notes=notes, suppressed_by_change=review.suppressed)


def _alike(base: Source, head: Source, verifiers: list[Verifier]) -> AbstractSet[str]:
    """The files with the same content in both states, which a gate that carries leaves out (Reference.carried);
    none when the change touches a file that configures a verifier or truthplane: weighing that compares every
    finding of the head under both configurations."""
    over = head._over
    alike: AbstractSet[str]
    if over is not None and over[0] is base:
        # a listing laid over the base: only the paths it names as changed can differ
        differ = {path for path in over[1] if base.files.get(path) != head.files.get(path)}
        alike = AllBut(head.files, differ)
    else:
        alike = frozenset(path for path, blob in head.files.items() if base.files.get(path) == blob)
        differ = (base.files.keys() | head.files.keys()) - alike
    configuring = {"truthplane.toml", "pyproject.toml"}.union(*(v.configured_by() for v in verifiers))
    if any(not configuring.isdisjoint(path.split("/")) for path in differ):
        return frozenset()
    return alike


def _under_base_config(
    repo: Repo, base: tuple[str, Source], head: tuple[str | None, Source], review: ChangeReview, config: Config,
    options: ScanOptions, progress: ProgressDisplay | None, worktree: Path | None,
) -> ConfigChange | None:
    """When the change alters files that configure some verifiers, or truthplane's own `exclude`/`verifiers`, the
    head's code is scanned again under the base's configuration (mostly cache hits: only what changed is new)."""
    changed = dict(review.config)
    if not changed and review.settings is None:
        return None
    (base_commit, base_source), (head_commit, head_source) = base, head
    tool_files = {path for paths in changed.values() for path in paths}
    scan_config = config
    if review.settings is not None:
        scan_config, where = review.settings
        # both listings again, under the base's excludes: what the head's excludes dropped comes back
        base_source = commit_source(repo, base_commit, scan_config)
        if head_commit is not None:
            head_source = commit_source(repo, head_commit, scan_config)
        else:
            excluded = Excluder(scan_config.all_excludes())
            changes, dirty = repo.changes_since(base_commit, excluded, head_source.commit)
            head_source = worktree_over(base_source, repo.root, changes, commit=head_source.commit, dirty=dirty)
        selected = options.only or sorted({*scan_config.verifiers, *config.verifiers})
        changed = {name: sorted({*changed.get(name, []), where}) for name in selected}
    only = [name for name in sorted(changed) if name in scan_config.verifiers]
    source = with_base_config(repo, base_source, head_source, tool_files, worktree)
    label = "head with the base's configuration"
    if only:
        rescan = run_scan(source, scan_config, replace(options, only=only), progress.scope(label) if progress else None)
    else:  # the base ran none of them: everything the head's verifiers report came with the change's settings
        rescan = Scan(created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), commit=head_source.commit)
    return ConfigChange(changed, rescan, frozenset(only))


def follow_watchman(root: Path, store: Path, wanted: bool) -> None:
    """`[gate] watchman`: have a watchman server watch the working tree, or forget the one that did
    (truthplane.git.watchman.follow)."""
    from truthplane.git.untracked import watchman_note
    from truthplane.git.watchman import follow

    follow(str(root), watchman_note(store, root), wanted)
