from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from truthplane.truth.cache import ResultCache
from truthplane.models import Finding, Severity


def _findings(n: int) -> list[Finding]:
    return [
        Finding(
            verifier="ruff",
            rule_id="F401",
            severity=Severity.LOW,
            message=f"line\nbreak {i} \u00e9",
            path=f"p{i % 7}.py",
            start_line=i + 1,
            partial_fingerprints={"k": str(i)},
        )
        for i in range(n)
    ]


def test_long_entries_are_stored_in_lines_and_read_back_whole(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    entries = {"long": _findings(2 * ResultCache._DECODE_CHUNK + 3), "empty": [], "one": _findings(1)}
    cache.put_many(entries)
    body = sqlite3.connect(cache.path).execute("SELECT body FROM results WHERE key = 'long'").fetchone()[0]
    assert body.count(b"\n") == 2  # three JSON lines; a message's own newline is escaped inside them
    assert cache.get_many(list(entries)) == entries


def test_an_entry_written_as_one_array_still_reads(tmp_path: Path) -> None:
    from pydantic import TypeAdapter

    cache = ResultCache(tmp_path)
    cache.put("k", [])  # creates the table
    findings = _findings(450)
    body = TypeAdapter(list[Finding]).dump_json(findings)
    with sqlite3.connect(cache.path) as conn:
        conn.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", ("k", hashlib.sha256(body).hexdigest(), body))
    assert cache.get("k") == findings


def test_a_changed_byte_is_a_miss_and_the_row_is_dropped(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    cache.put("k", _findings(300))
    with sqlite3.connect(cache.path) as conn:
        body = conn.execute("SELECT body FROM results").fetchone()[0]
        conn.execute("UPDATE results SET body = ?", (body.replace(b"F401", b"F402", 1),))
    assert cache.get("k") is None
    assert sqlite3.connect(cache.path).execute("SELECT count(*) FROM results").fetchone()[0] == 0


@pytest.mark.parametrize("body", [
    b'[{"verifier":"ruff","rule_id":"F401","severity":"urgent","message":"m","path":"a.py"}]',  # no such severity
    b'[{"verifier":"ruff","rule_id":"F401","severity":"low","message":"m","path":"a.py","colour":"red"}]',
    b'[{"verifier":"ruff","rule_id":"F401","severity":"low","message":"m"}]',  # no path
    b'{"verifier":"ruff"}',
    b'[["ruff"]]',
])
def test_an_entry_of_another_shape_is_a_miss_and_the_row_is_dropped(tmp_path: Path, body: bytes) -> None:
    """Checksummed, so written whole, yet not what this version writes (another version's, say): recomputed."""
    cache = ResultCache(tmp_path)
    cache.put("k", [])
    with sqlite3.connect(cache.path) as conn:
        conn.execute("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", ("k", hashlib.sha256(body).hexdigest(), body))
    assert cache.get("k") is None
    assert sqlite3.connect(cache.path).execute("SELECT count(*) FROM results").fetchone()[0] == 0


def test_a_message_with_a_lone_surrogate_is_kept(tmp_path: Path) -> None:
    """A tool's bytes that are not UTF-8 come through as lone surrogates: stored and read back as they were."""
    finding = _findings(1)[0].model_copy(update={"message": "bad byte \udcff here"})
    cache = ResultCache(tmp_path)
    cache.put("k", [finding])
    assert ResultCache(tmp_path).get("k") == [finding]


def test_threads_that_find_the_database_damaged_at_once_keep_what_they_write(tmp_path: Path) -> None:
    """Every verifier of a scan opens the cache on its own thread: when the file is garbage, one replaces it and
    the others use the new one. None may delete the database another has just made and written to."""
    import threading

    (tmp_path / "results.sqlite3").write_bytes(b"this is not a database" * 100)
    cache = ResultCache(tmp_path)
    start = threading.Barrier(8)

    def write(i: int) -> None:
        start.wait()
        cache.put(f"key-{i}", _findings(3))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not cache._broken
    found = ResultCache(tmp_path).get_many([f"key-{i}" for i in range(8)])
    assert sorted(found) == sorted(f"key-{i}" for i in range(8))
