"""`truthplane run-all` end to end on real git repositories: real ruff, the real local executor
(bubblewrap), real `truthplane` processes interrupted with SIGINT, and real sshd nodes, one of them
killed mid-run."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conftest import git, register_probe
from tests.executors._remote_fixtures import (
    REPO_ROOT,
    client_key,
    descendants,
    processes,
    sshd_node,
    sshd_present,
)
from truthplane.cli.main import run

register_probe("sshd", sshd_present)

APP = "import os\n\n\ndef answer():\n    return 42\n"
CONFIG = 'verifiers = ["ruff"]\n'
PATCH = """--- a/out.txt
+++ b/out.txt
@@ -1 +1,2 @@
 from the command
+and from the patch
"""

pytestmark = [pytest.mark.tool("ruff"), pytest.mark.tool("bwrap")]


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")


def run_all(capsys, root: Path, monkeypatch, *args: str) -> tuple[int, dict]:
    monkeypatch.chdir(root)
    code = run(["run-all", "--format", "json", *args])
    out, _ = capsys.readouterr()
    return code, json.loads(out)


def commits(root: Path) -> list[tuple[str, str]]:
    """(subject, task trailer) of every commit, oldest first."""
    out = git(root, "log", "--reverse", "--format=%s<sep>%(trailers:key=Truthplane-Task,valueonly)<end>")
    rows = [entry.strip().split("<sep>") for entry in out.split("<end>") if entry.strip()]
    return [(subject, trailer.strip().split(" ")[0] if trailer.strip() else "") for subject, trailer in rows]


def test_command_patch_and_fix_tasks_are_committed_in_dependency_order(make_repo, capsys, monkeypatch) -> None:
    root = make_repo(
        {
            "app.py": APP,
            "README.md": "readme\n",
            "change.diff": PATCH,
            "truthplane.toml": CONFIG,
            "tasks.toml": """
[[tasks]]
id = "annotate"
kind = "patch"
patch = "change.diff"
depends_on = ["write-out"]

[[tasks]]
id = "write-out"
kind = "command"
command = "echo 'from the command' > out.txt"
files = ["out.txt"]
depends_on = ["unused-import"]

[[tasks]]
id = "unused-import"
title = "Drop the unused import"
kind = "fix"
target = "app.py"
acceptance = { test_cmd = "python -c 'import app; assert app.answer() == 42'" }
""",
        }
    )
    (root / "README.md").write_text("a local edit of mine\n")  # the user's dirty file survives untouched
    code, doc = run_all(capsys, root, monkeypatch, "--workers", "3")
    assert code == 0, json.dumps(doc["tasks"], indent=1)
    assert doc["overall_verdict"] == "APPROVE" and "incomplete" not in doc
    # a dependent starts from its dependency's result: the patch applies to the file the command wrote
    assert (root / "out.txt").read_text() == "from the command\nand from the patch\n"
    assert (root / "app.py").read_text() == APP.replace("import os\n", "")
    assert commits(root)[1:] == [("truthplane: Drop the unused import", "unused-import"),
                                 ("truthplane: write-out", "write-out"), ("truthplane: annotate", "annotate")]
    assert (root / "README.md").read_text() == "a local edit of mine\n"
    assert git(root, "status", "--porcelain", "--", "README.md", "app.py", "out.txt") == "M README.md"
    tasks = {t["task_id"]: t for t in doc["tasks"]}
    assert {t["status"] for t in tasks.values()} == {"SUCCESS"}
    for task in tasks.values():
        sha = task["git_evidence"]["commit_sha"]
        assert task["git_evidence"]["applied"] and git(root, "cat-file", "-t", sha) == "commit"
        for change in task["modifications"]:
            shown = subprocess.run(
                ["git", "show", f"{sha}:{change['file']}"], cwd=root, capture_output=True, check=True
            ).stdout
            assert hashlib.sha256(shown).hexdigest() == change["sha256_after"]
    assert tasks["annotate"]["modifications"][0]["sha256_before"] == hashlib.sha256(b"from the command\n").hexdigest()
    assert tasks["write-out"]["modifications"] == [{"file": "out.txt", "sha256_before": None,
                                                   "sha256_after": hashlib.sha256(b"from the command\n").hexdigest()}]
    assert {f["rule_id"] for f in tasks["unused-import"]["verification"]["fixed"]} == {"F401"}
    metrics = doc["honest_metrics"]
    assert metrics["git_commits"] == 3 and metrics["files_modified"] == 2
    assert metrics["truth_gate_approvals"] == 3 and metrics["truth_gate_rejections"] == 0
    assert metrics["builds_tested"] == 2  # the fix's acceptance test: on the tree before, and on its one candidate
    assert metrics["files_verified"] >= 3
    evidence = json.loads((root / doc["evidence"]).read_text())
    assert evidence["tasks"] == doc["tasks"]


def test_a_rejected_task_blocks_its_dependents_and_nothing_else(make_repo, capsys, monkeypatch) -> None:
    root = make_repo({"app.py": "def f():\n    return 1\n", "truthplane.toml": CONFIG, "tasks.toml": """
[[tasks]]
id = "adds-a-finding"
kind = "command"
command = "printf 'import os\\n' > extra.py"
files = ["extra.py"]
acceptance = { fail_on = "note" }

[[tasks]]
id = "needs-it"
kind = "command"
command = "echo x > needs.txt"
files = ["needs.txt"]
depends_on = ["adds-a-finding"]

[[tasks]]
id = "needs-that"
kind = "command"
command = "echo y > that.txt"
files = ["that.txt"]
depends_on = ["needs-it"]

[[tasks]]
id = "oversteps"
kind = "command"
command = "echo z > allowed.txt; echo z > app.py"
files = ["allowed.txt"]

[[tasks]]
id = "failing-tests"
kind = "command"
command = "echo w > w.txt"
files = ["w.txt"]
acceptance = { test_cmd = "test ! -f w.txt" }

[[tasks]]
id = "independent"
kind = "command"
command = "echo fine > fine.txt"
files = ["fine.txt"]
"""})
    code, doc = run_all(capsys, root, monkeypatch, "--workers", "2")
    tasks = {t["task_id"]: t for t in doc["tasks"]}
    assert code == 1 and doc["overall_verdict"] == "REJECT"
    assert tasks["adds-a-finding"]["status"] == "REJECTED"
    assert "new finding(s) at or above note" in tasks["adds-a-finding"]["truth_gate"]["reason"]
    assert [f["rule_id"] for f in tasks["adds-a-finding"]["verification"]["new"]] == ["F401"]
    assert tasks["needs-it"]["status"] == "SKIPPED"
    assert tasks["needs-it"]["truth_gate"]["reason"] == "skipped: dependency 'adds-a-finding' was not approved (REJECT)"
    assert tasks["needs-that"]["status"] == "SKIPPED" and "'needs-it'" in tasks["needs-that"]["truth_gate"]["reason"]
    assert tasks["oversteps"]["status"] == "REJECTED"
    assert "changed app.py, which the task may not touch" in tasks["oversteps"]["truth_gate"]["reason"]
    assert tasks["failing-tests"]["status"] == "REJECTED"
    assert "the tests fail (exit 1)" in tasks["failing-tests"]["truth_gate"]["reason"]
    assert tasks["independent"]["status"] == "SUCCESS"
    assert [trailer for _, trailer in commits(root)[1:]] == ["independent"]
    for name in ("extra.py", "needs.txt", "that.txt", "allowed.txt", "w.txt"):
        assert not (root / name).exists(), name
    assert (root / "app.py").read_text() == "def f():\n    return 1\n"
    metrics = doc["honest_metrics"]
    assert (metrics["git_commits"], metrics["truth_gate_approvals"], metrics["truth_gate_rejections"]) == (1, 1, 3)
    assert metrics["builds_tested"] == 1
    # every task that changed something has its own branch; the checkout stays on its branch
    start = git(root, "rev-list", "--max-parents=0", "HEAD").strip()
    prefix = f"truthplane/{doc['run_id']}/"
    branches = git(root, "for-each-ref", "--format=%(refname:short) %(objectname)", f"refs/heads/{prefix}").split("\n")
    branches = dict(line.split() for line in branches if line)
    assert set(branches) == {prefix + t for t in ("adds-a-finding", "oversteps", "failing-tests", "independent")}
    assert (
        branches[prefix + "independent"]
        == git(root, "rev-parse", "HEAD").strip()
        == tasks["independent"]["git_evidence"]["commit_sha"]
    )
    rejected = prefix + "adds-a-finding"
    assert tasks["adds-a-finding"]["git_evidence"]["branch"] == rejected
    assert tasks["adds-a-finding"]["git_evidence"]["branch_commit"] == branches[rejected]
    assert git(root, "rev-parse", f"{rejected}^").strip() == start
    assert git(root, "diff", "--name-only", start, rejected).split() == ["extra.py"]
    assert git(root, "show", f"{rejected}:extra.py").strip() == "import os"
    assert "Truthplane-Verdict: REJECT" in git(root, "log", "-1", "--format=%B", rejected)
    assert sorted(git(root, "diff", "--name-only", start, prefix + "oversteps").split()) == ["allowed.txt", "app.py"]
    assert git(root, "symbolic-ref", "--short", "HEAD").strip() == "main"
    assert git(root, "status", "--porcelain") == ""  # the results directory ignores itself
    assert run(["verify"]) == 0
    capsys.readouterr()


def test_tasks_changing_the_same_file_both_land_without_losing_either(make_repo, capsys, monkeypatch) -> None:
    tasks = "".join(f'[[tasks]]\nid = "{n}"\nkind = "command"\ncommand = "sleep 0.5; echo {n} >> shared.txt"\n'
                    f'files = ["shared.txt"]\n\n' for n in ("one", "two", "three"))
    root = make_repo({"shared.txt": "start\n", "truthplane.toml": CONFIG, "tasks.toml": tasks})
    code, doc = run_all(capsys, root, monkeypatch, "--workers", "3")
    assert code == 0, doc["tasks"]
    lines = (root / "shared.txt").read_text().splitlines()
    assert lines[0] == "start" and sorted(lines[1:]) == ["one", "three", "two"]
    assert sorted(trailer for _, trailer in commits(root)[1:]) == ["one", "three", "two"]
    assert sum(t["verification"]["reruns_after_conflict"] for t in doc["tasks"]) >= 1


def test_a_second_run_commits_nothing_twice(make_repo, capsys, monkeypatch) -> None:
    root = make_repo({"truthplane.toml": CONFIG, "tasks.toml": """
[[tasks]]
id = "once"
kind = "command"
command = "date +%s%N > stamp.txt"
files = ["stamp.txt"]
"""})
    first = run_all(capsys, root, monkeypatch, "--workers", "1")
    assert first[0] == 0
    stamp = (root / "stamp.txt").read_text()
    code, doc = run_all(capsys, root, monkeypatch, "--workers", "1")
    assert code == 0
    assert [trailer for _, trailer in commits(root)[1:]] == ["once"]
    assert (root / "stamp.txt").read_text() == stamp
    assert doc["tasks"][0]["carried_over_from"] == Path(first[1]["evidence"]).name  # the record holding its evidence
    assert doc["honest_metrics"]["git_commits"] == 0


# ---- a real process, interrupted ----------------------------------------------------------------


def start(root: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "truthplane", "run-all", "--format", "json", *args], cwd=root,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class Lines:
    """stdout and stderr of a running process, read by threads so the test can wait for a line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.out: list[str] = []
        assert proc.stderr is not None and proc.stdout is not None
        self.threads = [threading.Thread(target=lambda: self.lines.extend(proc.stderr), daemon=True),  # type: ignore[arg-type]
                        threading.Thread(target=lambda: self.out.extend(proc.stdout), daemon=True)]  # type: ignore[arg-type]
        for thread in self.threads:
            thread.start()

    def finish(self, timeout: float) -> str:
        self.proc.wait(timeout=timeout)
        for thread in self.threads:
            thread.join(timeout=10)
        return "".join(self.out)

    def wait_for(self, *needles: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not all(any(n in line for line in list(self.lines)) for n in needles):
            assert time.monotonic() < deadline, f"never saw {needles}: {self.lines}"
            time.sleep(0.05)


def process_env(tmp_path: Path) -> dict[str, str]:
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(scratch), "PYTHONPATH": str(REPO_ROOT), "NO_COLOR": "1"}


def test_sigint_stops_cleanly_and_the_next_run_resumes(make_repo, tmp_path: Path) -> None:
    root = make_repo({"delay.txt": "60\n", "truthplane.toml": CONFIG, "tasks.toml": """
[[tasks]]
id = "quick"
kind = "command"
command = "echo quick > quick.txt"
files = ["quick.txt"]
priority = 10

[[tasks]]
id = "slow"
kind = "command"
command = "sleep $(cat delay.txt); echo slow > slow.txt"
files = ["slow.txt"]

[[tasks]]
id = "after-slow"
kind = "command"
command = "cat slow.txt > after.txt"
files = ["after.txt"]
depends_on = ["slow"]
"""})
    env = process_env(tmp_path)
    proc = start(root, env, "--workers", "1")
    lines = Lines(proc)
    lines.wait_for("quick: APPROVE", "slow: started")
    deadline = time.monotonic() + 30
    while not running(proc.pid, ["sleep", "60"]):
        assert time.monotonic() < deadline, "the slow task never started its command"
        time.sleep(0.05)
    sleepers = [pid for pid in descendants(proc.pid) if Path(f"/proc/{pid}/cmdline").read_text() == "sleep\x0060\x00"]
    proc.send_signal(signal.SIGINT)
    out = lines.finish(timeout=60)
    assert proc.returncode == 130, lines.lines
    first = json.loads(out)
    assert first["incomplete"] is True
    status = {t["task_id"]: t["status"] for t in first["tasks"]}
    assert status == {"quick": "SUCCESS", "slow": "INTERRUPTED", "after-slow": "INTERRUPTED"}
    assert any("interrupted: cancelling running tasks" in line for line in lines.lines)
    assert list((tmp_path / "scratch").iterdir()) == []  # every tree and sandbox removed
    assert not any(Path(f"/proc/{pid}").exists() for pid in sleepers)  # the job was killed, not left running
    assert [trailer for _, trailer in commits(root)[1:]] == ["quick"]
    assert (root / ".truth-plane-results" / Path(first["evidence"]).name).is_file()

    (root / "delay.txt").write_text("0\n")  # a dirty edit: the next snapshot sees it
    proc = start(root, env, "--workers", "1")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    second = json.loads(out)
    assert "incomplete" not in second
    assert second["resumed_from"] == Path(first["evidence"]).name
    tasks = {t["task_id"]: t for t in second["tasks"]}
    assert tasks["quick"]["carried_over_from"] and tasks["quick"]["status"] == "SUCCESS"
    assert tasks["slow"]["status"] == "SUCCESS" and tasks["after-slow"]["status"] == "SUCCESS"
    assert [trailer for _, trailer in commits(root)[1:]] == ["quick", "slow", "after-slow"]
    assert (root / "after.txt").read_text() == "slow\n"
    assert second["honest_metrics"]["git_commits"] == 2
    assert list((tmp_path / "scratch").iterdir()) == []
    checked = subprocess.run([sys.executable, "-m", "truthplane", "verify"], cwd=root, env=env,
                             capture_output=True, text=True, timeout=120)
    assert checked.returncode == 0, checked.stdout  # the resumed evidence verifies


# ---- local workers and two real sshd nodes, one killed mid-run --------------------------------


@pytest.fixture
def two_nodes(tmp_path: Path) -> Iterator[tuple[list, Path, Path]]:
    with ExitStack() as stack:
        key = client_key(tmp_path)
        known_hosts = tmp_path / "known_hosts"
        # the nodes share this machine's login shell: a pyenv rehash lock must never make a session wait
        quiet = "SetEnv PYENV_REHASH_TIMEOUT=0\n"
        nodes = [stack.enter_context(sshd_node(tmp_path, key.with_suffix(".pub"), f"node{n}", quiet)) for n in range(2)]
        known_hosts.write_text("".join(node.known_hosts_line() for node in nodes))
        yield nodes, key, known_hosts


def running(parent: int, argv: list[str]) -> bool:
    """A process with exactly this command line runs under `parent` (a task's own command, not a
    shell's start-up helpers)."""
    wanted = "\0".join(argv) + "\0"
    for pid in descendants(parent):
        try:
            if Path(f"/proc/{pid}/cmdline").read_text() == wanted:
                return True
        except OSError:
            continue
    return False


def release_stale_pyenv_lock() -> None:
    """A node killed while its login shell ran `pyenv rehash` leaves the rehash lock behind on this
    shared machine; with no rehash running anywhere, it is stale: remove it."""
    lock = Path.home() / ".pyenv" / "shims" / ".pyenv-shim"
    if (
        lock.exists()
        and subprocess.run(["pgrep", "-f", "pyenv-rehash"], capture_output=True, check=False).returncode != 0
    ):
        lock.unlink(missing_ok=True)


def ssh_config(nodes: list, key: Path, known_hosts: Path, slots: int) -> str:
    text = CONFIG
    for node in nodes:
        options = node.node_options(key, known_hosts, slots)
        text += "\n[[executors.ssh.nodes]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in options.items())
    return text


def toml_value(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


@pytest.mark.tool("sshd")
def test_ctrl_c_leaves_nothing_running_on_the_ssh_nodes(make_repo, tmp_path: Path, two_nodes) -> None:
    nodes, key, known_hosts = two_nodes
    tasks = "".join(f'[[tasks]]\nid = "t{n}"\nkind = "command"\ncommand = "sleep 65.{n}"\n\n' for n in range(2))
    root = make_repo({"tasks.toml": tasks, "truthplane.toml": ssh_config(nodes, key, known_hosts, 1)})
    proc = start(root, process_env(tmp_path), "--executor", "ssh")
    lines = Lines(proc)
    deadline = time.monotonic() + 60
    while len(processes("sleep", "65.")) < 2:  # a task runs on each node
        assert time.monotonic() < deadline and proc.poll() is None, lines.lines
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out = lines.finish(timeout=60)
    assert proc.returncode == 130, lines.lines
    assert {t["status"] for t in json.loads(out)["tasks"]} == {"INTERRUPTED"}
    assert not processes("sleep", "65.")  # the jobs on the nodes were stopped
    for node in nodes:
        assert not processes("distributed.cli.dask_worker", str(node.cache_dir))  # and every worker with them
        assert not list(node.cache_dir.glob("cluster-*"))  # and the run's files on the node


@pytest.mark.tool("sshd")
def test_a_node_killed_mid_run_loses_no_task_and_commits_none_twice(make_repo, tmp_path: Path, two_nodes) -> None:
    nodes, key, known_hosts = two_nodes
    doomed = nodes[0]
    count = 10
    tasks = "".join(f'[[tasks]]\nid = "t{n}"\nkind = "command"\ncommand = "sleep 3; echo {n} > out/t{n}.txt"\n'
                    f'files = ["out/t{n}.txt"]\n\n' for n in range(count))
    root = make_repo({"out/.keep": "", "tasks.toml": tasks, "truthplane.toml": ssh_config(nodes, key, known_hosts, 2)})
    proc = start(root, process_env(tmp_path), "--workers", "1")
    lines = Lines(proc)
    deadline = time.monotonic() + 60
    while not running(doomed.proc.pid, ["sleep", "3"]):  # a task is running on the node: kill it mid-task
        assert time.monotonic() < deadline and proc.poll() is None, lines.lines
        time.sleep(0.05)
    doomed.kill()
    release_stale_pyenv_lock()
    out = lines.finish(timeout=180)
    assert proc.returncode == 0, lines.lines
    doc = json.loads(out)
    assert sorted(t["task_id"] for t in doc["tasks"]) == sorted(f"t{n}" for n in range(count))
    assert {t["status"] for t in doc["tasks"]} == {"SUCCESS"}
    assert sorted(trailer for _, trailer in commits(root)[1:]) == sorted(f"t{n}" for n in range(count))
    for n in range(count):
        assert (root / "out" / f"t{n}.txt").read_text() == f"{n}\n"
    assert list(doc["nodes_lost"]) == ["node0"]
    requeued = [t for t in doc["tasks"] if t["verification"]["requeued_after_node_loss"] == ["node0"]]
    assert requeued and all(t["node"] != "node0" for t in requeued)
    used = {t["node"] for t in doc["tasks"]}
    assert {"local-1", "node1"} <= used  # the work was spread over the local worker and the live node
    assert all(t["worker"].startswith("tls://127.0.0.1:") for t in doc["tasks"])
    assert doc["honest_metrics"]["git_commits"] == count
    assert any("worker node0 was lost mid-task" in line for line in lines.lines)
    assert doc["cluster"]["kind"] == "ssh" and doc["cluster"]["started_by_truthplane"]


# ---- progress, node selection, no worker left ---------------------------------------------------


def test_plain_progress_lines_name_each_busy_worker_at_least_every_5_seconds(make_repo, tmp_path: Path) -> None:
    root = make_repo({"truthplane.toml": CONFIG, "tasks.toml": """
[[tasks]]
id = "waits"
kind = "command"
command = "sleep 20"

[[tasks]]
id = "quick"
kind = "command"
command = "true"
"""})
    proc = start(root, process_env(tmp_path), "--workers", "2")
    lines = Lines(proc)
    lines.finish(timeout=90)
    assert proc.returncode == 0, lines.lines
    status = [line for line in lines.lines if line.startswith("truthplane: [")]
    # a line every 5 s while `waits` runs: one of them after `quick` (its sandbox and gate take seconds on a
    # loaded machine) has ended
    assert status[0].startswith("truthplane: [") and " 0:0" in status[0] and "workers busy" in status[0]
    assert any(line.startswith("truthplane: [1/2 50%]") and "tasks/min, 1/2 workers busy" in line for line in status)
    assert any(line.strip().startswith("local-") and "waits: running sleep 20" in line for line in lines.lines)
    assert status[-1].startswith("truthplane: [2/2 100%]")
    assert not any("\x1b[" in line for line in lines.lines)  # no terminal codes in a log


def test_on_a_terminal_the_live_panel_shows_the_workers(make_repo, tmp_path: Path) -> None:
    import pty

    root = make_repo(
        {"truthplane.toml": CONFIG, "tasks.toml": '[[tasks]]\nid = "waits"\nkind = "command"\ncommand = "sleep 2"\n'}
    )
    env = {key: value for key, value in process_env(tmp_path).items() if key != "NO_COLOR"}
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "truthplane", "run-all", "--workers", "1"], cwd=root,
                            env={**env, "TERM": "xterm", "COLUMNS": "120"}, stdin=secondary, stdout=secondary,
                            stderr=secondary)
    os.close(secondary)
    seen = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    proc.wait(timeout=60)
    os.close(primary)
    text = seen.decode(errors="replace")
    assert proc.returncode == 0, text
    assert "\x1b[" in text  # drawn in place
    assert "local-1: waits: running sleep 2" in text and "1/1 workers busy" in text
    assert "[1/1 100%]" in text and "SUCCESS       waits" in text


def test_node_specs_keep_a_configured_nodes_settings() -> None:
    from truthplane.cli.run_all import select_nodes
    from truthplane.config import parse_config
    from truthplane.errors import UsageError

    config = parse_config({"executors": {"ssh": {"nodes": [
        {"host": "10.0.0.5", "port": 2222, "user": "ci", "key": "~/.ssh/k", "slots": 4}]}}}, "truthplane.toml")
    assert select_nodes(config, []) == [{"host": "10.0.0.5", "port": 2222, "user": "ci", "key": "~/.ssh/k", "slots": 4}]
    assert select_nodes(config, ["runner@10.0.0.5:2222", "10.0.0.6"]) == [
        {"host": "10.0.0.5", "port": 2222, "user": "runner", "key": "~/.ssh/k", "slots": 4},
        {"host": "10.0.0.6", "port": 22}]
    for bad in ("a@b@c", "host:99999", "host:port"):
        with pytest.raises(UsageError, match="--node"):
            select_nodes(config, [bad])


def test_when_no_worker_is_left_the_tasks_are_not_run_and_exit_is_4(make_repo, capsys, monkeypatch, tmp_path) -> None:
    from tests.executors._remote_fixtures import free_port

    node = (f'\n[[executors.ssh.nodes]]\nhost = "127.0.0.1"\nport = {free_port()}\nname = "gone"\nkey = '
            f'"{tmp_path / "k"}"\n')
    root = make_repo({"truthplane.toml": CONFIG + "[executors.ssh]\nconnect_timeout_s = 5\n" + node,
                      "tasks.toml": '[[tasks]]\nid = "a"\nkind = "command"\ncommand = "true"\n'})
    (tmp_path / "k").write_text("")
    code, doc = run_all(capsys, root, monkeypatch, "--workers", "0")
    assert code == 4 and doc["overall_verdict"] == "UNVERIFIED"
    assert doc["tasks"][0]["status"] == "NOT_RUN"
    assert (
        "no worker left" in doc["tasks"][0]["truth_gate"]["reason"]
        and "gone" in doc["tasks"][0]["truth_gate"]["reason"]
    )


def test_a_second_run_all_in_the_same_repository_is_refused(make_repo, capsys, monkeypatch) -> None:
    from truthplane.runall import resume as _resume
    from truthplane.git.repo import Repo

    root = make_repo({"tasks.toml": '[[tasks]]\nid = "a"\nkind = "command"\ncommand = "true"\n'})
    held = _resume.lock_repo(Repo(root))
    try:
        monkeypatch.chdir(root)
        assert run(["run-all", "--workers", "1"]) == 2
        assert "another truthplane run-all is running in this repository" in capsys.readouterr().err
    finally:
        _resume.unlock(held)
    assert run(["run-all", "--workers", "1"]) == 0
