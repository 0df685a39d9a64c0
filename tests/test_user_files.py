"""Files a user names on the command line (`fix --error-file`, `fix --candidate`) and files the results
directory points at (`show`'s record) are read only if they are regular files of bounded size: a FIFO or a
device is refused with one line and an exit code, never read forever. Each runs in a subprocess with a
timeout, so a read that blocks fails the test instead of hanging it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from truthplane.paths import RESULTS_DIR
from truthplane.store import Store

TIMEOUT_S = 30
RUN_ID = "20260101T000000Z-abcdef"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "TRUTHPLANE_CACHE_DIR": str(tmp_path / "cache"), "NO_COLOR": "1"}


def truthplane(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "truthplane", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL, check=False)


def one_line(proc: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert proc.returncode == code, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "unexpected" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], proc.stderr


@pytest.mark.parametrize("kind", ["fifo", "device"])
@pytest.mark.parametrize("flag", ["--error-file", "--candidate"])
def test_fix_refuses_a_fifo_or_a_device_as_a_file_it_reads(
    make_repo, tmp_path: Path, env, kind: str, flag: str
) -> None:
    root = make_repo({"a.py": "import os\n"})
    if kind == "fifo":
        source = tmp_path / "pipe"
        os.mkfifo(source)
    else:
        source = Path("/dev/zero")
    proc = truthplane(root, env, "fix", "a.py", flag, str(source), "--dry-run")
    one_line(proc, 2, str(source), "not a regular file")


def test_fix_refuses_an_error_file_over_the_size_limit(make_repo, tmp_path: Path, env) -> None:
    root = make_repo({"a.py": "import os\n"})
    (tmp_path / "huge.txt").write_bytes(b"x")
    os.truncate(tmp_path / "huge.txt", 300 * 1024 * 1024)
    proc = truthplane(root, env, "fix", "a.py", "--error-file", str(tmp_path / "huge.txt"), "--dry-run")
    one_line(proc, 2, "huge.txt", "larger than the 256 MiB limit")


def test_show_refuses_a_record_replaced_by_a_fifo(make_repo, env) -> None:
    root = make_repo({"a.py": "x = 1\n"})
    results = root / RESULTS_DIR
    results.mkdir()
    record = results / "execution_20260101_000000.json"
    os.mkfifo(record)
    with Store.open(root=root) as store, store.write() as db:
        db.execute("INSERT INTO runs (run_id, sequence, kind, recorded_at, overall_verdict, path, record_hash, "
                   "file_sha256) VALUES (?, 1, 'fix', 0, 'APPROVE', ?, ?, ?)",
                   (RUN_ID, f"{RESULTS_DIR}/{record.name}", "0" * 64, "0" * 64))
    proc = truthplane(root, env, "show", RUN_ID)
    one_line(proc, 4, record.name, "not a regular file")


@pytest.mark.parametrize("planted", ["execution_20260101_000000.json", "ledger-head.json"])
def test_verify_reports_a_fifo_planted_in_the_results_directory(make_repo, env, planted: str) -> None:
    root = make_repo({"a.py": "x = 1\n"})
    results = root / RESULTS_DIR
    results.mkdir()
    (results / "execution_20250101_000000.json").write_text("not a record")
    os.mkfifo(results / planted)
    proc = truthplane(root, env, "verify")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL: .truth-plane-results/execution_20250101_000000.json: file: not a readable JSON record" in proc.stdout
    if planted.startswith("execution_"):
        assert f"FAIL: .truth-plane-results/{planted}: file: not a regular file" in proc.stdout, proc.stdout
