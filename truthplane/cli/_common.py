"""What `truthplane scan`, `diff` and `gate` share: their options, reading the configuration, and printing a
document to stdout or a file.

The options are typer's, made when a command line is built (`FORMAT`, `OUTPUT`, ...: module attributes made on
first use): a gate read without typer (truthplane.cli.gate.fast_arguments) uses the rest of this module and never
imports it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any


class Format(str, Enum):
    text = "text"
    json = "json"
    sarif = "sarif"
    markdown = "markdown"
    github = "github"  # workflow commands: annotations on a pull request's files
    gitlab = "gitlab"  # a Code Quality report
    junit = "junit"
    rdjson = "rdjson"  # reviewdog's Diagnostic format


CI_FORMATS = (Format.github, Format.gitlab, Format.junit, Format.rdjson)
# the formats that count a gate's unchanged findings and suppressed results without listing them
COUNTING_FORMATS = (Format.text, Format.markdown, Format.github, Format.junit, Format.rdjson)
_OPTIONS: dict[str, Callable[[Any], Any]] = {
    "FORMAT": lambda typer: typer.Option(
        Format.text, "--format", "-f", help="Output format: text, json, sarif, markdown; for CI and review tools "
        "github (annotations), gitlab (Code Quality), junit, rdjson (reviewdog)."),
    "OUTPUT": lambda typer: typer.Option(
        None, "--output", "-o", help="Write the document to FILE instead of stdout.", dir_okay=False),
    "CONFIG": lambda typer: typer.Option(
        None, "--config", help="truthplane.toml (or a pyproject.toml) to use.", dir_okay=False),
    "VERIFIER": lambda typer: typer.Option(None, "--verifier", "-v", help="Run only this verifier (repeatable)."),
    "CACHE_DIR": lambda typer: typer.Option(
        None, "--cache-dir", help="Result cache directory (default: the per-user cache).", file_okay=False),
    "NO_CACHE": lambda typer: typer.Option(False, "--no-cache", help="Rerun every verifier on every file."),
}


def __getattr__(name: str) -> Any:
    """The typer options (FORMAT, OUTPUT, CONFIG, VERIFIER, CACHE_DIR, NO_CACHE), made on first use."""
    make = _OPTIONS.get(name)
    if make is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import typer

    made = globals()[name] = make(typer)
    return made


def scan_options(
    root: Path, config_path: Path | None, verifiers: list[str] | None, cache_dir: Path | None, no_cache: bool
):  # noqa: ANN202
    from truthplane.config import load_config
    from truthplane.truth.pipeline import ScanOptions
    from truthplane.verifiers.loader import check_selection

    config = load_config(root, config_path)
    check_selection(config, verifiers)
    return config, ScanOptions(only=verifiers or None, cache_dir=cache_dir_option(cache_dir), use_cache=not no_cache)


def cache_dir_option(path: Path | None) -> Path | None:
    """--cache-dir as the configuration's cache_dir is checked: a directory, or a place one can be made."""
    if path is not None:
        from truthplane.errors import UsageError
        from truthplane.paths import check_cache_dir

        try:
            check_cache_dir(path)
        except ValueError as exc:
            raise UsageError(f"--cache-dir: {exc}") from None
    return path


def recover(path: Path) -> None:
    """Finish (or drop) a `fix --commit` killed midway before reading the tree: one stat when there is none."""
    from truthplane.paths import PENDING_COMMIT

    if (path / PENDING_COMMIT).is_file():
        from truthplane.git.checkout import recover_pending

        note = recover_pending(path.resolve())
        if note:
            sys.stderr.write(f"truthplane: {note}\n")


def emit(text: str | bytes, output: Path | None) -> None:
    if output is None:
        binary = getattr(sys.stdout, "buffer", None)
        if isinstance(text, bytes) and binary is not None:
            sys.stdout.flush()
            binary.write(text)
            binary.flush()
        else:
            text = text.decode("utf-8") if isinstance(text, bytes) else text
            sys.stdout.write(text)
            sys.stdout.flush()
    else:
        from truthplane.cli.render import write_document

        write_document(output, text)


def emit_ci(result, fmt: Format, output: Path | None, policy) -> None:  # noqa: ANN001
    """A gate's result or a scan in one of the CI formats."""
    from truthplane.cli import ci_formats

    writers: dict[Format, Callable[[Any], str]] = {
        Format.github: lambda r: ci_formats.github_annotations(r, policy),
        Format.gitlab: ci_formats.gitlab_code_quality,
        Format.junit: lambda r: ci_formats.junit_report(r, policy),
        Format.rdjson: lambda r: ci_formats.rdjson(r, policy),
    }
    emit(writers[fmt](result), output)


def emit_gate(result, fmt: Format, output: Path | None, policy=None) -> int:  # noqa: ANN001
    """`policy`: the gate's [gate] settings, which the CI formats' severities follow (default: the defaults)."""
    from truthplane.cli import render

    if fmt in CI_FORMATS:
        from truthplane.config import GateConfig

        emit_ci(result, fmt, output, policy or GateConfig())
    elif fmt is Format.text and output is None:
        render.print_gate_text(result, sys.stdout)
    else:
        writers: dict[Format, Callable[[Any], str | bytes]] = {
            Format.json: render.gate_json, Format.sarif: render.gate_sarif, Format.markdown: render.gate_markdown,
        }
        emit(writers.get(fmt, render.gate_markdown)(result), output)
    return result.verdict.exit_code
