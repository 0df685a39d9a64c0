"""What does running a job through an executor cost over a bare subprocess?

For each backend: the median overhead, over a bare `subprocess.run` of the host's python, of a
trivial job (`python -c pass`) and of a 2-second job (`python -c "import time; time.sleep(2)"`),
with the bare run and the backend run interleaved so machine noise hits both alike; and the wall
time of 3 two-second jobs fanned out with run_many against the slowest of the single 2-second runs.

Targets: local-bwrap overhead < 20 ms, docker < 500 ms (image present), ssh < 50 ms on a warm
connection, the Lambda emulator < 100 ms, a fan-out of 3 within 1.3x of its slowest member. A backend that is not
usable here is skipped with the reason.

Adding a backend (ssh, lambda, ...): append a `Backend` to `BACKENDS` below, giving
  name       the row label ("ssh", "lambda")
  target_ms  the overhead target for the trivial job, or None
  make       a function returning a ready-to-use Executor (with whatever options it needs)
  ready      a function returning None if the backend can run here, else why not (printed on skip)
The measuring code drives every entry through the Executor interface only.

    python bench/executor_overhead.py [--repeat 15] [--slow-repeat 5] [--only local-bwrap]
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from truthplane.executors.interface import Executor
from truthplane.executors.jobs import Job, Limits

TRIVIAL = ["python", "-c", "pass"]
SLOW = ["python", "-c", "import time; time.sleep(2)"]
FANOUT_TARGET = 1.3


@dataclass
class Backend:
    name: str
    target_ms: float | None
    make: Callable[[], Executor]
    ready: Callable[[], str | None]
    fanout_untestable: str | None = None  # why this setup cannot show a fan-out (said instead of a verdict)


def _local_bwrap() -> Executor:
    from truthplane.executors.local import LocalExecutor

    return LocalExecutor({"concurrency": 3})


def _local_ready() -> str | None:
    from truthplane.executors.local import LocalExecutor

    info = LocalExecutor.available()
    if not info.installed or info.path is None:
        return info.reason or "local executor not usable"
    return None if info.reason is None else f"local executor degraded: {info.reason}"


def _docker() -> Executor:
    from truthplane.executors.docker import DockerExecutor

    return DockerExecutor({"concurrency": 3})


def _docker_ready() -> str | None:
    from truthplane.executors.docker import DockerExecutor

    info = DockerExecutor.available()
    return None if info.installed else info.reason


# ssh and lambda run against a real sshd / the Lambda Runtime Interface Emulator on 127.0.0.1,
# started the way their tests start them and stopped when the benchmark exits
_REMOTES = contextlib.ExitStack()
atexit.register(_REMOTES.close)


def _ssh() -> Executor:
    from tests.executors._remote_fixtures import ssh_cluster
    from truthplane.executors.cluster import SSHExecutor

    # PATH on the node puts this python first, so the job's `python` is the bare run's python
    return SSHExecutor(
        _REMOTES.enter_context(ssh_cluster(1, slots=3, path=f"{Path(sys.executable).parent}:/usr/bin:/bin"))
    )


def _ssh_ready() -> str | None:
    from tests.executors._remote_fixtures import sshd_present

    return None if sshd_present() else "needs root, /usr/sbin/sshd and ssh-keygen (apt install openssh-server)"


def _lambda() -> Executor:
    from tests.executors._remote_fixtures import lambda_emulator
    from truthplane.executors.aws_lambda import LambdaExecutor

    # one emulator is one execution environment: it runs one invocation at a time, so fan-out serialises
    return LambdaExecutor(_REMOTES.enter_context(lambda_emulator(function_timeout_s=30)).options())


def _lambda_ready() -> str | None:
    from tests.executors._remote_fixtures import emulator_present

    return None if emulator_present() else "needs the emulator: pip install aws-sam-cli awslambdaric"


BACKENDS: list[Backend] = [
    Backend("local-bwrap", 20.0, _local_bwrap, _local_ready),
    Backend("docker", 500.0, _docker, _docker_ready),
    Backend("ssh", 50.0, _ssh, _ssh_ready),
    Backend(
        "lambda",
        100.0,
        _lambda,
        _lambda_ready,
        fanout_untestable="not a verdict: the emulator is one execution environment and runs one invocation at a "
        "time (aws-lambda-runtime-interface-emulator#97); AWS gives concurrent invocations one each",
    ),
]


def bare(command: list[str]) -> float:
    argv = [sys.executable, *command[1:]] if command[0] == "python" else command
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
    return time.perf_counter() - started


async def through(executor: Executor, command: list[str]) -> float:
    started = time.perf_counter()
    result = await executor.run(Job(command=command, limits=Limits(timeout_s=60)))
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{executor.name}: {' '.join(command)} failed: {result.stderr.strip()[:300]}")
    return elapsed


async def overhead(executor: Executor, command: list[str], repeat: int) -> tuple[float, float, float, list[float]]:
    """(median bare s, median backend s, median paired overhead s, backend samples)."""
    bares, runs = [], []
    for _ in range(repeat):
        bares.append(await asyncio.to_thread(bare, command))
        runs.append(await through(executor, command))
    paired = [run - base for run, base in zip(runs, bares)]
    return statistics.median(bares), statistics.median(runs), statistics.median(paired), runs


async def measure(backend: Backend, repeat: int, slow_repeat: int) -> list[str]:
    executor = backend.make()
    try:
        for _ in range(2):  # warm-up: first-use probes, connections, page cache
            await through(executor, TRIVIAL)
        rows = []
        base, run, extra, _ = await overhead(executor, TRIVIAL, repeat)
        rows.append(_row(backend.name, "trivial", base, run, extra, backend.target_ms))
        base, run, extra, slow_runs = await overhead(executor, SLOW, slow_repeat)
        rows.append(_row(backend.name, "2 s", base, run, extra, backend.target_ms))
        slowest = max(slow_runs)
        started = time.perf_counter()
        await executor.run_many([Job(command=SLOW, limits=Limits(timeout_s=60)) for _ in range(3)])
        fanned = time.perf_counter() - started
        ratio = fanned / slowest
        verdict = backend.fanout_untestable or ("ok" if ratio <= FANOUT_TARGET else "MISSED")
        rows.append(
            f"{backend.name:<12} {'fan-out 3':<10} slowest single {slowest:6.2f} s, 3 in parallel {fanned:6.2f} s: "
            f"{ratio:4.2f}x (target <= {FANOUT_TARGET}x) {verdict}"
        )
        return rows
    finally:
        await executor.close()


def _row(name: str, job: str, base: float, run: float, extra: float, target_ms: float | None) -> str:
    target = f"< {target_ms:.0f} ms" if target_ms is not None else "-"
    if target_ms is None:
        verdict = ""
    else:
        verdict = f"{extra * 1000 / target_ms:5.2f}x of target " + ("ok" if extra * 1000 < target_ms else "MISSED")
    return (f"{name:<12} {job:<10} bare {base * 1000:8.1f} ms  backend {run * 1000:8.1f} ms  "
            f"overhead {extra * 1000:7.1f} ms  target {target:<9} {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="samples of the trivial job (default 15)")
    parser.add_argument("--slow-repeat", type=int, default=5, help="samples of the 2-second job (default 5)")
    parser.add_argument("--only", action="append", help="measure only this backend (repeatable)")
    args = parser.parse_args()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").exists() else "?"
    print(f"executor overhead over a bare subprocess (median of paired samples; python {sys.version.split()[0]}; "
          f"{os.cpu_count()} cpus, load average {load})")
    for backend in BACKENDS:
        if args.only and backend.name not in args.only:
            continue
        reason = backend.ready()
        if reason is not None:
            print(f"{backend.name:<12} skipped: {reason}")
            continue
        for row in asyncio.run(measure(backend, args.repeat, args.slow_repeat)):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
