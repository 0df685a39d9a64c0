"""Stable finding identity and matching.

`annotate` gives every finding a context hash (what the flagged code *is*, not where it is), the
enclosing symbol, a path-free fingerprint and SARIF partial fingerprints. `match` pairs the findings
of two states in a cascade of ever looser keys, counting per key, so moves, renames and reformatting
keep a finding's identity while an edit of the flagged code makes it new (or updated, when it is still
reported on the edited line).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence

from truthplane.truth import _tokens
from truthplane.truth._github_hash import github_line_hashes, numbered_github_hashes
from truthplane.truth._pairing import (
    NEIGHBOURS_KEY,
    Key,
    edited_in_place,
    line_number,
    pair_by_key,
    pair_files,
    settle_alike,
)
from truthplane.models import Diff, Finding

__all__ = ["FINGERPRINT_KEY", "GITHUB_KEY", "NEIGHBOURS_KEY", "annotate", "github_line_hashes", "match"]

FINGERPRINT_KEY = "truthplane/v1"
GITHUB_KEY = "primaryLocationLineHash"
_FINGERPRINT_LENGTH = 32


def _sha256(*parts: str) -> str:
    return hashlib.sha256("\x1e".join(parts).encode("utf-8", errors="surrogatepass")).hexdigest()


def _order(finding: Finding) -> tuple[object, ...]:
    return (
        finding.path, line_number(finding.start_line), finding.start_column or 0, finding.rule_id,
        finding.verifier, line_number(finding.end_line), finding.end_column or 0, finding.message, finding.identity,
    )


# ---- annotate -----------------------------------------------------------------------------------


class _Files:
    """Each file read once per annotate() call; its parse shared with other calls on the same content."""

    def __init__(self, read_source: Callable[[str], bytes | None]) -> None:
        self._read_source = read_source
        self._contents: dict[str, bytes | None] = {}
        self._sources: dict[str, _tokens.SourceFile | None] = {}
        self._github: dict[str, tuple[str, ...] | None] = {}

    def content(self, path: str) -> bytes | None:
        if path not in self._contents:
            content = self._read_source(path) if path else None
            self._contents[path] = content.encode("utf-8") if isinstance(content, str) else content
        return self._contents[path]

    def source(self, path: str) -> _tokens.SourceFile | None:
        if path not in self._sources:
            content = self.content(path)
            self._sources[path] = None if content is None else _tokens.load_shared(path, content)
        return self._sources[path]

    def github(self, path: str) -> tuple[str, ...] | None:
        """Per line, GitHub's hash with its 1-based occurrence among the file's lines."""
        if path not in self._github:
            content = self.content(path)
            self._github[path] = None if content is None else numbered_github_hashes(content)
        return self._github[path]

    def forget(self, path: str) -> None:
        """The file's content and parse are not needed any more."""
        self._contents.pop(path, None)
        self._sources.pop(path, None)
        self._github.pop(path, None)


def _context_without_source(finding: Finding) -> tuple[str, str | None]:
    """(context_hash, fingerprint base if one is already known) for a finding whose code is not at hand."""
    if finding.context_hash:
        return finding.context_hash, None
    partials = finding.partial_fingerprints
    if partials.get(FINGERPRINT_KEY):
        own = partials[FINGERPRINT_KEY].split(":")[0]
        return _sha256("truthplane", own), own
    if partials.get(GITHUB_KEY):
        return _sha256("github", partials[GITHUB_KEY].split(":")[0]), None
    if partials:
        name = min(partials)
        return _sha256("partial", name, partials[name]), None
    return _sha256("message", finding.message), None


def _context(finding: Finding, files: _Files) -> tuple[str, str, str | None]:
    """(context_hash, symbol, known fingerprint base) of one finding."""
    start = line_number(finding.start_line)
    source = files.source(finding.path)
    if source is None or start == 0:
        context, known = _context_without_source(finding)
        return context, finding.symbol if source is None else "", known
    end = max(line_number(finding.end_line), start)
    symbol = source.symbol_at(start)
    tokens = None
    if _tokens.is_python(finding.path):
        tokens = _tokens.python_context(source, start, end, finding.start_column, finding.end_column)
    if tokens is not None:
        return _sha256("python", tokens), symbol, None
    return _sha256("text", _tokens.text_context(source.lines, start, end)), symbol, None


def _base(finding: Finding, context: str, symbol: str) -> str:
    if finding.identity:
        return _sha256("identity", finding.verifier, finding.rule_id, finding.identity)[:_FINGERPRINT_LENGTH]
    return _sha256("finding", finding.verifier, finding.rule_id, symbol, context)[:_FINGERPRINT_LENGTH]


def annotate(findings: Sequence[Finding], read_source: Callable[[str], bytes | None]) -> list[Finding]:
    """Return copies with context_hash, symbol, fingerprint and partial_fingerprints filled in.

    read_source(path) gives the scanned content of a repo-relative path, or None (file unknown/binary).
    The fingerprint is path-free (rename-stable); ':N' numbers equal fingerprints within one file in
    line order, from 0.
    """
    files = _Files(read_source)
    by_path: dict[str, list[int]] = {}
    for index, finding in enumerate(findings):
        by_path.setdefault(finding.path, []).append(index)
    annotated: list[Finding | None] = [None] * len(findings)
    # a file at a time, and forgotten once its findings are done: a full scan of a large repository has findings
    # in thousands of files, and their parses together would not fit in memory
    for path, indices in by_path.items():
        computed: dict[int, tuple[str, str, str]] = {}
        for index in indices:
            context, symbol, known_base = _context(findings[index], files)
            computed[index] = (context, symbol, known_base or _base(findings[index], context, symbol))
        occurrence: dict[int, int] = {}
        seen: Counter[str] = Counter()
        for index in sorted(indices, key=lambda i: _order(findings[i])):
            occurrence[index] = seen[computed[index][2]]
            seen[computed[index][2]] += 1
        for index in indices:
            finding = findings[index]
            context, symbol, base = computed[index]
            partials = {**finding.partial_fingerprints, FINGERPRINT_KEY: base}
            start = line_number(finding.start_line)
            github = files.github(finding.path) if start else None
            if github is not None and start <= len(github):
                partials[GITHUB_KEY] = github[start - 1]
            source = files.source(finding.path) if start else None
            if source is not None:
                end = max(line_number(finding.end_line), start)
                above, below = _tokens.neighbours(source, _tokens.is_python(finding.path), start, end)
                partials[NEIGHBOURS_KEY] = f"{_sha256(above)[:16]}:{_sha256(below)[:16]}"
            annotated[index] = finding.model_copy(update={
                "context_hash": context,
                "symbol": symbol,
                "fingerprint": f"{base}:{occurrence[index]}",
                "partial_fingerprints": dict(sorted(partials.items())),
            })
        files.forget(path)
    return [finding for finding in annotated if finding is not None]


# ---- match --------------------------------------------------------------------------------------


def _match_base(finding: Finding) -> str:
    """The fingerprint without ':N'; computed from the fields for a finding annotate() never saw."""
    if finding.fingerprint:
        return finding.fingerprint.split(":")[0]
    return _base(finding, _match_context(finding), finding.symbol)


def _match_context(finding: Finding) -> str:
    return finding.context_hash or _context_without_source(finding)[0]


def match(
    before: Sequence[Finding],
    after: Sequence[Finding],
    renames: Mapping[str, str] | None = None,
    *,
    before_files: Iterable[str] | None = None,
    after_files: Iterable[str] | None = None,
    same_files: Iterable[str] | None = None,
) -> Diff:
    """Pair findings of two states: Diff(new=after-only, fixed=before-only, unchanged=after side of pairs).

    `renames` maps old path -> new path (from git's rename detection), may be None. `before_files` and
    `after_files` are the paths that exist in each state; without them the findings' paths stand in.
    `same_files` are paths whose content is identical in both states: there, a finding reported exactly
    alike on both sides is paired first (the bulk of a gate, at the cost of a dict lookup).

    Each pass sees only what the earlier ones left: (1) the tool's identity; (2) path after renames +
    fingerprint (rule, symbol, context); (3) path + context, for code moved between functions; (4) files
    that vanished paired with files that appeared by shared fingerprints, for moves git did not report;
    (5) across the files the change touched, fingerprint, then context + the code around it, then context
    alone, for code moved to a file that
    already existed or still exists (only what the in-file passes left over: a copy stays new).
    A finding whose flagged code was edited is new, and the old one fixed, except one left over on a line
    the change edited with the same rule in the same symbol on both sides: updated (see _pairing.edited_in_place).
    """
    renames = dict(renames or {})
    settled: list[Finding] = []
    same: set[str] = set()
    if same_files is not None:
        same = set(same_files) - set(renames) - set(renames.values())
        before, after, settled = settle_alike(before, after, same)
    old = sorted(before, key=_order)
    new = sorted(after, key=_order)
    todo_before = list(range(len(old)))
    todo_after = list(range(len(new)))
    matched: list[int] = []
    shifts: dict[str, list[tuple[int, int]]] = defaultdict(list)  # per file kept in place: (old line, new line)

    def moved(finding: Finding) -> str:
        return renames.get(finding.path, finding.path)

    def run(key_before: Callable[[Finding], Key | None], key_after: Callable[[Finding], Key | None]) -> None:
        nonlocal todo_before, todo_after
        pairs = pair_by_key(old, new, todo_before, todo_after, key_before, key_after)
        for i, j in pairs:
            if moved(old[i]) == new[j].path:
                shifts[new[j].path].append((line_number(old[i].start_line), line_number(new[j].start_line)))
        done_before = {i for i, _ in pairs}
        done_after = {j for _, j in pairs}
        matched.extend(done_after)
        todo_before = [i for i in todo_before if i not in done_before]
        todo_after = [j for j in todo_after if j not in done_after]

    def by_identity(f: Finding) -> Key | None:
        return (f.verifier, f.rule_id, f.identity) if f.identity else None

    def by_fingerprint(path: Callable[[Finding], str]) -> Callable[[Finding], Key | None]:
        return lambda f: None if f.identity else (f.verifier, f.rule_id, path(f), _match_base(f))

    def by_context(path: Callable[[Finding], str]) -> Callable[[Finding], Key | None]:
        return lambda f: None if f.identity else (f.verifier, f.rule_id, path(f), _match_context(f))

    def here(f: Finding) -> str:
        return f.path

    if same_files is not None:
        def alike(f: Finding) -> Key | None:
            if f.path not in same:
                return None
            return (
                f.verifier,
                f.rule_id,
                f.path,
                f.fingerprint,
                f.identity,
                str(f.start_line),
                str(f.start_column),
                f.message,
            )

        run(alike, alike)
    run(by_identity, by_identity)
    run(by_fingerprint(moved), by_fingerprint(here))
    run(by_context(moved), by_context(here))

    # a move git did not report: pair vanished files with appeared ones by the findings they share
    after_paths = set(after_files) if after_files is not None else {f.path for f in new}
    before_paths = {renames.get(p, p) for p in (before_files if before_files is not None else {f.path for f in old})}
    gone: dict[str, list[Finding]] = defaultdict(list)
    appeared: dict[str, list[Finding]] = defaultdict(list)
    for i in todo_before:
        if not old[i].identity and moved(old[i]) not in after_paths:
            gone[moved(old[i])].append(old[i])
    for j in todo_after:
        if not new[j].identity and new[j].path not in before_paths:
            appeared[new[j].path].append(new[j])
    file_pairs = pair_files(gone, appeared, _match_context)
    if file_pairs:
        def paired(f: Finding) -> str:
            return file_pairs.get(moved(f), moved(f))

        run(by_fingerprint(paired), by_fingerprint(here))
        run(by_context(paired), by_context(here))

    if todo_before and todo_after:
        # code moved between files that both stay (a function extracted, a class moved, tests split): the same
        # rule on the same flagged code, the symbol first, then the code around it; a copy leaves nothing
        # unmatched at its origin
        def movable(f: Finding) -> bool:
            return not f.identity and f.path not in same and _from_code(f)

        def anywhere(f: Finding) -> str:
            return ""

        def by_surroundings(f: Finding) -> Key | None:
            around = f.partial_fingerprints.get(NEIGHBOURS_KEY)
            return None if around is None else (f.verifier, f.rule_id, _match_context(f), around)

        run(_only(movable, by_fingerprint(anywhere)), _only(movable, by_fingerprint(anywhere)))
        run(_only(movable, by_surroundings), _only(movable, by_surroundings))
        run(_only(movable, by_context(anywhere)), _only(movable, by_context(anywhere)))

    updated = edited_in_place(old, new, todo_before, todo_after, shifts, moved) if todo_before and todo_after else []
    gone_before = {i for i, _ in updated}
    updated_after = {j for _, j in updated}
    matched_set = set(matched)
    unchanged = [f for j, f in enumerate(new) if j in matched_set]
    return Diff(
        new=[new[j] for j in todo_after if j not in updated_after],
        fixed=[old[i] for i in todo_before if i not in gone_before],
        unchanged=sorted(settled + unchanged, key=_order) if settled else unchanged,
        updated=[new[j] for j in sorted(updated_after)],
    )


def _only(keep: Callable[[Finding], bool], key: Callable[[Finding], Key | None]) -> Callable[[Finding], Key | None]:
    return lambda f: key(f) if keep(f) else None


def _from_code(finding: Finding) -> bool:
    """Whether the finding's context stands for its flagged code, not merely its message."""
    return _match_context(finding) != _sha256("message", finding.message)


