"""Installed without its extras (`pip install .`), truthplane says what to install instead of crashing.

The packages are made unimportable for real, in a subprocess: a meta-path finder on PYTHONPATH raises
ModuleNotFoundError for them, as a Python without them installed does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCKER = """
import sys
BLOCKED = set({blocked!r})
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Blocker())
"""
HINT = "pip install 'truthplane[executors]'"
SSH_CONFIG = """
[executors.ssh]
[[executors.ssh.nodes]]
host = "127.0.0.1"
user = "nobody"
key = "{key}"
"""


def truthplane(tmp_path: Path, blocked: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    blocker = tmp_path / "blocker"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(BLOCKER.format(blocked=sorted(blocked)))
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": f"{blocker}:{ROOT}", "TRUTHPLANE_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "truthplane", *args], cwd=work, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_blocker_really_blocks(tmp_path: Path) -> None:
    done = truthplane(tmp_path, ["docker"], "exec", "--", "python3", "-c", "print(1)")
    assert done.returncode == 0  # truthplane itself runs without docker
    check = subprocess.run([sys.executable, "-c", "import docker"], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": str(tmp_path / "blocker")})
    assert "No module named 'docker'" in check.stderr


def test_doctor_lists_executors_whose_package_is_missing_with_what_to_install(tmp_path: Path) -> None:
    done = truthplane(tmp_path, ["docker", "boto3", "botocore", "asyncssh"], "doctor", "--format", "json")
    assert "unexpected" not in done.stderr, done.stderr
    components = {c["name"]: c for c in json.loads(done.stdout)["components"] if c["kind"] == "executor"}
    for name in ("docker", "lambda", "ssh"):
        assert components[name]["installed"] is False
        assert HINT in components[name]["reason"], components[name]
    assert components["local"]["installed"] is True


@pytest.mark.parametrize(("executor", "blocked", "package"), [
    ("docker", ["docker"], "docker"),
    ("docker", ["requests"], "requests"),
    ("lambda", ["boto3", "botocore"], "boto3"),
    ("ssh", ["asyncssh"], "asyncssh"),
])
def test_exec_on_an_executor_whose_package_is_missing_exits_4_saying_what_to_install(
        tmp_path: Path, executor: str, blocked: list[str], package: str) -> None:
    (tmp_path / "work").mkdir()
    key = tmp_path / "id_ed25519"
    key.write_text("not a key\n")
    (tmp_path / "work" / "truthplane.toml").write_text(SSH_CONFIG.format(key=key))
    done = truthplane(tmp_path, blocked, "exec", "--executor", executor, "--", "true")
    assert done.returncode == 4, done.stderr
    assert "unexpected" not in done.stderr
    assert f"needs the Python package {package}, which is not installed: {HINT}" in done.stderr
