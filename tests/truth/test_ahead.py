"""A gate starts its tools on the changed files from the last gate's launch plan, before it has imported what
it needs; a verifier takes a tool started ahead only when it would have started the very same process."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git
from truthplane.truth.ahead import LaunchPlans, tools_ahead
from truthplane.verifiers import started as _started
from truthplane.git.run import gate_calls_ahead
from truthplane.cli.main import run
from truthplane.config import load_config
from truthplane.truth.pipeline import ScanOptions, gate

pytestmark = [pytest.mark.tool("ruff"), pytest.mark.tool("bandit")]

CODE = "import os\nimport subprocess\n\n\ndef main(cmd):\n    return subprocess.call(cmd, shell=True)\n"


class Watch:
    """Every process started ahead, and every process a verifier asked for and whether it was there."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.started: list[subprocess.Popen[str]] = []
        self.taken: list[tuple[str, bool]] = []
        real_start, real_take = _started.start, _started.take

        def start(program: str, *args: object, **kwargs: object) -> subprocess.Popen[str]:
            proc = real_start(program, *args, **kwargs)  # type: ignore[arg-type]
            self.started.append(proc)
            return proc

        def take(program: str, argv: list[str], *args: object) -> subprocess.Popen[str] | None:
            proc = real_take(program, argv, *args)  # type: ignore[arg-type]
            # semgrep's native engine runs as itself, called by the name its launcher gives it
            name = "semgrep" if argv[0] == "osemgrep" else Path(program).name
            self.taken.append((name, proc is not None))
            return proc

        monkeypatch.setattr(_started, "start", start)
        monkeypatch.setattr(_started, "take", take)

    def reset(self) -> None:
        self.started.clear()
        self.taken.clear()


def feature_repo(make_repo) -> Path:  # noqa: ANN001
    root = make_repo({"pkg/a.py": CODE, "pkg/b.py": CODE, "c.py": CODE})
    git(root, "checkout", "-qb", "feature")
    return root


def cli_gate(root: Path, cache: Path, *extra: str) -> dict:
    out = root.parent / "gate.json"
    code = run(
        ["gate", str(root), "--base", "main", "--cache-dir", str(cache), "--format", "json", "-o", str(out), *extra]
    )
    assert code in (0, 1, 3), code
    return json.loads(out.read_text())


def same_judgement(a: dict, b: dict) -> bool:
    def keys(doc: dict, kind: str) -> list[tuple[str, str]]:
        return sorted((f["path"], f["fingerprint"]) for f in doc[kind])

    return a["verdict"] == b["verdict"] and all(keys(a, k) == keys(b, k) for k in ("new", "fixed", "unchanged"))


@pytest.mark.tool("semgrep")
def test_the_next_gate_takes_the_tools_it_started_ahead_and_judges_the_same(make_repo, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    root = feature_repo(make_repo)
    (root / "pkg" / "a.py").write_text("import json\n" + CODE)
    cli_gate(root, tmp_path / "cache")  # no plan yet: leaves one
    assert list((tmp_path / "cache" / "launch-plans").glob("*.json"))

    watch = Watch(monkeypatch)
    (root / "pkg" / "b.py").write_text(CODE + "\n\ndef other(cmd):\n    return eval(cmd)\n")
    second = cli_gate(root, tmp_path / "cache")
    # the changed file is new content, so each tool runs on it, and it was already running when asked for
    assert sorted(watch.taken) == [("bandit", True), ("ruff", True), ("semgrep", True)]
    assert len(watch.started) == 3 and all(proc.returncode is not None for proc in watch.started)
    plain = cli_gate(root, tmp_path / "cache-plain", "--no-cache")
    assert same_judgement(second, plain)
    assert {f["path"] for f in second["new"]} == {"pkg/a.py", "pkg/b.py"}

    watch.reset()
    cli_gate(root, tmp_path / "cache")  # nothing changed since: everything is cached, nothing to start
    assert watch.started == [] and watch.taken == []


def test_a_wrong_guess_is_never_taken_and_never_outlives_the_gate(make_repo, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan that no longer spells the verifier's command (here: edited by hand, as a configuration change the
    digest cannot see would) starts a process nobody takes: it is killed when the gate ends, and the gate
    judges with the process it starts itself."""
    root = feature_repo(make_repo)
    plans = LaunchPlans(tmp_path / "cache", only=("ruff",))
    options = ScanOptions(only=["ruff"], cache_dir=tmp_path / "cache")
    gate(root, load_config(root), options, base_ref="main", plans=plans)
    (plan_file,) = (tmp_path / "cache" / "launch-plans").glob("*.json")
    plan = json.loads(plan_file.read_text())
    (entry,) = plan["verifiers"]
    entry["recipe"]["inputs"]["args"] = ["--select", "E"]
    plan_file.write_text(json.dumps(plan))

    watch = Watch(monkeypatch)
    (root / "c.py").write_text("import json\n" + CODE)
    with tools_ahead(plans) as on_listed, gate_calls_ahead(root, "main", None, on_listed):
        result = gate(root, load_config(root), options, base_ref="main", plans=plans)
    assert watch.taken == [("ruff", False)]
    assert len(watch.started) == 2  # the guess, and the verifier's own
    assert all(proc.returncode is not None for proc in watch.started)  # the guess was killed and reaped
    assert _started._started == {}
    assert [(f.rule_id, f.path) for f in result.new] == [("F401", "c.py")]
    # the gate wrote the right plan back
    assert json.loads(plan_file.read_text())["verifiers"][0]["recipe"]["inputs"]["args"] == []


def gate_ahead_after(make_repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: dict[str, str]):  # noqa: ANN001, ANN201
    """A gate that leaves a plan; then `config` files written and c.py changed, and a gate with its tools started
    ahead: what it started and took, and its result."""
    root = feature_repo(make_repo)
    plans = LaunchPlans(tmp_path / "cache")
    options = ScanOptions(only=["ruff", "bandit"], cache_dir=tmp_path / "cache")
    gate(root, load_config(root), options, base_ref="main", plans=plans)

    watch = Watch(monkeypatch)
    for name, text in config.items():
        (root / name).write_text(text)
    (root / "c.py").write_text("import json\n" + CODE)
    with tools_ahead(plans) as on_listed, gate_calls_ahead(root, "main", None, on_listed):
        result = gate(root, load_config(root), options, base_ref="main", plans=plans)
    return watch, result


def test_a_changed_configuration_starts_nothing(make_repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    watch, result = gate_ahead_after(make_repo, tmp_path, monkeypatch,
                                     {"truthplane.toml": '[verifiers.ruff]\nargs = ["--select", "F"]\n'})
    assert {name for name, _ in watch.taken} == {"bandit", "ruff"} and not any(found for _, found in watch.taken)
    assert len(watch.started) == len(watch.taken)  # only the verifiers' own
    assert sorted((f.rule_id, f.path) for f in result.new if f.verifier == "ruff") == [("F401", "c.py")]


def test_a_tool_configuration_in_the_change_starts_that_tool_only_when_asked(make_repo, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed config file of a verifier changes its cache key: its tool is not started from the plan; the
    other verifiers' tools are."""
    watch, result = gate_ahead_after(make_repo, tmp_path, monkeypatch, {"ruff.toml": "[lint]\nignore = ['F401']\n"})
    taken = dict(watch.taken)
    assert taken["bandit"] is True and taken["ruff"] is False
    assert not [f for f in result.new if f.verifier == "ruff"]  # the repository's own ruff configuration held


def test_only_a_gate_of_the_working_tree_keeps_a_plan(make_repo, tmp_path: Path) -> None:
    root = feature_repo(make_repo)
    (root / "c.py").write_text("import json\n" + CODE)
    git(root, "commit", "-qam", "change")
    plans = LaunchPlans(tmp_path / "cache")
    gate(root, load_config(root), ScanOptions(only=["ruff"], cache_dir=tmp_path / "cache"),
         base_ref="main", head_ref="feature", plans=plans)
    assert not (tmp_path / "cache" / "launch-plans").exists()
    cli_gate(root, tmp_path / "cache", "--no-cache", "--verifier", "ruff")
    assert not (tmp_path / "cache" / "launch-plans").exists()


def test_a_gate_of_some_verifiers_keeps_the_plan_of_the_others(make_repo, tmp_path: Path) -> None:
    """`gate --verifier ruff` (a quick hook, say) between two full gates leaves bandit's part of the plan as it
    was, so the next full gate still starts bandit ahead; a configuration change replaces the plan whole."""
    root = feature_repo(make_repo)

    def gate_with(only: tuple[str, ...] | None) -> list[str]:
        plans = LaunchPlans(tmp_path / "cache", only=only)
        options = ScanOptions(only=list(only) if only else ["ruff", "bandit"], cache_dir=tmp_path / "cache")
        gate(root, load_config(root), options, base_ref="main", plans=plans)
        (plan_file,) = (tmp_path / "cache" / "launch-plans").glob("*.json")
        # in the order the next gate starts them, the slowest of the last gate first: which is which is timing
        return sorted(entry["name"] for entry in json.loads(plan_file.read_text())["verifiers"])

    assert gate_with(None) == ["bandit", "ruff"]
    assert gate_with(("ruff",)) == ["bandit", "ruff"]
    assert gate_with(("bandit",)) == ["bandit", "ruff"]
    (root / "truthplane.toml").write_text('verifiers = ["ruff", "bandit"]\n')
    assert gate_with(("ruff",)) == ["ruff"]  # another configuration: nothing of the old plan holds


def test_tools_start_on_the_tracked_changes_and_are_replaced_when_untracked_files_change_their_files(
        make_repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Git lists the tracked changes long before its walk for untracked files ends: the tools start on those,
    and a launch whose files the untracked ones change is stopped and started again on all of them; one they do
    not change keeps running and is taken."""
    from truthplane.git.run import changes_args
    from truthplane.git.run import run as git_run

    root = feature_repo(make_repo)
    plans = LaunchPlans(tmp_path / "cache")
    options = ScanOptions(only=["ruff", "bandit"], cache_dir=tmp_path / "cache")
    gate(root, load_config(root), options, base_ref="main", plans=plans)  # leaves the plan

    watch = Watch(monkeypatch)
    (root / "c.py").write_text("import json\n" + CODE)
    (root / "notes.txt").write_text("untracked, and no verifier's file\n")
    merge_base = git(root, "merge-base", "HEAD", "main").strip()
    head = git(root, "rev-parse", "HEAD").strip()
    diff, untracked = (git_run(root, *args) for args in changes_args(merge_base, head))
    with tools_ahead(plans) as on_listed:
        assert on_listed is not None
        on_listed((root, diff, None, None))
        first = list(watch.started)
        assert len(first) == 2  # ruff and bandit on c.py
        on_listed((root, diff, untracked, None))
        assert watch.started == first  # the untracked file is none of theirs: nothing stopped, nothing started
        (root / "new.py").write_text("import sys\n")
        on_listed((root, diff, git_run(root, *changes_args(merge_base, head)[1]), None))
        assert len(watch.started) == 4 and all(proc.returncode is not None for proc in first)  # stopped, reaped
        result = gate(root, load_config(root), options, base_ref="main", plans=plans)
    assert sorted(watch.taken) == [("bandit", True), ("ruff", True)]
    assert len(watch.started) == 4 and _started._started == {}
    assert sorted((f.rule_id, f.path) for f in result.new if f.verifier == "ruff") == [("F401", "c.py"),
                                                                                      ("F401", "new.py")]


def test_the_gatekeeper_starts_its_tools_ahead_as_the_cli_does(make_repo, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`truthplane mcp`'s gate: git lists the change and the tools start on it while the configuration is read;
    the verifiers take them, and the answer is the one a gate without them gives."""
    from truthplane.truth.gatekeeper import Gatekeeper

    root = make_repo({"pkg/a.py": CODE, "pkg/b.py": CODE, "truthplane.toml": 'verifiers = ["ruff", "bandit"]\n'})
    git(root, "checkout", "-qb", "feature")
    keeper = Gatekeeper(root, tmp_path / "cache")
    keeper.gate("main")  # leaves the plan
    assert list((tmp_path / "cache" / "launch-plans").glob("*.json"))

    watch = Watch(monkeypatch)
    (root / "pkg" / "b.py").write_text("import json\n" + CODE)
    answer = keeper.gate("main", limit=200)
    assert sorted(watch.taken) == [("bandit", True), ("ruff", True)]
    assert len(watch.started) == 2 and _started._started == {}
    plain = Gatekeeper(root, tmp_path / "plain-cache").gate("main", limit=200)
    assert answer["verdict"] == plain["verdict"] and answer["counts"] == plain["counts"]
    assert sorted(f["fingerprint"] for f in answer["new"]) == sorted(f["fingerprint"] for f in plain["new"])


def test_tools_start_on_the_branchs_commits_before_the_working_tree_is_listed(
        make_repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A branch's commits are compared in git's objects long before git's stat pass over the working tree ends: the
    tools start on what the commits changed, and are replaced when the working tree changes their files."""
    from truthplane.git.run import changes_args
    from truthplane.git.run import run as git_run

    root = feature_repo(make_repo)
    plans = LaunchPlans(tmp_path / "cache")
    options = ScanOptions(only=["ruff", "bandit"], cache_dir=tmp_path / "cache")
    gate(root, load_config(root), options, base_ref="main", plans=plans)  # leaves the plan
    (root / "c.py").write_text("import json\n" + CODE)
    git(root, "commit", "-qam", "on the branch")

    watch = Watch(monkeypatch)
    merge_base = git(root, "merge-base", "HEAD", "main").strip()
    head = git(root, "rev-parse", "HEAD").strip()
    with tools_ahead(plans) as on_listed:
        assert on_listed is not None
        diff, untracked, trees = (git_run(root, *args) for args in changes_args(merge_base, head))
        on_listed((root, None, None, trees))
        first = list(watch.started)
        assert len(first) == 2  # ruff and bandit on c.py, from the commits alone
        on_listed((root, diff, None, trees))
        assert watch.started == first  # the working tree is clean: nothing to replace
        (root / "pkg" / "a.py").write_text("import json\n" + CODE)
        diff = git_run(root, *changes_args(merge_base, head)[0])
        on_listed((root, diff, None, trees))
        assert len(watch.started) == 4 and all(proc.returncode is not None for proc in first)
        on_listed((root, diff, untracked, trees))
        result = gate(root, load_config(root), options, base_ref="main", plans=plans)
    assert sorted(watch.taken) == [("bandit", True), ("ruff", True)] and len(watch.started) == 4
    assert sorted((f.rule_id, f.path) for f in result.new if f.verifier == "ruff") == [("F401", "c.py"),
                                                                                      ("F401", "pkg/a.py")]


def test_the_plan_starts_the_slowest_first_by_its_time_over_gates_not_one_gates() -> None:
    """Tools of about the same speed are reordered by one gate's timing at random: each entry's time is averaged
    with the plan's before they are ordered, so one slow run of a quick tool does not put it first."""
    from truthplane.truth.ahead import slowest_first

    first = slowest_first([{"name": "ruff", "seconds": 0.05}, {"name": "bandit", "seconds": 0.4},
                           {"name": "semgrep", "seconds": 0.3}])
    assert [(e["name"], e["seconds"]) for e in first] == [("bandit", 0.4), ("semgrep", 0.3), ("ruff", 0.05)]
    second = slowest_first([{"name": "ruff", "seconds": 0.05}, {"name": "bandit", "seconds": 0.22},
                            {"name": "semgrep", "seconds": 0.33}], first)
    assert [(e["name"], e["seconds"]) for e in second] == [("semgrep", 0.32), ("bandit", 0.31), ("ruff", 0.05)]
    # a plan written before entries had times, or a damaged one: this gate's times alone
    assert [e["name"] for e in slowest_first([{"name": "a", "seconds": 0.1}, {"name": "b", "seconds": 0.2}],
                                             [{"name": "a", "seconds": "x"}, 7])] == ["b", "a"]


def test_a_command_line_starts_the_planned_tools_in_the_plans_order(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    """Only a server keeps zygotes, whose forks the plain starts must not wait for: a command line starts a
    Python analyser (a warm entry) where the plan puts it, first when it is the slowest."""
    import sys
    import types

    order: list[str] = []

    class Held:
        pid = -1

    def start(program, argv, cwd, env, *, stdin=False, warm=False):  # noqa: ANN001, ANN202
        order.append(program)
        return Held()

    monkeypatch.setattr(_started, "start", start)
    monkeypatch.setattr(_started, "stop", lambda proc: None)
    launches = [("bandit", ["bandit"], {}, True), ("semgrep", ["semgrep"], {}, False), ("ruff", ["ruff"], {}, False)]
    monkeypatch.delitem(sys.modules, "truthplane.verifiers.zygote", raising=False)
    try:
        assert _started.hold_only(launches, tmp_path) == 3
        assert order == ["bandit", "semgrep", "ruff"]
        _started.stop_all()
        order.clear()
        monkeypatch.setitem(sys.modules, "truthplane.verifiers.zygote", types.ModuleType("zygote"))
        assert _started.hold_only(launches, tmp_path) == 3
        assert order == ["semgrep", "ruff", "bandit"]  # a server: the forks from its zygote after the plain starts
    finally:
        _started.stop_all()


def test_a_plan_whose_times_barely_moved_is_not_written_again() -> None:
    """Each gate averages the tools' times into the plan: a few hundredths either way are no reason to write the
    file again after every gate; another order, another field or a time that moved more are."""
    from truthplane.truth.ahead import _same_plan

    def plan(*timed: tuple[str, float], cache: str = "c") -> dict:
        return {"version": 1, "cache": cache, "verifiers": [{"name": n, "seconds": t} for n, t in timed]}

    kept = plan(("bandit", 0.4), ("ruff", 0.05))
    assert _same_plan(kept, plan(("bandit", 0.43), ("ruff", 0.06)))
    assert not _same_plan(kept, plan(("bandit", 0.5), ("ruff", 0.05)))
    assert not _same_plan(kept, plan(("ruff", 0.05), ("bandit", 0.4)))
    assert not _same_plan(kept, plan(("bandit", 0.4), ("ruff", 0.05), cache="d"))
    assert not _same_plan(kept, plan(("bandit", 0.4)))
    assert not _same_plan(None, kept)
    assert not _same_plan(plan(("bandit", "x"), ("ruff", 0.05)), kept)  # type: ignore[arg-type]
