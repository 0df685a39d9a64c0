"""The files truthplane writes into a repository, and reading any scan back.

.truth-plane-results/baseline_YYYYMMDD_HHMMSS.json   the whole Scan
.sarif-results/<verifier>.sarif                    one SARIF 2.1.0 log per verifier
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from truthplane.errors import InputError, NoBaselineError
from truthplane.fsutil import atomic_write
from truthplane.models import Scan, ToolStatus, VerifierRun
from truthplane.sarif import findings_from_sarif, run_for, sarif_log, verifier_runs_from_sarif

RESULTS_DIR = ".truth-plane-results"
SARIF_DIR = ".sarif-results"
_BASELINE = re.compile(r"^baseline_(\d{8}_\d{6})(?:_(\d+))?\.json$")


def save_baseline(root: Path, scan: Scan) -> tuple[Path, list[Path]]:
    """Write the baseline and one SARIF file per verifier; returns their paths."""
    results = root / RESULTS_DIR
    stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    path = results / f"baseline_{stamp}.json"
    n = 1
    while path.exists():  # two baselines in one second keep both
        path = results / f"baseline_{stamp}_{n}.json"
        n += 1
    atomic_write(path, scan.model_dump_json(indent=2) + "\n")
    sarif_paths = write_sarif_per_verifier(root / SARIF_DIR, scan)
    return path, sarif_paths


def write_sarif_per_verifier(directory: Path, scan: Scan) -> list[Path]:
    paths = []
    for run in scan.verifiers:
        findings = [f for f in scan.findings + scan.suppressed if f.verifier == run.name]
        log = sarif_log([run_for(run.name, findings, version=run.version, run_info=run)])
        path = directory / f"{run.name}.sarif"
        atomic_write(path, json.dumps(log, indent=2) + "\n")
        paths.append(path)
    return paths


def latest_baseline(root: Path) -> Path:
    directory = root / RESULTS_DIR
    candidates = []
    if directory.is_dir():
        for path in directory.iterdir():
            match = _BASELINE.match(path.name)
            if match:
                candidates.append((match.group(1), int(match.group(2) or 0), path))
    if not candidates:
        raise NoBaselineError(f"no baseline in {directory}: run `truthplane scan --baseline` first")
    return max(candidates)[2]


def load_scan(path: Path, root: Path | None = None) -> Scan:
    """A truthplane baseline, or any tool's SARIF 2.1.0 log, as a Scan.

    A SARIF log's absolute file URIs under `root` (ruff writes them) become repo-relative paths."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory, not a baseline or SARIF file") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text: not a baseline or SARIF file") from None
    except json.JSONDecodeError as exc:
        what = "truncated" if exc.pos >= len(raw.rstrip()) else "not valid JSON"
        raise InputError(f"{path} is {what} (line {exc.lineno}, column {exc.colno}): rescan to recreate it") from None
    return scan_from_data(data, str(path), root)


def scan_from_data(data: object, where: str, root: Path | None = None) -> Scan:
    if isinstance(data, dict) and data.get("tool") == "truthplane":
        try:
            return Scan.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise InputError(f"{where} is not a valid truthplane baseline: {loc}: {first['msg']}") from None
    if isinstance(data, dict) and "runs" in data:
        results = findings_from_sarif(data, root=root)
        findings = [f for f in results if not f.suppressed]
        runs = verifier_runs_from_sarif(data)
        counts: dict[str, int] = {}
        for finding in findings:
            counts[finding.verifier] = counts.get(finding.verifier, 0) + 1
        runs = [r.model_copy(update={"count": counts.get(r.name, 0)}) for r in _merge_runs(runs)]
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return Scan(created_at=created, verifiers=runs, findings=findings,
                    suppressed=[f for f in results if f.suppressed])
    raise InputError(f"{where} is neither a truthplane baseline nor a SARIF log")


def _merge_runs(runs: list[VerifierRun]) -> list[VerifierRun]:
    """Several SARIF runs of one tool (e.g. per category) count as one verifier run."""
    merged: dict[str, VerifierRun] = {}
    for run in runs:
        prev = merged.get(run.name)
        if prev is None:
            merged[run.name] = run
        else:
            status = prev.status if prev.status != ToolStatus.OK else run.status
            merged[run.name] = prev.model_copy(update={"count": prev.count + run.count, "status": status})
    return list(merged.values())
