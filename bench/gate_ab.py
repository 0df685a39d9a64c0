"""Two installations of truthplane, one gate each, interleaved: is one slower than the other?

Runs `truthplane gate --base main` (warm cache) of installation A, then B (B then A the next round), on the
Django repository bench/gate_latency.py prepared, each run on a fresh change of django/utils/text.py, and prints
both medians and their ratio. Interleaving cancels the drift of a shared machine that two separate runs of
gate_latency.py would show.

    python bench/gate_ab.py --repo /tmp/truthplane-bench-gate/django --a VENV_A --b VENV_B [--rounds 21]

VENV_A and VENV_B are virtualenvs, each with one truthplane installed (and the same analysers).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from pathlib import Path

CHANGED = "django/utils/text.py"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="the Django repository gate_latency.py made")
    parser.add_argument("--a", type=Path, required=True, help="virtualenv of installation A")
    parser.add_argument("--b", type=Path, required=True, help="virtualenv of installation B")
    parser.add_argument("--rounds", type=int, default=21, help="rounds (the first warms each launch plan)")
    args = parser.parse_args()
    cache = args.repo.parent / "tp-cache"
    changed = args.repo / CHANGED
    original = changed.read_text()
    venvs = {"A": args.a, "B": args.b}
    times: dict[str, list[float]] = {name: [] for name in venvs}
    try:
        for n in range(args.rounds):
            for name in (["A", "B"] if n % 2 == 0 else ["B", "A"]):
                changed.write_text(original + f"\n\ndef _ab_{n}_{name}(value):\n    return value + {n}\n")
                env = {**os.environ, "PATH": f"{venvs[name]}/bin" + os.pathsep + os.environ["PATH"], "NO_COLOR": "1",
                       "SEMGREP_ENABLE_VERSION_CHECK": "0"}
                start = time.perf_counter()
                proc = subprocess.run([str(venvs[name] / "bin" / "truthplane"), "gate", ".", "--base", "main",
                                       "--format", "json", "--cache-dir", str(cache)],
                                      cwd=args.repo, env=env, capture_output=True, text=True)
                elapsed = time.perf_counter() - start
                if proc.returncode not in (0, 1, 3):
                    raise SystemExit(f"bench: gate of {name} exited {proc.returncode}: {proc.stderr[-500:]}")
                if n > 0:
                    times[name].append(elapsed)
    finally:
        changed.write_text(original)
    a, b = (statistics.median(times[name]) for name in ("A", "B"))
    print(f"A {args.a}: median {a:.3f} s over {len(times['A'])} gates")
    print(f"B {args.b}: median {b:.3f} s over {len(times['B'])} gates")
    print(f"B/A = {b / a:.3f}  ({'B no slower' if b <= a * 1.02 else 'B slower'}: within 2% counts as the same)")


if __name__ == "__main__":
    main()
