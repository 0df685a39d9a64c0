"""Resuming `run-all` (running the same tasks file again) keeps the evidence verifiable: a task carried
over refers to the record that holds its evidence and repeats it, so `verify` passes after any number of
resumes and still catches a changed byte. Real run-all runs (bubblewrap executor, ruff), real git."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import git
from tests.evidence.test_ledger import private_env, verify  # noqa: F401
from truthplane.cli.main import run

CONFIG = 'verifiers = ["ruff"]\n'
TASKS = """
[[tasks]]
id = "stamp"
kind = "command"
command = "echo stamped > stamp.txt"
files = ["stamp.txt"]

[[tasks]]
id = "notes"
kind = "command"
command = "printf 'a\\\\nb\\\\n' > notes.txt"
files = ["notes.txt"]
depends_on = ["stamp"]
"""

pytestmark = [pytest.mark.tool("ruff"), pytest.mark.tool("bwrap")]


def run_all(capsys: pytest.CaptureFixture[str]) -> dict:
    code = run(["run-all", "--format", "json", "--workers", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_verify_passes_after_every_resume_and_still_catches_a_changed_byte(make_repo, capsys, monkeypatch) -> None:
    root = make_repo({"truthplane.toml": CONFIG, "tasks.toml": TASKS})
    monkeypatch.chdir(root)
    first = run_all(capsys)
    assert {t["task_id"]: t["status"] for t in first["tasks"]} == {"stamp": "SUCCESS", "notes": "SUCCESS"}
    assert verify(capsys)[0] == 0
    original = {t["task_id"]: t for t in first["tasks"]}
    for _ in range(2):  # resume twice: the second resume carries over a carried-over task
        again = run_all(capsys)
        assert again["honest_metrics"]["git_commits"] == 0
        code, out = verify(capsys)
        assert code == 0 and out.startswith("truthplane verify: VERIFIED"), out
        for task in again["tasks"]:
            assert task["carried_over_from"] == Path(first["evidence"]).name, task
            assert task["modifications"] == original[task["task_id"]]["modifications"] != []
            assert task["git_evidence"]["commit_sha"] == original[task["task_id"]]["git_evidence"]["commit_sha"]
    assert git(root, "status", "--porcelain", "--untracked-files=no") == ""
    assert len(git(root, "log", "--format=%H").split()) == 3  # nothing committed twice
    latest = root / again["evidence"]
    latest.write_text(latest.read_text().replace('"stamp.txt"', '"stamp.tx7"', 1))
    code, out = verify(capsys)
    assert code == 1 and "tasks[0].modifications: changed after it was recorded" in out, out


def test_a_commit_no_record_holds_is_carried_with_the_change_it_makes(make_repo, capsys, monkeypatch) -> None:
    root = make_repo({"truthplane.toml": CONFIG, "tasks.toml": TASKS})
    monkeypatch.chdir(root)
    first = run_all(capsys)
    results = root / ".truth-plane-results"
    for path in results.iterdir():  # the evidence of the first run is gone; its commits and trailers stay
        if path.is_file():
            path.unlink()
    again = run_all(capsys)
    stamp = next(t for t in again["tasks"] if t["task_id"] == "stamp")
    committed = next(t for t in first["tasks"] if t["task_id"] == "stamp")
    assert stamp["modifications"] == committed["modifications"]
    assert stamp["carried_over_from"] == f"commit {committed['git_evidence']['commit_sha']}"
    code, out = verify(capsys)
    assert code == 0, out


def test_a_carry_recorded_by_an_older_resume_verifies_by_its_commit_and_trailer(make_repo, capsys,
                                                                                  monkeypatch) -> None:
    from truthplane.change.record import write_execution

    root = make_repo({"truthplane.toml": CONFIG, "tasks.toml": TASKS})
    monkeypatch.chdir(root)
    first = run_all(capsys)
    stamp = next(t for t in first["tasks"] if t["task_id"] == "stamp")
    sha = stamp["git_evidence"]["commit_sha"]

    def older_resume(task_id: str) -> dict:  # what a resume wrote before carried tasks repeated their evidence
        task = {**stamp, "task_id": task_id, "modifications": [], "carried_over_from": f"commit {sha}",
                "git_evidence": {"commit_sha": sha, "applied": True, "diff_preview": ""}}
        return {"tool": "truthplane", "kind": "run-all", "tasks": [task], "overall_verdict": "APPROVE"}

    write_execution(root, older_resume("stamp"))
    code, out = verify(capsys)
    assert code == 0 and "carried over by an older truthplane without its change" in out, out
    write_execution(root, older_resume("notes"))  # a commit that is not this task's
    code, out = verify(capsys)
    assert code == 1 and f"commit {sha[:12]} does not carry the trailer 'Truthplane-Task: notes" in out, out
