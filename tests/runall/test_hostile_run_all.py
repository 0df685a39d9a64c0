"""run-all command and fix tasks from a hostile repository: what a command makes (exec bits, symlinks) is
carried within the checkout's path rules, a forged report of the job is not trusted with paths, and a fix
task changes only its approved lines. Real git, real ruff, the real local executor."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git
from truthplane.cli.main import run

CONFIG = 'verifiers = ["ruff"]\n'

pytestmark = [pytest.mark.tool("ruff"), pytest.mark.tool("bwrap")]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")


def run_tasks(capsys, monkeypatch, root: Path, tasks: str) -> tuple[int, dict]:
    (root / "tasks.toml").write_text(tasks)
    git(root, "add", "tasks.toml")
    git(root, "commit", "-qm", "tasks")
    monkeypatch.chdir(root)
    code = run(["run-all", "--format", "json"])
    return code, json.loads(capsys.readouterr()[0])


def test_run_all_carries_the_exec_bit_and_symlinks_a_command_makes(make_repo, capsys, monkeypatch) -> None:
    root = make_repo({"a.py": "x = 1\n", "tool.sh": "#!/bin/sh\necho hi\n", "docs/guide.md": "guide\n",
                      "truthplane.toml": CONFIG})
    code, doc = run_tasks(capsys, monkeypatch, root, """
[[tasks]]
id = "modes"
kind = "command"
command = "chmod +x tool.sh && ln -s docs/guide.md GUIDE.md && printf '#!/bin/sh\\\\n' > new.sh && chmod 755 new.sh"
files = ["tool.sh", "GUIDE.md", "new.sh"]

[[tasks]]
id = "after"
kind = "command"
command = "echo more >> tool.sh"
files = ["tool.sh"]
depends_on = ["modes"]
""")
    tasks = {t["task_id"]: t for t in doc["tasks"]}
    assert code == 0 and {t["status"] for t in tasks.values()} == {"SUCCESS"}, tasks
    listing = {line.split("\t")[1]: line.split()[0] for line in git(root, "ls-tree", "-r", "HEAD").splitlines()}
    assert listing["tool.sh"] == "100755" and listing["new.sh"] == "100755" and listing["GUIDE.md"] == "120000"
    assert os.readlink(root / "GUIDE.md") == "docs/guide.md"
    assert os.stat(root / "tool.sh").st_mode & 0o111 and (root / "tool.sh").read_text().endswith("more\n")
    assert "old mode 100644\nnew mode 100755" in tasks["modes"]["git_evidence"]["diff_preview"]
    assert git(root, "status", "--porcelain", "--", "tool.sh", "new.sh", "GUIDE.md") == ""


@pytest.mark.parametrize("target", ["../../outside", "/etc/passwd", ".git/config"])
def test_run_all_rejects_a_command_that_links_out_of_the_repository(
    make_repo, capsys, monkeypatch, target: str
) -> None:
    root = make_repo({"a.py": "x = 1\n", "truthplane.toml": CONFIG})
    head = git(root, "rev-parse", "HEAD")
    code, doc = run_tasks(capsys, monkeypatch, root, f"""
[[tasks]]
id = "link"
kind = "command"
command = "ln -s {target} escape"
files = ["escape"]
""")
    (task,) = doc["tasks"]
    assert code == 1 and task["status"] == "REJECTED", task
    assert f"escape: a symlink to {target}" in task["truth_gate"]["reason"]
    assert not (root / "escape").is_symlink() and git(root, "rev-list", "--count", f"{head}..HEAD") == "1"


def test_run_all_refuses_a_forged_capture_that_names_a_path_outside(
    make_repo, tmp_path: Path, capsys, monkeypatch
) -> None:
    """The capture runs after the command, in the command's own tree: a command can replace it and forge its report."""
    victim = tmp_path / "victim.txt"
    forged = (
        "import base64, json, os\n"
        "print()\nprint(os.environ['TRUTHPLANE_MARKER'])\n"
        f"print(json.dumps({{'changed': {{'../../../../../../../..{victim}': base64.b64encode(b'owned').decode()}},"
        " 'deleted': []}))\n"
    )
    root = make_repo({"a.py": "x = 1\n", "forge.txt": forged, "truthplane.toml": CONFIG})
    code, doc = run_tasks(capsys, monkeypatch, root, """
[[tasks]]
id = "forge"
kind = "command"
command = "cp forge.txt .truthplane-capture.py"
files = ["x.txt"]
""")
    (task,) = doc["tasks"]
    assert task["status"] == "REJECTED" and "not a plain path inside the repository" in task["truth_gate"]["reason"], (
        task
    )
    assert not victim.exists()


def test_run_all_fix_task_keeps_the_files_form_too(make_repo, tmp_path: Path, capsys, monkeypatch) -> None:
    old, new = b"x = 1\r\nimport os\r\ny = 2\r\n", b"x = 1\ny = 2\n"
    for name, content in (("old", old), ("new", new)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.py").write_bytes(content)
    proc = subprocess.run(
        ["git", "diff", "--no-index", "old/a.py", "new/a.py"], cwd=tmp_path, capture_output=True, check=False
    )
    root = make_repo({"a.py": old, "truthplane.toml": CONFIG,
                      "rewrite.diff": proc.stdout.replace(b"old/a.py", b"a.py").replace(b"new/a.py", b"a.py")})
    code, doc = run_tasks(capsys, monkeypatch, root, """
[[tasks]]
id = "unused"
kind = "fix"
target = "a.py"
autofix = false
candidates = ["rewrite.diff"]
""")
    (task,) = doc["tasks"]
    assert code == 0 and task["status"] == "SUCCESS", task
    assert (root / "a.py").read_bytes() == b"x = 1\r\ny = 2\r\n"
    assert task["modifications"][0]["sha256_after"] == hashlib.sha256(b"x = 1\r\ny = 2\r\n").hexdigest()
