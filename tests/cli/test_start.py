"""The command's first step (truthplane/cli/start.py): a gate of the working tree starts listing its untracked
files before the command line's imports, and only when it reads every argument for sure."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import pytest

from tests.conftest import git
from truthplane.cli import _gate_args, start
from truthplane.cli.start import GateArgs, gate_listing
from truthplane.git import untracked as untracked_module
from tests.truth.test_ahead import CODE, Watch, cli_gate, feature_repo, same_judgement
from truthplane.cli.main import run
from truthplane.git import run as run_module
from truthplane.git.run import GIT_ENV, resolve_args
from truthplane.paths import RESULTS_DIR
from truthplane.truth import ahead as ahead_module
from truthplane.truth.ahead import LaunchPlans


@pytest.mark.parametrize("args, expected", [
    ([], GateArgs()),
    (["repo"], GateArgs("repo")),
    (["--base", "main", "repo", "--cache-dir", "/c"], GateArgs("repo", "main", "/c")),
    (["--base=main", "--cache-dir=/c", "-f", "json", "-o", "out.json", "--fail-on", "high"],
     GateArgs(".", "main", "/c")),
    (["-v", "ruff", "--verifier", "bandit", "--no-fetch", "--config", "t.toml", "repo"],
     GateArgs("repo", config="t.toml", verifiers=("ruff", "bandit"))),
    (["--verifier=semgrep", "--base", "origin/dev"], GateArgs(base="origin/dev", verifiers=("semgrep",))),
    (["--head", "HEAD~1"], None),  # a gate of a commit lists no working tree
    (["--no-cache"], None),
    (["--help"], None),
    (["--unknown", "x"], None),
    (["a", "b"], None),
    (["--base"], None),
    (["-ojson"], None),
    (["--", "repo"], None),
])
def test_a_gate_is_read_for_its_listing_only_when_every_argument_is_known(args, expected) -> None:
    assert gate_listing(args) == expected


def test_a_listing_started_early_answers_the_gate_of_its_repository_only(make_repo, tmp_path) -> None:
    root = make_repo({"a/c.py": "x\n"})
    (root / "a" / "u.py").write_text("u\n")
    other = make_repo({"o.py": "o\n"}, name="other")
    store = tmp_path / "cache"
    store.mkdir()
    head = git(root, "rev-parse", "HEAD")
    untracked_module.start_early(root / "a", store, GIT_ENV)
    assert untracked_module.untracked_apart(root, head, store, GIT_ENV, lambda: pytest.fail("walked")) == "a/u.py\0"
    assert not untracked_module._early
    untracked_module.start_early(other, store, GIT_ENV)  # another repository's: not this gate's answer
    assert untracked_module.untracked_apart(root, head, store, GIT_ENV, lambda: "walked\0") in ("walked\0", "a/u.py\0")
    assert not untracked_module._early


def test_the_command_gates_an_untracked_file_it_started_listing_early(make_repo, tmp_path) -> None:
    root = make_repo({"a.py": "x = 1\n"})
    git(root, "checkout", "-qb", "feature")
    cache = tmp_path / "cache"
    cache.mkdir()
    (root / "new.py").write_text("import subprocess\nsubprocess.call('ls', shell=True)\n")
    proc = subprocess.run([sys.executable, "-m", "truthplane", "gate", str(root), "--base", "main", "-v", "bandit",
                           "--cache-dir", str(cache), "--format", "json"], capture_output=True, text=True)
    assert proc.returncode in (1, 3), proc.stderr
    assert "new.py" in proc.stdout
    deadline = time.monotonic() + 60
    while not list(cache.glob("worktrees/*.snapshot")):  # the listing's process answers first, then writes it
        assert time.monotonic() < deadline, "no snapshot written"
        time.sleep(0.01)


def early_gate(root: Path, cache: Path, *extra: str, between: Callable[[], None] = lambda: None) -> tuple[int, dict]:
    """The command's first step and its command line, as the console script runs them (truthplane.cli.main's
    entry, short of its exit); `between` runs between the two."""
    out = root.parent / "gate.json"
    args = ["gate", str(root), "--base", "main", "--cache-dir", str(cache), "--format", "json", "-o", str(out), *extra]
    early = start._start(args[1:])
    between()
    with early or nullcontext():
        code = run(args)
    return code, json.loads(out.read_text())


@pytest.mark.tool("ruff")
@pytest.mark.tool("bandit")
@pytest.mark.tool("semgrep")
def test_the_gate_takes_the_listings_and_tools_its_first_step_started(make_repo, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    root = feature_repo(make_repo)
    cache = tmp_path / "cache"
    cache.mkdir()
    (root / "pkg" / "a.py").write_text("import json\n" + CODE)
    early_gate(root, cache)  # leaves the launch plan
    (root / "pkg" / "b.py").write_text(CODE + "\n\ndef other(cmd):\n    return eval(cmd)\n")
    watch = Watch(monkeypatch)

    def nothing_more() -> None:  # the gate starts nothing of its own: it takes what the first step started
        monkeypatch.setattr(ahead_module, "tools_ahead", lambda plans: pytest.fail("tools started twice"))
        monkeypatch.setattr(run_module, "gate_calls_ahead", lambda *a, **k: pytest.fail("git started twice"))

    code, second = early_gate(root, cache, between=nothing_more)
    assert code in (1, 3)
    assert sorted(watch.taken) == [("bandit", True), ("ruff", True), ("semgrep", True)]
    assert len(watch.started) == 3 and all(proc.returncode is not None for proc in watch.started)
    assert not start._early and not run_module._chains and not run_module._ahead
    monkeypatch.undo()
    assert same_judgement(second, cli_gate(root, tmp_path / "cache-plain", "--no-cache"))


def test_what_started_early_for_other_options_is_stopped_before_the_gate_starts_its_own(
        make_repo, tmp_path: Path) -> None:
    root = feature_repo(make_repo)
    cache = tmp_path / "cache"
    cache.mkdir()
    (root / "c.py").write_text(CODE + "x = 1\n")
    assert start._start([str(root), "--base", "main", "--cache-dir", str(cache)]) is not None
    plans = LaunchPlans(cache)
    assert start.take_early(root, "HEAD", None, plans) is None  # another base: not this gate's
    assert not start._early and not run_module._chains and not run_module._ahead

    early = start._start([str(root), "--base", "main", "--cache-dir", str(cache)])
    assert early is not None
    with early:
        head = git(root, "rev-parse", "HEAD")
        assert start.take_early(root, "main", None, plans) is early
        for chain in list(run_module._chains):
            assert chain.wait(60)
        with pytest.MonkeyPatch.context() as patch:  # the answers of the calls started early: git runs no more
            patch.setattr(run_module, "run", lambda *a, **k: pytest.fail("git ran again"))
            top = Path(run_module.git(root, "rev-parse", "--show-toplevel").strip())
            assert top.resolve() == root.resolve()
            assert run_module.git(top, *resolve_args("HEAD")).strip() == head
    assert not run_module._chains and not run_module._ahead


def test_nothing_starts_early_without_a_cache_directory_or_beside_an_unfinished_commit(make_repo, tmp_path) -> None:
    root = feature_repo(make_repo)
    cache = tmp_path / "cache"
    assert start._start([str(root), "--base", "main", "--cache-dir", str(cache)]) is None
    assert not cache.exists()
    cache.mkdir()
    pending = root / RESULTS_DIR / "pending-commit.json"
    pending.parent.mkdir()
    pending.write_text("{}")
    assert start._start([str(root), "--base", "main", "--cache-dir", str(cache)]) is None
    assert start._start([str(root), "--head", "HEAD", "--cache-dir", str(cache)]) is None
    assert not start._early and not run_module._chains


def test_the_first_step_knows_the_options_and_the_default_base_of_the_gate() -> None:
    """start.py reads the gate's options without importing its command line: the two must not drift apart."""
    import typer

    from truthplane.cli.main import build

    command = typer.main.get_command(build(("truthplane.cli.gate",))).commands["gate"]  # type: ignore[attr-defined]
    valued, flags = set(), set()
    for param in command.params:
        if param.param_type_name != "option" or "--help" in param.opts:
            continue
        (flags if param.is_flag else valued).update(param.opts + param.secondary_opts)
    assert valued == _gate_args._VALUED and flags == _gate_args._FLAGS
    assert set(_gate_args._FIELDS) == valued | flags
    # each option's parameter, as the command names it
    assert {opt: param.name for param in command.params for opt in param.opts
            if opt in _gate_args._FIELDS} == _gate_args._FIELDS
    assert next(p.default for p in command.params if p.name == "base") == start._DEFAULT_BASE == GateArgs().base
