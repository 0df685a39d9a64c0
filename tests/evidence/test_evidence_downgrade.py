"""Attacks on the evidence trail by someone who can write `.truth-plane-results/` but does not hold the
signing key: a record rewritten with every hash recomputed and its signature dropped, and a history
database rewritten to say other verdicts. `verify` must fail and name what was changed."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.evidence.test_ledger import FILES, RESULTS, private_env, record_path, run_all_record, verify  # noqa: F401
from truthplane.evidence import attestation
from truthplane.evidence import ledger
from truthplane.cli.main import run
from truthplane.change.record import write_execution

KEY = "a-long-random-secret"


def forge(root: Path, record: dict[str, Any], change, *, signing_key: bytes | None = None) -> Path:
    """Rewrite a record as an attacker without the key would: field and record hashes recomputed, the
    attestation made again (unsigned, or signed with `signing_key`), head file and history row updated."""
    path = record_path(root, record)
    forged = json.loads(path.read_text())
    change(forged)
    forged["field_hashes"] = ledger.field_hashes(forged)
    forged["record_hash"] = ledger.record_hash(forged)
    text = ledger.render(forged).encode()
    path.write_bytes(text)
    sha = hashlib.sha256(text).hexdigest()
    sidecar = path.with_name(path.stem + attestation.SUFFIX)
    sidecar.write_text(attestation.envelope(forged, path.name, sha, signing_key))
    head = json.loads((root / RESULTS / ledger.HEAD_FILE).read_text())
    if head["run_id"] == forged["run_id"]:
        (root / RESULTS / ledger.HEAD_FILE).write_text(ledger.head_text(forged, path.name))
    with sqlite3.connect(root / RESULTS / "history.sqlite3") as db:
        db.execute("UPDATE runs SET record_hash = ?, file_sha256 = ?, overall_verdict = ? WHERE run_id = ?",
                   (forged["record_hash"], sha, forged["overall_verdict"], forged["run_id"]))
    return path


def approve_everything(record: dict[str, Any]) -> None:
    record["overall_verdict"] = "APPROVE"
    for task in record["tasks"]:
        task["truth_gate"]["verdict"] = "APPROVE"


@pytest.fixture
def signed_chain(make_repo, monkeypatch) -> tuple[Path, list[dict]]:
    root = make_repo(FILES)
    monkeypatch.setenv(attestation.KEY_ENV, KEY)
    records = [run_all_record([{"task_id": "t1"}]),
               run_all_record([{"task_id": "t2", "verdict": "REJECT", "reason": "tests fail"}], verdict="REJECT")]
    for record in records:
        write_execution(root, record)
    monkeypatch.chdir(root)
    return root, records


def test_a_rehashed_record_with_its_signature_dropped_fails_with_the_key(signed_chain, capsys, monkeypatch) -> None:
    root, (_, rejected) = signed_chain
    assert verify(capsys)[0] == 0
    path = forge(root, rejected, approve_everything)
    code, out = verify(capsys)
    sidecar = f"{RESULTS}/{path.stem}{attestation.SUFFIX}"
    assert code == 1 and out.startswith("truthplane verify: TAMPERED"), out
    assert f"FAIL: {sidecar}: not signed, but {attestation.KEY_ENV} is set" in out, out
    assert f"FAIL: {sidecar}: not signed, but record 1" in out, out
    monkeypatch.delenv(attestation.KEY_ENV)  # without the key the dropped signature is still seen
    code, out = verify(capsys)
    assert code == 1 and f"{sidecar}: not signed, but record 1" in out and "signature was removed" in out, out


def test_a_record_signed_with_another_key_fails(signed_chain, capsys) -> None:
    root, (_, rejected) = signed_chain
    path = forge(root, rejected, approve_everything, signing_key=b"the-attackers-own-key")
    code, out = verify(capsys)
    assert code == 1 and f"{path.stem}{attestation.SUFFIX}: no signature is valid for the key" in out, out


def test_a_chain_written_before_the_key_is_adopted_once_and_stays_signed(make_repo, capsys, monkeypatch) -> None:
    root = make_repo(FILES)
    monkeypatch.chdir(root)
    first = run_all_record([{"task_id": "t1"}])
    write_execution(root, first)
    assert verify(capsys)[0] == 0
    monkeypatch.setenv(attestation.KEY_ENV, KEY)
    code, out = verify(capsys)
    assert code == 1 and f"not signed, but {attestation.KEY_ENV} is set" in out, out
    assert run(["verify", "--sign"]) == 0
    assert "signed 1 attestation(s)" in capsys.readouterr()[1]
    write_execution(root, run_all_record([{"task_id": "t2"}]))
    code, out = verify(capsys)
    assert code == 0 and out.count("attestation signature valid") == 2, out
    sidecar = record_path(root, first).with_name(record_path(root, first).stem + attestation.SUFFIX)
    document = json.loads(sidecar.read_text())
    body = base64.b64decode(document["payload"])
    sidecar.write_text(json.dumps({**document, "signatures": []}, indent=2) + "\n")  # strip the signature only
    assert json.loads(base64.b64decode(json.loads(sidecar.read_text())["payload"])) == json.loads(body)
    code, out = verify(capsys)
    assert code == 1 and f"{sidecar.name}: not signed, but {attestation.KEY_ENV} is set" in out, out
    assert run(["verify", "--sign"]) == 2  # re-signing a stripped record would vouch for it
    assert "already holds signed records" in capsys.readouterr()[1]


def test_sign_without_a_key_or_on_a_broken_chain_is_refused(make_repo, capsys, monkeypatch) -> None:
    root = make_repo(FILES)
    monkeypatch.chdir(root)
    record = run_all_record([{"task_id": "t1"}])
    path = write_execution(root, record)
    assert run(["verify", "--sign"]) == 2 and "--sign needs TRUTHPLANE_SIGNING_KEY" in capsys.readouterr()[1]
    monkeypatch.setenv(attestation.KEY_ENV, KEY)
    path.write_text(path.read_text().replace('"APPROVE"', '"REJECT"'))
    assert run(["verify", "--sign"]) == 4 and "does not verify" in capsys.readouterr()[1]
    assert attestation.is_signed(path.with_name(path.stem + attestation.SUFFIX).read_text()) is False


def history_json(capsys, *args: str) -> list[dict]:
    assert run(["history", "--format", "json", *args]) == 0
    return json.loads(capsys.readouterr()[0])["runs"]


@pytest.fixture
def two_runs(make_repo, monkeypatch) -> tuple[Path, dict, dict]:
    root = make_repo(FILES)
    approved = run_all_record([{"task_id": "t1"}])
    rejected = run_all_record([{"task_id": "t2", "verdict": "REJECT", "reason": "tests fail"}], verdict="REJECT")
    for record in (approved, rejected):
        write_execution(root, record)
    monkeypatch.chdir(root)
    return root, approved, rejected


def history_db(root: Path) -> sqlite3.Connection:
    return sqlite3.connect(root / RESULTS / "history.sqlite3", isolation_level=None)


def test_rewritten_verdicts_in_the_history_fail_verify_and_are_not_shown(two_runs, capsys) -> None:
    root, approved, rejected = two_runs
    assert verify(capsys)[0] == 0
    run_id = rejected["run_id"]
    with history_db(root) as db:
        db.execute("UPDATE runs SET overall_verdict = 'APPROVE', approvals = 1, rejections = 0, commits = 1"
                   " WHERE run_id = ?", (run_id,))
        db.execute("UPDATE verdicts SET verdict = 'APPROVE' WHERE run_id = ?", (run_id,))
    code, out = verify(capsys)
    assert code == 1 and out.startswith("truthplane verify: TAMPERED"), out
    where = f"{RESULTS}/history.sqlite3: run {run_id}"
    assert f"{where}: runs.overall_verdict: is 'APPROVE', the record says 'REJECT'" in out, out
    assert f"{where}: runs.commits: is 1, the record says 0" in out, out
    assert f"{where}: verdicts[t2, t2].verdict: is 'APPROVE', the record says 'REJECT'" in out, out
    listed = {r["run_id"]: r for r in history_json(capsys)}
    assert listed[run_id]["overall_verdict"] == "REJECT" and listed[run_id]["rejections"] == 1
    assert listed[run_id]["matches_record"] is False and listed[approved["run_id"]]["matches_record"] is True
    assert [r["run_id"] for r in history_json(capsys, "--verdict", "APPROVE")] == [approved["run_id"]]
    assert run(["history"]) == 0
    text = capsys.readouterr()[0]
    line = next(line for line in text.splitlines() if line.startswith(run_id))
    assert "REJECT" in line and "does not match this run's record" in text, text
    assert run(["show", run_id]) == 0
    shown = capsys.readouterr()[0]
    assert shown.splitlines()[0].endswith("REJECT") and "runs.overall_verdict: is 'APPROVE'" in shown, shown


def test_a_deleted_run_row_or_history_fails_verify(two_runs, capsys) -> None:
    root, approved, rejected = two_runs
    with history_db(root) as db:
        db.execute("DELETE FROM runs WHERE run_id = ?", (rejected["run_id"],))
    code, out = verify(capsys)
    name = record_path(root, rejected).name
    assert code == 1 and f"run {rejected['run_id']}: no row for {RESULTS}/{name}" in out, out
    assert f"rows of run {rejected['run_id']}, which has no run row and no record" in out, out
    with history_db(root) as db:
        db.execute("DELETE FROM tasks WHERE run_id = ?", (approved["run_id"],))
    assert f"run {approved['run_id']}: tasks[t1]: missing (the record has it)" in verify(capsys)[1]
    for suffix in ("", "-wal", "-shm"):
        (root / RESULTS / f"history.sqlite3{suffix}").unlink(missing_ok=True)
    code, out = verify(capsys)
    assert code == 1 and f"{RESULTS}/history.sqlite3: missing, but the chain holds 2 record(s)" in out, out
