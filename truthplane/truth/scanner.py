"""Run the configured verifiers over a source tree (truthplane.truth.sources), in parallel, through the result cache.

Files whose results are cached are never read: a past commit is only exported when some verifier has
something to run.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Collection
from collections.abc import Set as AbstractSet
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from truthplane.truth.cache import ResultCache, TreeEntry
from truthplane.config import Config
from truthplane.errors import TruthplaneError, VerifierError
from truthplane.models import Finding, Scan, ToolStatus, VerifierRun
from truthplane.truth.sources import Excluder, Source
from truthplane.verifiers.interface import Verifier, VerifierContext

MAX_SOURCE_BYTES = 4 * 1024 * 1024  # larger files are not read for fingerprint context


class Progress(Protocol):
    def started(self, name: str) -> None: ...
    def finished(self, run: VerifierRun) -> None: ...


class _Signals:
    """One-way signals by name; once closed, every name (asked before or after) counts as given."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}
        self._closed = False

    def _event(self, name: str) -> threading.Event:
        with self._lock:
            event = self._events.setdefault(name, threading.Event())
            if self._closed:
                event.set()
            return event

    def give(self, name: str) -> None:
        self._event(name).set()

    def wait(self, name: str) -> None:
        self._event(name).wait()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            events = list(self._events.values())
        for event in events:
            event.set()


@dataclass(frozen=True)
class Shared:
    """A file-local verifier's findings on the reference side, as the reading side takes them. When both sides
    carry files (`Reference.carried`), the findings on those are left out on both and only counted here."""

    config_hash: str
    findings: list[Finding]
    carried: tuple[int, int] | None = None  # (not suppressed, suppressed) on the carried files; None: none left out


class Reference:
    """A scan of a nearby tree (a gate's base) shared with another scan (its head): each file-local
    verifier's findings, so files with the same content there are neither looked up nor scanned again.

    The other way round, the reference waits until the reading scan's verifier has its own tool running
    (or needs none): the reference's work, mostly decoding cached findings, never delays that tool's start.

    `carried` are files with the same content on both sides, whose findings neither scan need hold: they are the
    same on both sides, and a diff pairs them with each other before anything else (fingerprint.match). A verifier
    carries them only where its configuration is the same on both sides (`head`'s config hash is the reference's)
    and the reference is a commit's whole tree (its cache entry counts the findings of each file): the reference
    decides, and says so in what it publishes. Each side then counts what it left out (Scan.carried)."""

    def __init__(
        self, files: dict[str, str], carried: AbstractSet[str] = frozenset(), head: Source | None = None,
    ) -> None:
        self.files = files
        self.carried: AbstractSet[str] = carried if head is not None else frozenset()
        self.head = head
        self._shared: dict[str, Shared] = {}
        self._done = _Signals()
        self._reader_going = _Signals()

    def reader_going(self, name: str) -> None:
        """The reading scan's `name` has started its tool, or has nothing of its own to run."""
        self._reader_going.give(name)

    def readers_done(self) -> None:
        """The reading scan is over, however it ended: nothing waits for it any more."""
        self._reader_going.close()

    def wait_for_reader(self, name: str) -> None:
        self._reader_going.wait(name)

    def publish(self, name: str, shared: Shared) -> None:
        self._shared[name] = shared
        self._done.give(name)

    def release(self, name: str) -> None:
        """The verifier is done on the reference side, whether or not it published anything."""
        self._done.give(name)

    def release_all(self) -> None:
        self._done.close()

    def findings(self, name: str, config_hash: str) -> Shared | None:
        self._done.wait(name)
        shared = self._shared.get(name)
        return shared if shared is not None and shared.config_hash == config_hash else None


def config_hash(verifier: Verifier, source: Source, version: str) -> str:
    """What a verifier's cached results hold for: its class, version, options and the repository's config files."""
    # a config entry names a file anywhere in the tree, or a directory whose files all count (.semgrep/)
    configs = source.named(frozenset(verifier.config_files))
    return ResultCache.key(type(verifier).__name__, version, verifier.config_fingerprint(), repr(configs))


def launch_entries(verifiers: list[Verifier], source: Source) -> list[dict[str, object]]:
    """How these verifiers scan files of `source` (a working tree), for a gate's launch plan (truthplane.truth.ahead):
    the verifiers that scan a subset of files through a built-in command spelling, and are usable."""
    entries: list[dict[str, object]] = []
    root = source.root()
    for verifier in verifiers:
        if not (verifier.file_local and verifier.incremental):
            continue
        info = verifier.available()
        if not info.installed or info.reason:
            continue
        try:
            recipe = verifier.recipe(root)
        except TruthplaneError:
            continue  # its configuration is wrong: the scan has said so
        if recipe is None:
            continue
        entries.append({
            "name": verifier.instance_name, "suffixes": list(verifier.suffixes),
            "warm": bool(getattr(verifier, "warm_start", False)),
            "config_files": list(verifier.config_files),
            "config_hash": config_hash(verifier, source, info.version or _executable_identity(info.path)),
            "recipe": recipe.to_json(),
        })
    return entries


class _Job:
    """One verifier over one source."""

    def __init__(self, verifier: Verifier, source: Source, config: Config, cache: ResultCache | None,
                 reference: Reference | None = None, share: Reference | None = None) -> None:
        self.verifier = verifier
        self.source = source
        self.config = config
        self.cache = cache
        self.reference = reference
        self.share = share
        self.cached_files = 0
        self.scanned_files: int | None = None
        self.used_config_hash: str | None = None
        self.carried: tuple[int, int] | None = None  # the findings left out on carried files (Reference.carried)

    def relevant(self) -> dict[str, str]:
        return self.source.suffixed(tuple(self.verifier.suffixes or ()))

    def config_hash(self, version: str) -> str:
        return config_hash(self.verifier, self.source, version)

    def scan(self, files: list[str] | None) -> list[Finding]:
        from truthplane.truth.fingerprint import annotate

        if self.reference is not None:
            self.reference.reader_going(self.verifier.instance_name)
        if files is not None and self.verifier.reads_only_given and self.source.export is not None:
            # a commit's tree is written as asked: these files and the verifier's configuration files
            configs = [path for path, _ in self.source.named(frozenset(self.verifier.config_files))]
            root = self.source.root([*files, *configs])
        else:
            root = self.source.root()
        result = self.verifier.scan(root, files)

        def read_source(path: str) -> bytes | None:
            full = root / path
            try:
                if full.is_symlink() or full.stat().st_size > MAX_SOURCE_BYTES:
                    return None
                return full.read_bytes()
            except OSError:
                return None

        excluded = Excluder(self.config.all_excludes())
        kept = [f for f in result.findings if not (f.path and excluded(f.path))]
        return annotate(kept, read_source)

    def run(self, version: str) -> list[Finding]:
        suffixes = tuple(self.verifier.suffixes or ())
        if suffixes and not self.source.count_suffixed(suffixes):
            self.scanned_files = 0
            return []
        if self.cache is None:
            self.scanned_files = self.source.count_suffixed(suffixes) if suffixes else None
            return self.scan(None)
        config_hash = self.used_config_hash = self.config_hash(version)
        if self.verifier.file_local:
            if not self.source.whole_tree_cacheable or (self.reference is not None and self.reference.carried):
                # a gate's head that carries files takes the rest from its base: it holds no whole tree to store
                return self._file_local(config_hash)
            # a commit's tree (a gate's base) is scanned again and again: one entry for all of it, by file
            carried = self._carried(config_hash, version)
            needed = self._not_carried(carried, suffixes)
            if needed is not None and len(needed) == self.source.count_suffixed(suffixes):
                carried, needed = frozenset(), None  # none of its files: the head has nothing to take from here either
            # a commit's listing is named by the commit and the excludes; the files a verifier reads of it, by its
            # suffixes: no need to hash every path of a large tree
            listed = self.source.listing
            tree_key = ResultCache.key("tree-files", config_hash, *(
                (listed, repr(self.verifier.suffixes)) if listed else (repr(sorted(self.relevant().items())),)))
            entry = self.cache.get_tree(tree_key, needed)
            if entry is None:
                findings = self._file_local(config_hash)
                self.cache.put_tree(tree_key, findings)
                entry = TreeEntry.split(findings, needed)
            else:
                self.cached_files = self.source.count_suffixed(suffixes)
            if carried:
                self.carried = (entry.carried_active, entry.carried_suppressed)
            return entry.findings
        relevant = self.relevant()
        if self.verifier.tree_cacheable:
            key = ResultCache.key("tree", config_hash, repr(sorted(relevant.items())))
            cached = self.cache.get(key)
            if cached is not None:
                self.cached_files = len(relevant)
                return cached
            findings = self.scan(None)
            self.scanned_files = len(relevant)
            self.cache.put(key, findings)
            return findings
        self.scanned_files = len(relevant) if self.verifier.suffixes else None
        return self.scan(None)

    def _not_carried(self, carried: Collection[str], suffixes: tuple[str, ...]) -> Collection[str] | None:
        """The files of this scan (a gate's base) that are not `carried`, among those its verifier reads; None when
        it carries none. For a head laid over this listing, from the paths that differ: the rest are alike."""
        if not carried:
            return None
        share = self.share
        if share is not None and share.head is not None and carried is share.carried:
            differ = share.head.differing_below(self.source, suffixes)
            if differ is not None:
                return differ
        return self.relevant().keys() - carried

    def _carried(self, own_hash: str, version: str) -> AbstractSet[str]:
        """The files this scan, the reference of a gate, leaves out (Reference.carried): none unless the other side's
        configuration of the verifier is the same as this one's."""
        share = self.share
        if share is None or not share.carried or share.head is None:
            return frozenset()
        if config_hash(self.verifier, share.head, version) != own_hash:
            return frozenset()
        return share.carried  # those this verifier does not read are in no entry of its anyway

    def _file_local(self, config_hash: str) -> list[Finding]:
        """Files with the same content as in the reference scan take its findings: only the rest are looked
        up in the cache or scanned, and the tool starts on those before the reference is even ready. For a listing
        laid over the reference's, what differs comes from the paths the change names, not from every file."""
        if self.reference is None:
            return self._per_file(self.relevant(), config_hash)
        suffixes = tuple(self.verifier.suffixes or ())
        changed = self.source.differing(self.reference.files, suffixes)
        alike: set[str] | None = None  # for a listing laid over the reference's, made only if its answer needs it
        if changed is None:
            relevant = self.relevant()
            alike = found = self.source.same_as(self.reference.files, relevant)
            changed = {p: relevant[p] for p in relevant.keys() - found}
            alike_count = len(found)
        else:
            alike_count = self.source.count_suffixed(suffixes) - len(changed)
        if not alike_count:
            return self._per_file(self.relevant(), config_hash)
        files = self.source.files

        def same(path: str) -> bool:
            if alike is not None:
                return path in alike
            return path not in changed and path in files and (not suffixes or path.endswith(suffixes))

        findings = self._per_file(changed, config_hash) if changed else []
        self.reference.reader_going(self.verifier.instance_name)
        shared = self.reference.findings(self.verifier.instance_name, config_hash)
        if shared is not None and shared.carried is not None:
            # the reference left out the files both sides have alike, and so does this side
            self.carried = shared.carried
            self.cached_files += alike_count
            self.scanned_files = self.scanned_files or 0
            return [f for f in findings if not same(f.path)]
        relevant = self.relevant()
        if alike is None:
            alike = self.source.same_as(self.reference.files, relevant)
        if shared is None:  # the reference did not run this verifier, or with another configuration
            scanned = self.scanned_files or 0
            findings = self._per_file(relevant, config_hash)  # what was just scanned is now a cache hit
            self.cached_files -= scanned
            self.scanned_files = (self.scanned_files or 0) + scanned
            return findings
        self.cached_files += len(alike)
        self.scanned_files = self.scanned_files or 0
        # a tool that cannot scan a subset reported on every file: the reference's findings stand for `alike`
        return [f for f in shared.findings if f.path in alike] + [f for f in findings if f.path not in alike]

    def _per_file(self, relevant: dict[str, str], config_hash: str) -> list[Finding]:
        assert self.cache is not None
        keys = {path: ResultCache.key("file", config_hash, path, blob) for path, blob in relevant.items()}
        cached = self.cache.get_many(list(keys.values()))
        findings: list[Finding] = []
        missing = []
        for path, key in keys.items():
            if key in cached:
                findings.extend(cached[key])
            else:
                missing.append(path)
        self.cached_files = len(keys) - len(missing)
        self.scanned_files = len(missing)
        if missing:
            fresh = self.scan(sorted(missing) if self.verifier.incremental else None)
            by_path: dict[str, list[Finding]] = {path: [] for path in (missing if self.verifier.incremental else keys)}
            for finding in fresh:
                by_path.setdefault(finding.path, []).append(finding)
            self.cache.put_many({keys[path]: items for path, items in by_path.items() if path in keys})
            findings = [f for f in findings if f.path not in by_path] + fresh
        return findings


def _apply_severity(findings: list[Finding], config: Config) -> list[Finding]:
    out = []
    for finding in findings:
        override = config.severity_override(finding.verifier, finding.rule_id)
        out.append(finding.model_copy(update={"severity": override}) if override else finding)
    return out


def _executable_identity(path: str | None) -> str:
    """Stands in for a version a tool does not tell: a changed executable invalidates the cache."""
    try:
        stat = os.stat(path) if path else None
    except OSError:
        stat = None
    return f"unversioned:{path}:{stat.st_size}:{stat.st_mtime_ns}" if stat else f"unversioned:{path}"


def run_verifier(
    verifier: Verifier, source: Source, config: Config, cache: ResultCache | None,
    *, reference: Reference | None = None, share: Reference | None = None,
    carried: dict[str, tuple[int, int]] | None = None,
) -> tuple[VerifierRun, list[Finding]]:
    """One verifier: a VerifierRun that says honestly how it went, and its findings.

    `reference` is a nearby scan whose findings this one may reuse; `share` is where this one offers its own.
    What a gate's scans leave out on the files both sides have alike (Reference.carried) is counted in `carried`.
    """
    try:
        if share is not None:
            share.wait_for_reader(verifier.instance_name)  # a scan reading this one starts its tools first
        return _run_verifier(verifier, source, config, cache, reference, share, {} if carried is None else carried)
    finally:
        if share is not None:
            share.release(verifier.instance_name)
        if reference is not None:
            reference.reader_going(verifier.instance_name)


def _run_verifier(
    verifier: Verifier, source: Source, config: Config, cache: ResultCache | None,
    reference: Reference | None, share: Reference | None, carried: dict[str, tuple[int, int]],
) -> tuple[VerifierRun, list[Finding]]:
    started = time.monotonic()
    name = verifier.instance_name
    info = verifier.available()
    if not info.installed or info.reason:
        status = ToolStatus.MISSING if not info.installed else ToolStatus.FAILED
        return VerifierRun(name=name, version=info.version, status=status, error=info.reason or "not usable"), []
    job = _Job(verifier, source, config, cache, reference, share)
    try:
        raw = job.run(info.version or _executable_identity(info.path))
        if share is not None and verifier.file_local and job.used_config_hash is not None:
            share.publish(name, Shared(job.used_config_hash, raw, job.carried))
        findings = _apply_severity(raw, config)
    except VerifierError as exc:
        status = ToolStatus(exc.status) if exc.status in ToolStatus._value2member_map_ else ToolStatus.FAILED
        return VerifierRun(
            name=name, version=info.version, status=status, error=exc.reason,
            duration_s=round(time.monotonic() - started, 3),
        ), []
    carried_active = job.carried[0] if job.carried else 0
    run = VerifierRun(
        name=name, version=info.version, status=ToolStatus.OK,
        count=sum(1 for f in findings if not f.suppressed) + carried_active,
        duration_s=round(time.monotonic() - started, 3),
        cached_files=job.cached_files, scanned_files=job.scanned_files,
    )
    if job.carried is not None:
        carried[name] = job.carried
    return run, findings


def scan(
    source: Source,
    config: Config,
    *,
    only: list[str] | None = None,
    cache: ResultCache | None = None,
    progress: Progress | None = None,
    context: VerifierContext | None = None,
    reference: Reference | None = None,
    share: Reference | None = None,
    verifiers: list[Verifier] | None = None,
) -> Scan:
    """Run every configured verifier (or `verifiers`, made for this configuration by the caller); a missing or
    crashed one is reported, never dropped."""
    from truthplane.verifiers.loader import create_verifiers

    if verifiers is None:
        verifiers = create_verifiers(config, context or VerifierContext(timeout_s=config.timeout_s), only)
    results: dict[str, tuple[VerifierRun, list[Finding]]] = {}
    carried: dict[str, tuple[int, int]] = {}

    def one(verifier: Verifier) -> None:
        if progress:
            progress.started(verifier.instance_name)
        run, findings = run_verifier(verifier, source, config, cache, reference=reference, share=share,
                                     carried=carried)
        results[verifier.instance_name] = (run, findings)
        if progress:
            progress.finished(run)

    try:
        with ThreadPoolExecutor(max_workers=max(1, len(verifiers)), thread_name_prefix="verifier") as pool:
            for future in [pool.submit(one, v) for v in verifiers]:
                future.result()
    finally:
        source.close()
    runs = [results[v.instance_name][0] for v in verifiers]
    findings = [f for v in verifiers for f in results[v.instance_name][1]]
    findings.sort(key=lambda f: (f.path, f.start_line or 0, f.verifier, f.rule_id, f.fingerprint))
    # the listing is kept as it was read, and sorted when written
    done = Scan(
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        commit=source.commit,
        dirty=source.dirty,
        verifiers=runs,
        findings=[f for f in findings if not f.suppressed],
        suppressed=[f for f in findings if f.suppressed],
        files=source.files,
    )
    done.carried = {name: counts for name, counts in carried.items() if results[name][0].status == ToolStatus.OK}
    return done

