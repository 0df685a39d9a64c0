"""Stable finding identity and matching.

`annotate` gives every finding a context hash (what the flagged code *is*, not where it is), the
enclosing symbol, a path-free fingerprint and SARIF partial fingerprints. `match` pairs the findings
of two states in a cascade of ever looser keys, counting per key, so moves, renames and reformatting
keep a finding's identity while an edit of the flagged code makes it new.
"""

from __future__ import annotations

import bisect
import hashlib
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence

from truthplane import _source
from truthplane._github_hash import github_line_hashes, numbered_github_hashes
from truthplane.models import Diff, Finding

__all__ = ["FINGERPRINT_KEY", "GITHUB_KEY", "NEIGHBOURS_KEY", "annotate", "github_line_hashes", "match"]

FINGERPRINT_KEY = "truthplane/v1"
GITHUB_KEY = "primaryLocationLineHash"
# hashes of the code just above and below the flagged lines: tells an edited line from a moved one
NEIGHBOURS_KEY = "truthplane/neighbours/v1"
_FINGERPRINT_LENGTH = 32
# beyond this many candidate pairs in one key group, identical findings pair in line order
_MAX_ALIGNMENT = 250_000

Key = tuple[str, ...]


def _sha256(*parts: str) -> str:
    return hashlib.sha256("\x1e".join(parts).encode("utf-8", errors="surrogatepass")).hexdigest()


def _line(value: int | None) -> int:
    return value if value is not None and value > 0 else 0


def _order(finding: Finding) -> tuple[object, ...]:
    return (
        finding.path, _line(finding.start_line), finding.start_column or 0, finding.rule_id,
        finding.verifier, _line(finding.end_line), finding.end_column or 0, finding.message, finding.identity,
    )


# ---- annotate -----------------------------------------------------------------------------------


class _Files:
    """Each file read once per annotate() call; its parse shared with other calls on the same content."""

    def __init__(self, read_source: Callable[[str], bytes | None]) -> None:
        self._read_source = read_source
        self._contents: dict[str, bytes | None] = {}
        self._sources: dict[str, _source.SourceFile | None] = {}

    def content(self, path: str) -> bytes | None:
        if path not in self._contents:
            content = self._read_source(path) if path else None
            self._contents[path] = content.encode("utf-8") if isinstance(content, str) else content
        return self._contents[path]

    def source(self, path: str) -> _source.SourceFile | None:
        if path not in self._sources:
            content = self.content(path)
            self._sources[path] = None if content is None else _source.load_shared(path, content)
        return self._sources[path]

    def github(self, path: str) -> tuple[str, ...] | None:
        """Per line, GitHub's hash with its 1-based occurrence among the file's lines."""
        content = self.content(path)
        return None if content is None else numbered_github_hashes(content)


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
    start = _line(finding.start_line)
    source = files.source(finding.path)
    if source is None or start == 0:
        context, known = _context_without_source(finding)
        return context, finding.symbol if source is None else "", known
    end = max(_line(finding.end_line), start)
    symbol = source.symbol_at(start)
    tokens = None
    if _source.is_python(finding.path):
        tokens = _source.python_context(source, start, end, finding.start_column, finding.end_column)
    if tokens is not None:
        return _sha256("python", tokens), symbol, None
    return _sha256("text", _source.text_context(source.lines, start, end)), symbol, None


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
    computed: list[tuple[str, str, str]] = []
    for finding in findings:
        context, symbol, known_base = _context(finding, files)
        computed.append((context, symbol, known_base or _base(finding, context, symbol)))

    occurrence: dict[int, int] = {}
    seen: Counter[tuple[str, str]] = Counter()
    for index in sorted(range(len(findings)), key=lambda i: _order(findings[i])):
        key = (findings[index].path, computed[index][2])
        occurrence[index] = seen[key]
        seen[key] += 1

    annotated = []
    for index, finding in enumerate(findings):
        context, symbol, base = computed[index]
        partials = {**finding.partial_fingerprints, FINGERPRINT_KEY: base}
        start = _line(finding.start_line)
        github = files.github(finding.path) if start else None
        if github is not None and start <= len(github):
            partials[GITHUB_KEY] = github[start - 1]
        source = files.source(finding.path) if start else None
        if source is not None:
            end = max(_line(finding.end_line), start)
            above, below = _source.neighbours(source, _source.is_python(finding.path), start, end)
            partials[NEIGHBOURS_KEY] = f"{_sha256(above)[:16]}:{_sha256(below)[:16]}"
        annotated.append(finding.model_copy(update={
            "context_hash": context,
            "symbol": symbol,
            "fingerprint": f"{base}:{occurrence[index]}",
            "partial_fingerprints": dict(sorted(partials.items())),
        }))
    return annotated


# ---- match --------------------------------------------------------------------------------------


def _match_base(finding: Finding) -> str:
    """The fingerprint without ':N'; computed from the fields for a finding annotate() never saw."""
    if finding.fingerprint:
        return finding.fingerprint.split(":")[0]
    return _base(finding, _match_context(finding), finding.symbol)


def _match_context(finding: Finding) -> str:
    return finding.context_hash or _context_without_source(finding)[0]


def _pair(
    before: list[Finding], after: list[Finding], todo_before: list[int], todo_after: list[int],
    key_before: Callable[[Finding], Key | None], key_after: Callable[[Finding], Key | None],
) -> list[tuple[int, int]]:
    """Pair by equal key, counting per key: never a set comparison.

    A key with as many findings on both sides pairs them in (path, line) order. Where the counts
    differ, the pairing that best follows the line shifts of the other pairs in the same files wins,
    so the finding reported new (or fixed) is the one that was really added (or removed).
    """
    olds: dict[Key, list[int]] = defaultdict(list)
    news: dict[Key, list[int]] = defaultdict(list)
    for i in todo_before:
        key = key_before(before[i])
        if key is not None:
            olds[key].append(i)
    for j in todo_after:
        key = key_after(after[j])
        if key is not None and key in olds:
            news[key].append(j)
    pairs: list[tuple[int, int]] = []
    uneven = []
    for key, new_side in news.items():
        if len(olds[key]) == len(new_side):
            pairs.extend(zip(olds[key], new_side))
        else:
            uneven.append((olds[key], new_side))
    if not uneven:
        return pairs
    anchors: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    for i, j in pairs:
        anchors[(before[i].path, after[j].path)].append((_line(before[i].start_line), _line(after[j].start_line)))
    for shifts in anchors.values():
        shifts.sort()

    def cost(i: int, j: int) -> int:
        line = _line(before[i].start_line)
        shifts = anchors.get((before[i].path, after[j].path), [])
        k = bisect.bisect_right(shifts, (line, sys.maxsize)) - 1
        shift = shifts[k][1] - shifts[k][0] if k >= 0 else shifts[0][1] - shifts[0][0] if shifts else 0
        return abs(_line(after[j].start_line) - line - shift)

    for old_side, new_side in uneven:
        pairs.extend(_align(old_side, new_side, cost))
    return pairs


def _align(olds: list[int], news: list[int], cost: Callable[[int, int], int]) -> list[tuple[int, int]]:
    """The order-preserving pairing of min(len) findings with the least total line displacement."""
    if len(olds) * len(news) > _MAX_ALIGNMENT:
        return list(zip(olds, news))
    flip = len(olds) > len(news)
    short, long = (news, olds) if flip else (olds, news)

    def weight(a: int, b: int) -> int:
        return cost(long[b], short[a]) if flip else cost(short[a], long[b])

    m, n = len(short), len(long)
    inf = sys.maxsize
    table = [[0] * (n + 1)] + [[inf] * (n + 1) for _ in range(m)]
    for a in range(1, m + 1):
        for b in range(a, n + 1):
            table[a][b] = min(table[a][b - 1], table[a - 1][b - 1] + weight(a - 1, b - 1))
    pairs = []
    a, b = m, n
    while a > 0:
        if b > a and table[a][b] == table[a][b - 1]:
            b -= 1
            continue
        pairs.append((long[b - 1], short[a - 1]) if flip else (short[a - 1], long[b - 1]))
        a, b = a - 1, b - 1
    return pairs[::-1]


def _file_pairs(gone: Mapping[str, list[Finding]], appeared: Mapping[str, list[Finding]]) -> dict[str, str]:
    """Vanished file -> appeared file, best pairs first by the number of findings they have in common."""
    def keys(findings: list[Finding]) -> Counter[Key]:
        return Counter((f.verifier, f.rule_id, f.symbol, _match_context(f)) for f in findings)

    holders: dict[Key, list[tuple[str, int]]] = defaultdict(list)
    for path, findings in appeared.items():
        for key, count in keys(findings).items():
            holders[key].append((path, count))
    shared: Counter[tuple[str, str]] = Counter()
    for gone_path, findings in gone.items():
        for key, count in keys(findings).items():
            for appeared_path, other in holders.get(key, []):
                shared[(gone_path, appeared_path)] += min(count, other)
    pairs: dict[str, str] = {}
    taken: set[str] = set()
    for (gone_path, appeared_path), _ in sorted(shared.items(), key=lambda item: (-item[1], item[0])):
        if gone_path not in pairs and appeared_path not in taken:
            pairs[gone_path] = appeared_path
            taken.add(appeared_path)
    return pairs


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
    (5) across the files the change touched, fingerprint then context alone, for code moved to a file that
    already existed or still exists (only what the in-file passes left over: a copy stays new).
    A finding whose flagged code was edited is new, and the old one fixed, except one left over on a line
    the change edited with the same rule in the same symbol on both sides: updated (see _edited_in_place).
    """
    renames = dict(renames or {})
    settled: list[Finding] = []
    same: set[str] = set()
    if same_files is not None:
        same = set(same_files) - set(renames) - set(renames.values())
        before, after, settled = _settle_alike(before, after, same)
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
        pairs = _pair(old, new, todo_before, todo_after, key_before, key_after)
        for i, j in pairs:
            if moved(old[i]) == new[j].path:
                shifts[new[j].path].append((_line(old[i].start_line), _line(new[j].start_line)))
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
            return (f.verifier, f.rule_id, f.path, f.fingerprint, f.identity, str(f.start_line), str(f.start_column), f.message)

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
    file_pairs = _file_pairs(gone, appeared)
    if file_pairs:
        def paired(f: Finding) -> str:
            return file_pairs.get(moved(f), moved(f))

        run(by_fingerprint(paired), by_fingerprint(here))
        run(by_context(paired), by_context(here))

    if todo_before and todo_after:
        # code moved between files that both stay (a function extracted, a class moved, tests split): the same
        # rule on the same flagged code, the symbol first; a copy leaves nothing unmatched at its origin
        def movable(f: Finding) -> bool:
            return not f.identity and f.path not in same and _from_code(f)

        def anywhere(f: Finding) -> str:
            return ""

        run(_only(movable, by_fingerprint(anywhere)), _only(movable, by_fingerprint(anywhere)))
        run(_only(movable, by_context(anywhere)), _only(movable, by_context(anywhere)))

    updated = _edited_in_place(old, new, todo_before, todo_after, shifts, moved) if todo_before and todo_after else []
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


def _edited_in_place(
    old: list[Finding], new: list[Finding], todo_before: list[int], todo_after: list[int],
    shifts: Mapping[str, list[tuple[int, int]]], moved: Callable[[Finding], str],
) -> list[tuple[int, int]]:
    """Pairs (old, new) of one rule in one symbol where the change edited the old finding's line.

    Two stored baselines carry no code, so "edited" is read from the findings: the flagged code differs
    (else an earlier pass had paired them), and the new finding sits where the old one sat: the code just
    above and just below it is what it was (annotate keeps their hashes in the partial fingerprints), or
    the old line, carried by the shift of the nearest finding kept in place above or below it in the same
    file, is the new finding's line. One to one, in line order.
    """
    olds: dict[Key, list[int]] = defaultdict(list)
    for i in todo_before:
        f = old[i]
        if not f.identity and _line(f.start_line):
            olds[(f.verifier, f.rule_id, moved(f), f.symbol)].append(i)
    ordered = {path: sorted(pairs) for path, pairs in shifts.items()}
    pairs: list[tuple[int, int]] = []
    taken: set[int] = set()
    for j in todo_after:
        f = new[j]
        for i in olds.get((f.verifier, f.rule_id, f.path, f.symbol), []):
            if i not in taken and _edited(old[i], f, ordered.get(f.path, [])):
                pairs.append((i, j))
                taken.add(i)
                break
    return pairs


def _edited(before: Finding, after: Finding, shifts: list[tuple[int, int]]) -> bool:
    """Whether `after` sits on the line `before` sat on, by the code around it or the findings kept around it."""
    line, now = _line(before.start_line), _line(after.start_line)
    k = bisect.bisect_right(shifts, (line, sys.maxsize))
    carried = sorted({line + new - old for old, new in shifts[max(k - 1, 0) : k + 1]}) or [line]
    if now in carried:
        return True
    old_around = before.partial_fingerprints.get(NEIGHBOURS_KEY, "").split(":")
    new_around = after.partial_fingerprints.get(NEIGHBOURS_KEY, "").split(":")
    if len(old_around) != 2 or len(new_around) != 2:
        return False
    kept = [a == b for a, b in zip(old_around, new_around)]
    # both neighbours as they were: the line between them was rewritten; one of them: only near the line carried
    within = not shifts or carried[0] <= now <= carried[-1]
    return all(kept) or (any(kept) and within)


def _only(keep: Callable[[Finding], bool], key: Callable[[Finding], Key | None]) -> Callable[[Finding], Key | None]:
    return lambda f: key(f) if keep(f) else None


def _from_code(finding: Finding) -> bool:
    """Whether the finding's context stands for its flagged code, not merely its message."""
    return _match_context(finding) != _sha256("message", finding.message)


def _settle_alike(
    before: Sequence[Finding], after: Sequence[Finding], same: set[str],
) -> tuple[list[Finding], list[Finding], list[Finding]]:
    """Files in `same` (the same content on both sides) whose findings are alike on both sides, finding for
    finding, are unchanged as they stand: what the first pass would pair anyway, without sorting and keying
    the bulk of a gate. Returns what is left to match on each side, and the settled findings."""
    rest_before: list[Finding] = []
    rest_after: list[Finding] = []
    olds: dict[str, list[Finding]] = defaultdict(list)
    news: dict[str, list[Finding]] = defaultdict(list)
    for finding in before:
        (olds[finding.path] if finding.path in same else rest_before).append(finding)
    for finding in after:
        (news[finding.path] if finding.path in same else rest_after).append(finding)
    settled: list[Finding] = []
    for path, old_side in olds.items():
        new_side = news.pop(path, [])
        # usually the very same objects: the head took them from the base's scan
        if len(old_side) == len(new_side) and all(a is b or a == b for a, b in zip(old_side, new_side)):
            settled.extend(new_side)
        else:
            rest_before.extend(old_side)
            rest_after.extend(new_side)
    for new_side in news.values():
        rest_after.extend(new_side)
    return rest_before, rest_after, settled
