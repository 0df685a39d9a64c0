"""The files truthplane writes into a repository, and reading any scan back.

.truth-plane-results/baseline_YYYYMMDD_HHMMSS.json   the whole Scan
.sarif-results/<verifier>.sarif                    one SARIF 2.1.0 log per verifier
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from truthplane.errors import InputError, NoBaselineError
from truthplane.files import MAX_INPUT_BYTES, atomic_write, read_regular_file
from truthplane.models import SCHEMA_VERSION, Scan, ToolStatus, VerifierRun
from truthplane.paths import RESULTS_DIR, results_dir, sarif_dir
from truthplane.truth.sarif import run_for, sarif_log
from truthplane.verifiers.sarif_input import findings_from_sarif, verifier_runs_from_sarif

_BASELINE = re.compile(r"^baseline_(\d{8}_\d{6})(?:_(\d+))?\.json$")


def save_baseline(root: Path, scan: Scan) -> tuple[Path, list[Path]]:
    """Write the baseline and one SARIF file per verifier; returns their paths."""
    results, sarif = results_dir(root), sarif_dir(root)
    stamp = datetime.now(UTC).strftime("%Y%m%d_%H%M%S")
    path = results / f"baseline_{stamp}.json"
    n = 1
    while path.exists():  # two baselines in one second keep both
        path = results / f"baseline_{stamp}_{n}.json"
        n += 1
    atomic_write(path, scan.model_dump_json(indent=2) + "\n")
    sarif_paths = write_sarif_per_verifier(sarif, scan)
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

    The one reading function for every command and the MCP server: a regular file of bounded size, whose
    every defect (not JSON, nested too deeply, wrong shape, a newer schema) is an InputError naming it. A SARIF
    log's absolute file URIs under `root` (ruff writes them) become repo-relative paths.
    """
    raw = read_regular_file(path, MAX_INPUT_BYTES, InputError)
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text: not a baseline or SARIF file") from None
    except json.JSONDecodeError as exc:
        what = "truncated" if exc.pos >= len(raw.rstrip()) else "not valid JSON"
        raise InputError(f"{path} is {what} (line {exc.lineno}, column {exc.colno}): rescan to recreate it") from None
    except ValueError as exc:  # a number of more than 4300 digits
        raise InputError(f"{path} is not a baseline or SARIF file: {exc}") from None
    except RecursionError:
        raise InputError(f"{path} is nested too deeply to be a baseline or SARIF file") from None
    try:
        if _LONE_SURROGATE.search(raw):
            data = _replace_lone_surrogates(data)
        return scan_from_data(data, str(path), root)
    except RecursionError:
        raise InputError(f"{path} is nested too deeply to be a baseline or SARIF file") from None


# a JSON escape of half a UTF-16 pair: decoded alone it is a str no output stream can encode
_LONE_SURROGATE = re.compile(rb"\\[uU][dD][89a-fA-F]")


def _replace_lone_surrogates(data: object) -> object:
    """Every unpaired surrogate in the document's strings becomes U+FFFD, as a UTF-8 decoder would make it."""
    if isinstance(data, str):
        return data.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(data, list):
        return [_replace_lone_surrogates(item) for item in data]
    if isinstance(data, dict):
        return {_replace_lone_surrogates(k): _replace_lone_surrogates(v) for k, v in data.items()}
    return data


def scan_from_data(data: object, where: str, root: Path | None = None) -> Scan:
    if isinstance(data, dict) and data.get("tool") == "truthplane":
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION or isinstance(version, bool):
            raise InputError(
                f"{where} is a truthplane baseline of schema_version {version!r}; this truthplane reads "
                f"schema_version {SCHEMA_VERSION}: rescan with this version to recreate it"
            )
        from pydantic import ValidationError  # outside input only: a gate that reads no baseline never imports it

        try:
            return Scan.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            raise InputError(f"{where} is not a valid truthplane baseline: {loc}: {first['msg']}") from None
    if isinstance(data, dict) and "runs" in data:
        try:
            results = findings_from_sarif(data, root=root)
            runs = verifier_runs_from_sarif(data)
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
        findings = [f for f in results if not f.suppressed]
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
