"""LambdaExecutor against truthplane's real handler under the AWS Lambda Runtime Interface Emulator,
invoked through boto3 exactly as real AWS is (only endpoint_url differs)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import register_probe
from tests.executors._remote_fixtures import Emulator, emulator_present, free_port, lambda_emulator
from truthplane.errors import ExecutorError
from truthplane.executors.aws_lambda import PAYLOAD_LIMIT, LambdaExecutor
from truthplane.executors.interface import TRUNCATION_MARKER
from truthplane.executors.jobs import Job, JobResult, Limits

register_probe("lambda-emulator", emulator_present)

pytestmark = pytest.mark.tool("lambda-emulator")


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    with lambda_emulator(function_timeout_s=10) as emu:
        yield emu


def run(emulator: Emulator, job: Job, **options: object) -> JobResult:
    async def go() -> JobResult:
        async with LambdaExecutor(emulator.options(**options)) as executor:
            return await executor.run(job)

    return asyncio.run(go())


def test_prints_42(emulator: Emulator) -> None:
    result = run(emulator, Job(command=["python", "-c", "print(6*7)"]))
    assert result.returncode == 0
    assert result.stdout == "42\n"
    assert result.executor == "lambda" and result.node == "lambda:function"
    assert result.ok
    assert any("network is not cut per job" in note for note in result.notes)


def test_files_and_source_dir_arrive_with_symlinks_kept(emulator: Emulator, tmp_path: Path) -> None:
    source = tmp_path / "repo"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "data.txt").write_text("from the tree\n")
    (source / "run.sh").write_text("#!/bin/sh\necho executable\n")
    (source / "run.sh").chmod(0o755)
    os.symlink("/etc/hostname", source / "outside")
    job = Job(
        command=["sh", "-c", "cat pkg/data.txt extra/note.txt; ./run.sh; readlink outside"],
        source_dir=str(source), files={"extra/note.txt": b"from files\n"},
    )
    result = run(emulator, job)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "from the tree\nfrom files\nexecutable\n/etc/hostname\n"


def test_host_and_function_environment_never_reach_the_job(emulator: Emulator) -> None:
    job = Job(command=["sh", "-c", "env"], env={"ASKED_FOR": "yes"})
    result = run(emulator, job)
    assert "ASKED_FOR=yes" in result.stdout
    assert "function-role-secret" not in result.stdout and "AWS_" not in result.stdout
    assert "LANG=C.UTF-8" in result.stdout


def test_non_zero_exit_and_stderr(emulator: Emulator) -> None:
    job = Job(command=["python", "-c", "import sys; sys.stderr.write('bad\\n'); sys.exit(3)"], stdin=None)
    result = run(emulator, job)
    assert result.returncode == 3
    assert result.stderr == "bad\n"
    assert not result.ok and not result.timed_out


def test_stdin_reaches_the_job(emulator: Emulator) -> None:
    result = run(emulator, Job(command=["python", "-c", "import sys; print(sys.stdin.read().upper())"], stdin=b"hi"))
    assert result.stdout == "HI\n"


def test_timeout_kills_the_job(emulator: Emulator) -> None:
    job = Job(command=["sh", "-c", "echo started; exec sleep 30"], limits=Limits(timeout_s=1))
    result = run(emulator, job)
    assert result.timed_out
    assert result.returncode is None
    assert result.stdout == "started\n"


def test_job_timeout_longer_than_the_function_is_cut_and_said(emulator: Emulator) -> None:
    job = Job(command=["sleep", "30"], limits=Limits(timeout_s=60))
    result = run(emulator, job)
    assert result.timed_out
    assert any("cut to the function's remaining time" in note for note in result.notes)


def test_output_is_capped_with_a_visible_marker(emulator: Emulator) -> None:
    job = Job(command=["python", "-c", "print('x' * 100000)"], limits=Limits(max_output_bytes=1000))
    result = run(emulator, job)
    assert result.stdout_truncated
    assert result.stdout.startswith("x" * 1000)
    assert result.stdout.endswith(TRUNCATION_MARKER.format(dropped=100001 - 1000))


def test_oversize_payload_is_refused_before_sending(emulator: Emulator) -> None:
    job = Job(command=["true"], files={"blob.bin": os.urandom(PAYLOAD_LIMIT)})
    with pytest.raises(ExecutorError, match=r"is 8\.\d MB after compression .* at most 6\.0 MB"):
        run(emulator, job)


def test_concurrent_jobs_each_get_their_own_result(emulator: Emulator) -> None:
    jobs = [Job(command=["python", "-c", f"print({n} * 2)"]) for n in range(3)]

    async def go() -> list[JobResult]:
        async with LambdaExecutor(emulator.options(concurrency=1)) as executor:
            return await executor.run_many(jobs)

    assert [r.stdout for r in asyncio.run(go())] == ["0\n", "2\n", "4\n"]


def test_emulator_not_running_is_an_executor_error() -> None:
    options = {"function_name": "function", "endpoint_url": f"http://127.0.0.1:{free_port()}", "region": "us-east-1",
               "aws_access_key_id": "test", "aws_secret_access_key": "test"}

    async def go() -> JobResult:
        async with LambdaExecutor(options) as executor:
            return await executor.run(Job(command=["true"]))

    with pytest.raises(ExecutorError, match="cannot reach http://127.0.0.1:.*start the emulator"):
        asyncio.run(go())


def test_function_that_itself_times_out_reports_timed_out() -> None:
    # a grandchild in its own session keeps the output pipe open past the job's kill, so the
    # handler is still waiting when the 3 s function times out
    with lambda_emulator(function_timeout_s=3) as emu:
        result = run(emu, Job(command=["sh", "-c", "setsid sleep 20 & exec sleep 20"]))
    assert result.timed_out and result.returncode is None
    assert any("the function itself timed out" in note for note in result.notes)


LAMBDA_DIR = Path(__file__).resolve().parents[2] / "truthplane" / "executors" / "lambda"


@pytest.mark.tool("cfn-lint")
def test_sam_template_is_valid_and_keeps_the_planned_defaults() -> None:
    import subprocess

    template = LAMBDA_DIR / "template.yaml"
    proc = subprocess.run(["cfn-lint", str(template)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = template.read_text()
    assert "PackageType: Image" in text
    assert "MemorySize:\n    Type: Number\n    Default: 1024" in text
    assert "Timeout:\n    Type: Number\n    Default: 10" in text


def test_the_files_the_dockerfile_copies_are_enough_for_the_handler(tmp_path: Path) -> None:
    """Lay out the image's task root from the Dockerfile's COPY lines and run the handler from it
    with a bare interpreter (-I -S: no site-packages), as the image's runtime would."""
    import json
    import shutil
    import subprocess
    import sys

    repo = LAMBDA_DIR.parents[2]
    dockerfile = (LAMBDA_DIR / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            *sources, dest = line.split()[1:]
            dest = dest.replace("${LAMBDA_TASK_ROOT}", str(tmp_path))
            for source in sources:
                target = Path(dest) / Path(source).name if dest.endswith("/") else Path(dest)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(repo / source, target)
    cmd = dockerfile.split("CMD ", 1)[1].strip()
    module, _, function = json.loads(cmd)[0].rpartition(".")
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import importlib\n"
        f"handler = getattr(importlib.import_module({module!r}), {function!r})\n"
        "event = {'truthplane': 1, 'command': [sys.executable, '-c', 'print(6*7)'], 'timeout_s': 10,"
        " 'max_output_bytes': 100, 'archive_b64': '', 'env': {}}\n"
        "print(json.dumps(handler(event, None)))\n"
        "print(sorted(m for m in sys.modules if m.startswith(('pydantic', 'boto'))))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", script, str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    answer, imported = proc.stdout.splitlines()
    assert json.loads(answer)["stdout_b64"] == "NDIK"  # "42\n"
    assert imported == "[]"
