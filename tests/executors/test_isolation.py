"""A job sees only its own directory, wherever the host keeps the repository and the job directories:
here both live under /var (as on a CI agent) or /opt, where a sandbox that hides only /tmp and the
homes would show them."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.executors.conftest import run_job
from truthplane.executors.jobs import Job, Limits

# every place a job could look for another's files or the checkout's (find / -xdev stops at mounts)
LOOK_IN = "/var /opt /etc /srv /home /root /mnt /tmp /work /usr/src"


@pytest.fixture(params=["/var/lib", "/opt"])
def host_layout(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A checkout with a git-ignored .env, a temp dir holding another job's directory and a cache, all under PARAM."""
    base = Path(tempfile.mkdtemp(prefix="truthplane-test-", dir=request.param))
    secret = f"tp-secret-{uuid.uuid4().hex}"
    repo = base / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / ".gitignore").write_text(".env\n")
    (repo / ".env").write_text(f"API_KEY={secret}\n")
    (repo / "app.py").write_text("print('hello')\n")
    snapshot = base / "tmp" / "truthplane-fix-1" / "snapshot"
    snapshot.mkdir(parents=True)
    shutil.copy2(repo / "app.py", snapshot / "app.py")
    other = base / "tmp" / "truthplane-job-other"
    other.mkdir()
    (other / "other-job-data.txt").write_text(secret)
    cache = base / "cache"  # truthplane's cache, kept there too
    cache.mkdir()
    (cache / "other-job-data.txt").write_text(secret)
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(cache))
    monkeypatch.setenv("TMPDIR", str(base / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(base / "tmp"))
    monkeypatch.chdir(repo)
    try:
        yield {"base": base, "repo": repo, "snapshot": snapshot, "other": other, "secret": secret}
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_job_sees_neither_the_checkout_nor_another_jobs_files(sandbox: Any, host_layout: dict[str, Any]) -> None:
    repo, other, secret = host_layout["repo"], host_layout["other"], host_layout["secret"]
    script = (
        f"cat app.py own.txt; cat {repo}/.env {other}/other-job-data.txt 2>&1; "
        f"find {LOOK_IN} {host_layout['base']} \\( -name .env -o -name other-job-data.txt \\) -exec cat {{}} + "
        f"2>/dev/null; "
        f"grep -rs {secret} /tmp /var/tmp {host_layout['base']} 2>/dev/null | head -3; echo done"
    )
    job = Job(command=["sh", "-c", script], source_dir=str(host_layout["snapshot"]), origin=str(repo),
              files={"own.txt": b"own file\n"}, limits=Limits(timeout_s=120))
    result = run_job(sandbox, job)
    assert result.returncode == 0, result.stderr
    # the job's own files are there, so the search below ran in a working sandbox
    assert "print('hello')" in result.stdout and "own file" in result.stdout and "done" in result.stdout
    assert secret not in result.stdout + result.stderr
    # and nothing leaked back: the host's files are as they were
    assert (repo / ".env").read_text() == f"API_KEY={secret}\n"


CALC = "def mean(values):\n    return sum(values) / len(values) + 1\n"
RIGHT = """--- a/calc.py
+++ b/calc.py
@@ -1,2 +1,2 @@
 def mean(values):
-    return sum(values) / len(values) + 1
+    return sum(values) / len(values)
"""


@pytest.mark.tool("bwrap")
@pytest.mark.tool("ruff")
def test_a_fix_test_command_cannot_read_the_checkouts_env_into_the_evidence(host_layout: dict[str, Any],
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    from truthplane.cli.main import run

    repo, secret = host_layout["repo"], host_layout["secret"]
    (repo / "calc.py").write_text(CALC)
    (repo / "truthplane.toml").write_text('verifiers = ["ruff"]\n')
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init"], check=True
    )
    patch = host_layout["base"] / "right.diff"
    patch.write_text(RIGHT)
    steal = f"cat {repo}/.env; find {LOOK_IN} -name .env -exec cat {{}} + 2>/dev/null; echo tests-ran"
    code = run(["fix", str(repo / "calc.py"), "--candidate", str(patch), "--test-cmd", steal, "--format", "json"])
    out = capsys.readouterr()
    result = json.loads(out.out)
    assert "tests-ran" in result["candidates"][0]["tests"]["output_tail"]
    evidence = (repo / result["evidence"]).read_text()
    assert secret not in out.out + out.err and secret not in evidence
    assert code == 0
