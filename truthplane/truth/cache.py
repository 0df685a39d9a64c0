"""Result cache: by (verifier, version, config hash, file content hash) for file-local tools, by tree
hash for whole-program tools. A corrupt entry is discarded and recomputed, never trusted."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from truthplane.models import Finding


_REPLACING = threading.Lock()  # held while a damaged database is replaced

# Entries decoded already, kept in memory by a process that lives long (`truthplane mcp`): a warm gate's base is
# thousands of findings that would otherwise be decoded again on every call. A key names its content (the tool,
# its version and configuration, the file or tree), so an entry remembered is never stale; findings are frozen.
MEMORY_FINDINGS = 300_000  # about 0.5 GB at most; the least recently used entries go first
_memory: OrderedDict[str, list[Finding]] | None = None
_memory_size = 0
_memory_lock = threading.Lock()


def remember_in_memory() -> None:
    """This process lives long and gates again and again: keep decoded entries in memory."""
    global _memory
    with _memory_lock:
        if _memory is None:
            _memory = OrderedDict()


def _recall(keys: list[str]) -> dict[str, list[Finding]]:
    if _memory is None:
        return {}
    found = {}
    with _memory_lock:
        for key in keys:
            entry = _memory.get(key)
            if entry is not None:
                _memory.move_to_end(key)
                found[key] = entry
    return found


def _remember(entries: dict[str, list[Finding]]) -> None:
    global _memory_size
    if _memory is None:
        return
    with _memory_lock:
        for key, findings in entries.items():
            size = len(findings) + 1
            if size > MEMORY_FINDINGS:
                continue
            previous = _memory.pop(key, None)
            if previous is not None:
                _memory_size -= len(previous) + 1
            _memory[key] = findings
            _memory_size += size
        while _memory_size > MEMORY_FINDINGS and _memory:
            _, dropped = _memory.popitem(last=False)
            _memory_size -= len(dropped) + 1


def _encode(findings: list[Finding]) -> bytes:
    """Findings as one line of compact JSON (ASCII: a lone surrogate a tool printed survives the trip)."""
    import json

    items = []
    for finding in findings:
        item = dict(finding.__dict__)
        item["severity"] = finding.severity.value
        items.append(item)
    return json.dumps(items, separators=(",", ":")).encode("ascii")


def _decode(body: bytes) -> list[Finding]:
    """What _encode wrote; ValueError (or TypeError) for anything else, and the entry is dropped."""
    import json

    from truthplane.models import Finding

    items = json.loads(body)
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise ValueError("not a list of findings")
    return [Finding(**item) for item in items]


def held_keys(path: Path, keys: list[str]) -> set[str]:
    """Which of `keys` the cache database at `path` has an entry for, without reading the entries: a guess
    for starting work ahead (an entry found damaged when it is read is still recomputed)."""
    import sqlite3

    if not keys or not path.is_file():
        return set()
    held: set[str] = set()
    try:
        conn = sqlite3.connect(path, timeout=1.0, isolation_level=None)
        try:
            for i in range(0, len(keys), ResultCache._CHUNK):
                chunk = keys[i:i + ResultCache._CHUNK]
                marks = ",".join("?" * len(chunk))
                held.update(k for (k,) in conn.execute(f"SELECT key FROM results WHERE key IN ({marks})", chunk))
        finally:
            conn.close()
    except sqlite3.Error:
        return set()
    return held


class ResultCache:
    """Findings stored under a key in one SQLite file, each row with its own checksum.

    Lookups are batched (a warm gate on a large repo reads thousands of entries). A row whose
    checksum does not match, or a database that cannot be read, is discarded and recomputed.
    """

    VERSION = (
        "3"  # part of every key: bumped when stored findings would differ (fingerprints' normalisation, suppression)
    )
    _CHUNK = 500  # SQLite's bound-parameter limit is far above this on every build
    _DECODE_CHUNK = 200  # findings per JSON line of a stored entry

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "results.sqlite3"
        self.hits = 0
        self.misses = 0
        self._local = threading.local()
        self._broken = False

    @staticmethod
    def key(*parts: str) -> str:
        import hashlib

        digest = hashlib.sha256(ResultCache.VERSION.encode())
        for part in parts:
            digest.update(b"\0" + part.encode("utf-8", "surrogateescape"))
        return digest.hexdigest()

    def _connect(self):  # noqa: ANN202 - sqlite3 is imported lazily
        import sqlite3

        from truthplane.databases import is_busy

        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            try:
                conn = self._open()
            except sqlite3.DatabaseError as exc:
                if is_busy(exc):
                    raise  # in use by another scan, not damaged: never discard it
                # not a database, or a damaged one: start over. Every verifier's thread finds it damaged at
                # once; one replaces it and the others open the new one, never deleting it in their turn
                with _REPLACING:
                    try:
                        conn = self._open()
                    except sqlite3.DatabaseError as again:
                        if is_busy(again):
                            raise
                        self._discard()
                        conn = self._open()
            self._local.conn = conn
        return conn

    def _open(self):  # noqa: ANN202
        import sqlite3

        from truthplane.databases import connect

        conn = connect(self.path)
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, checksum TEXT NOT NULL, body BLOB NOT NULL)"
            )
            # a commit's whole tree (put_tree): a row per file with findings, its totals in `results`
            conn.execute(
                "CREATE TABLE IF NOT EXISTS tree_files (tree TEXT NOT NULL, path TEXT NOT NULL, "
                "active INTEGER NOT NULL, suppressed INTEGER NOT NULL, checksum TEXT NOT NULL, body BLOB NOT NULL, "
                "PRIMARY KEY (tree, path)) WITHOUT ROWID"
            )
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def _discard(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def get_many(self, keys: list[str]) -> dict[str, list[Finding]]:
        import hashlib
        import sqlite3

        remembered = _recall(keys)
        if remembered:
            keys = [key for key in keys if key not in remembered]
            if not keys:
                self.hits += len(remembered)
                return remembered
        if self._broken or not keys:
            self.misses += len(keys)
            self.hits += len(remembered)
            return remembered
        found: dict[str, list[Finding]] = {}
        bad: list[str] = []
        try:
            conn = self._connect()
            for i in range(0, len(keys), self._CHUNK):
                chunk = keys[i:i + self._CHUNK]
                marks = ",".join("?" * len(chunk))
                for key, checksum, body in conn.execute(
                    f"SELECT key, checksum, body FROM results WHERE key IN ({marks})", chunk
                ):
                    if not isinstance(body, bytes) or hashlib.sha256(body).hexdigest() != checksum:
                        bad.append(key)
                        continue
                    try:
                        found[key] = [f for part in body.split(b"\n") for f in _decode(part)]
                    except (ValueError, TypeError):
                        bad.append(key)
            if bad:
                conn.executemany("DELETE FROM results WHERE key = ?", [(k,) for k in bad])
        except sqlite3.Error:
            self._broken = True  # only costs time: everything is recomputed
            found = {}
        _remember(found)
        self.hits += len(found) + len(remembered)
        self.misses += len(keys) - len(found)
        return {**remembered, **found}

    def get(self, key: str) -> list[Finding] | None:
        return self.get_many([key]).get(key)

    def put_many(self, entries: dict[str, list[Finding]]) -> None:
        import hashlib
        import sqlite3

        _remember(entries)
        if self._broken or not entries:
            return
        rows = []
        for key, findings in entries.items():
            # a long list is stored as lines of short JSON arrays (compact JSON has no raw newline): decoding
            # one holds the interpreter lock only briefly, so a big entry read by one thread never stalls
            # another that is about to start a tool
            chunks = [findings[i:i + self._DECODE_CHUNK] for i in range(0, len(findings), self._DECODE_CHUNK)]
            body = b"\n".join(_encode(chunk) for chunk in chunks or [[]])
            rows.append((key, hashlib.sha256(body).hexdigest(), body))
        try:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT OR REPLACE INTO results (key, checksum, body) VALUES (?, ?, ?)", rows)
            conn.execute("COMMIT")
        except sqlite3.Error:
            self._broken = True  # a cache that cannot be written only costs time next run

    def put(self, key: str, findings: list[Finding]) -> None:
        self.put_many({key: findings})

    def get_tree(self, key: str, needed: Collection[str] | None = None) -> TreeEntry | None:
        """A whole tree's findings stored by `put_tree`: those on the files in `needed` (all, without it) decoded,
        the others only counted. A gate needs only the files its two states do not have alike: the findings on the
        rest are the same on both sides (truthplane.truth.scanner.Reference.carried), and decoding them would
        only cost time. Each file's findings are a row of their own, so the rest are not even read."""
        import hashlib
        import json
        import sqlite3

        remembered = _recall([key]).get(key)
        if remembered is not None:
            self.hits += 1
            return TreeEntry.split(remembered, needed)
        if _memory is not None and needed is not None:
            # a process that gates again and again decodes the whole tree once and splits it in memory after
            whole = self.get_tree(key)
            return None if whole is None else TreeEntry.split(whole.findings, needed)
        if self._broken:
            self.misses += 1
            return None
        try:
            conn = self._connect()
            row = conn.execute("SELECT checksum, body FROM results WHERE key = ?", (key,)).fetchone()
            if row is None:
                self.misses += 1
                return None
            if needed is None:
                rows = conn.execute("SELECT path, active, suppressed, checksum, body FROM tree_files WHERE tree = ?",
                                    (key,)).fetchall()
            else:
                paths = list(needed)
                rows = []
                for i in range(0, len(paths), self._CHUNK):
                    chunk = paths[i:i + self._CHUNK]
                    rows += conn.execute(
                        "SELECT path, active, suppressed, checksum, body FROM tree_files WHERE tree = ? AND path IN "
                        f"({','.join('?' * len(chunk))})", [key, *chunk]).fetchall()
        except sqlite3.Error:
            self._broken = True
            self.misses += 1
            return None
        try:
            checksum, body = row
            if not isinstance(body, bytes) or hashlib.sha256(body).hexdigest() != checksum:
                raise ValueError("checksum")
            totals = json.loads(body)
            active, suppressed, files = (int(totals[name]) for name in ("active", "suppressed", "files"))
            if needed is None and len(rows) != files:
                raise ValueError("files")
            findings: list[Finding] = []
            for _path, file_active, file_suppressed, file_checksum, file_body in rows:
                if not isinstance(file_body, bytes) or hashlib.sha256(file_body).hexdigest() != file_checksum:
                    raise ValueError("checksum")
                findings.extend(_decode(file_body))
                active -= file_active
                suppressed -= file_suppressed
            if active < 0 or suppressed < 0:
                raise ValueError("counts")
        except (ValueError, TypeError, KeyError):
            self._drop_tree(key)
            self.misses += 1
            return None
        self.hits += 1
        if needed is None:
            _remember({key: findings})
            return TreeEntry(findings)
        return TreeEntry(findings, active, suppressed)

    def _drop_tree(self, key: str) -> None:
        import sqlite3

        try:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM results WHERE key = ?", (key,))
            conn.execute("DELETE FROM tree_files WHERE tree = ?", (key,))
            conn.execute("COMMIT")
        except sqlite3.Error:
            self._broken = True

    def put_tree(self, key: str, findings: list[Finding]) -> None:
        """Store a whole tree's findings, a row per file, and their totals under `key` (get_tree)."""
        import hashlib
        import json
        import sqlite3

        _remember({key: findings})
        if self._broken:
            return
        by_path: dict[str, list[Finding]] = {}
        for finding in findings:
            by_path.setdefault(finding.path, []).append(finding)
        rows = []
        for path, items in by_path.items():
            body = _encode(items)
            suppressed = sum(1 for f in items if f.suppressed)
            rows.append((key, path, len(items) - suppressed, suppressed, hashlib.sha256(body).hexdigest(), body))
        totals = json.dumps({"active": sum(r[2] for r in rows), "suppressed": sum(r[3] for r in rows),
                             "files": len(rows)}).encode()
        try:
            conn = self._connect()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("DELETE FROM tree_files WHERE tree = ?", (key,))
            conn.executemany("INSERT INTO tree_files (tree, path, active, suppressed, checksum, body) "
                             "VALUES (?, ?, ?, ?, ?, ?)", rows)
            # the totals last, in the same transaction: a reader finds the whole entry or none of it
            conn.execute("INSERT OR REPLACE INTO results (key, checksum, body) VALUES (?, ?, ?)",
                         (key, hashlib.sha256(totals).hexdigest(), totals))
            conn.execute("COMMIT")
        except sqlite3.Error:
            self._broken = True


@dataclass(frozen=True)
class TreeEntry:
    """What ResultCache.get_tree read: the findings on the files it decoded, and how many (not suppressed, and
    suppressed) are on the files it was told to leave out."""

    findings: list[Finding]
    carried_active: int = 0
    carried_suppressed: int = 0

    @classmethod
    def split(cls, findings: list[Finding], needed: Collection[str] | None) -> TreeEntry:
        """The findings on the files in `needed` (all without it); the others counted."""
        if needed is None:
            return cls(list(findings))
        kept = [f for f in findings if f.path in needed]
        left = [f for f in findings if f.path not in needed]
        return cls(kept, sum(1 for f in left if not f.suppressed), sum(1 for f in left if f.suppressed))
