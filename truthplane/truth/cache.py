"""Result cache: by (verifier, version, config hash, file content hash) for file-local tools, by tree
hash for whole-program tools. A corrupt entry is discarded and recomputed, never trusted."""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from truthplane.models import Finding


_REPLACING = threading.Lock()  # held while a damaged database is replaced


@functools.cache
def _adapter() -> TypeAdapter[list[Finding]]:
    """Built once: a TypeAdapter compiles its schema when made."""
    from pydantic import TypeAdapter

    from truthplane.models import Finding

    return TypeAdapter(list[Finding])


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

        from truthplane.store import is_busy

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

        from truthplane.store import connect

        conn = connect(self.path)
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, checksum TEXT NOT NULL, body BLOB NOT NULL)"
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

        from pydantic import ValidationError

        if self._broken or not keys:
            self.misses += len(keys)
            return {}
        adapter = _adapter()
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
                        found[key] = [f for part in body.split(b"\n") for f in adapter.validate_json(part)]
                    except ValidationError:
                        bad.append(key)
            if bad:
                conn.executemany("DELETE FROM results WHERE key = ?", [(k,) for k in bad])
        except sqlite3.Error:
            self._broken = True  # only costs time: everything is recomputed
            found = {}
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def get(self, key: str) -> list[Finding] | None:
        return self.get_many([key]).get(key)

    def put_many(self, entries: dict[str, list[Finding]]) -> None:
        import hashlib
        import sqlite3

        if self._broken or not entries:
            return
        adapter = _adapter()
        rows = []
        for key, findings in entries.items():
            # a long list is stored as lines of short JSON arrays (compact JSON has no raw newline): decoding
            # one holds the interpreter lock only briefly, so a big entry read by one thread never stalls
            # another that is about to start a tool
            chunks = [findings[i:i + self._DECODE_CHUNK] for i in range(0, len(findings), self._DECODE_CHUNK)]
            body = b"\n".join(adapter.dump_json(chunk) for chunk in chunks or [[]])
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
