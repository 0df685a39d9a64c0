"""How close does `run-all` come to the ideal makespan when the work is mostly waiting?

N tasks, each a command that sleeps t seconds (as an LLM call waits), run by run-all's scheduler over
K real sshd nodes on 127.0.0.1 with S slots each and no local workers. The ideal is N x t / (K x S):
every slot busy all the time, nothing else costing anything. The makespan is measured around the
whole run: snapshot, ssh connections, every task judged, the execution record written.

Target: makespan within 1.15x of the ideal.

Two clusters over the same nodes, one after the other:
- started by the run: run-all starts a scheduler here and a worker on each node over ssh, and stops them at
  the end (what `--node` and `[[executors.ssh.nodes]]` do); the makespan includes that start and stop;
- standing: a team's own cluster on the nodes, up before the run and still up after it (`dask scheduler` here,
  `dask worker --preload truthplane.runall.remote` started on each node over ssh, TLS), reached with
  `--cluster`.

With --changes each task also writes its own file, so every task is gated (ruff before and after)
and committed (one at a time under the git lock): the same figures, for work that is not only waiting.

    python bench/run_all.py [--tasks 32] [--seconds 5] [--nodes 2] [--slots 4] [--changes]

Needs root, sshd and ssh-keygen (the sshd nodes are the test fixtures' own).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.executors._remote_fixtures import REPO_ROOT, dask_cluster, kill_tree, processes, ssh_cluster, sshd_present

TARGET = 1.15


def make_repo(directory: Path, tasks: int, seconds: float, changes: bool) -> Path:
    root = directory / "repo"
    (root / "out").mkdir(parents=True)
    (root / "out" / ".keep").write_text("")
    (root / "truthplane.toml").write_text('verifiers = ["ruff"]\n')
    lines = []
    for n in range(tasks):
        command = f"sleep {seconds}" + (f"; echo VALUE = {n} > out/t{n}.py" if changes else "")
        lines.append(f'[[tasks]]\nid = "t{n}"\nkind = "command"\ncommand = "{command}"\n'
                     + (f'files = ["out/t{n}.py"]\n' if changes else "") + "\n")
    (root / "tasks.toml").write_text("".join(lines))
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@b", "GIT_CONFIG_GLOBAL": os.devnull}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "bench"]):
        subprocess.run(["git", *args], cwd=root, check=True, env=env, capture_output=True)
    return root


@contextmanager
def standing_cluster(directory: Path, nodes: list[dict]) -> Iterator[dict[str, str]]:
    """A team's own cluster on the ssh nodes: a TLS `dask scheduler` here and a `dask worker` started on each
    node over ssh; yields the [cluster] settings that reach it. Everything is killed at the end."""
    with dask_cluster(directory, workers=0, tls=True) as cluster:
        tls = cluster.tls
        started = []
        try:
            for node in nodes:
                local = directory / f"worker-{node['name']}"
                worker = [node["python"], "-m", "distributed.cli.dask_worker", cluster.address, "--name", node["name"],
                          "--nthreads", str(node["slots"]), "--no-nanny", "--no-dashboard", "--preload",
                          "truthplane.runall.remote", "--local-directory", str(local), "--tls-ca-file",
                          tls["tls_ca_file"], "--tls-cert", tls["tls_cert"], "--tls-key", tls["tls_key"]]
                remote = f"PYTHONPATH={shlex.quote(str(REPO_ROOT))} exec " + " ".join(map(shlex.quote, worker))
                log = directory / f"{node['name']}.log"
                with open(log, "wb") as handle:
                    started.append(subprocess.Popen(
                        ["ssh", "-i", node["key"], "-p", str(node["port"]), "-o", "BatchMode=yes",
                         "-o", f"UserKnownHostsFile={node['known_hosts']}", f"{node['user']}@{node['host']}", remote],
                        stdout=handle, stderr=subprocess.STDOUT, start_new_session=True))
                deadline = time.monotonic() + 60
                while "Start worker at:" not in log.read_text(errors="replace"):
                    if time.monotonic() > deadline or started[-1].poll() is not None:
                        raise RuntimeError(f"the worker on {node['name']} did not start: {log.read_text()[-500:]}")
                    time.sleep(0.05)
            yield {"kind": "address", "address": cluster.address, **tls}
        finally:
            for node in nodes:  # the workers run on the nodes (this machine): by their own directory
                for pid in processes("distributed.cli.dask_worker", str(directory / f"worker-{node['name']}")):
                    os.kill(pid, 9)
            for proc in started:
                kill_tree(proc)


def measure(args: argparse.Namespace, changes: bool, standing: bool) -> tuple[float, dict]:
    from truthplane.config import load_config
    from truthplane.config.cluster import cluster_settings
    from truthplane.runall.scheduler import RunOptions, Scheduler
    from truthplane.runall.tasks import load_tasks

    with tempfile.TemporaryDirectory(prefix="truthplane-bench-") as tmp, \
            ssh_cluster(count=args.nodes, slots=args.slots) as ssh:
        os.environ["TRUTHPLANE_CACHE_DIR"] = str(Path(tmp) / "cache")
        root = make_repo(Path(tmp), args.tasks, args.seconds, changes)
        config = load_config(root)
        nodes = list(ssh["nodes"])  # type: ignore[call-overload]
        if standing:
            with standing_cluster(Path(tmp) / "standing", nodes) as settings:
                options = RunOptions(root=root, tasks=load_tasks(root), config=config,
                                     cluster=cluster_settings(settings), handle_signals=False)
                started = time.perf_counter()
                result = asyncio.run(Scheduler(options).run())
                return time.perf_counter() - started, result.record
        options = RunOptions(root=root, tasks=load_tasks(root), config=config, workers=0, nodes=nodes,
                             handle_signals=False)
        started = time.perf_counter()
        result = asyncio.run(Scheduler(options).run())
        makespan = time.perf_counter() - started
        return makespan, result.record


def report(args: argparse.Namespace, label: str, makespan: float, record: dict) -> float:
    ideal = args.tasks * args.seconds / (args.nodes * args.slots)
    ratio = makespan / ideal
    statuses = sorted({t["status"] for t in record["tasks"]})
    per_node: dict[str, int] = {}
    for task in record["tasks"]:
        per_node[task.get("node", "?")] = per_node.get(task.get("node", "?"), 0) + 1
    print(f"{label}: {args.tasks} tasks x {args.seconds:g} s over {args.nodes} nodes x {args.slots} slots")
    print(f"  makespan {makespan:.2f} s, ideal {ideal:.2f} s, ratio {ratio:.3f} (target <= {TARGET})"
          f"  {'ok' if ratio <= TARGET else 'MISSED'}")
    print(f"  tasks per node {dict(sorted(per_node.items()))}, statuses {statuses}, "
          f"commits {record['honest_metrics']['git_commits']}")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--changes", action="store_true", help="also run the variant where every task changes a file")
    args = parser.parse_args()
    if not sshd_present():
        print("skipped: needs root, /usr/sbin/sshd and ssh-keygen")
        return 0
    ratios = []
    for changes in (False, True) if args.changes else (False,):
        for standing in (False, True):
            makespan, record = measure(args, changes, standing)
            what = "waiting + a change gated and committed per task" if changes else "waiting only"
            where = "a standing cluster on the nodes (--cluster)" if standing else "cluster started by the run"
            ratio = report(args, f"{what}, {where}", makespan, record)
            if not changes:
                ratios.append(ratio)
    return 0 if all(ratio <= TARGET for ratio in ratios) else 1

if __name__ == "__main__":
    sys.exit(main())
