"""`truthplane gc`: remove old logs the evidence no longer needs, keeping everything `verify` checks."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from truthplane.errors import UsageError
from truthplane.evidence.ledger import LEDGER_FORMAT, load_chain
from truthplane.paths import RESULTS_DIR
from truthplane.store import Store


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> float:
    """'24h', '7d', '90m', '30s', '2w' -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise UsageError(f"{text!r} is not an age: use a number and a unit, e.g. 24h, 7d, 90m")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass
class GcResult:
    removed: list[tuple[str, int]] = field(default_factory=list)  # (repo-relative path, bytes)

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.removed)


def gc(root: Path, older_than_s: float, *, dry_run: bool = False, now: float | None = None) -> GcResult:
    """Remove log files (kind "log": full diffs, stdout/stderr) whose every run is older than the cutoff,
    and orphaned logs and temporary files older than it. Records, attestations, the head, the history and
    every other evidence file (SARIF, ...) stay, so `verify` still checks the chain and every hash; it
    reports a removed log as removed by gc, because the history marks it `pruned_at`."""
    stamp = time.time() if now is None else now
    cutoff = stamp - older_than_s
    results = root / RESULTS_DIR
    result = GcResult()
    with Store.open(root=root) as store, store.write() as db:
        rows = db.execute(
            "SELECT e.path, MAX(r.recorded_at) FROM evidence_files e JOIN runs r ON r.run_id = e.run_id"
            " WHERE e.kind = 'log' GROUP BY e.path").fetchall()
        known = {str(r[0]) for r in rows}
        for path, newest in rows:
            target = root / str(path)
            if newest >= cutoff or not target.is_file():
                continue
            result.removed.append((str(path), target.stat().st_size))
            if not dry_run:
                db.execute(
                    "UPDATE evidence_files SET pruned_at = ? WHERE path = ? AND pruned_at IS NULL", (stamp, path)
                )
                target.unlink()
        referenced = {str(i.get("path")) for entry in load_chain(results).entries if entry.record
                      and entry.record.get("ledger_format") == LEDGER_FORMAT
                      for i in entry.record.get("evidence_files") or [] if isinstance(i, dict)}
        leftovers = [*results.glob("logs/*.log"), *results.glob(".*.tmp"), *results.glob("logs/.*.tmp")]
        for target in leftovers:
            rel = target.relative_to(root).as_posix()
            if rel in known or rel in referenced or target.stat().st_mtime >= cutoff:
                continue
            result.removed.append((rel, target.stat().st_size))
            if not dry_run:
                target.unlink()
    return result
