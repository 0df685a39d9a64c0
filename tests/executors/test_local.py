"""LocalExecutor and the shared workspace, against real bubblewrap and a real cgroup."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.executors.conftest import run_job
from truthplane.errors import ExecutorError
from truthplane.executors._jobdir import OutputCap, materialise
from truthplane.executors.interface import cap_output
from truthplane.executors.local import NO_BWRAP, LocalExecutor
from truthplane.executors.jobs import Job, Limits

bwrap = pytest.mark.tool("bwrap")


def py(code: str, **kwargs: object) -> Job:
    return Job(command=["python", "-c", code], **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def local() -> LocalExecutor:
    return LocalExecutor({"kill_grace_s": 0.5})


@pytest.fixture
def unsandboxed() -> LocalExecutor:
    return LocalExecutor({"sandbox": False, "kill_grace_s": 0.5})


@bwrap
def test_prints_42_sandboxed(local: LocalExecutor) -> None:
    result = run_job(local, py("print(6*7)"))
    assert result.stdout == "42\n"
    assert result.returncode == 0 and result.ok
    assert result.sandboxed and result.executor == "local"
    assert not any("unsandboxed" in note for note in result.notes)


@bwrap
def test_python_is_the_hosts_interpreter(local: LocalExecutor) -> None:
    result = run_job(local, py("import sys; print(sys.version)"))
    assert result.stdout.strip() == sys.version


@bwrap
def test_environment_is_minimal_plus_job_env(local: LocalExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUTHPLANE_TEST_API_KEY", "sk-host-secret")
    code = "import os, json; print(json.dumps(dict(os.environ)))"
    result = run_job(local, py(code, env={"GREETING": "hello"}))
    env = __import__("json").loads(result.stdout)
    assert "TRUTHPLANE_TEST_API_KEY" not in env
    assert env["GREETING"] == "hello"
    assert env["LANG"] == "C.UTF-8" and env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert set(env) - {"PWD"} == {"PATH", "HOME", "LANG", "PYTHONDONTWRITEBYTECODE", "GREETING"}


@bwrap
def test_source_dir_copied_and_files_written_without_touching_the_source(local: LocalExecutor, tmp_path: Path) -> None:
    source = tmp_path / "repo"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "mod.py").write_text("VALUE = 1\n")
    job = Job(
        command=[
            "python",
            "-c",
            "import pkg.mod, extra; open('pkg/mod.py', 'w').write('VALUE = 2'); print(pkg.mod.VALUE, extra.X)",
        ],
        source_dir=str(source),
        files={"extra.py": b"X = 'x'\n"},
    )
    result = run_job(local, job)
    assert result.stdout == "1 x\n", result.stderr
    assert (source / "pkg" / "mod.py").read_text() == "VALUE = 1\n"
    assert not (source / "extra.py").exists()


@bwrap
def test_workdir_and_stdin(local: LocalExecutor) -> None:
    job = py(
        "import os, sys; print(os.path.basename(os.getcwd()), sys.stdin.read().upper())",
        workdir="sub/dir",
        stdin=b"abc",
    )
    result = run_job(local, job)
    assert result.stdout == "dir ABC\n"


@bwrap
def test_workspace_removed_afterwards(local: LocalExecutor) -> None:
    result = run_job(local, py("import os; print(os.getcwd())"))
    workspace = result.stdout.strip()
    assert workspace.startswith("/") and not os.path.exists(workspace)


@bwrap
def test_timeout_kills_and_reports(local: LocalExecutor) -> None:
    result = run_job(local, py("import time; print('started', flush=True); time.sleep(60)", limits=Limits(timeout_s=1)))
    assert result.timed_out and not result.ok
    assert result.stdout == "started\n"
    assert any("timeout" in note for note in result.notes)


@bwrap
def test_job_that_catches_sigterm_gets_to_clean_up(local: LocalExecutor) -> None:
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: (print('cleaning up', flush=True), sys.exit(3)))\n"
        "print('ready', flush=True); time.sleep(60)\n"
    )
    result = run_job(LocalExecutor({"kill_grace_s": 5}), py(code, limits=Limits(timeout_s=1)))
    assert result.timed_out
    assert result.stdout == "ready\ncleaning up\n"


@bwrap
def test_nonzero_exit_and_stderr(local: LocalExecutor) -> None:
    result = run_job(local, py("import sys; sys.stderr.write('boom'); sys.exit(5)"))
    assert result.returncode == 5 and result.stderr == "boom" and not result.ok


@bwrap
def test_missing_command_is_a_result_not_a_crash(local: LocalExecutor) -> None:
    result = run_job(local, Job(command=["no-such-command-truthplane"]))
    assert result.returncode not in (0, None)
    assert "no-such-command-truthplane" in result.stderr


def test_unsandboxed_on_request_says_so(unsandboxed: LocalExecutor) -> None:
    result = run_job(unsandboxed, py("print(6*7)"))
    assert result.stdout == "42\n"
    assert result.sandboxed is False
    assert any("unsandboxed" in note for note in result.notes)


def test_without_bwrap_runs_unsandboxed_and_says_why(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap here
    info = LocalExecutor.available()
    assert info.installed and info.reason == NO_BWRAP
    result = run_job(LocalExecutor(), Job(command=[sys.executable, "-c", "print(1)"]))
    assert result.stdout == "1\n" and result.sandboxed is False
    assert any("apt-get install bubblewrap" in note for note in result.notes)


@bwrap
def test_available_reports_bwrap_version() -> None:
    info = LocalExecutor.available()
    assert info.installed and info.path and info.version and info.version[0].isdigit()


def test_run_many_runs_jobs_concurrently(unsandboxed: LocalExecutor, tmp_path: Path) -> None:
    # each job announces itself and waits for the other two: run one after another, the first would time out
    meet = tmp_path / "meet"
    meet.mkdir()
    code = (
        "import os, sys, time\n"
        "d = os.environ['MEET']; open(os.path.join(d, sys.argv[1]), 'w').close()\n"
        "deadline = time.time() + 20\n"
        "while len(os.listdir(d)) < 3 and time.time() < deadline: time.sleep(0.02)\n"
        "print(len(os.listdir(d)))\n"
    )
    jobs = [
        Job(command=["python", "-c", code, str(i)], env={"MEET": str(meet)}, limits=Limits(timeout_s=30))
        for i in range(3)
    ]
    results = asyncio.run(LocalExecutor({"sandbox": False, "concurrency": 3}).run_many(jobs))
    assert [r.stdout for r in results] == ["3\n"] * 3


# ---- the shared workspace and output cap ------------------------------------------------------


def test_symlinks_are_copied_as_links_never_dereferenced(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret")
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("a")
    os.symlink(secret, source / "escape")
    os.symlink("a.txt", source / "inside")
    os.mkfifo(source / "fifo")  # would hang a naive copy
    dest = tmp_path / "dest"
    dest.mkdir()
    materialise(Job(command=["true"], source_dir=str(source)), dest)
    assert os.readlink(dest / "escape") == str(secret)
    assert os.readlink(dest / "inside") == "a.txt"
    assert not (dest / "fifo").exists()


@pytest.mark.parametrize("path", ["../outside.txt", "/etc/evil", "a/../../b", ""])
def test_file_paths_must_stay_inside(tmp_path: Path, path: str) -> None:
    with pytest.raises(ExecutorError, match="escapes the workspace"):
        materialise(Job(command=["true"], files={path: b"x"}), tmp_path)


def test_files_cannot_be_written_through_a_copied_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    source = tmp_path / "src"
    source.mkdir()
    os.symlink(outside, source / "link")
    os.symlink(outside / "target.txt", source / "file-link")
    dest = tmp_path / "dest"
    for files in ({"link/planted.txt": b"x"}, {"file-link": b"x"}):
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir()
        with pytest.raises(ExecutorError):
            materialise(Job(command=["true"], source_dir=str(source), files=files), dest)
    assert list(outside.iterdir()) == []


def test_output_cap_matches_cap_output() -> None:
    data = b"0123456789" * 100
    cap = OutputCap(64)
    for i in range(0, len(data), 7):
        cap.feed(data[i : i + 7])
    assert cap.text() == cap_output(data, 64)
    small = OutputCap(5000)
    small.feed(data)
    assert small.text() == (data.decode(), False)


@bwrap
def test_cpu_time_is_capped_by_the_cpu_share_of_the_timeout(local: LocalExecutor) -> None:
    # 20 s wall at 0.1 CPU allows 3 s of CPU time: a spinning job dies of SIGXCPU long before the timeout
    result = run_job(local, py("while True: pass", limits=Limits(timeout_s=20, cpus=0.1)))
    assert not result.timed_out and not result.ok
    assert any("CPU time" in note for note in result.notes), (result.returncode, result.notes)


@bwrap
def test_large_stdin_with_a_job_that_writes_before_reading(local: LocalExecutor) -> None:
    code = "import sys\nsys.stdout.write('x' * (4 << 20)); sys.stdout.flush()\nprint(len(sys.stdin.buffer.read()))\n"
    job = Job(
        command=["python", "-c", code], stdin=b"y" * (4 << 20), limits=Limits(timeout_s=60, max_output_bytes=5 << 20)
    )
    result = run_job(local, job)
    assert not result.timed_out and result.returncode == 0, result.stderr
    assert result.stdout.endswith("x" + str(4 << 20) + "\n") and not result.stdout_truncated


@bwrap
def test_root_only_files_are_masked(local: LocalExecutor) -> None:
    code = ("for p in ('/etc/shadow', '/etc/gshadow'):\n    try: print(p, len(open(p).read()))\n    except OSError as "
            "e: print(p, e.strerror)\n")
    result = run_job(local, py(code))
    lines = result.stdout.splitlines()
    for path in ("/etc/shadow", "/etc/gshadow"):
        if os.path.isfile(path):  # masked, though the job's uid maps to their owner
            assert f"{path} 0" in lines or f"{path} Permission denied" in lines, result.stdout
