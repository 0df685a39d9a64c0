"""`truthplane scan`: the repository's findings, recorded as a baseline or diffed against the latest one."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from truthplane.cli._common import (
    CACHE_DIR,
    CI_FORMATS,
    CONFIG,
    FORMAT,
    NO_CACHE,
    OUTPUT,
    VERIFIER,
    Format,
    emit,
    emit_ci,
    emit_gate,
    recover,
    scan_options,
)


def scan(
    path: Path = typer.Argument(Path("."), help="Repository to scan.", file_okay=False),
    baseline: bool = typer.Option(False, "--baseline", help="Record the findings as the new baseline."),
    verifier: list[str] = VERIFIER,
    fmt: Format = FORMAT,
    output: Path = OUTPUT,
    config_path: Path = CONFIG,
    cache_dir: Path = CACHE_DIR,
    no_cache: bool = NO_CACHE,
    against: Path = typer.Option(
        None, "--against", help="Compare with this baseline or SARIF file, not the latest baseline.", dir_okay=False
    ),
) -> int:
    """Scan PATH. With --baseline, record the findings; otherwise diff against the latest baseline."""
    from truthplane.cli import render
    from truthplane.errors import UsageError
    from truthplane.git.repo import refuse_git_dir
    from truthplane.truth.pipeline import load_baseline, scan_against, scan_path
    from truthplane.truth.results import save_baseline

    if not path.exists():
        raise UsageError(f"{path} does not exist")
    if not path.is_dir():
        raise UsageError(f"{path} is not a directory")
    refuse_git_dir(path)  # a bare repository has no working tree: nothing to scan, nowhere to keep results
    recover(path)
    config, options = scan_options(path, config_path, verifier, cache_dir, no_cache)
    label = str(path.resolve().name or path)
    if not baseline:
        before, before_label = load_baseline(path, against)
        with render.Progress() as progress:
            result = scan_against(path, config, options, before, before_label, progress.scope(label))
        return emit_gate(result, fmt, output, config.gate)
    with render.Progress() as progress:
        found = scan_path(path, config, options, progress.scope(label))
    saved_path, sarif_paths = save_baseline(path, found)
    failed = any(r.status.value != "ok" for r in found.verifiers)
    if fmt in CI_FORMATS:
        emit_ci(found, fmt, output, config.gate)
    elif fmt is Format.text and output is None:
        render.print_scan_text(found, sys.stdout, saved=[saved_path, *sarif_paths])
    elif fmt is Format.json:
        emit(found.model_dump_json(indent=2) + "\n", output)
    elif fmt is Format.sarif:
        emit(render.scan_sarif(found), output)
    else:
        emit(render.scan_markdown(found), output)
    return 4 if failed else 0


def register(app: typer.Typer) -> None:
    app.command()(scan)
