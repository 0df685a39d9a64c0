"""`truthplane scan`, `diff` and `gate`: parse, call truthplane.truth.pipeline, print, return the exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path

import typer


class Format(str, Enum):
    text = "text"
    json = "json"
    sarif = "sarif"
    markdown = "markdown"


FORMAT = typer.Option(Format.text, "--format", "-f", help="Output format.")
OUTPUT = typer.Option(None, "--output", "-o", help="Write the document to FILE instead of stdout.", dir_okay=False)
CONFIG = typer.Option(None, "--config", help="truthplane.toml (or a pyproject.toml) to use.", dir_okay=False)
VERIFIER = typer.Option(None, "--verifier", "-v", help="Run only this verifier (repeatable).")
CACHE_DIR = typer.Option(None, "--cache-dir", help="Result cache directory (default: the per-user cache).", file_okay=False)
NO_CACHE = typer.Option(False, "--no-cache", help="Rerun every verifier on every file.")


def _options(root: Path, config_path: Path | None, verifiers: list[str] | None, cache_dir: Path | None, no_cache: bool):  # noqa: ANN202
    from truthplane.config import load_config
    from truthplane.truth.pipeline import ScanOptions

    from truthplane.verifiers.loader import check_selection

    config = load_config(root, config_path)
    check_selection(config, verifiers)
    return config, ScanOptions(only=verifiers or None, cache_dir=_cache_dir(cache_dir), use_cache=not no_cache)


def _cache_dir(path: Path | None) -> Path | None:
    """--cache-dir as the configuration's cache_dir is checked: a directory, or a place one can be made."""
    if path is not None:
        from truthplane.paths import check_cache_dir
        from truthplane.errors import UsageError

        try:
            check_cache_dir(path)
        except ValueError as exc:
            raise UsageError(f"--cache-dir: {exc}") from None
    return path


def _recover(path: Path) -> None:
    """Finish (or drop) a `fix --commit` killed midway before reading the tree: one stat when there is none."""
    from truthplane.git.checkout import PENDING, recover_pending

    if (path / PENDING).is_file():
        note = recover_pending(path.resolve())
        if note:
            sys.stderr.write(f"truthplane: {note}\n")


def _emit(text: str | bytes, output: Path | None) -> None:
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


def _emit_gate(result, fmt: Format, output: Path | None) -> int:  # noqa: ANN001
    from truthplane.cli import render

    if fmt is Format.text and output is None:
        render.print_gate_text(result, sys.stdout)
    else:
        text = {
            Format.json: render.gate_json, Format.sarif: render.gate_sarif,
            Format.markdown: render.gate_markdown,
        }.get(fmt, render.gate_markdown)(result)
        _emit(text, output)
    return result.verdict.exit_code


def scan(
    path: Path = typer.Argument(Path("."), help="Repository to scan.", file_okay=False),
    baseline: bool = typer.Option(False, "--baseline", help="Record the findings as the new baseline."),
    verifier: list[str] = VERIFIER,
    fmt: Format = FORMAT,
    output: Path = OUTPUT,
    config_path: Path = CONFIG,
    cache_dir: Path = CACHE_DIR,
    no_cache: bool = NO_CACHE,
    against: Path = typer.Option(None, "--against", help="Compare with this baseline or SARIF file, not the latest baseline.", dir_okay=False),
) -> int:
    """Scan PATH. With --baseline, record the findings; otherwise diff against the latest baseline."""
    from truthplane.cli import render
    from truthplane.errors import UsageError
    from truthplane.truth.pipeline import load_baseline, scan_against, scan_path
    from truthplane.truth.results import save_baseline
    from truthplane.git.repo import refuse_git_dir

    if not path.exists():
        raise UsageError(f"{path} does not exist")
    if not path.is_dir():
        raise UsageError(f"{path} is not a directory")
    refuse_git_dir(path)  # a bare repository has no working tree: nothing to scan, nowhere to keep results
    _recover(path)
    config, options = _options(path, config_path, verifier, cache_dir, no_cache)
    label = str(path.resolve().name or path)
    if not baseline:
        before, before_label = load_baseline(path, against)
        with render.Progress() as progress:
            result = scan_against(path, config, options, before, before_label, progress.scope(label))
        return _emit_gate(result, fmt, output)
    with render.Progress() as progress:
        found = scan_path(path, config, options, progress.scope(label))
    saved_path, sarif_paths = save_baseline(path, found)
    failed = any(r.status.value != "ok" for r in found.verifiers)
    if fmt is Format.text and output is None:
        render.print_scan_text(found, sys.stdout, saved=[saved_path, *sarif_paths])
    elif fmt is Format.json:
        _emit(found.model_dump_json(indent=2) + "\n", output)
    elif fmt is Format.sarif:
        _emit(render.scan_sarif(found), output)
    else:
        _emit(render.scan_markdown(found), output)
    return 4 if failed else 0


def diff(
    before: Path = typer.Argument(..., help="Baseline JSON or SARIF log of the earlier state.", dir_okay=False),
    after: Path = typer.Argument(..., help="Baseline JSON or SARIF log of the later state.", dir_okay=False),
    fmt: Format = FORMAT,
    output: Path = OUTPUT,
    config_path: Path = CONFIG,
) -> int:
    """Diff two baselines or two SARIF logs from any tool: new / fixed / unchanged, and a verdict."""
    from truthplane.config import load_config
    from truthplane.truth.verdict import evaluate
    from truthplane.truth.results import load_scan

    config = load_config(Path("."), config_path)
    here = Path.cwd()  # a log's absolute file URIs (ruff's) are read relative to where the command runs
    result = evaluate(load_scan(before, here), load_scan(after, here), config.gate, base=str(before), head=str(after))
    return _emit_gate(result, fmt, output)


def gate(
    path: Path = typer.Argument(Path("."), help="Repository to gate.", file_okay=False),
    base: str = typer.Option("origin/main", "--base", help="The branch the change goes into."),
    head: str = typer.Option(None, "--head", help="Commit to judge (default: the working tree, uncommitted changes included)."),
    verifier: list[str] = VERIFIER,
    fmt: Format = FORMAT,
    output: Path = OUTPUT,
    sarif_out: Path = typer.Option(None, "--sarif-out", help="Also write SARIF with baselineState (code scanning upload).", dir_okay=False),
    summary_out: Path = typer.Option(None, "--summary-out", help="Also write a Markdown summary (e.g. $GITHUB_STEP_SUMMARY).", dir_okay=False),
    config_path: Path = CONFIG,
    cache_dir: Path = CACHE_DIR,
    no_cache: bool = NO_CACHE,
    no_fetch: bool = typer.Option(False, "--no-fetch", help="In a shallow clone, do not fetch the base or more history."),
) -> int:
    """Judge what a change really changes: the merge-base of HEAD and --base against HEAD."""
    from truthplane.truth.ahead import LaunchPlans, tools_ahead
    from truthplane.git.run import gate_calls_ahead
    from truthplane.paths import default_cache_dir
    from truthplane.errors import TruthplaneError

    try:
        _recover(path)
        plans = None if no_cache else LaunchPlans(_cache_dir(cache_dir) or default_cache_dir(), config_path, tuple(verifier or ()) or None)
        # git lists both states while the rest is imported and the configuration read, and the tools start on
        # the changed files as soon as git has said which they are
        with tools_ahead(plans) as on_listed, gate_calls_ahead(path, base, head, on_listed):
            from truthplane.cli import render
            from truthplane.truth.pipeline import gate as run_gate

            config, options = _options(path, config_path, verifier, cache_dir, no_cache)
            with render.Progress() as progress:
                result = run_gate(path, config, options, base_ref=base, head_ref=head, progress=progress, plans=plans,
                                  deepen=None if no_fetch else _say)
    except TruthplaneError as exc:
        # a CI job uploads these files whatever the gate said (`if: always()`): a missing file fails it twice
        from truthplane.cli import render

        reason = str(exc)
        try:
            _ci_files(sarif_out, summary_out, lambda: render.unverified_sarif(reason),
                      lambda: render.unverified_markdown(reason, base, head))
        except TruthplaneError as write_error:  # the gate's own error is the one to report
            sys.stderr.write(f"truthplane: could not write the CI files: {render.printable(str(write_error))}\n")
        raise
    _ci_files(sarif_out, summary_out, lambda: render.gate_sarif(result), lambda: render.gate_markdown(result))
    return _emit_gate(result, fmt, output)


def _say(note: str) -> None:
    from truthplane.cli.render import printable

    sys.stderr.write(f"truthplane: {printable(note)}\n")


def _ci_files(sarif_out: Path | None, summary_out: Path | None, sarif: Callable[[], str], summary: Callable[[], str]) -> None:
    """Write the files CI asked for; each document is made only when its file was asked for."""
    from truthplane.cli import render

    if sarif_out is not None:
        render.write_document(sarif_out, sarif())
    if summary_out is not None:
        # $GITHUB_STEP_SUMMARY may already hold other steps' summaries: add to it
        render.write_document(summary_out, summary(), append=True)


def register(app: typer.Typer) -> None:
    app.command()(scan)
    app.command()(diff)
    app.command()(gate)
