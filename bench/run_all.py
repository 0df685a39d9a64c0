"""How close does `run-all` come to the ideal makespan when the work is mostly waiting?

N tasks, each a command that sleeps t seconds (as an LLM call waits), run by run-all's scheduler over
K real sshd nodes on 127.0.0.1 with S slots each and no local workers. The ideal is N x t / (K x S):
every slot busy all the time, nothing else costing anything. The makespan is measured around the
whole run: snapshot, ssh connections, every task judged, the execution record written.

Target: makespan within 1.15x of the ideal.

With --changes each task also writes its own file, so every task is gated (ruff before and after)
and committed (one at a time under the git lock): the same figures, for work that is not only waiting.

    python bench/run_all.py [--tasks 32] [--seconds 5] [--nodes 2] [--slots 4] [--changes]

Needs root, sshd and ssh-keygen (the sshd nodes are the test fixtures' own).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.executors._remote_fixtures import ssh_cluster, sshd_present

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


def measure(args: argparse.Namespace, changes: bool) -> tuple[float, dict]:
    from truthplane.config import load_config
    from truthplane.runall.scheduler import RunOptions, Scheduler
    from truthplane.runall.tasks import load_tasks

    with tempfile.TemporaryDirectory(prefix="truthplane-bench-") as tmp, \
            ssh_cluster(count=args.nodes, slots=args.slots) as ssh:
        os.environ["TRUTHPLANE_CACHE_DIR"] = str(Path(tmp) / "cache")
        root = make_repo(Path(tmp), args.tasks, args.seconds, changes)
        config = load_config(root)
        options = RunOptions(root=root, tasks=load_tasks(root), config=config, workers=0,
                             nodes=list(ssh["nodes"]), handle_signals=False)  # type: ignore[arg-type]
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
    makespan, record = measure(args, changes=False)
    ratio = report(args, "waiting only", makespan, record)
    if args.changes:
        makespan, record = measure(args, changes=True)
        report(args, "waiting + a change gated and committed per task", makespan, record)
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
