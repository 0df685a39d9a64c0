"""`truthplane diff`: two baselines or SARIF logs from any tool, new / fixed / unchanged, and a verdict."""

from __future__ import annotations

from pathlib import Path

import typer

from truthplane.cli._common import CONFIG, FORMAT, OUTPUT, Format, emit_gate


def diff(
    before: Path = typer.Argument(..., help="Baseline JSON or SARIF log of the earlier state.", dir_okay=False),
    after: Path = typer.Argument(..., help="Baseline JSON or SARIF log of the later state.", dir_okay=False),
    fmt: Format = FORMAT,
    output: Path = OUTPUT,
    config_path: Path = CONFIG,
) -> int:
    """Diff two baselines or two SARIF logs from any tool: new / fixed / unchanged, and a verdict."""
    from truthplane.config import load_config
    from truthplane.truth.results import load_scan
    from truthplane.truth.verdict import evaluate

    config = load_config(Path("."), config_path)
    here = Path.cwd()  # a log's absolute file URIs (ruff's) are read relative to where the command runs
    result = evaluate(load_scan(before, here), load_scan(after, here), config.gate, base=str(before), head=str(after))
    return emit_gate(result, fmt, output, config.gate)


def register(app: typer.Typer) -> None:
    app.command()(diff)
