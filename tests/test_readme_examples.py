"""Every TOML, YAML and shell example in the README and the user documentation (docs/) works as written.

TOML parses, and a truthplane configuration or task list is accepted by truthplane's own loaders; YAML
parses; a shell block passes `bash -n`, and every `truthplane ...` command in it parses with the real
command line's argument parser (flags, choices and arguments as the subcommand's --help lists them).
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
import typer
import yaml

from truthplane.cli.main import app
from truthplane.config import parse_config
from truthplane.errors import ConfigError
from truthplane.runall.tasks import _parse_one

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(language: str) -> list[tuple[str, str]]:
    """(document:line, text) of every block in `language`, in every document."""
    found = []
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8")
        name = document.relative_to(ROOT).as_posix()
        found += [(f"{name}:{text.count(chr(10), 0, m.start()) + 1}", m.group(2))
                  for m in _BLOCK.finditer(text) if m.group(1) == language]
    return found


def ids(found: list[tuple[str, str]]) -> list[str]:
    return [where for where, _ in found]


TOML, YAML, SHELL = blocks("toml"), blocks("yaml"), blocks("sh")


def test_the_readme_has_examples_of_each_kind() -> None:
    assert len(TOML) >= 5 and len(YAML) >= 2 and len(SHELL) >= 6


@pytest.mark.parametrize("line, text", TOML, ids=ids(TOML))
def test_a_toml_example_parses_and_truthplane_accepts_it(line: str, text: str) -> None:
    data = tomllib.loads(text)
    if "tasks" in data:
        assert set(data) == {"tasks"}, "a task example holds [[tasks]] only"
        for index, task in enumerate(data["tasks"]):
            _parse_one(task, index, line)
    else:
        parse_config(data, line)


@pytest.mark.parametrize("line, text", YAML, ids=ids(YAML))
def test_a_yaml_example_parses(line: str, text: str) -> None:
    assert isinstance(yaml.safe_load(text), dict)


def truthplane_commands(script: str) -> list[list[str]]:
    """Each `truthplane ...` command of a shell script, as the words bash would pass it."""
    joined = script.replace("\\\n", " ")
    commands = []
    for line in joined.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        for word in [*lexer, ";"]:
            if word in {";", "&&", "||", "|", "&"}:
                if words[:1] == ["truthplane"]:
                    commands.append(words[1:])
                words = []
            else:
                words.append(word)
    return commands


def parse_with_the_cli(args: list[str]) -> None:
    """Parse `truthplane ARGS` exactly as the command line would, without running the command."""
    group = typer.main.get_command(app)
    with group.make_context("truthplane", list(args)) as context:
        words = [*context._protected_args, *context.args]  # the subcommand and its arguments
        while words:
            name, command, rest = group.resolve_command(context, words)
            with command.make_context(name, rest, parent=context) as sub:
                words = [*getattr(sub, "_protected_args", []), *sub.args] if hasattr(command, "commands") else []
                group, context = command, sub


@pytest.mark.parametrize("line, text", SHELL, ids=ids(SHELL))
def test_a_shell_example_is_valid_and_every_truthplane_command_in_it_parses(line: str, text: str) -> None:
    checked = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    for args in truthplane_commands(text):
        parse_with_the_cli(args)


def test_the_command_parser_refuses_what_the_cli_refuses() -> None:
    """The check above is only as good as its parser: an unknown flag or choice must fail it."""
    for bad in (["scan", "--no-such-flag"], ["scan", "--format", "yaml"], ["no-such-command"], ["history", "[--kind"]):
        with pytest.raises(Exception) as raised:
            parse_with_the_cli(bad)
        assert not isinstance(raised.value, AssertionError)
    assert truthplane_commands(
        "pip install . && truthplane scan --baseline .  # note\ntruthplane history; truthplane verify"
    ) == [["scan", "--baseline", "."], ["history"], ["verify"]]


def test_an_invalid_configuration_example_would_be_caught() -> None:
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads('verifiers = ["ruff"]\n[verifiers.ruff]\nargs = []\n')
    with pytest.raises(ConfigError):
        parse_config({"gate": {"fail_on": "urgent"}}, "README.md")
