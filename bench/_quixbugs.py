"""QuixBugs (Lin et al., 2017): 40 small Python programs, each with one real bug, its correct version and its tests.

Fetched at run time, never copied into this repository. Each program becomes a bench program laid out as in
QuixBugs: `python_programs/NAME.py` (the buggy one), `python_testcases/test_NAME.py` with the helpers it
imports (`load_testdata.py`, `node.py`), `json_testcases/NAME.json` when the tests read one, and `conftest.py`
(its `--correct` and `--runslow` options; the tests skip their few cases that take minutes unless `--runslow`).
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from fix_quality_programs import Program

QUIXBUGS_URL = "https://github.com/jkoppel/QuixBugs"
# bitcount, find_first_in_sorted and sqrt loop forever while buggy: a run that hangs is a failing run
REPRO_TIMEOUT_S = 60
# name -> why it is not judged (none so far: every program's tests run offline in seconds)
SKIPPED: dict[str, str] = {}


def fetch(source: str, dest: Path) -> Path:
    """The QuixBugs checkout: SOURCE itself if it is one, else a shallow clone of SOURCE (a URL or a git directory)."""
    path = Path(source).expanduser()
    if (path / "python_programs").is_dir() and (path / "correct_python_programs").is_dir():
        return path
    url = path.resolve().as_uri() if path.exists() else source  # file:// so --depth 1 holds for a local git dir too
    proc = subprocess.run(["git", "clone", "-q", "--depth", "1", url, str(dest)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"bench: cannot clone QuixBugs from {source}: {proc.stderr.strip()[-400:]}")
    return dest


def load(root: Path, only: set[str] | None = None) -> tuple[list[Program], dict[str, str]]:
    """The programs to judge, and those left out with the reason."""
    programs: list[Program] = []
    left_out: dict[str, str] = {}
    for buggy in sorted((root / "python_programs").glob("*.py")):
        name = buggy.stem
        if name == "node" or name.endswith("_test") or (only and name not in only):
            continue
        fixed = root / "correct_python_programs" / buggy.name
        tests = root / "python_testcases" / f"test_{name}.py"
        if name in SKIPPED or not fixed.is_file() or not tests.is_file():
            left_out[name] = SKIPPED.get(name, "no correct version or no tests in QuixBugs")
            continue
        programs.append(_program(root, name, buggy.read_text(), fixed.read_text(), tests.read_text()))
    return programs, left_out


def _program(root: Path, name: str, buggy: str, fixed: str, tests: str) -> Program:
    support = {"conftest.py": (root / "conftest.py").read_text()}
    for helper in ("load_testdata", "node"):
        if f"from {helper} import" in tests:
            support[f"python_testcases/{helper}.py"] = (root / "python_testcases" / f"{helper}.py").read_text()
    data = root / "json_testcases" / f"{name}.json"
    if "load_json_testcases" in tests and data.is_file():
        support[f"json_testcases/{name}.json"] = data.read_text()
    test_path = f"python_testcases/test_{name}.py"
    repro = f"timeout {REPRO_TIMEOUT_S} python -m pytest -q -p no:cacheprovider {test_path}"
    return Program(name, buggy, fixed, tests, target=f"python_programs/{name}.py", test_path=test_path,
                   repro=repro, support=support, suite="QuixBugs")


def checkout(source: str, only: set[str] | None = None) -> tuple[list[Program], dict[str, str], str]:
    """Fetch QuixBugs from SOURCE into a temporary directory (removed again): its programs, those left out, its
    commit."""
    with tempfile.TemporaryDirectory(prefix="quixbugs-") as tmp:
        root = fetch(source, Path(tmp) / "QuixBugs")
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=False).stdout.strip()
        return *load(root, only), head or "a checkout outside git"
