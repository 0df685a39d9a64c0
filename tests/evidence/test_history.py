"""`truthplane history`, `show` and `gc` over real runs: filters, budget, costs, retention that keeps the chain."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.evidence.test_ledger import FILES, RESULTS, fix_commit, private_env, run_all_record, verify  # noqa: F401
from truthplane.cli.main import run
from truthplane.change.record import write_execution
from truthplane.llm.budget import utc_day
from truthplane.store import Store

pytestmark = [pytest.mark.tool("ruff"), pytest.mark.tool("bwrap")]


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def runs_json(capsys, *args: str) -> list[dict]:
    code, out, _ = cli(capsys, "history", "--format", "json", *args)
    assert code == 0
    return json.loads(out)["runs"]


@pytest.fixture
def three_runs(make_repo, capsys, monkeypatch) -> tuple[Path, list[dict]]:
    root = make_repo({**FILES, "truthplane.toml": FILES["truthplane.toml"]
                      + "[llm.budget]\nmax_calls_per_day = 5\nmax_cost_per_day_usd = 1.0\n"})
    monkeypatch.chdir(root)
    records = [fix_commit(root, "a.py", capsys), fix_commit(root, "b.py", capsys)]
    rejected = run_all_record([{"task_id": "t1", "verdict": "REJECT", "reason": "tests fail <b>bold</b>"}],
                              verdict="REJECT")
    write_execution(root, rejected)
    return root, [*records, rejected]


def test_history_lists_and_filters_runs(three_runs, capsys) -> None:
    _, (first, second, rejected) = three_runs
    assert [r["run_id"] for r in runs_json(capsys)] == [rejected["run_id"], second["run_id"], first["run_id"]]
    assert [r["run_id"] for r in runs_json(capsys, "--kind", "fix")] == [second["run_id"], first["run_id"]]
    assert [r["run_id"] for r in runs_json(capsys, "--verdict", "reject")] == [rejected["run_id"]]
    assert [r["run_id"] for r in runs_json(capsys, "--limit", "1")] == [rejected["run_id"]]
    assert len(runs_json(capsys, "--since", "1h")) == 3
    assert len(runs_json(capsys, "--since", "2000-01-01")) == 3
    assert runs_json(capsys, "--since", "2999-01-01") == []
    newest = runs_json(capsys, "--kind", "fix")[0]
    assert (newest["overall_verdict"], newest["tasks"], newest["approvals"], newest["commits"]) == ("APPROVE", 1, 1, 1)
    assert newest["sequence"] == 2 and newest["record_hash"] == second["record_hash"]
    code, out, _ = cli(capsys, "history")
    assert code == 0 and first["run_id"] in out and "REJECT" in out and "commits 1" in out
    code, _, err = cli(capsys, "history", "--since", "yesterday")
    assert code == 2 and "--since takes an age" in err


def test_history_shows_the_llm_budget_left_and_each_runs_cost(three_runs, capsys) -> None:
    root, (first, _, _) = three_runs
    with Store.open(root=root) as store, store.write() as db:
        store.insert_usage(db, created_at=time.time(), day=utc_day(), run_id=first["run_id"], provider="groq",
                           model="m", outcome="ok", prompt_tokens=100, completion_tokens=20, cost_usd=0.25)
    code, out, _ = cli(capsys, "history")
    assert code == 0
    assert "max_calls_per_day: 1 used of 5, 4 left" in out
    assert "max_cost_per_day_usd: $0.2500 used of $1.0000, $0.7500 left" in out
    line = next(line for line in out.splitlines() if line.startswith(first["run_id"]))
    assert "cost $0.2500" in line
    budget = json.loads(cli(capsys, "history", "--format", "json")[1])["budget"]
    assert budget["today"]["calls"] == 1
    code, out, _ = cli(capsys, "show", first["run_id"])
    assert "llm groq/m ok cost 0.25" in out


def test_the_history_tables_hold_tasks_candidates_and_verdicts(three_runs) -> None:
    root, (first, _, rejected) = three_runs
    with Store.open(root=root) as store:
        def rows(sql: str, *args: object) -> list[tuple]:
            return [tuple(r) for r in store.read(lambda db: db.execute(sql, args).fetchall())]

        commit = first["tasks"][0]["git_evidence"]["commit_sha"]
        assert rows("SELECT task_id, status FROM tasks WHERE run_id = ?", first["run_id"]) == [("ruff-fix", "SUCCESS")]
        assert rows("SELECT candidate_id, source, files_modified FROM candidates WHERE run_id = ?",
                    first["run_id"]) == [("ruff-fix", "autofix", 1)]
        assert rows("SELECT verdict, fixed_findings, new_findings, commit_sha, applied FROM verdicts WHERE run_id = ?",
                    first["run_id"]) == [("APPROVE", 2, 0, commit, 1)]
        assert rows("SELECT verdict, reason FROM verdicts WHERE run_id = ?",
                    rejected["run_id"]) == [("REJECT", "tests fail <b>bold</b>")]


def test_show_a_run_as_text_and_json(three_runs, capsys) -> None:
    _, (first, second, _) = three_runs
    code, out, _ = cli(capsys, "show", first["run_id"][:-2])
    commit = first["tasks"][0]["git_evidence"]["commit_sha"]
    assert code == 0 and f"run {first['run_id']}  fix  APPROVE" in out
    assert f"commit {commit}" in out and "a.py: " in out and "truth_gate_approvals 1" in out
    code, out, _ = cli(capsys, "show", second["run_id"], "--format", "json")
    document = json.loads(out)
    assert code == 0 and document["record"] == second and document["run"]["sequence"] == 2
    assert {item["kind"] for item in document["evidence_files"]} == {"log"}
    code, _, err = cli(capsys, "show", "no-such-run")
    assert code == 2 and "no run 'no-such-run' in the history" in err
    code, _, err = cli(capsys, "show", "2")  # every run id starts with the year
    assert code == 2 and "matches 3 runs" in err


def test_gc_removes_old_logs_but_verify_still_passes(three_runs, capsys) -> None:
    root, (first, _, _) = three_runs
    results = root / RESULTS
    logs = sorted((results / "logs").glob("*.log"))
    assert len(logs) == 2  # the two full diffs
    orphan = results / "logs" / ("0" * 64 + ".log")
    orphan.write_text("left by a crashed writer")
    leftover = results / ".execution_x.json.abc.tmp"
    leftover.write_text("half")
    old = time.time() - 3 * 86400
    os.utime(orphan, (old, old))
    os.utime(leftover, (old, old))
    kept = sorted(p.name for p in results.iterdir() if p.is_file() and not p.name.startswith("."))

    code, out, _ = cli(capsys, "gc", "--older-than", "24h")
    assert code == 0 and "removed 2 file(s)" in out  # only the orphan and the leftover: the runs are new
    assert all(log.is_file() for log in logs) and not orphan.exists() and not leftover.exists()
    code, out, _ = cli(capsys, "gc", "--older-than", "0s", "--dry-run")
    assert code == 0 and "would remove 2 file(s)" in out and all(log.is_file() for log in logs)

    code, out, _ = cli(capsys, "gc", "--older-than", "0s")
    assert code == 0 and "removed 2 file(s)" in out
    assert not any(log.exists() for log in logs)
    assert sorted(p.name for p in results.iterdir() if p.is_file() and not p.name.startswith(".")) == kept
    code, out = verify(capsys)
    assert code == 0 and out.count("removed by `truthplane gc`") == 2, out
    assert "(removed by gc)" in cli(capsys, "show", first["run_id"])[1]
    (root / "report.html").unlink(missing_ok=True)
    assert cli(capsys, "report", first["run_id"], "--html", str(root / "report.html"))[0] == 0
    assert "the full diff log is not available" in (root / "report.html").read_text()


def test_a_log_deleted_by_hand_is_not_mistaken_for_gc(three_runs, capsys) -> None:
    root, (first, _, _) = three_runs
    log = first["tasks"][0]["logs"]["diff"]["path"]
    (root / log).unlink()
    code, out = verify(capsys)
    assert code == 1 and f"FAIL: {log}: missing" in out, out


def test_gc_refuses_a_bad_age(three_runs, capsys) -> None:
    code, _, err = cli(capsys, "gc", "--older-than", "soon")
    assert code == 2 and "is not an age" in err


def test_an_interrupted_run_all_record_with_unjudged_tasks_is_recorded(make_repo, capsys, monkeypatch) -> None:
    root = make_repo(FILES)
    record = run_all_record([{"task_id": "done"}], verdict="UNVERIFIED")
    record["tasks"].append({"task_id": "later", "title": "not reached", "status": "INTERRUPTED", "verification": None,
                            "modifications": [], "truth_gate": {"verdict": None, "reason": "interrupted"},
                            "git_evidence": {"commit_sha": None, "applied": False, "diff_preview": ""}})
    record["incomplete"] = True
    write_execution(root, record)
    monkeypatch.chdir(root)
    assert verify(capsys)[0] == 0
    runs = runs_json(capsys, "--verdict", "UNVERIFIED")
    assert [(r["run_id"], r["tasks"], r["approvals"]) for r in runs] == [(record["run_id"], 2, 1)]
    code, out, _ = cli(capsys, "show", record["run_id"])
    assert code == 0 and "later  not reached" in out
    page = root / "r.html"
    assert cli(capsys, "report", record["run_id"], "--html", str(page))[0] == 0
    assert '<span class="verdict UNVERIFIED">INTERRUPTED</span>' in page.read_text()
