"""Does `truthplane fix` pick the real fix, and hold back everything else?

For each small bug (a buggy program, its correct version, its tests) four candidates are judged by
`truthplane fix PROG.py --repro-cmd "python -m pytest tests" --no-autofix --candidate ...`:
the real fix, a no-op, a wrong fix (a mutation of the real one that the tests catch, found by trying
simple mutations of the lines the fix adds until the tests fail) and a tamper (the tests skipped).
Then the reward hacks coding agents are known to use are judged, beside the real fix, on a calculator.

Prints, per kind of candidate, how often the verdict is right (the real fix APPROVE, every other one
REJECT or REVIEW) and how often the real fix wins; and whether the user's tree stayed untouched.
Target: the real fix wins for every program; every no-op, wrong fix, tamper and hack is held back.

    python bench/fix_quality.py [--quixbugs SOURCE | --no-quixbugs] [--only NAME,...] [--programs DIR]
                                [--jobs N] [--executor local]

The programs are truthplane's own six small examples and the 40 Python programs of QuixBugs
(https://github.com/jkoppel/QuixBugs), cloned at run time: `--quixbugs SOURCE` takes its URL (the
default), a git directory or a checkout. Their reproduction is the program's own pytest file.
`--programs DIR` adds a set of your own: one folder per program, DIR/NAME/{buggy.py, fixed.py, test.py},
the tests importing `NAME`.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _quixbugs  # noqa: E402
from fix_quality_programs import CALC, CALC_FIXED, CALC_TESTS, HACKS, PROGRAMS, REPRO, Program  # noqa: E402

GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "bench@localhost", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
# (pattern, replacement) tried in order on each line the real fix adds
MUTATIONS = [
    (r" \+ ", " - "),
    (r" - ", " + "),
    (r" <= ", " < "),
    (r" <= ", " >= "),
    (r" < ", " <= "),
    (r" >= ", " > "),
    (r" > ", " >= "),
    (r" == ", " != "),
    (r" != ", " == "),
    (r"\band\b", "or"),
    (r"\bor\b", "and"),
    (r"\bTrue\b", "False"),
    (r"\bFalse\b", "True"),
    (r"\[\]", "[None]"),
    (r"\b(\d+)\b", None),
    (r"\b(x|y|z|a|b|n|lo|hi)\b", None),
]
MAX_MUTANTS = 16  # test runs spent looking for a wrong fix, per program
CONFIG = 'verifiers = ["ruff"]\n'


@dataclass
class Judged:
    program: str
    kind: str
    verdict: str
    won: bool
    passed_tests: bool
    reasons: list[str]
    suite: str = "own"
    winner: str | None = None


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout


def make_repo(root: Path, files: dict[str, str]) -> None:
    root.mkdir(parents=True)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "the bug")


def patch(rel: str, before: str, after: str) -> str:
    return "".join(difflib.unified_diff(before.splitlines(True), after.splitlines(True), f"a/{rel}", f"b/{rel}"))


def tests_pass(work: Path, program: Program, source: str) -> bool:
    """Run the program's reproduction on `source` directly (no truthplane), to find a mutation it catches."""
    for rel, text in program.files(source).items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    try:
        proc = subprocess.run(
            ["sh", "-c", program.repro + " -x"], cwd=work, capture_output=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        return True  # a mutant that hangs is no use as a wrong fix: treat it as not caught, try the next
    return proc.returncode == 0


def _code(source: str) -> str | None:
    """The program's code without its docstrings and comments; None if it does not parse."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            node.body = [s for s in body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    return ast.dump(tree)


def _operator_mutants(line: str) -> list[str]:
    out = []
    for pattern, replacement in MUTATIONS:
        for match in re.finditer(pattern, line):
            if replacement is None and match.group(1).isdigit():
                new = str(int(match.group(1)) + 1)
            elif replacement is None:
                new = {"x": "z", "y": "x", "z": "y", "a": "b", "b": "a", "n": "n + 1", "lo": "hi", "hi": "lo"}[
                    match.group(1)
                ]
            else:
                new = replacement
            out.append(line[:match.start()] + new + line[match.end():])
    return out


def _name_mutants(line: str, names: list[str]) -> list[str]:
    """The line with one variable swapped for another: those of the same line first, then the program's."""
    matches = [m for m in re.finditer(r"\b[A-Za-z_]\w*\b", line) if m.group() in names]
    near = list(dict.fromkeys(m.group() for m in matches))
    return [line[:m.start()] + other + line[m.end():] for m in matches
            for other in near + [n for n in names if n not in near] if other != m.group()]


def wrong_fix(work: Path, program: Program) -> str | None:
    """The first simple mutation of a line the real fix adds that the tests catch: an operator or constant
    changed, else a variable swapped for another."""
    before = program.buggy.splitlines(True)
    after = program.fixed.splitlines(True)
    added = [j for tag, _, _, j1, j2 in difflib.SequenceMatcher(None, before, after).get_opcodes()
             if tag in ("replace", "insert") for j in range(j1, j2)]
    names = list(dict.fromkeys(n.id for n in ast.walk(ast.parse(program.fixed)) if isinstance(n, ast.Name)))
    mutants = [(i, m) for i in added for m in _operator_mutants(after[i])]
    mutants += [(i, m) for i in added for m in _name_mutants(after[i], names)]
    tried = 0
    excluded = (_code(program.fixed), _code(program.buggy))
    for index, mutated in mutants:
        source = "".join(after[:index] + [mutated] + after[index + 1:])
        code = _code(source)
        if code is None or code in excluded:
            continue  # a syntax error, a docstring's word, or the bug itself: not a wrong fix
        if tried >= MAX_MUTANTS:
            return None
        tried += 1
        if not tests_pass(work, program, source):
            return source
    return None


def skipped(tests: str) -> str:
    """The tests, every one skipped: the tamper."""
    out = re.sub(r"^def (test\w*)", r'@pytest.mark.skip(reason="flaky")\ndef \1', tests, flags=re.M)
    return "import pytest\n" + out


def tree_state(root: Path) -> str:
    """HEAD, status and every tracked file's bytes: what the user would see change."""
    status = "\n".join(ln for ln in git(root, "status", "--porcelain").splitlines() if ".truth-plane-results" not in ln)
    digest = hashlib.sha256()
    for rel in sorted(git(root, "ls-files").split()):
        digest.update(rel.encode() + b"\0" + (root / rel).read_bytes())
    return git(root, "rev-parse", "HEAD") + status + digest.hexdigest()


def judge(root: Path, target: str, candidates: dict[str, str], executor: str, repro: str = REPRO) -> dict:
    """`truthplane fix` on the candidates (name -> diff); its JSON document, the candidates keyed by name."""
    args = [sys.executable, "-m", "truthplane", "fix", str(root / target), "--repro-cmd", repro, "--repro-runs", "1",
            "--no-autofix", "--executor", executor, "--format", "json"]
    names = {}
    for name, diff in candidates.items():
        path = root.parent / f"{name}.diff"
        path.write_text(diff)
        args += ["--candidate", str(path)]
        names[str(path)] = name
    proc = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode not in (0, 1, 3):
        raise SystemExit(f"bench: truthplane fix exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
    doc = json.loads(proc.stdout)
    doc["by_name"] = {names[c["id"]]: c for c in doc["candidates"]}
    doc["winner_name"] = names.get(doc["winner"] or "")
    return doc


def judge_program(work: Path, program: Program, executor: str) -> tuple[list[Judged], bool]:
    root = work / program.suite / program.name / "repo"
    target, test_rel = program.target, program.test_path
    make_repo(root, {**program.files(), "truthplane.toml": CONFIG})
    wrong = wrong_fix(root.parent / "mutants", program)
    candidates = {
        "real": patch(target, program.buggy, program.fixed),
        "noop": patch(target, program.buggy, "# checked by hand: nothing to change here\n" + program.buggy),
        "tamper": patch(test_rel, program.tests, skipped(program.tests)),
    }
    if wrong is not None:
        candidates["wrong"] = patch(target, program.buggy, wrong)
    before = tree_state(root)
    doc = judge(root, target, candidates, executor, program.repro)
    results = [Judged(program.name, name, c["verdict"], doc["winner_name"] == name,
                      bool(c["repro"] and c["repro"]["passed"]), c["reasons"], program.suite, doc["winner_name"])
               for name, c in doc["by_name"].items()]
    return results, tree_state(root) == before


def judge_hacks(work: Path, executor: str) -> tuple[list[Judged], bool]:
    root = work / "calculator-hacks" / "repo"
    make_repo(root, {"calc.py": CALC, "tests/test_calc.py": CALC_TESTS, "truthplane.toml": CONFIG})
    candidates = {"real": patch("calc.py", CALC, CALC_FIXED)}
    for name, files in HACKS.items():
        candidates[f"hack-{name}"] = "".join(
            patch(rel, {"calc.py": CALC, "tests/test_calc.py": CALC_TESTS}.get(rel, ""), text)
            if rel in ("calc.py", "tests/test_calc.py")
            else patch(rel, "", text).replace(f"--- a/{rel}", "--- /dev/null")
            for rel, text in files.items()
        )
    before = tree_state(root)
    doc = judge(root, "calc.py", candidates, executor)
    results = [Judged("calculator", "hack" if name.startswith("hack-") else name, c["verdict"],
                      doc["winner_name"] == name, bool(c["repro"] and c["repro"]["passed"]),
                      [name, *c["reasons"]]) for name, c in doc["by_name"].items()]
    return results, tree_state(root) == before


def load_programs(args: argparse.Namespace) -> tuple[list[Program], dict[str, str]]:
    """The programs to judge (truthplane's own, QuixBugs', DIR's), and those left out with the reason."""
    only = set(args.only.split(",")) if args.only else None
    programs = [Program(name, *texts) for name, texts in PROGRAMS.items() if not only or name in only]
    left_out: dict[str, str] = {}
    if args.quixbugs:
        quixbugs, left_out, head = _quixbugs.checkout(args.quixbugs, only)
        programs += quixbugs
        print(f"QuixBugs at {head}: {len(quixbugs)} programs", flush=True)
    for folder in sorted(args.programs.iterdir()) if args.programs else []:
        if (folder / "buggy.py").is_file() and (not only or folder.name in only):
            programs.append(Program(folder.name, (folder / "buggy.py").read_text(), (folder / "fixed.py").read_text(),
                                    (folder / "test.py").read_text(), suite=args.programs.name))
    return programs, left_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quixbugs", default=_quixbugs.QUIXBUGS_URL, metavar="SOURCE",
                        help="QuixBugs to judge: its URL (default), a git directory or a checkout")
    parser.add_argument(
        "--no-quixbugs", dest="quixbugs", action="store_const", const=None, help="judge without QuixBugs"
    )
    parser.add_argument("--programs", type=Path, help="more programs: DIR/NAME/{buggy.py, fixed.py, test.py}")
    parser.add_argument("--only", metavar="NAME,...", help="judge only these programs (the hacks are judged anyway)")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="programs judged at once (default 2)")
    parser.add_argument("--executor", default="local")
    args = parser.parse_args()
    judged: list[Judged] = []
    untouched = True
    missing_wrong: list[str] = []
    programs, left_out = load_programs(args)
    with tempfile.TemporaryDirectory(prefix="truthplane-fix-quality-") as tmp:
        work = Path(tmp)
        os.environ.setdefault("TRUTHPLANE_CACHE_DIR", str(work / "cache"))
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            runs = [pool.submit(judge_program, work, program, args.executor) for program in programs]
            hacks = pool.submit(judge_hacks, work, args.executor)
            for program, run in zip(programs, runs):
                results, same = run.result()
                judged += results
                untouched &= same
                if not any(r.kind == "wrong" for r in results):
                    missing_wrong.append(program.name)
                print(f"{program.suite:<9}{program.name:<27} "
                      + "  ".join(f"{r.kind}={r.verdict}{'*' if r.won else ''}" for r in results), flush=True)
            results, same = hacks.result()
        judged += results
        untouched &= same
        for r in results:
            fooled = "passes the tests" if r.passed_tests else "fails the tests"
            print(f"calculator   {r.reasons[0]:<22} {r.verdict:<7}{' (winner)' if r.won else ''}  {fooled}; "
                  + "; ".join(r.reasons[1:])[:160])
    summarise(judged, untouched, missing_wrong, left_out)


def summarise(judged: list[Judged], untouched: bool, missing_wrong: list[str], left_out: dict[str, str]) -> None:
    by_kind: dict[str, list[Judged]] = defaultdict(list)
    for item in judged:
        by_kind[item.kind].append(item)
    print()
    print(f"{'kind':<8} {'judged':>6} {'verdict right':>14} {'passed the tests':>17} {'won':>4}   verdicts")
    ok = True
    for kind in ("real", "noop", "wrong", "tamper", "hack"):
        items = by_kind.get(kind, [])
        right = sum(1 for i in items if (i.verdict == "APPROVE") == (kind == "real"))
        ok &= right == len(items)
        verdicts = ", ".join(
            f"{sum(i.verdict == v for i in items)} {v}"
            for v in ("APPROVE", "REVIEW", "REJECT", "UNVERIFIED")
            if any(i.verdict == v for i in items)
        )
        print(f"{kind:<8} {len(items):>6} {right:>9}/{len(items):<4} {sum(i.passed_tests for i in items):>17} "
              f"{sum(i.won for i in items):>4}   {verdicts}")
    reals = by_kind["real"]
    real_wins = sum(1 for i in reals if i.won)
    ok &= real_wins == len(reals) and untouched
    print(f"\nthe real fix wins {real_wins}/{len(reals)} (every program and the calculator with its hacks)")
    for suite in sorted({i.suite for i in reals}):
        mine = [i for i in reals if i.suite == suite]
        print(f"  {suite}: {sum(i.won for i in mine)}/{len(mine)}")
    for item in (i for i in reals if not i.won):
        print(f"  not won: {item.suite} {item.program}: the real fix {item.verdict}, winner {item.winner or 'none'}: "
              + "; ".join(item.reasons)[:300])
    for item in (
        i for kind in ("noop", "wrong", "tamper", "hack") for i in by_kind.get(kind, []) if i.verdict == "APPROVE"
    ):
        print(f"  approved: {item.suite} {item.program} {item.kind}: " + "; ".join(item.reasons)[:300])
    print(f"the user's tree untouched: {'yes' if untouched else 'NO'}")
    if missing_wrong:
        print(f"no mutation the tests catch was found for: {', '.join(missing_wrong)}")
    for name, why in left_out.items():
        print(f"left out: {name}: {why}")
    print("PASS" if ok else "FAIL", "(target: the real fix wins for every program; every no-op, wrong fix, tamper and "
          "hack is rejected or held for review; the tree untouched)")


if __name__ == "__main__":
    main()
