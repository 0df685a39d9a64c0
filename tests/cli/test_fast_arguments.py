"""A gate read without typer (truthplane.cli.gate.fast_arguments) gets the very arguments typer would give it, or is
left to typer: the two readings of a command line must never differ."""

from __future__ import annotations

import inspect
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from truthplane.cli import gate as gate_module
from truthplane.cli._common import Format
from truthplane.cli.gate import fast_arguments
from truthplane.cli.main import _usage_errors, build

USAGE = "usage error"


def typer_reading(args: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any] | str:
    """What typer hands the gate for `truthplane gate ARGS` (every parameter), or USAGE when it refuses them."""
    seen: dict[str, Any] = {}
    real = inspect.signature(gate_module.judge)

    def record(*given: Any, **named: Any) -> int:
        bound = real.bind(*given, **named)
        bound.apply_defaults()
        seen.update(bound.arguments)
        return 0

    with monkeypatch.context() as patch:
        patch.setattr(gate_module, "judge", record)
        command = typer.main.get_command(build(("truthplane.cli.gate",)))
        try:
            command.main(args=["gate", *args], prog_name="truthplane", standalone_mode=False)
        except _usage_errors():
            return USAGE
    return seen


@pytest.fixture
def places(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding a file, a directory and nothing else under the names the cases use."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("x\n")
    (tmp_path / "a-dir").mkdir()
    return tmp_path


PLAIN = [
    [], ["."], ["repo"], ["a-dir"], ["--base", "main"], ["--base=main"], ["--head", "HEAD~1"],
    ["-v", "ruff", "--verifier", "bandit"], ["--verifier=semgrep"], ["-f", "json"], ["--format=sarif"],
    ["--format", "markdown"], ["-f", "rdjson"], ["-o", "out.json"], ["--output=out.json"], ["-o", "a-file"],
    ["--sarif-out", "s.sarif", "--summary-out", "sum.md"], ["--config", "t.toml"], ["--config", "a-file"],
    ["--cache-dir", "c"], ["--cache-dir", "a-dir"], ["--no-cache", "--no-fetch"], ["--suggest", "--review", "github"],
    ["--fail-on", "high"], ["--review=gitlab"], ["--base", "a", "--base", "b"], ["-f", "json", "--format", "text"],
    ["repo", "--base", "main", "--cache-dir", "c", "-v", "ruff"],
]
LEFT_TO_TYPER = [
    ["--format", "JSON"], ["--format", "xml"], ["-ojson"], ["-v=ruff"], ["--", "x"], ["a", "b"], ["--help"],
    ["--version"], ["--unknown"], ["a-file"], ["-o", "a-dir"], ["--config", "a-dir"], ["--cache-dir", "a-file"],
    ["--base", "-x"], ["--base"], ["--base="], ["--no-cache=1"], [""], ["-h"],
]


@pytest.mark.parametrize("args", PLAIN, ids=" ".join)
def test_a_plain_command_line_is_read_as_typer_reads_it(args: list[str], places: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    fast = fast_arguments(args)
    assert fast is not None, "a plain spelling is read without typer"
    assert fast == typer_reading(args, monkeypatch)
    assert {name: type(value) for name, value in fast.items()} == {
        name: type(value) for name, value in typer_reading(args, monkeypatch).items()}  # type: ignore[union-attr]


@pytest.mark.parametrize("args", LEFT_TO_TYPER, ids=lambda args: " ".join(args) or "empty")
def test_anything_else_is_left_to_typer(args: list[str], places: Path) -> None:
    assert fast_arguments(args) is None


@pytest.mark.parametrize("seed", range(4))
def test_random_command_lines_of_plain_spellings_read_alike(seed: int, places: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    options = [["--base", "main"], ["--base=dev"], ["--head", "HEAD"], ["-v", "ruff"], ["--verifier", "bandit"],
               ["-f", rng.choice([f.value for f in Format])], ["--format", "json"], ["-o", "o.txt"],
               ["--sarif-out", "s"], ["--summary-out", "m"], ["--fail-on", "low"], ["--review", "github"],
               ["--config", "a-file"], ["--cache-dir", "a-dir"], ["--no-cache"], ["--no-fetch"], ["--suggest"],
               ["repo"], ["a-file"], ["-o", "a-dir"], ["--format", "Text"], ["--verifier=semgrep"]]
    for _ in range(40):
        args = [word for option in rng.sample(options, rng.randrange(0, 6)) for word in option]
        fast = fast_arguments(args)
        typer_says = typer_reading(args, monkeypatch)
        if fast is not None:
            assert fast == typer_says, args
        elif typer_says != USAGE:
            # left to typer though it reads them: only a second path does that here (typer refuses it too)
            pytest.fail(f"{args} read by typer but not without it")


def test_a_gate_read_without_typer_does_not_import_it(make_repo, tmp_path: Path) -> None:
    root = make_repo({"a.py": "x = 1\n"})
    code = ("import sys; from truthplane.cli.main import run; code = run(sys.argv[1:]); "
            "print('typer' in sys.modules, code)")
    cache = tmp_path / "cache"
    plain = subprocess.run([sys.executable, "-c", code, "gate", str(root), "--base", "HEAD", "--cache-dir", str(cache),
                            "-v", "ruff"], capture_output=True, text=True, check=False)
    assert plain.stdout.split()[-2:] == ["False", "0"], plain.stderr[-800:]
    refused = subprocess.run([sys.executable, "-c", code, "gate", str(root), "--format", "xml"],
                             capture_output=True, text=True, check=False)
    assert "Invalid value" in refused.stderr and refused.stdout.split()[-2:] == ["True", "2"], refused.stderr[-800:]
