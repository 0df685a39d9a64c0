"""Tests and reproductions run with the repository's Python, never truthplane's own: its .venv, else the
first python on the PATH truthplane was started with, leaving truthplane's own virtualenv out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from truthplane.cli.main import run

ROOT = Path(__file__).resolve().parents[2]
CALC = "def mean(values):\n    return sum(values) / len(values) + 1\n"
RIGHT = """--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,2 @@
 def mean(values):
-    return sum(values) / len(values) + 1
+    return sum(values) / len(values)
"""
# the repository's tests need a package only its own environment has
TEST_CMD = "python -c 'import marker_pkg, sys; print(marker_pkg.WHERE, sys.executable)'"


def make_venv(path: Path, where: str | None = None, system_site_packages: bool = False) -> Path:
    venv.EnvBuilder(with_pip=False, symlinks=True, system_site_packages=system_site_packages).create(path)
    if where is not None:
        site = next(path.glob("lib/python3*/site-packages"))
        (site / "marker_pkg.py").write_text(f"WHERE = {where!r}\n")
    return path


@pytest.mark.tool("ruff")
@pytest.mark.tool("bwrap")
def test_fix_runs_the_tests_with_the_repositorys_venv(make_repo, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    root = make_repo({"calc.py": CALC, ".gitignore": ".venv/\n.env\n", "truthplane.toml": 'verifiers = ["ruff"]\n'})
    make_venv(root / ".venv", where="the repository's venv")
    (root / ".env").write_text("SECRET=never-shown\n")
    patch = tmp_path / "right.diff"
    patch.write_text(RIGHT)
    test_cmd = f"{TEST_CMD} && cat {root / '.env'} .env; true"
    code = run(["fix", str(root / "calc.py"), "--candidate", str(patch), "--test-cmd", test_cmd, "--format", "json"])
    out, err = capsys.readouterr()
    result = json.loads(out)
    tests = result["candidates"][0]["tests"]
    assert "the repository's venv" in tests["output_tail"], tests["output_tail"]
    assert str(root / ".venv") in tests["interpreter"] and "the repository's .venv" in tests["interpreter"]
    assert f"run with {root / '.venv'}" in err
    # the venv is shown to the job, the rest of the checkout (its git-ignored .env) is not
    assert "never-shown" not in tests["output_tail"]
    assert code == 0


def test_path_python_comes_before_truthplanes_own_virtualenv(tmp_path: Path) -> None:
    """truthplane installed in a virtualenv whose bin dir is first on PATH: the next python on PATH is the user's."""
    own = make_venv(tmp_path / "truthplane-venv", system_site_packages=True)
    users = make_venv(tmp_path / "users-venv", where="user")
    repo = tmp_path / "repo"
    (repo / "bin").mkdir(parents=True)
    planted = repo / "bin" / "python3"  # a repository's own "python" is never run on the host
    planted.write_text(f"#!/bin/sh\ntouch {tmp_path / 'planted-ran'}\n")
    planted.chmod(0o755)
    path = os.pathsep.join([str(repo / "bin"), ".", str(own / "bin"), str(users / "bin"), "/usr/bin", "/bin"])
    code = (
        "import sys; from pathlib import Path; from truthplane.executors.interpreter import repository_interpreter; "
        "found = repository_interpreter(Path(sys.argv[1])); print(found.executable); print(found.origin)"
    )
    done = subprocess.run(
        [str(own / "bin" / "python"), "-c", code, str(repo)],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": path, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    executable, origin = done.stdout.splitlines()
    assert Path(executable).parent == users / "bin"
    assert origin == "the PATH truthplane was started with"
    assert not (tmp_path / "planted-ran").exists()


def test_without_any_other_python_truthplanes_own_is_used_and_said(tmp_path: Path) -> None:
    from truthplane.executors.interpreter import repository_interpreter

    found = repository_interpreter(tmp_path, path=str(tmp_path / "nothing-here"))
    assert found.executable == sys.executable and "truthplane's own" in found.origin


@pytest.mark.tool("bwrap")
def test_exec_runs_python_from_the_repositorys_venv_and_says_so(tmp_path: Path, capsys, monkeypatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    make_venv(project / ".venv", where="project venv")
    monkeypatch.chdir(project)
    assert run(["exec", "--format", "json", "--", "python", "-c", "import marker_pkg; print(marker_pkg.WHERE)"]) == 0
    result = json.loads(capsys.readouterr()[0])
    assert result["stdout"] == "project venv\n"
    assert result["interpreter"] == str(project.resolve() / ".venv" / "bin" / "python")


def test_doctor_says_which_python_the_tests_run_with(tmp_path: Path, capsys, monkeypatch) -> None:
    project = tmp_path / "project"
    project.mkdir()
    make_venv(project / ".venv")
    monkeypatch.chdir(project)
    run(["doctor", "--format", "json"])
    doc = json.loads(capsys.readouterr()[0])
    assert doc["interpreter"] == {"executable": str(project.resolve() / ".venv" / "bin" / "python"),
                                  "origin": "the repository's .venv"}
    run(["doctor"])
    lines = capsys.readouterr()[0].splitlines()  # its own line, not an escaped "\\n" glued to the table
    assert (
        f"tests and reproductions run with {project.resolve() / '.venv' / 'bin' / 'python'} (the repository's .venv)"
        in lines
    )


@pytest.mark.tool("ruff")
@pytest.mark.tool("bwrap")
def test_an_editable_install_in_the_repositorys_venv_imports_the_copy_under_test(
    make_repo, tmp_path: Path, capsys, monkeypatch,
) -> None:
    """The usual set-up: a src layout, `pip install -e .` in the repository's .venv (a .pth naming <checkout>/src).
    The tests must import the candidate's copy, not the checkout (hidden from the job) and not nothing."""
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    root = make_repo(
        {
            "src/calc.py": CALC,
            ".gitignore": ".venv/\n",
            "truthplane.toml": 'verifiers = ["ruff"]\n',
            "tests/test_calc.py": "from calc import mean\n\n\ndef test_mean():\n    assert mean([1, 3]) == 2\n",
        }
    )
    site = next(make_venv(root / ".venv").glob("lib/python3*/site-packages"))
    (site / "__editable__.calc.pth").write_text(f"{root / 'src'}\n")  # what setuptools' editable install writes
    patch = tmp_path / "right.diff"
    patch.write_text(RIGHT.replace("calc.py", "src/calc.py"))
    repro = "python -c 'import calc, sys; sys.exit(0 if calc.mean([1, 3]) == 2 else 1)'"
    code = run(["fix", str(root / "src" / "calc.py"), "--candidate", str(patch), "--repro-cmd", repro,
                "--repro-runs", "1", "--no-autofix", "--format", "json"])
    result = json.loads(capsys.readouterr()[0])
    (candidate,) = result["candidates"]
    assert candidate["repro"]["before_rc"] == 1 and candidate["repro"]["after_rc"] == [0], candidate["repro"]
    assert code == 0 and result["winner"] == str(patch)


@pytest.mark.tool("bwrap")
def test_run_all_runs_a_tasks_tests_with_the_repositorys_venv(make_repo, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    root = make_repo({".gitignore": ".venv/\n", "truthplane.toml": 'verifiers = ["ruff"]\n', "tasks.toml": """
[[tasks]]
id = "note"
kind = "command"
command = "echo note > note.txt"
files = ["note.txt"]
acceptance = { test_cmd = "python -c 'import marker_pkg, sys; print(marker_pkg.WHERE, sys.executable)'" }
"""})
    make_venv(root / ".venv", where="the repository's venv")
    monkeypatch.chdir(root)
    code = run(["run-all", "--format", "json"])
    doc = json.loads(capsys.readouterr()[0])
    (task,) = doc["tasks"]
    tests = task["verification"]["checks"]["tests"]
    assert "the repository's venv" in tests["output_tail"], tests
    assert tests["interpreter"] == str(root / ".venv" / "bin" / "python")
    assert code == 0 and task["status"] == "SUCCESS"
