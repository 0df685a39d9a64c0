"""Pairing two states' findings once their keys are known: counting per key, aligning uneven groups by the
line shifts of the pairs around them, files moved without git knowing, and findings on edited lines.

`truthplane.truth.fingerprint.match` decides which keys are tried in which order; this module only pairs.
"""

from __future__ import annotations

import bisect
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence

from truthplane.models import Finding

# hashes of the code just above and below the flagged lines: tells an edited line from a moved one
NEIGHBOURS_KEY = "truthplane/neighbours/v1"
# beyond this many candidate pairs in one key group, identical findings pair in line order
_MAX_ALIGNMENT = 250_000

Key = tuple[str, ...]


def line_number(value: int | None) -> int:
    return value if value is not None and value > 0 else 0


def pair_by_key(
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
        anchors[(before[i].path, after[j].path)].append(
            (line_number(before[i].start_line), line_number(after[j].start_line))
        )
    for shifts in anchors.values():
        shifts.sort()

    def cost(i: int, j: int) -> int:
        line = line_number(before[i].start_line)
        shifts = anchors.get((before[i].path, after[j].path), [])
        k = bisect.bisect_right(shifts, (line, sys.maxsize)) - 1
        shift = shifts[k][1] - shifts[k][0] if k >= 0 else shifts[0][1] - shifts[0][0] if shifts else 0
        return abs(line_number(after[j].start_line) - line - shift)

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


def pair_files(
    gone: Mapping[str, list[Finding]], appeared: Mapping[str, list[Finding]], context: Callable[[Finding], str],
) -> dict[str, str]:
    """Vanished file -> appeared file, best pairs first by the number of findings they have in common."""
    def keys(findings: list[Finding]) -> Counter[Key]:
        return Counter((f.verifier, f.rule_id, f.symbol, context(f)) for f in findings)

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


def edited_in_place(
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
    ordered = {path: sorted(pairs) for path, pairs in shifts.items()}
    # each old finding filed under the lines it could be on now and the code around it: a new finding looks
    # only at the few that could have been on its line, however many findings a file has left over
    places: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i in todo_before:
        f = old[i]
        # a finding read without its code (another tool's SARIF) cannot tell an edited line from a new one
        if f.identity or not f.context_hash or not line_number(f.start_line):
            continue
        key = (f.verifier, f.rule_id, moved(f), f.symbol)
        for line in _carried(line_number(f.start_line), ordered.get(moved(f), [])):
            places[(*key, "line", str(line))].append(i)
        for side, around in zip(("above", "below"), _around(f)):
            places[(*key, side, around)].append(i)
    pairs: list[tuple[int, int]] = []
    taken: set[int] = set()
    for j in todo_after:
        f = new[j]
        if not f.context_hash:
            continue
        key = (f.verifier, f.rule_id, f.path, f.symbol)
        near = places.get((*key, "line", str(line_number(f.start_line))), [])
        candidates = sorted({*near, *(i for side, around in zip(("above", "below"), _around(f))
                                      for i in places.get((*key, side, around), []))})
        for i in candidates:
            if i not in taken and _edited(old[i], f, ordered.get(f.path, [])):
                pairs.append((i, j))
                taken.add(i)
                break
    return pairs


def _carried(line: int, shifts: list[tuple[int, int]]) -> list[int]:
    """Where an old line is now, by the shifts of the findings kept nearest above and below it."""
    k = bisect.bisect_right(shifts, (line, sys.maxsize))
    return sorted({line + new - old for old, new in shifts[max(k - 1, 0) : k + 1]}) or [line]


def _around(finding: Finding) -> list[str]:
    """The hashes of the code above and below the finding, or none when annotate did not see its code."""
    around = finding.partial_fingerprints.get(NEIGHBOURS_KEY, "").split(":")
    return around if len(around) == 2 else []


def _edited(before: Finding, after: Finding, shifts: list[tuple[int, int]]) -> bool:
    """Whether `after` sits on the line `before` sat on, by the code around it or the findings kept around it."""
    now = line_number(after.start_line)
    carried = _carried(line_number(before.start_line), shifts)
    if now in carried:
        return True
    old_around, new_around = _around(before), _around(after)
    if not old_around or not new_around:
        return False
    kept = [a == b for a, b in zip(old_around, new_around)]
    # both neighbours as they were: the line between them was rewritten; one of them: only near the line carried
    within = not shifts or carried[0] <= now <= carried[-1]
    return all(kept) or (any(kept) and within)


def settle_alike(
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
