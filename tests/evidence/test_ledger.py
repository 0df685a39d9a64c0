"""The hash-chained evidence: real `fix --commit` runs verify; any changed byte fails and says where."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import git
from truthplane.evidence import attestation
from truthplane.evidence import ledger
from truthplane.cli.main import run
from truthplane.change.record import write_execution

FILES = {"a.py": "import os\nx = 1\n", "b.py": "import sys\ny = 2\n", "c.py": "import json\nz = 3\n",
         "truthplane.toml": 'verifiers = ["ruff"]\n'}
RESULTS = ".truth-plane-results"


@pytest.fixture(autouse=True)
def private_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv(attestation.KEY_ENV, raising=False)
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "t")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "t@example.com")


def fix_commit(root: Path, rel: str, capsys: pytest.CaptureFixture[str]) -> dict:
    """One real run: ruff's autofix judged, committed, its execution record written."""
    code = run(["fix", str(root / rel), "--commit", "--format", "json"])
    doc = json.loads(capsys.readouterr()[0])
    assert code == 0 and doc["commit"], doc
    return json.loads((root / doc["evidence"]).read_text())


def make_runs(make_repo, capsys, monkeypatch, count: int = 2) -> tuple[Path, list[dict]]:
    root = make_repo(FILES)
    monkeypatch.chdir(root)
    records = [fix_commit(root, rel, capsys) for rel in ["a.py", "b.py", "c.py"][:count]]
    return root, records


def verify(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = run(["verify", *args])
    return code, capsys.readouterr()[0]


def record_path(root: Path, record: dict) -> Path:
    return next(p for p in (root / RESULTS).glob("execution_*.json")
                if not p.name.endswith(attestation.SUFFIX) and json.loads(p.read_text())["run_id"] == record["run_id"])


pytestmark = [pytest.mark.tool("ruff"), pytest.mark.tool("bwrap")]


def test_real_runs_are_chained_and_verify_passes(make_repo, capsys, monkeypatch) -> None:
    root, (first, second) = make_runs(make_repo, capsys, monkeypatch)
    assert (first["sequence"], second["sequence"]) == (1, 2)
    assert first["previous_hash"] is None and second["previous_hash"] == first["record_hash"]
    assert first["record_hash"] == ledger.record_hash(first)
    head = json.loads((root / RESULTS / ledger.HEAD_FILE).read_text())
    assert head["record_hash"] == second["record_hash"] and head["sequence"] == 2
    task = first["tasks"][0]
    assert task["git_evidence"]["commit_sha"] == git(root, "rev-parse", "HEAD~1")
    assert task["logs"]["diff"]["path"] in {item["path"] for item in first["evidence_files"]}
    code, out = verify(capsys)
    assert code == 0 and out.startswith("truthplane verify: VERIFIED"), out
    assert out.count("ok: run ") == 2 and "1 commit(s)" in out
    assert verify(capsys, second["run_id"][:20])[0] == 0
    assert verify(capsys, str(record_path(root, first)))[0] == 0


def test_a_flipped_byte_in_a_record_fails_and_names_the_field(make_repo, capsys, monkeypatch) -> None:
    root, (first, _) = make_runs(make_repo, capsys, monkeypatch)
    path = record_path(root, first)
    text = path.read_text()
    after = first["tasks"][0]["modifications"][0]["sha256_after"]
    flipped = after[:-1] + ("0" if after[-1] != "0" else "1")
    path.write_text(text.replace(after, flipped))
    code, out = verify(capsys)
    assert code == 1 and "TAMPERED" in out, out
    assert f"FAIL: {RESULTS}/{path.name}: tasks[0].modifications: changed after it was recorded" in out
    assert f"{path.name}: record_hash: does not match" in out


def test_reformatting_a_record_fails_and_names_the_line(make_repo, capsys, monkeypatch) -> None:
    root, (first,) = make_runs(make_repo, capsys, monkeypatch, count=1)
    path = record_path(root, first)
    lines = path.read_text().splitlines(keepends=True)
    lines[3] = lines[3].replace("  ", "\t", 1)  # same JSON, other bytes
    path.write_text("".join(lines))
    code, out = verify(capsys)
    assert code == 1 and "bytes differ from the record as written (line 4" in out, out


def test_a_consistently_rehashed_record_still_breaks_the_chain(make_repo, capsys, monkeypatch) -> None:
    root, (first, second) = make_runs(make_repo, capsys, monkeypatch)
    path = record_path(root, first)
    forged = json.loads(path.read_text())
    forged["overall_verdict"] = "REJECT"
    forged["field_hashes"] = ledger.field_hashes(forged)
    forged["record_hash"] = ledger.record_hash(forged)
    path.write_text(ledger.render(forged))
    code, out = verify(capsys)
    assert code == 1, out
    assert f"{record_path(root, second).name}: previous_hash: does not match record 1" in out
    assert f"history.sqlite3: run {first['run_id']}: runs.record_hash: is '{first['record_hash']}'" in out
    assert f"{path.stem}{attestation.SUFFIX}: the statement does not match" in out


def test_deleting_a_middle_record_breaks_the_chain(make_repo, capsys, monkeypatch) -> None:
    root, (_, middle, _) = make_runs(make_repo, capsys, monkeypatch, count=3)
    path = record_path(root, middle)
    path.unlink()
    code, out = verify(capsys)
    assert code == 1, out
    assert "sequence 2: record missing" in out
    assert f"{RESULTS}/{path.name}: missing (the history has run {middle['run_id']}" in out
    assert verify(capsys, middle["run_id"])[0] == 1


def test_deleting_the_last_record_is_caught_by_the_head(make_repo, capsys, monkeypatch) -> None:
    root, (_, last) = make_runs(make_repo, capsys, monkeypatch)
    record_path(root, last).unlink()
    (root / RESULTS / "history.sqlite3").unlink()  # even without the history
    code, out = verify(capsys)
    assert code == 1 and "ledger-head.json: the chain ends at 2, but records 2..2 are missing" in out, out


def test_a_replaced_commit_fails(make_repo, capsys, monkeypatch) -> None:
    root, (first,) = make_runs(make_repo, capsys, monkeypatch, count=1)
    sha = first["tasks"][0]["git_evidence"]["commit_sha"]
    (root / "a.py").write_text("x = 2\n")
    git(root, "commit", "-q", "--amend", "-am", "amended")
    amended = git(root, "rev-parse", "HEAD")
    git(root, "replace", sha, amended)
    assert git(root, "show", f"{sha}:a.py") == "x = 2"  # git itself now shows the other content
    code, out = verify(capsys)
    assert code == 1 and f"commit {sha[:12]} is replaced by {amended[:12]} (refs/replace)" in out, out


def _rewrite_object(root: Path, object_id: str, change: Callable[[bytes], bytes]) -> None:
    path = root / ".git" / "objects" / object_id[:2] / object_id[2:]
    raw = zlib.decompress(path.read_bytes())
    path.chmod(0o644)
    path.write_bytes(zlib.compress(change(raw)))


def test_a_changed_byte_in_a_commit_object_fails(make_repo, capsys, monkeypatch) -> None:
    root, (first,) = make_runs(make_repo, capsys, monkeypatch, count=1)
    sha = first["tasks"][0]["git_evidence"]["commit_sha"]
    _rewrite_object(root, sha, lambda raw: raw.replace(b"truthplane:", b"truthplanE:", 1))
    code, out = verify(capsys)
    assert code == 1 and f"commit {sha[:12]}: its object does not hash to its id" in out, out


def test_a_changed_byte_in_a_committed_file_fails(make_repo, capsys, monkeypatch) -> None:
    root, (first,) = make_runs(make_repo, capsys, monkeypatch, count=1)
    sha = first["tasks"][0]["git_evidence"]["commit_sha"]
    blob = git(root, "rev-parse", f"{sha}:a.py")
    _rewrite_object(root, blob, lambda raw: raw.replace(b"x = 1", b"x = 7"))
    code, out = verify(capsys)
    assert code == 1 and f"blob {blob} of a.py does not hash to its id" in out, out


def test_a_commit_with_more_than_the_recorded_change_fails(make_repo, capsys, monkeypatch) -> None:
    root = make_repo(FILES)
    before = {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in ("a.py", "b.py")}
    (root / "a.py").write_text("x = 1\n")
    (root / "b.py").write_text("y = 2\n")  # committed too, but not recorded
    git(root, "commit", "-qam", "two files")
    sha = git(root, "rev-parse", "HEAD")
    record = run_all_record([{"task_id": "t1", "file": "a.py", "before": before["a.py"],
                              "after": hashlib.sha256(b"x = 1\n").hexdigest(), "commit": sha}])
    write_execution(root, record)
    monkeypatch.chdir(root)
    code, out = verify(capsys)
    assert code == 1 and f"commit {sha[:12]} changes b.py, which the record does not list" in out, out


def run_all_record(tasks: list[dict], *, evidence: list | None = None, verdict: str = "APPROVE") -> dict:
    """An execution record as `run-all` writes it (the original Truth Plane format)."""
    return {
        "tool": "truthplane", "kind": "run-all", "start_time": "2026-11-23T10:00:00Z",
        "end_time": "2026-11-23T10:05:00Z", "baseline": {"fingerprints": []},
        "tasks": [{
            "task_id": t["task_id"], "title": t.get("title", t["task_id"]), "status": "SUCCESS",
            "verification": {"tests": {"command": "pytest", "before_rc": 1, "after_rc": [0], "passed": True,
                                       "output_tail": t.get("output", "1 passed")}},
            "modifications": [{"file": t["file"], "sha256_before": t["before"], "sha256_after": t["after"]}]
            if t.get("file") else [],
            "truth_gate": {"verdict": t.get("verdict", "APPROVE"), "reason": t.get("reason", "tests pass")},
            "git_evidence": {"commit_sha": t.get("commit"), "applied": bool(t.get("commit")), "diff_preview": ""},
            "logs": t.get("logs", {}),
        } for t in tasks],
        "honest_metrics": {"files_verified": 1, "files_modified": len(tasks), "builds_tested": 1,
                           "git_commits": sum(1 for t in tasks if t.get("commit")),
                           "truth_gate_approvals": len(tasks), "truth_gate_rejections": 0},
        "overall_verdict": verdict,
        "evidence_files": evidence or [],
    }


def test_sarif_and_log_evidence_files_are_hashed_and_checked(make_repo, capsys, monkeypatch) -> None:
    root = make_repo(FILES)
    sarif = root / ".sarif-results" / "ruff.sarif"
    sarif.parent.mkdir()
    sarif.write_text('{"version": "2.1.0", "runs": []}\n')
    record = run_all_record(
        [{"task_id": "t1", "logs": {"stdout": "line\n" * 5000}}], evidence=[".sarif-results/ruff.sarif"]
    )
    write_execution(root, record)
    kinds = {item["path"]: item["kind"] for item in record["evidence_files"]}
    log = record["tasks"][0]["logs"]["stdout"]
    assert kinds == {".sarif-results/ruff.sarif": "sarif", log["path"]: "log"} and log["bytes"] == 25000
    monkeypatch.chdir(root)
    assert verify(capsys)[0] == 0
    sarif.write_text(sarif.read_text().replace("2.1.0", "2.1.1"))
    code, out = verify(capsys)
    assert code == 1 and ".sarif-results/ruff.sarif: sha256 differs from the one" in out, out
    sarif.unlink()
    assert ".sarif-results/ruff.sarif: missing" in verify(capsys)[1]
    (root / log["path"]).write_text("line\n" * 4999)
    assert f"{log['path']}: sha256 differs" in verify(capsys)[1]


def test_evidence_outside_the_repository_or_missing_is_refused(make_repo, tmp_path: Path) -> None:
    from truthplane.errors import InputError

    root = make_repo(FILES)
    (tmp_path / "elsewhere.sarif").write_text("{}")
    with pytest.raises(InputError, match="outside"):
        write_execution(root, run_all_record([], evidence=[str(tmp_path / "elsewhere.sarif")]))
    with pytest.raises(InputError, match="does not exist"):
        write_execution(root, run_all_record([], evidence=["nope.sarif"]))
    with pytest.raises(InputError, match="needs tasks"):
        write_execution(root, {"kind": "run-all", "overall_verdict": "APPROVE"})
    assert not list(root.glob(f"{RESULTS}/execution_*"))


def test_a_reused_run_id_is_refused_and_leaves_the_chain_intact(make_repo, capsys, monkeypatch) -> None:
    from truthplane.errors import InputError

    root = make_repo(FILES)
    first = run_all_record([{"task_id": "t1"}])
    write_execution(root, first)
    with pytest.raises(InputError, match="already in the history"):
        write_execution(root, {**run_all_record([{"task_id": "t2"}]), "run_id": first["run_id"]})
    assert len([p for p in (root / RESULTS).glob("execution_*.json") if ".intoto" not in p.name]) == 1
    monkeypatch.chdir(root)
    assert verify(capsys)[0] == 0


def test_signed_attestation(make_repo, capsys, monkeypatch) -> None:
    root = make_repo(FILES)
    monkeypatch.setenv(attestation.KEY_ENV, "a-long-random-secret")
    record = run_all_record([{"task_id": "t1"}])
    path = write_execution(root, record)
    envelope = json.loads(path.with_name(path.stem + attestation.SUFFIX).read_text())
    import base64

    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert envelope["payloadType"] == "application/vnd.in-toto+json" and len(envelope["signatures"]) == 1
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"][0]["digest"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert statement["predicate"]["record_hash"] == record["record_hash"]
    monkeypatch.chdir(root)
    code, out = verify(capsys)
    assert code == 0 and "attestation signature valid" in out, out
    monkeypatch.setenv(attestation.KEY_ENV, "another-secret")
    code, out = verify(capsys)
    assert code == 1 and "no signature is valid for the key in TRUTHPLANE_SIGNING_KEY" in out, out
    monkeypatch.delenv(attestation.KEY_ENV)
    assert "signature not checked" in verify(capsys)[1]


def test_no_records_is_could_not_verify(make_repo, capsys, monkeypatch) -> None:
    monkeypatch.chdir(make_repo(FILES))
    code = run(["verify"])
    assert code == 4 and "nothing to verify" in capsys.readouterr()[1]


def _writer(root: str, name: str, count: int) -> None:
    for n in range(count):
        write_execution(Path(root), run_all_record([{"task_id": f"{name}-{n}"}]))


def test_concurrent_writers_produce_one_valid_chain(make_repo, capsys, monkeypatch) -> None:
    root = make_repo(FILES)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(root), f"w{i}", 6)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    chain = ledger.load_chain(root / RESULTS)
    sequences = sorted(entry.record["sequence"] for entry in chain.entries if entry.record)
    assert sequences == list(range(1, 25))
    monkeypatch.chdir(root)
    code, out = verify(capsys)
    assert code == 0 and out.count("ok: run ") == 24, out


def _dies_midway(root: str, where: str) -> None:
    import os

    from truthplane.evidence import history

    def die(*args: object, **kwargs: object) -> None:
        os._exit(9)  # as a SIGKILL would: no cleanup, no rollback

    if where == "attestation":
        attestation.envelope = die  # type: ignore[assignment]
    else:
        history.record_run = die  # type: ignore[assignment]
    write_execution(Path(root), run_all_record([{"task_id": f"dies-in-{where}"}]))


@pytest.mark.parametrize("where", ["attestation", "history"])
def test_an_append_killed_midway_is_completed_by_the_next_one(make_repo, capsys, monkeypatch, where: str) -> None:
    root = make_repo(FILES)
    write_execution(root, run_all_record([{"task_id": "first"}]))
    worker = multiprocessing.get_context("spawn").Process(target=_dies_midway, args=(str(root), where))
    worker.start()
    worker.join(timeout=120)
    assert worker.exitcode == 9
    orphan = [e for e in ledger.load_chain(root / RESULTS).entries if e.record and e.record["sequence"] == 2]
    assert len(orphan) == 1  # its record file was written before the crash
    monkeypatch.chdir(root)
    code, out = verify(capsys)
    assert code == 0 and "the last append was interrupted" in out, out
    last = run_all_record([{"task_id": "after"}])
    write_execution(root, last)
    assert last["sequence"] == 3 and last["previous_hash"] == orphan[0].record["record_hash"]
    code, out = verify(capsys)
    assert code == 0 and out.count("ok: run ") == 3, out
    with_history = run(["history", "--format", "json"])
    assert with_history == 0 and len(json.loads(capsys.readouterr()[0])["runs"]) == 3


def test_verify_a_copy_of_a_record_against_the_chain(make_repo, capsys, monkeypatch, tmp_path: Path) -> None:
    root = make_repo(FILES)
    record = run_all_record([{"task_id": "t1", "reason": "tests pass"}])
    path = write_execution(root, record)
    monkeypatch.chdir(root)
    copy = tmp_path / "shared-with-me.json"
    copy.write_bytes(path.read_bytes())
    code, out = verify(capsys, str(copy), "--format", "json")
    assert code == 0 and json.loads(out)["verdict"] == "VERIFIED"
    copy.write_text(copy.read_text().replace("tests pass", "tests passed"))
    code, out = verify(capsys, str(copy), "--format", "json")
    report = json.loads(out)
    assert code == 1 and report["verdict"] == "TAMPERED"
    assert f"{copy}: tasks[0].truth_gate: changed after it was recorded" in report["problems"]


def test_a_shallow_clone_cannot_verify_rather_than_fails(make_repo, capsys, monkeypatch, tmp_path: Path) -> None:
    import shutil

    root, _ = make_runs(make_repo, capsys, monkeypatch)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", root.as_uri(), str(clone))
    shutil.copytree(root / RESULTS, clone / RESULTS)
    monkeypatch.chdir(clone)
    code, out = verify(capsys)
    assert code == 4 and "UNVERIFIED" in out and "FAIL" not in out, out
    assert "is not in this shallow clone" in out and "is not in this repository (a shallow clone?)" in out


def test_a_commit_whose_parent_differs_from_the_recorded_before_hash_fails(make_repo, capsys, monkeypatch) -> None:
    root = make_repo(FILES)
    (root / "a.py").write_text("x = 1\n")
    git(root, "commit", "-qam", "one file")
    sha = git(root, "rev-parse", "HEAD")
    after = hashlib.sha256(b"x = 1\n").hexdigest()
    dirty_before = hashlib.sha256(b"import os\nx = 1\n# uncommitted edit\n").hexdigest()
    write_execution(root, run_all_record([{"task_id": "t1", "file": "a.py", "before": dirty_before, "after": after,
                                           "commit": sha}]))
    monkeypatch.chdir(root)
    code, out = verify(capsys)
    assert code == 1 and f"commit {sha[:12]}: a.py in its parent has sha256" in out, out
    assert "sha256_after" not in out  # the committed file itself is as recorded


def test_a_changed_byte_in_the_head_or_the_attestation_fails(make_repo, capsys, monkeypatch) -> None:
    root = make_repo(FILES)
    path = write_execution(root, run_all_record([{"task_id": "t1"}]))
    monkeypatch.chdir(root)
    head = root / RESULTS / ledger.HEAD_FILE
    sidecar = path.with_name(path.stem + attestation.SUFFIX)
    original_head, original_sidecar = head.read_text(), sidecar.read_text()
    head.write_text(original_head.replace(path.name, path.name.replace("execution", "executioN")))
    code, out = verify(capsys)
    assert code == 1 and "ledger-head.json: bytes differ from the head of the chain (record 1)" in out, out
    head.write_text(original_head)
    sidecar.write_text(original_sidecar.replace('"signatures": []', '"signatures": [ ]'))
    code, out = verify(capsys)
    assert code == 1 and f"{sidecar.name}: bytes differ from the envelope as written" in out, out
    sidecar.write_text(original_sidecar)
    assert verify(capsys)[0] == 0
