"""run-all on Dask clusters, real processes on 127.0.0.1 only: a team's own `dask scheduler` and `dask worker`
processes, the LocalCluster truthplane starts; a worker killed by pid mid-task, the scheduler killed mid-run, and
Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.executors._remote_fixtures import dask_cluster, descendants
from tests.runall.test_scheduler import CONFIG, Lines, commits, process_env, start

pytestmark = [pytest.mark.tool("ruff"), pytest.mark.tool("bwrap")]


def tasks(count: int, command: str) -> str:
    """`count` command tasks, task n writing out/tN.txt after `command`."""
    return "".join(f'[[tasks]]\nid = "t{n}"\nkind = "command"\ncommand = "{command}; echo {n} > out/t{n}.txt"\n'
                   f'files = ["out/t{n}.txt"]\n\n' for n in range(count))


def sleeping(words: str) -> list[int]:
    """Live processes on this machine whose command line is exactly `words` (a task's own command)."""
    wanted = "\0".join(words.split()) + "\0"
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{entry}/cmdline").read_text() == wanted:
                found.append(int(entry))
        except OSError:
            continue
    return found


def wait(condition, what: str, timeout: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_run_all_on_a_teams_own_cluster_names_where_each_task_ran(make_repo, tmp_path: Path) -> None:
    root = make_repo({"out/.keep": "", "truthplane.toml": CONFIG, "tasks.toml": tasks(4, "sleep 1")})
    with dask_cluster(tmp_path / "cluster", workers=2) as cluster:
        proc = start(root, process_env(tmp_path), "--cluster", cluster.address)
        lines = Lines(proc)
        out = lines.finish(timeout=120)
        assert proc.returncode == 0, lines.lines
        assert cluster.scheduler.poll() is None and all(w.poll() is None for w in cluster.workers)  # not ours: kept
    doc = json.loads(out)
    assert {t["status"] for t in doc["tasks"]} == {"SUCCESS"}
    assert {t["node"] for t in doc["tasks"]} == {"team-1", "team-2"}  # both workers took tasks
    assert all(t["worker"].startswith("tcp://127.0.0.1:") for t in doc["tasks"])
    assert {k: v for k, v in doc["cluster"].items() if k != "dashboard"} == {
        "kind": "address", "started_by_truthplane": False, "address": cluster.address, "lost": None}
    assert sorted(trailer for _, trailer in commits(root)[1:]) == [f"t{n}" for n in range(4)]


def test_a_worker_killed_mid_task_loses_no_task_and_the_record_names_it(make_repo, tmp_path: Path) -> None:
    root = make_repo({"out/.keep": "", "truthplane.toml": CONFIG, "tasks.toml": tasks(4, "sleep 2.5")})
    with dask_cluster(tmp_path / "cluster", workers=2) as cluster:
        proc = start(root, process_env(tmp_path), "--cluster", cluster.address)
        lines = Lines(proc)
        doomed = cluster.workers[0]
        # the first worker runs a task: kill it (by pid) mid-task
        wait(lambda: any(p in descendants(doomed.pid) for p in sleeping("sleep 2.5")) or proc.poll() is not None,
             f"no task ever ran on the first worker: {lines.lines}")
        os.kill(doomed.pid, signal.SIGKILL)
        out = lines.finish(timeout=120)
    assert proc.returncode == 0, lines.lines
    doc = json.loads(out)
    assert {t["status"] for t in doc["tasks"]} == {"SUCCESS"}
    assert list(doc["nodes_lost"]) == ["team-1"]
    rerun = [t for t in doc["tasks"] if t["verification"]["requeued_after_node_loss"] == ["team-1"]]
    assert rerun and all(t["node"] == "team-2" for t in rerun)
    assert any("worker team-1 was lost mid-task" in line for line in lines.lines)
    assert sorted(trailer for _, trailer in commits(root)[1:]) == [f"t{n}" for n in range(4)]  # each once


def test_the_scheduler_lost_leaves_the_rest_not_run_and_a_resume_finishes(make_repo, tmp_path: Path) -> None:
    root = make_repo({"out/.keep": "", "truthplane.toml": CONFIG + '[cluster]\nconnect_timeout_s = 2\n',
                      "tasks.toml": tasks(1, "true") + tasks(4, "sleep 30").replace('"t', '"s')})
    env = process_env(tmp_path)
    with dask_cluster(tmp_path / "first", workers=1) as cluster:
        proc = start(root, env, "--cluster", cluster.address)
        lines = Lines(proc)
        lines.wait_for("t0: APPROVE", "s0: started")
        cluster.kill_scheduler()
        out = lines.finish(timeout=120)
    assert proc.returncode == 4, lines.lines
    first = json.loads(out)
    status = {t["task_id"]: t["status"] for t in first["tasks"]}
    assert status["t0"] == "SUCCESS" and {status[f"s{n}"] for n in range(4)} == {"NOT_RUN"}
    assert "the Dask scheduler" in first["cluster"]["lost"]
    assert [trailer for _, trailer in commits(root)[1:]] == ["t0"]

    (root / "tasks.toml").write_text(tasks(1, "true") + tasks(4, "true").replace('"t', '"s'))
    git_add = os.system(f"cd {root} && git add tasks.toml && git commit -qm faster")  # noqa: S605
    assert git_add == 0
    with dask_cluster(tmp_path / "second", workers=2) as cluster:
        proc = start(root, env, "--cluster", cluster.address)
        lines = Lines(proc)
        out = lines.finish(timeout=120)
    assert proc.returncode == 0, lines.lines
    second = json.loads(out)
    assert second["resumed_from"] == Path(first["evidence"]).name
    assert {t["task_id"]: t["status"] for t in second["tasks"]} == {"t0": "SUCCESS", **{f"s{n}": "SUCCESS"
                                                                                      for n in range(4)}}
    assert [t for t in second["tasks"] if t["task_id"] == "t0"][0]["carried_over_from"]
    assert [trailer for _, trailer in commits(root)[1:]].count("t0") == 1  # nothing committed twice


def test_ctrl_c_stops_the_jobs_on_every_worker_and_the_cluster_truthplane_started(make_repo, tmp_path: Path) -> None:
    root = make_repo({"out/.keep": "", "truthplane.toml": CONFIG, "tasks.toml": tasks(2, "sleep 63.5")})
    proc = start(root, process_env(tmp_path), "--workers", "2")
    lines = Lines(proc)
    wait(lambda: len(sleeping("sleep 63.5")) == 2, f"the tasks never started: {lines.lines}")
    workers = descendants(proc.pid)
    proc.send_signal(signal.SIGINT)
    out = lines.finish(timeout=60)
    assert proc.returncode == 130, lines.lines
    assert {t["status"] for t in json.loads(out)["tasks"]} == {"INTERRUPTED"}
    wait(lambda: not sleeping("sleep 63.5"), "a job was left running")
    wait(lambda: not [p for p in workers if Path(f"/proc/{p}").exists() and "Z" not in _state(p)],
         "a worker of the cluster truthplane started was left running", timeout=20)
    assert list((tmp_path / "scratch").iterdir()) == []  # the cluster's scratch space is gone too


def test_ctrl_c_on_a_teams_cluster_stops_its_jobs_and_leaves_the_cluster_up(make_repo, tmp_path: Path) -> None:
    root = make_repo({"out/.keep": "", "truthplane.toml": CONFIG, "tasks.toml": tasks(2, "sleep 64.5")})
    with dask_cluster(tmp_path / "cluster", workers=2) as cluster:
        proc = start(root, process_env(tmp_path), "--cluster", cluster.address)
        lines = Lines(proc)
        wait(lambda: len(sleeping("sleep 64.5")) == 2, f"the tasks never started: {lines.lines}")
        proc.send_signal(signal.SIGINT)
        lines.finish(timeout=60)
        assert proc.returncode == 130, lines.lines
        wait(lambda: not sleeping("sleep 64.5"), "a job was left running on the team's workers")
        assert cluster.scheduler.poll() is None and all(w.poll() is None for w in cluster.workers)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def test_a_teams_cluster_with_tls_is_used_with_the_certificates_named_in_the_configuration(
        make_repo, tmp_path: Path) -> None:
    with dask_cluster(tmp_path / "cluster", workers=1, tls=True) as cluster:
        assert cluster.address.startswith("tls://127.0.0.1:")
        table = "".join(f'{key} = "{value}"\n' for key, value in cluster.tls.items())
        root = make_repo({"out/.keep": "", "tasks.toml": tasks(1, "true"),
                          "truthplane.toml": CONFIG + f'[cluster]\naddress = "{cluster.address}"\n{table}'})
        proc = start(root, process_env(tmp_path))
        lines = Lines(proc)
        out = lines.finish(timeout=120)
        assert proc.returncode == 0, lines.lines
        assert json.loads(out)["tasks"][0]["node"] == "team-1"

        bare = make_repo({"tasks.toml": tasks(1, "true"), "out/.keep": "",
                          "truthplane.toml": CONFIG + f'[cluster]\naddress = "{cluster.address}"\n'
                                                      "connect_timeout_s = 3\n"}, name="bare")
        proc = start(bare, process_env(tmp_path))
        lines = Lines(proc)
        out = lines.finish(timeout=120)
    assert proc.returncode == 4 and out, lines.lines  # without the certificates, no connection, nothing run
    assert json.loads(out)["tasks"][0]["status"] == "NOT_RUN"
    assert "talks TLS: name its certificate files in [cluster]" in json.loads(out)["cluster"]["lost"]
