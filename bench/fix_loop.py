"""Time from `fix` to verdict for 3 candidates judged in parallel, against the same steps one after another.

Each candidate's evaluation is what a real one costs: a reproduction run twice and a test command that
takes about a second, each in its own sandbox on the chosen executor, plus a rescan of the changed file.
Target: parallel at least 2x faster than sequential on the docker executor.

    python bench/fix_loop.py [--executor docker] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CALC = "def mean(values):\n    return sum(values) / len(values) + 1\n\n\ndef total(values):\n    return sum(values)\n"
RIGHT = ("--- a/calc.py\n+++ b/calc.py\n@@ -1,2 +1,2 @@\n def mean(values):\n"
         "-    return sum(values) / len(values) + 1\n+    return sum(values) / len(values)\n")
TESTS = "python -c 'import time, calc; assert calc.total([1, 2]) == 3; time.sleep(1)'"
REPRO = "python -c 'from calc import mean; assert mean([1, 2, 3]) == 2'"


def make_repo(root: Path) -> list[Path]:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@x",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@x",
    }
    (root / "calc.py").write_text(CALC)
    (root / "truthplane.toml").write_text('verifiers = ["ruff"]\n')
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "bench"]):
        subprocess.run(["git", *args], cwd=root, check=True, env=env, capture_output=True)
    patches = []
    for n, text in enumerate([RIGHT, RIGHT.replace("len(values)\n", "len(values) + 2\n"),
                              RIGHT.replace("len(values)\n", "max(len(values), 1)\n")]):
        path = root.parent / f"candidate-{n}.diff"
        path.write_text(text)
        patches.append(path)
    return patches


def one_run(root: Path, patches: list[Path], executor: str, jobs: int | None) -> float:
    from truthplane.config import load_config
    from truthplane.change.fixes import FixRequest
    from truthplane.change.loop import run_fix
    from truthplane.truth.pipeline import ScanOptions

    config = load_config(root)
    request = FixRequest(root=root, target="calc.py", patches=patches, autofix=False, test_cmd=TESTS,
                         repro_cmd=REPRO, repro_runs=2, executor=executor, jobs=jobs)
    started = time.perf_counter()
    run = asyncio.run(run_fix(request, config, ScanOptions(executor=executor)))
    elapsed = time.perf_counter() - started
    verdicts = sorted(c.verdict.value for c in run.result.candidates)
    run.cleanup()
    if run.result.verdict.value != "APPROVE":
        sys.exit(f"bench: expected an approved winner, got {run.result.verdict.value}: {verdicts}")
    return elapsed


def serial_run(root: Path, patches: list[Path], executor_name: str) -> float:
    """The same steps one after another: baseline scan, tests and reproduction, then per candidate
    apply, reproduction twice, tests and rescan — the same executor, scanner and patch code as fix."""
    import shutil

    from truthplane.change.candidates import apply_candidate, patch_file_candidates
    from truthplane.config import load_config
    from truthplane.truth.verdict import compare
    from truthplane.change.loop import _run, _source, snapshot_tree
    from truthplane.truth.pipeline import ScanOptions, run_scan
    from truthplane.executors.loader import create_executor
    from truthplane.git.repo import blob_id

    async def steps() -> None:
        config, options = load_config(root), ScanOptions(executor=executor_name)
        executor = create_executor(executor_name, config)
        with tempfile.TemporaryDirectory() as tmp:
            snapshot = Path(tmp) / "snapshot"
            snapshot.mkdir()
            files = snapshot_tree(root, snapshot)
            base = run_scan(_source(snapshot, files, "base"), config, options)
            await _run(executor, snapshot, TESTS, timeout_s=60)
            await _run(executor, snapshot, REPRO, timeout_s=60)
            for n, candidate in enumerate(patch_file_candidates(patches)):
                tree = Path(tmp) / f"c{n}"
                shutil.copytree(snapshot, tree)
                touched = apply_candidate(tree, candidate)
                changed = {**files, **{rel: blob_id((tree / rel).read_bytes()) for rel in touched}}
                for _ in range(2):
                    await _run(executor, tree, REPRO, timeout_s=60)
                await _run(executor, tree, TESTS, timeout_s=60)
                compare(base, run_scan(_source(tree, changed, "c"), config, options))
        await executor.close()

    started = time.perf_counter()
    asyncio.run(steps())
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executor", default="docker")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from truthplane.registry import load

    info = load("executors", args.executor).available({})
    if not info.installed or (info.reason and args.executor != "local"):
        sys.exit(f"bench: the {args.executor} executor is not usable here: {info.reason}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        patches = make_repo(root)
        os.environ.setdefault("TRUTHPLANE_CACHE_DIR", str(Path(tmp) / "cache"))
        one_run(root, patches, args.executor, None)  # warm: tool versions, caches, image layers
        parallel = [one_run(root, patches, args.executor, None) for _ in range(args.repeats)]
        sequential = [one_run(root, patches, args.executor, 1) for _ in range(args.repeats)]
        serial = [serial_run(root, patches, args.executor) for _ in range(args.repeats)]
    p, s, r = statistics.median(parallel), statistics.median(sequential), statistics.median(serial)
    print(f"executor {args.executor}: 3 candidates, each: reproduction x2 + a ~1 s test command + rescan")
    print(f"{'parallel (fix default)':<34} median {p:6.2f} s  runs {[round(x, 2) for x in parallel]}")
    print(f"{'the same steps one after another':<34} median {r:6.2f} s  runs {[round(x, 2) for x in serial]}")
    print(f"{'candidates one at a time (--jobs 1)':<34} median {s:6.2f} s  runs {[round(x, 2) for x in sequential]}")
    print(f"speed-up vs one after another {r / p:.2f}x  {'PASS' if r / p >= 2 else 'FAIL'} (target >= 2x on docker)")
    print(f"speed-up vs --jobs 1 {s / p:.2f}x (steps inside a candidate already overlap there)")


if __name__ == "__main__":
    main()
