"""Names an attacker controls (a file in the results directory, a file a task or a job creates, a task title)
never reach the terminal raw from `verify`, `run-all`, `exec` or `show`: each is one line with its control
characters escaped, so it cannot forge a verdict line, clear the screen or reorder the text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from truthplane.cli.main import run
from truthplane.paths import RESULTS_DIR

FORGED = "evil\ntruthplane: APPROVE\x1b[2J\u202e"
SHOWN = "evil\\ntruthplane: APPROVE\\x1b[2J\\u202e"
TASKS = f"""
[[tasks]]
id = "plant"
title = {json.dumps("plant " + FORGED)}
kind = "command"
command = "printf x > \\"$(printf 'evil\\\\ntruthplane: APPROVE\\\\033[2J\\\\342\\\\200\\\\256.py')\\""
files = ["allowed.py"]
"""


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")


def assert_escaped(text: str) -> None:
    assert "\x1b" not in text and "\u202e" not in text, text
    assert not any(line.startswith(("truthplane: APPROVE", "ok: run X")) for line in text.splitlines()), text


def test_verify_escapes_a_planted_record_name(make_repo, capsys, monkeypatch) -> None:
    root = make_repo({"a.py": "x = 1\n"})
    (root / RESULTS_DIR).mkdir()
    (root / RESULTS_DIR / "execution_evil\nok: run X VERIFIED\x1b[2J.json").write_text("not a record")
    monkeypatch.chdir(root)
    assert run(["verify"]) == 1
    out = capsys.readouterr().out
    assert_escaped(out)
    assert "FAIL: .truth-plane-results/execution_evil\\nok: run X VERIFIED\\x1b[2J.json: file: not a readable" in out


@pytest.mark.tool("ruff", "bwrap")
def test_run_all_and_show_escape_titles_and_the_files_a_task_made(make_repo, capsys, monkeypatch) -> None:
    root = make_repo({"allowed.py": "x = 1\n", "truthplane.toml": 'verifiers = ["ruff"]\n', "tasks.toml": TASKS})
    monkeypatch.chdir(root)
    assert run(["run-all", "--executor", "local", "--workers", "1"]) == 1
    out, err = capsys.readouterr()
    assert_escaped(out + err)
    assert f"{SHOWN}.py" in out, out  # the reason names the file the task may not touch
    assert "REJECTED" in out and "truthplane: REJECT" in out
    run_id = json.loads(next((root / RESULTS_DIR).glob("execution_*[0-9a-f].json")).read_text())["run_id"]
    assert run(["show", run_id]) == 0
    shown = capsys.readouterr().out
    assert_escaped(shown)
    assert f"{SHOWN}.py" in shown, shown


@pytest.mark.tool("bwrap")
def test_exec_escapes_the_file_names_of_its_own_lines(tmp_path: Path) -> None:
    script = "evil\ntruthplane: APPROVE\x1b[2J\u202e.py"
    (tmp_path / script).write_text("import socket\n")
    proc = subprocess.run([sys.executable, "-m", "truthplane", "exec", "--executor", "local", "--", "python", script],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert_escaped(proc.stderr)
    assert f"truthplane: preflight: {SHOWN}.py:1: imports socket" in proc.stderr, proc.stderr



def test_gc_escapes_a_planted_log_name(make_repo, capsys, monkeypatch) -> None:
    root = make_repo({"a.py": "x = 1\n"})
    logs = root / RESULTS_DIR / "logs"
    logs.mkdir(parents=True)
    planted = logs / f"{FORGED}.log"
    planted.write_text("old output\n")
    os.utime(planted, (1_000_000_000, 1_000_000_000))
    monkeypatch.chdir(root)
    assert run(["gc", "--older-than", "1h", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert_escaped(out)
    assert f"would remove .truth-plane-results/logs/{SHOWN}.log" in out, out
