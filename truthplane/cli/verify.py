"""`truthplane verify [RUN_ID | FILE]`: re-check the evidence of runs from the files and git alone.

Exit codes: 0 every check passed; 1 something was changed (each problem names the file, field or
commit); 4 a check could not be made (no records, no git repository for a recorded commit).
`--sign` adopts TRUTHPLANE_SIGNING_KEY for a chain written before it (see verification.sign_unsigned).
"""

from __future__ import annotations

import json
import sys

import typer


def verify(
    target: str = typer.Argument(
        None, metavar="[RUN_ID | FILE]", help="A run id (or its prefix) or an execution file; default: every run."
    ),
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
    sign: bool = typer.Option(
        False,
        "--sign",
        help="Adopt TRUTHPLANE_SIGNING_KEY for a chain written before it: "
        "sign every attestation, once the chain verifies and holds no signature yet.",
    ),
) -> int:
    """Re-check the hash chain, every recorded file hash and commit, and the evidence files' hashes."""
    from pathlib import Path

    from truthplane.cli.render import printable
    from truthplane.errors import UsageError
    from truthplane.evidence.history import find_root
    from truthplane.paths import RESULTS_DIR
    from truthplane.evidence.verify import sign_unsigned
    from truthplane.evidence.verify import verify as check

    if fmt not in ("text", "json"):
        raise UsageError("--format must be text or json")
    root = find_root(Path.cwd())
    if target is not None and Path(target).is_file():
        path = Path(target).resolve()
        if path.parent.name == RESULTS_DIR:
            root = path.parent.parent
    if sign:
        if target is not None:
            raise UsageError("--sign signs the whole chain: give no RUN_ID or FILE")
        signed = sign_unsigned(root)
        sys.stderr.write(f"signed {len(signed)} attestation(s); every later record must be signed\n")
    report = check(root, target)
    if fmt == "json":
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
        return report.exit_code
    verdict = report.as_dict()["verdict"]
    count = len(report.problems) or len(report.unverifiable)
    sys.stdout.write(f"truthplane verify: {verdict}" + (f" ({count} problem(s))" if count else "") + "\n")
    for label, lines in (("FAIL", report.problems), ("UNVERIFIED", report.unverifiable), ("ok", report.checked),
                         ("note", report.notes)):
        for line in lines:
            sys.stdout.write(printable(f"{label}: {line}") + "\n")  # names come from files anyone can write
    return report.exit_code


def register(app: typer.Typer) -> None:
    app.command()(verify)
