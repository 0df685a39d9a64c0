"""The task file: every problem is one clear line (exit 2) before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import git
from truthplane.cli.main import run
from truthplane.runall.tasks import TaskFileError, find_cycle, load_tasks

GOOD = '''
[[tasks]]
id = "lint"
title = "Drop the unused import"
kind = "fix"
target = "app.py"
priority = 5
acceptance = { test_cmd = "python -c 'import app'", fail_on = "medium", max_new = 0 }

[[tasks]]
id = "notes"
kind = "command"
command = "echo done > NOTES.txt"
files = ["NOTES.txt"]
depends_on = ["lint"]

[[tasks]]
id = "bump"
kind = "patch"
patch = "change.diff"
files = ["app.py"]
depends_on = ["lint", "notes"]
'''


@pytest.fixture
def repo(make_repo) -> Path:
    return make_repo(
        {"app.py": "import os\n", "change.diff": "--- a/app.py\n+++ b/app.py\n@@ -1 +1 @@\n-import os\n+import sys\n"}
    )


def write(root: Path, text: str, name: str = "tasks.toml") -> Path:
    path = root / name
    path.write_text(text)
    return path


def test_a_good_file_loads_with_everything_it_says(repo: Path) -> None:
    write(repo, GOOD)
    loaded = load_tasks(repo)
    assert [t.id for t in loaded.tasks] == ["lint", "notes", "bump"]
    lint = loaded.by_id()["lint"]
    assert lint.acceptance.test_cmd == "python -c 'import app'"
    assert lint.acceptance.policy(__import__("truthplane.config").config.GateConfig()).max_new == 0
    assert lint.allowed() == ["app.py"] and lint.may_touch("app.py") and not lint.may_touch("other.py")
    assert loaded.patches["bump"].startswith("--- a/app.py")
    assert loaded.source == "tasks.toml"


def test_tasks_in_truthplane_toml_are_found_and_the_config_still_loads(repo: Path) -> None:
    from truthplane.config import load_config

    write(repo, 'verifiers = ["ruff"]\n' + GOOD, "truthplane.toml")
    assert [t.id for t in load_tasks(repo).tasks] == ["lint", "notes", "bump"]
    assert load_config(repo).verifiers[:1] == ["ruff"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("priority = 5", 'priority = 5\ncolour = "red"'), r"task 'lint': unknown field 'colour'"),
        (
            GOOD.replace("acceptance = { test_cmd", "acceptance = { speed = 1, test_cmd"),
            r"task 'lint': unknown field 'acceptance.speed'",
        ),
        (GOOD.replace('id = "notes"', 'id = "lint"'), r"duplicate task id 'lint'"),
        (
            GOOD.replace('depends_on = ["lint"]', 'depends_on = ["lnit"]'),
            r"task 'notes' depends on 'lnit', which is not a task",
        ),
        (
            GOOD.replace("priority = 5", 'priority = 5\ndepends_on = ["bump"]'),
            r"dependency cycle: lint -> bump -> lint",
        ),
        (GOOD.replace('target = "app.py"', 'target = "missing.py"'), r"task 'lint': file missing.py does not exist"),
        (
            GOOD.replace('patch = "change.diff"', 'patch = "nope.diff"'),
            r"task 'bump': patch file nope.diff does not exist",
        ),
        (
            GOOD.replace('target = "app.py"', 'target = "../outside.py"'),
            r"task 'lint': ../outside.py is outside the repository",
        ),
        (
            GOOD.replace('kind = "fix"', 'kind = "refactor"'),
            r"task 'lint': kind: Input should be 'fix', 'command' or 'patch'",
        ),
        (GOOD.replace('command = "echo done > NOTES.txt"', ""), r"task 'notes': kind = \"command\" needs command"),
        (
            GOOD.replace('kind = "fix"', 'kind = "fix"\ncommand = "make"'),
            r"task 'lint': 'command' is for kind = \"command\", not \"fix\"",
        ),
        (GOOD.replace('id = "lint"', 'id = "has space"'), r"task 'has space': id must be letters, digits"),
        (GOOD.replace('fail_on = "medium"', 'fail_on = "severe"'), r"task 'lint': acceptance.fail_on: Input should be"),
        ("[tasks]\nid = 1\n", r"no tasks: add \[\[tasks\]\]"),
        ('[[tasks]]\nkind = "command"\ncommand = "true"\n', r"task #1: missing field 'id'"),
        ("[[tasks]\n", r"tasks.toml is not valid TOML"),
        (GOOD + "\n[settings]\nx = 1\n", r"unknown top-level key 'settings'"),
    ],
)
def test_invalid_files_are_one_line_errors(repo: Path, text: str, message: str) -> None:
    write(repo, text)
    with pytest.raises(TaskFileError, match=message) as caught:
        load_tasks(repo)
    assert "\n" not in str(caught.value)


def test_a_longer_cycle_is_named_in_order(repo: Path) -> None:
    text = "".join(f'[[tasks]]\nid = "{n}"\nkind = "command"\ncommand = "true"\ndepends_on = ["{d}"]\n\n'
                   for n, d in [("a", "b"), ("b", "c"), ("c", "a"), ("d", "a")])
    write(repo, text)
    with pytest.raises(TaskFileError, match=r"dependency cycle: a -> b -> c -> a$"):
        load_tasks(repo)


def test_self_dependency_is_a_cycle() -> None:
    from truthplane.runall.tasks import Task

    assert find_cycle([Task(id="x", kind="command", command="true", depends_on=["x"])]) == ["x", "x"]
    assert find_cycle([Task(id="x", kind="command", command="true")]) is None


def test_the_cli_says_it_in_one_line_with_exit_2_and_runs_nothing(repo: Path, capsys, monkeypatch) -> None:
    write(repo, GOOD.replace('depends_on = ["lint"]', 'depends_on = ["lint", "bump"]'))
    head = git(repo, "rev-parse", "HEAD")
    monkeypatch.chdir(repo)
    code = run(["run-all"])
    _, err = capsys.readouterr()
    assert code == 2
    assert err == "truthplane: error: tasks.toml: dependency cycle: notes -> bump -> notes\n"
    assert git(repo, "rev-parse", "HEAD") == head
    assert not (repo / ".truth-plane-results").exists()


def test_no_task_file_is_a_usage_error(repo: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(repo)
    assert run(["run-all"]) == 2
    assert "no task file" in capsys.readouterr().err
    assert run(["run-all", "missing.toml"]) == 2
    assert "task file" in capsys.readouterr().err


def test_the_digest_changes_with_what_the_task_asks(repo: Path) -> None:
    write(repo, GOOD)
    first = load_tasks(repo).by_id()["notes"].digest()
    write(repo, GOOD.replace("echo done", "echo finished"))
    assert load_tasks(repo).by_id()["notes"].digest() != first


@pytest.mark.parametrize(("table", "message"), [
    ('[[tasks]]\nid = "x"\nkind = "command"\ncommand = "true"\nbogus = 1\n', "task 'x': unknown field 'bogus'"),
    ('[[tasks]]\nid = "x"\nkind = "launch"\n', "task 'x': kind:"),
    ('[[tasks]]\nid = "x"\nkind = "command"\ncommand = "true"\ntimeout_s = -5\n', "task 'x': timeout_s:"),
    ('[[tasks]]\nid = "x"\nkind = "patch"\n', "kind = \"patch\" needs patch"),
    ('[[tasks]]\nid = "x"\nkind = "command"\ncommand = "true"\ndepends_on = ["y"]\n', "depends on 'y'"),
    ('tasks = 5\n', "tasks:"),
])
@pytest.mark.parametrize("command", [["scan", "--baseline", "--verifier", "ruff"], ["doctor"]])
def test_every_command_refuses_a_broken_tasks_table_in_truthplane_toml(
        repo: Path, capsys, monkeypatch, table: str, message: str, command: list[str]) -> None:
    """[[tasks]] is part of the configuration: checked whenever it is read, not only by run-all."""
    write(repo, 'verifiers = ["ruff"]\n' + table, "truthplane.toml")
    monkeypatch.chdir(repo)
    assert run(command) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("truthplane: error: truthplane.toml: ") and message in err[0], err


def test_a_good_tasks_table_leaves_other_commands_alone(repo: Path, capsys, monkeypatch) -> None:
    write(repo, 'verifiers = ["ruff"]\n' + GOOD, "truthplane.toml")
    monkeypatch.chdir(repo)
    assert run(["scan", "--baseline", "--verifier", "ruff", "--format", "json"]) == 0, capsys.readouterr().err
