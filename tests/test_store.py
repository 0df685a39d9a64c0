"""The SQLite history: versioned schema, migrations, concurrent use from threads and processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest

from truthplane import store as store_module
from truthplane.errors import InputError
from truthplane.store import SCHEMA_VERSION, Store, default_path


def _insert(store: Store, run_id: str, tokens: int = 1) -> int:
    with store.write() as db:
        return store.insert_usage(db, created_at=0.0, day="2026-01-01", run_id=run_id, provider="p", model="m",
                                  outcome="ok", prompt_tokens=tokens, completion_tokens=0, cost_usd=0.001)


def test_default_path_schema_and_wal(tmp_path: Path) -> None:
    with Store.open(root=tmp_path) as store:
        assert store.path == tmp_path / ".truth-plane-results" / "history.sqlite3" == default_path(tmp_path)
        assert store.schema_version() == SCHEMA_VERSION
        assert store.read(lambda db: db.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
        tables = store.read(lambda db: {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")})
        assert {"schema_version", "llm_usage", "runs", "tasks", "candidates", "verdicts", "evidence_files"} <= tables


def test_a_version_1_file_gains_the_history_tables_and_keeps_its_usage(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "h.sqlite3"
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:1])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", 1)
    with Store.open(path) as store:
        _insert(store, "old", tokens=3)
        assert "runs" not in store.read(lambda db: {r[0] for r in db.execute("SELECT name FROM sqlite_master")})
    monkeypatch.undo()
    with Store.open(path) as store:
        assert store.schema_version() == SCHEMA_VERSION >= 2
        assert store.usage_totals(run_id="old").tokens == 3
        assert store.read(lambda db: db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]) == 0


def test_reopen_keeps_rows_and_does_not_migrate_again(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    with Store.open(path) as store:
        _insert(store, "a", tokens=5)
    with Store.open(path) as store:
        assert store.schema_version() == SCHEMA_VERSION
        assert store.read(lambda db: db.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0]) == 1
        totals = store.usage_totals(run_id="a")
        assert (totals.calls, totals.tokens, totals.cost_usd) == (1, 5, pytest.approx(0.001))


def test_a_new_migration_is_applied_to_an_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "h.sqlite3"
    with Store.open(path) as store:
        _insert(store, "old")
    later = [*store_module.MIGRATIONS, "CREATE TABLE later (id TEXT PRIMARY KEY, started_at REAL NOT NULL);"]
    monkeypatch.setattr(store_module, "MIGRATIONS", later)
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", len(later))
    with Store.open(path) as store:
        assert store.schema_version() == len(later)
        store.read(lambda db: db.execute("INSERT INTO later VALUES ('r', 0)"))
        assert store.usage_totals(run_id="old").calls == 1


def test_a_file_from_a_newer_truthplane_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    Store.open(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(InputError, match="schema version 99, newer than this truthplane"):
        Store.open(path)


def test_a_corrupt_file_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(InputError, match="move it aside"):
        Store.open(path)


def test_closed_store_refuses_use(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "h.sqlite3")
    store.close()
    with pytest.raises(InputError, match="closed"):
        _insert(store, "a")


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    with Store.open(tmp_path / "h.sqlite3") as store:
        with pytest.raises(RuntimeError), store.write() as db:
            store.insert_usage(db, created_at=0.0, day="d", run_id="x", provider="p", model="m", outcome="ok")
            raise RuntimeError("boom")
        assert store.usage_totals(run_id="x").calls == 0


def test_threads_share_one_store(tmp_path: Path) -> None:
    with Store.open(tmp_path / "h.sqlite3") as store:
        ids: list[int] = []

        def work() -> None:
            for _ in range(25):
                ids.append(_insert(store, "t"))

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(set(ids)) == 200 and store.usage_totals(run_id="t").calls == 200


def _process_worker(path: str, run_id: str, count: int) -> None:
    with Store.open(Path(path)) as store:
        for _ in range(count):
            _insert(store, run_id)


def test_processes_open_migrate_and_write_at_once(tmp_path: Path) -> None:
    path = tmp_path / "fresh" / "h.sqlite3"  # nobody has created it yet: every process races to
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_process_worker, args=(str(path), f"p{i}", 40)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    with Store.open(path) as store:
        assert store.usage_totals().calls == 160
        assert store.schema_version() == SCHEMA_VERSION
        assert store.read(lambda db: db.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0]) == 1
