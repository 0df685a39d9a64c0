"""Analysers started from a warm copy (truthplane.verifiers.zygote) and cached findings kept in memory
(truthplane.truth.cache): what a long-lived `truthplane mcp` server does. A warm run must be the plain run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import git
from tests.executors._remote_fixtures import processes
from truthplane.truth import cache as result_cache
from truthplane.verifiers import zygote
from truthplane.verifiers._commands import which
from truthplane.verifiers.started import tool_env
from truthplane.verifiers.tool import run_tool

RISKY = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
QUIET = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)  # nosec\n"
BROKEN = "def broken(:\n    pass\n"
PIP_SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from {module} import {function}
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit({function}())
"""


@pytest.fixture
def warm() -> Iterator[None]:
    zygote.enable()
    result_cache.remember_in_memory()
    try:
        yield
    finally:
        zygote.close_all()
        zygote._enabled = False
        result_cache._memory = None
        result_cache._memory_size = 0


def forked_when_ready(program: str, argv: list[str], cwd: Path, env: dict[str, str]) -> zygote.Forked:
    """The first call starts the zygote (and runs the plain way); the run from the zygote once it is ready."""
    assert zygote.start(program, argv, cwd, env) is None
    deadline = time.monotonic() + 60
    while (forked := zygote.start(program, argv, cwd, env)) is None:
        assert time.monotonic() < deadline, "the zygote never became ready"
        time.sleep(0.05)
    return forked


@pytest.mark.tool("bandit")
def test_a_run_from_the_zygote_is_the_plain_run(warm: None, tmp_path: Path) -> None:
    for name, text in {"risky.py": RISKY, "quiet.py": QUIET, "broken.py": BROKEN}.items():
        (tmp_path / name).write_text(text)
    program = which("bandit")
    assert program is not None and zygote.console_script(program) is not None
    argv = [program, "-f", "json", "-q", "./risky.py", "./quiet.py", "./broken.py"]
    env = tool_env(None)
    plain = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True)
    forked = forked_when_ready(program, argv, tmp_path, env)
    stdout, stderr = forked.communicate(timeout=60)
    assert forked.pid != os.getpid() and forked.returncode == plain.returncode == 1
    assert '"test_id": "B602"' in stdout and 'broken.py' in stdout  # a finding, a file it could not parse
    # the same report, but for bandit's timestamp
    assert _without_timestamp(stdout) == _without_timestamp(plain.stdout)
    assert stderr == plain.stderr


@pytest.mark.tool("mypy")
def test_mypy_is_not_forked_because_a_forked_mypy_fails(warm: None, tmp_path: Path) -> None:
    """mypy's console script has pip's form, but mypy forked from a copy that imported it stops with an internal
    error: it does not opt in, and in a warm process it runs the plain way and reports what a fresh mypy does."""
    from tests.verifiers.conftest import build_verifier

    (tmp_path / "typed.py").write_text("def add(a: int, b: int) -> int:\n    return a + b\n\n\nx: str = add(1, 2)\n")
    verifier = build_verifier("mypy")
    command = verifier.command(tmp_path, ["typed.py"])
    program = which(command.argv[0])
    assert program is not None and zygote.console_script(program) is not None
    env = tool_env(command.env)
    forked = forked_when_ready(program, [program, *command.argv[1:]], tmp_path, env)
    _, stderr = forked.communicate(timeout=120)
    assert forked.returncode == 2 and "INTERNAL ERROR" in stderr  # why mypy is not warm_start
    zygote.close_all()
    assert not verifier.warm_start
    for _ in range(2):  # the second time a zygote would have been ready, had mypy opted in
        findings = verifier.scan(tmp_path, ["typed.py"]).findings
        assert [(f.rule_id, f.start_line) for f in findings] == [("assignment", 5)]
    assert not zygote._zygotes


def _without_timestamp(report: str) -> str:
    return "\n".join(line for line in report.splitlines() if '"generated_at"' not in line)


def pip_tool(tmp_path: Path, name: str, source: str) -> Path:
    """A console script in pip's form for a module `name` (its source given), in tmp_path/lib."""
    package = tmp_path / "lib"
    package.mkdir(exist_ok=True)
    (package / f"{name}.py").write_text(source)
    script = tmp_path / name
    script.write_text(PIP_SCRIPT.format(python=sys.executable, module=name, function="main"))
    script.chmod(0o755)
    return script


def test_a_forked_run_that_times_out_is_killed_with_what_it_started(warm: None, tmp_path: Path) -> None:
    script = pip_tool(tmp_path, "slowtool", "import subprocess, sys, time\n\ndef main():\n"
                      "    subprocess.Popen(['sleep', '60.75'])\n    print('started', flush=True)\n"
                      "    time.sleep(60)\n")
    env = tool_env({"PYTHONPATH": str(tmp_path / "lib")})
    forked = forked_when_ready(str(script), [str(script)], tmp_path, env)
    from truthplane.verifiers import started

    with pytest.raises(subprocess.TimeoutExpired):
        forked.communicate(timeout=1)
    started.stop(forked)  # as run_tool does on a timeout: the run's whole session
    assert forked.returncode == -9
    deadline = time.monotonic() + 10
    while processes("sleep", "60.75"):
        assert time.monotonic() < deadline, "the forked run's child outlived it"
        time.sleep(0.05)


def test_run_tool_with_warm_uses_the_zygote_and_reports_its_exit(warm: None, tmp_path: Path) -> None:
    script = pip_tool(tmp_path, "pidtool", "import os, sys\n\ndef main():\n"
                      "    print(os.getpid(), os.getcwd(), sys.argv[1:], os.environ['MARK'])\n"
                      "    print('to stderr\\r\\n', file=sys.stderr)\n    return 3\n")
    extra = {"PYTHONPATH": str(tmp_path / "lib"), "MARK": "m1"}

    def run() -> object:
        return run_tool("pidtool", [str(script), "a b"], cwd=tmp_path, timeout_s=30, ok_exit_codes=(3,), env=extra,
                        warm=True)

    runs = [run()]  # the plain way, while the zygote starts
    made = [z for z in zygote._zygotes.values() if z is not None]
    assert len(made) == 1
    deadline = time.monotonic() + 60
    while not made[0].ready():
        assert time.monotonic() < deadline, "the zygote never became ready"
        time.sleep(0.05)
    runs.append(run())
    first, last = runs[0], runs[-1]
    assert first.returncode == last.returncode == 3
    assert first.stdout.split()[1:] == last.stdout.split()[1:] == [str(tmp_path), "['a", "b']", "m1"]
    assert first.stderr == last.stderr == "to stderr\n\n"  # newlines as Popen(text=True) gives them
    child = int(last.stdout.split()[0])
    assert child not in (os.getpid(), made[0].proc.pid)
    assert made[0].proc.pid != int(first.stdout.split()[0])  # the first run was a process of its own


def test_only_a_console_script_in_pips_form_qualifies(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_text(PIP_SCRIPT.format(python=sys.executable, module="bandit.cli.main", function="main"))
    assert zygote.console_script(str(good)) == (sys.executable, "bandit.cli.main", "main")
    shell = tmp_path / "shell"
    shell.write_text("#!/bin/sh\nexec python3 -m bandit \"$@\"\n")
    extra = tmp_path / "extra"
    extra.write_text(PIP_SCRIPT.format(python=sys.executable, module="m", function="main") + "print('more')\n")
    missing = tmp_path / "missing-python"
    missing.write_text(PIP_SCRIPT.format(python="/no/such/python", module="m", function="main"))
    for path in (shell, extra, missing, tmp_path / "absent"):
        assert zygote.console_script(str(path)) is None
    ruff = which("ruff")
    if ruff is not None:
        assert zygote.console_script(ruff) is None  # a binary


def test_nothing_is_warm_unless_the_process_asks(tmp_path: Path) -> None:
    script = tmp_path / "tool"
    script.write_text(PIP_SCRIPT.format(python=sys.executable, module="json.tool", function="main"))
    script.chmod(0o755)
    assert zygote.start(str(script), [str(script)], tmp_path, tool_env(None)) is None
    assert not zygote._zygotes


def test_a_zygote_ends_when_its_process_closes_its_socket(warm: None, tmp_path: Path) -> None:
    script = tmp_path / "tool"
    script.write_text(PIP_SCRIPT.format(python=sys.executable, module="json.tool", function="main"))
    script.chmod(0o755)
    forked = forked_when_ready(str(script), [str(script), "--help"], tmp_path, tool_env(None))
    forked.communicate(timeout=30)
    (made,) = [z for z in zygote._zygotes.values() if z is not None]
    made.control.close()
    assert made.proc.wait(timeout=10) == 0


def test_cached_findings_kept_in_memory_are_the_stored_ones(warm: None, tmp_path: Path) -> None:
    from truthplane.models import Finding, Severity

    findings = [Finding(verifier="ruff", rule_id="F401", severity=Severity.LOW, message=f"m{n}", path="a.py",
                        start_line=n, fingerprint=f"f{n}") for n in range(3)]
    cache = result_cache.ResultCache(tmp_path / "cache")
    cache.put_many({"k1": findings})
    assert cache.get("k1") == findings
    (tmp_path / "cache" / "results.sqlite3").unlink()  # what the process remembers needs no database
    fresh = result_cache.ResultCache(tmp_path / "cache")
    assert fresh.get("k1") == findings and fresh.hits == 1
    result_cache._memory = None  # a process that does not remember reads the database: gone
    assert result_cache.ResultCache(tmp_path / "cache").get("k1") is None


def test_memory_keeps_the_most_recently_used_entries_within_its_budget(warm: None, monkeypatch, tmp_path: Path) -> None:  # noqa: ANN001
    from truthplane.models import Finding, Severity

    monkeypatch.setattr(result_cache, "MEMORY_FINDINGS", 10)
    one = [Finding(verifier="v", rule_id="r", severity=Severity.LOW, message="m", path="p")] * 4
    result_cache._remember({"a": one, "b": one})
    assert result_cache._recall(["a"]) == {"a": one}  # a is now the most recent
    result_cache._remember({"c": one})  # 3 x 5 > 10: the least recently used (b) goes
    assert set(result_cache._recall(["a", "b", "c"])) == {"a", "c"}
    result_cache._remember({"huge": one * 3})  # more than the whole budget: not kept
    assert result_cache._recall(["huge"]) == {}


@pytest.mark.tool("ruff")
@pytest.mark.tool("bandit")
@pytest.mark.tool("semgrep")
def test_a_warm_gatekeeper_gives_the_verdicts_of_a_cold_one(make_repo, tmp_path: Path) -> None:
    """The same changes gated by a plain gatekeeper and by one with warm analysers and remembered findings."""
    from truthplane.truth.gatekeeper import Gatekeeper

    files = {f"pkg/m{n}.py": RISKY if n % 2 else QUIET for n in range(6)}
    files["pkg/util.py"] = "import os\nimport pickle\n\n\ndef load(b):\n    return pickle.loads(b)\n"
    files["truthplane.toml"] = 'verifiers = ["ruff", "bandit", "semgrep"]\n'
    root = make_repo(files)
    changes = [
        {"pkg/m0.py": RISKY},  # a new finding
        {"pkg/m1.py": QUIET, "pkg/new.py": "import yaml\n\n\ndef read(s):\n    return yaml.load(s)\n"},  # fixed, new
        {"pkg/util.py": "import os\n"},  # fixed (bandit, semgrep) and an unused import kept
        {"pkg/m2.py": BROKEN},  # a file no tool can parse
    ]

    def gate_all(keeper: Gatekeeper, branch: str) -> list[tuple[object, ...]]:
        answers = []
        for n, change in enumerate(changes):
            git(root, "checkout", "-q", "-B", f"{branch}-{n}", "main")
            for rel, text in change.items():
                (root / rel).write_text(text)
            for _ in range(2):  # twice: the second time from the zygote and memory
                result = keeper.gate("main", limit=200)
                answers.append((result["verdict"], result["exit_code"], sorted(result["reasons"]),
                                sorted((f["fingerprint"], f["rule_id"]) for f in result["new"]),
                                sorted((f["fingerprint"], f["rule_id"]) for f in result["fixed"])))
            git(root, "checkout", "-q", "--", ".")
            git(root, "clean", "-qfd")
        git(root, "checkout", "-q", "main")
        return answers

    cold = gate_all(Gatekeeper(root, tmp_path / "cold-cache"), "cold")
    zygote.enable()
    result_cache.remember_in_memory()
    try:
        deadline = time.monotonic() + 60
        keeper = Gatekeeper(root, tmp_path / "warm-cache")
        gate_all(keeper, "prime")  # the zygotes start
        while not any(z is not None and z.ready() for z in zygote._zygotes.values()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        warm_answers = gate_all(keeper, "warm")
    finally:
        zygote.close_all()
        zygote._enabled = False
        result_cache._memory = None
        result_cache._memory_size = 0
    assert warm_answers == cold
    assert [answer[0] for answer in cold] == ["REJECT"] * 4 + ["APPROVE"] * 2 + ["REJECT"] * 2
    assert ("B602" in {rule for _, rule in cold[0][3]} and "parse-error" in {rule for _, rule in cold[6][3]}
            and "B301" in {rule for _, rule in cold[4][4]})



def test_a_command_line_runs_a_warm_entry_the_plain_way_without_importing_zygotes(tmp_path: Path) -> None:
    """A plan left by a server marks its Python analysers warm; a command line that runs them never enabled
    zygotes, and does not import their module (and its socket module) to learn that."""
    probe = (
        "import sys\n"
        "from pathlib import Path\n"
        "from truthplane.verifiers import started\n"
        "proc = started.start(sys.executable, [sys.executable, '-c', 'print(7)'], Path('.'),"
        " started.tool_env(None), warm=True)\n"
        "out, _ = proc.communicate()\n"
        "print(out.strip(), 'truthplane.verifiers.zygote' in sys.modules, 'socket' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert proc.stdout.split() == ["7", "False", "False"]
