"""`truthplane exec` and `truthplane sandbox build` through the real CLI entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from truthplane.cli.main import run

bwrap = pytest.mark.tool("bwrap")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / "hello.py").write_text("print('hello from the project')\n")
    monkeypatch.chdir(root)
    return root


@bwrap
def test_exec_prints_42(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["exec", "--executor", "local", "--", "python", "-c", "print(6*7)"])
    out, err = capsys.readouterr()
    assert (code, out) == (0, "42\n")
    assert "unsandboxed" not in err


@bwrap
def test_exec_runs_against_a_copy_of_the_current_directory(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(
        ["exec", "-e", "local", "--", "python", "-c", "exec(open('hello.py').read()); open('hello.py', 'w').write('')"]
    )
    assert (code, capsys.readouterr().out) == (0, "hello from the project\n")
    assert (project / "hello.py").read_text() == "print('hello from the project')\n"


@bwrap
def test_exit_status_is_the_commands(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["exec", "-e", "local", "--", "sh", "-c", "echo out; echo err >&2; exit 3"]) == 3
    out, err = capsys.readouterr()
    assert out == "out\n" and err.startswith("err\n")


@bwrap
def test_timeout_exits_4_and_says_so(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["exec", "-e", "local", "--timeout", "1", "--", "sleep", "30"]) == 4
    assert "killed after the 1 s timeout" in capsys.readouterr().err


@bwrap
def test_json_format_is_the_job_result(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        run(["exec", "-e", "local", "--format", "json", "--", "python", "-c", "print('x'); raise SystemExit(2)"]) == 2
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["returncode"] == 2 and doc["stdout"] == "x\n"
    assert doc["executor"] == "local" and doc["sandboxed"] is True and doc["timed_out"] is False


def test_unsandboxed_run_prints_a_plain_warning(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "truthplane.toml").write_text("[executors.local]\nsandbox = false\n")
    assert run(["exec", "--", sys.executable, "-c", "print(1)"]) == 0
    out, err = capsys.readouterr()
    assert out == "1\n"
    assert "warning: ran unsandboxed\n" in err


def test_unknown_executor_is_a_usage_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["exec", "-e", "no-such-backend", "--", "true"]) == 2
    assert "unknown executor 'no-such-backend'" in capsys.readouterr().err


def test_bad_format_is_a_usage_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["exec", "--format", "xml", "--", "true"]) == 2


def test_executor_failure_exits_4_with_one_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "truthplane.toml").write_text(f"[executors.docker]\nbase_url = 'unix://{project}/none.sock'\n")
    assert run(["exec", "-e", "docker", "--", "true"]) == 4
    err = capsys.readouterr().err
    assert (
        err
        == f"truthplane: error: Docker engine not reachable at unix://{project}/none.sock: start dockerd, or use "
           f"--executor local\n"
    )


def test_sandbox_build_for_an_executor_without_images(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["sandbox", "build", "--executor", "no-such-backend"]) == 2
    assert "has no sandbox image to build" in capsys.readouterr().err
    assert run(["sandbox", "build", "--from", "floppy"]) == 2


def test_help_does_not_import_backends() -> None:
    code = ("import sys; from truthplane.cli.main import app; print([m for m in ('docker', "
            "'truthplane.executors.local') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
