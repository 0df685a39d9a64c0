"""The patch loop's judging, with its jobs answered in-process (InProcessExecutor): what the executor reports
for a candidate's reproduction reaches that candidate's verdict. Real git, real ruff; no sandbox, because what is
tested is the loop's reading of job results, not where the jobs ran (tests/change/test_loop.py runs the same loop
end to end on the real local executor)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.change.test_loop import CALC, REPRO, RIGHT, WRONG
from truthplane.change.fixes import FixRequest
from truthplane.change.loop import FixRun, run_fix
from truthplane.config import load_config
from truthplane.errors import ExecutorError
from truthplane.executors.inprocess import InProcessExecutor
from truthplane.executors.jobs import Job, JobResult
from truthplane.truth.pipeline import ScanOptions

pytestmark = pytest.mark.tool("ruff")


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def repo(make_repo, tmp_path: Path) -> tuple[Path, Path, Path]:  # noqa: ANN001
    root = make_repo({"calc.py": CALC, "truthplane.toml": 'verifiers = ["ruff"]\n'})
    (tmp_path / "right.diff").write_text(RIGHT)
    (tmp_path / "wrong.diff").write_text(WRONG)
    return root, tmp_path / "right.diff", tmp_path / "wrong.diff"


def mean_is_right(job: Job) -> bool:
    """What the reproduction checks, read from the tree the job was given."""
    source = (Path(job.source_dir or ".") / "calc.py").read_text()
    return "return sum(values) / len(values)\n" in source


def judge(root: Path, patches: list[Path], handler) -> tuple[FixRun, InProcessExecutor]:  # noqa: ANN001
    executor = InProcessExecutor(handler)
    request = FixRequest(root=root, target="calc.py", patches=patches, autofix=False, repro_cmd=REPRO, repro_runs=2)
    run = asyncio.run(run_fix(request, load_config(root), ScanOptions(), executor=executor))
    run.cleanup()
    return run, executor


def by_id(run: FixRun) -> dict[str, object]:
    return {Path(c.id).name: c for c in run.result.candidates}


def test_the_candidate_whose_reproduction_passes_wins(repo) -> None:  # noqa: ANN001
    root, right, wrong = repo
    run, executor = judge(root, [right, wrong], lambda job: JobResult(
        returncode=0 if mean_is_right(job) else 1, executor="inprocess"))
    assert run.result.verdict.value == "APPROVE" and Path(run.result.winner or "").name == "right.diff"
    candidates = by_id(run)
    assert candidates["wrong.diff"].verdict.value == "REJECT"
    assert candidates["wrong.diff"].repro.after_rc == [1, 1]
    # once on the snapshot (it must fail there), twice on each candidate
    assert len([j for j in executor.jobs if REPRO in " ".join(j.command)]) == 5


def test_a_reproduction_the_executor_timed_out_is_no_pass(repo) -> None:  # noqa: ANN001
    root, right, _ = repo

    def handler(job: Job) -> JobResult:
        if mean_is_right(job):
            return JobResult(returncode=None, timed_out=True, stdout="still running", executor="inprocess")
        return JobResult(returncode=1, executor="inprocess")

    run, _ = judge(root, [right], handler)
    (only,) = run.result.candidates
    assert run.result.winner is None and only.verdict.value != "APPROVE"
    assert "the reproduction still fails after the patch (timed out)" in only.reasons, only.reasons


def test_a_job_the_executor_cannot_run_stops_the_fix_and_changes_nothing(repo) -> None:  # noqa: ANN001
    """An executor that cannot run a candidate's job is no verdict on the candidate: the fix stops with the
    executor's error (the command line exits 4, could not verify), and the checkout is as it was."""
    root, right, _ = repo

    def handler(job: Job) -> JobResult:
        if mean_is_right(job):
            raise ExecutorError("the node went away")
        return JobResult(returncode=1, executor="inprocess")

    with pytest.raises(ExecutorError, match="the node went away"):
        judge(root, [right], handler)
    assert (root / "calc.py").read_text() == CALC
