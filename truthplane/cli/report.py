"""`truthplane report RUN_ID --html FILE`: one self-contained HTML page for a run."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from truthplane.cli.history import load_run

_HTML = typer.Option(..., "--html", help="Write one self-contained HTML page here.", dir_okay=False)


def report(
    run_id: str = typer.Argument(..., help="A run id or a unique prefix of one."),
    html_file: Path = _HTML,
) -> int:
    """Write one self-contained HTML page for a run: verdicts, findings, diffs side by side, evidence."""
    from truthplane.files import atomic_write
    from truthplane.evidence.report import render_html

    root, _, record, evidence, usage = load_run(run_id)
    atomic_write(html_file, render_html(root, record, evidence=evidence, usage=usage))
    sys.stdout.write(f"wrote {html_file}\n")
    return 0


def register(app: typer.Typer) -> None:
    app.command()(report)
