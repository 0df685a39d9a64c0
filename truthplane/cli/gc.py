"""`truthplane gc --older-than 24h`: remove old logs; records, hashes and the chain stay verifiable."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def gc(
    older_than: str = typer.Option("24h", "--older-than", help="Remove logs of runs older than this (24h, 7d, ...)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be removed."),
) -> int:
    """Remove old logs (full diffs, outputs); records, hashes and the chain stay verifiable. Also removes
    the temp dirs and job cgroups of runs that were killed before they could clean up."""
    from truthplane.cli.render import printable  # the paths come from records anyone can write
    from truthplane.executors.local import sweep_leftovers
    from truthplane.evidence.gc import gc as collect
    from truthplane.evidence.gc import parse_age
    from truthplane.evidence.history import find_root

    if not dry_run:
        for leftover in sweep_leftovers():
            sys.stdout.write(printable(f"removed {leftover}, left by a run that was killed") + "\n")
    result = collect(find_root(Path.cwd()), parse_age(older_than), dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for path, size in result.removed:
        sys.stdout.write(printable(f"{verb} {path} ({size} bytes)") + "\n")
    sys.stdout.write(f"{verb} {len(result.removed)} file(s), {result.bytes} bytes; records and hashes kept\n")
    return 0


def register(app: typer.Typer) -> None:
    app.command()(gc)
