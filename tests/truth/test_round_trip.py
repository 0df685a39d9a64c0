"""One scan written three ways (truthplane's baseline JSON, truthplane's SARIF, the tools' own SARIF) is one
state: every pair of them diffs to nothing new and nothing fixed, in `truthplane diff` and in MCP diff_alerts."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from truthplane.truth.gatekeeper import Gatekeeper
from truthplane.verifiers.semgrep import shipped_rule_files

pytestmark = [pytest.mark.tool("ruff"), pytest.mark.tool("semgrep")]

RISKY = """import subprocess


def run(cmd):
    return subprocess.call(cmd, shell=True)


def again(cmd):
    return subprocess.call(cmd, shell=True)


x = eval(input())
y = eval(input())
"""
PICKLE = "import pickle\n\n\ndef load(blob):\n    return pickle.loads(blob)\n"
FILES = {
    "app/a.py": RISKY,
    "app/my mod.py": PICKLE,  # a space: percent-encoded in SARIF URIs
    "pyproject.toml": '[tool.ruff.lint]\nselect = ["S", "F"]\n',
    "truthplane.toml": 'verifiers = ["ruff", "semgrep"]\n',
}


def tp(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "truthplane", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1"}, timeout=300)


def merged(logs: list[dict], path: Path) -> Path:
    """Several tools' logs as one log of several runs, as a CI job that uploads them together holds them."""
    path.write_text(json.dumps({"version": "2.1.0", "runs": [run for log in logs for run in log["runs"]]}))
    return path


@pytest.fixture(scope="module")
def three_formats(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path], int]:
    from tests.conftest import git

    root = tmp_path_factory.mktemp("round") / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    for rel, content in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(content)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "initial")
    done = tp("scan", ".", "--baseline", cwd=root)
    assert done.returncode == 0, done.stderr
    baseline = next((root / ".truth-plane-results").glob("baseline_*.json"))
    total = len(json.loads(baseline.read_text())["findings"])
    ours = [json.loads((root / ".sarif-results" / f"{name}.sarif").read_text()) for name in ("ruff", "semgrep")]
    ruff = subprocess.run(["ruff", "check", "--no-cache", "--output-format", "sarif", "."], cwd=root,
                          capture_output=True, text=True)
    semgrep = subprocess.run(
        ["semgrep", "scan", "--sarif", "--quiet", "--metrics=off", "--disable-version-check",
         *(f"--config={rule}" for rule in shipped_rule_files()), "."],
        cwd=root, capture_output=True, text=True, env={**os.environ, "SEMGREP_ENABLE_VERSION_CHECK": "0"},
    )
    formats = {
        "baseline": baseline,
        "truthplane-sarif": merged(ours, root / "truthplane.truth.sarif"),
        "tools-sarif": merged([json.loads(ruff.stdout), json.loads(semgrep.stdout)], root / "tools.sarif"),
    }
    return root, formats, total


@pytest.mark.parametrize(
    "before,after", list(itertools.permutations(["baseline", "truthplane-sarif", "tools-sarif"], 2))
)
def test_every_pair_of_formats_of_one_scan_diffs_to_nothing(three_formats, before: str, after: str) -> None:
    root, formats, total = three_formats
    assert total >= 10  # both tools found something in both files
    done = tp("diff", str(formats[before]), str(formats[after]), "--format", "json", cwd=root)
    doc = json.loads(done.stdout)
    assert (len(doc["new"]), len(doc["fixed"]), len(doc["unchanged"])) == (0, 0, total), doc["reasons"]
    assert doc["verdict"] == "APPROVE" and done.returncode == 0


def test_truthplane_sarif_keeps_every_identity_field_of_the_baseline(three_formats) -> None:
    from truthplane.truth.results import load_scan

    _, formats, _ = three_formats
    baseline = load_scan(formats["baseline"])
    sarif = load_scan(formats["truthplane-sarif"])
    def identity(finding):
        return (finding.verifier, finding.rule_id, finding.path, finding.start_line, finding.fingerprint,
                finding.context_hash, finding.symbol)

    assert sorted(map(identity, sarif.findings)) == sorted(map(identity, baseline.findings))
    assert any(f.symbol == "again" for f in sarif.findings)


def test_diff_alerts_pairs_a_baseline_with_its_sarif(three_formats) -> None:
    root, formats, total = three_formats
    keeper = Gatekeeper(root)
    for before, after in itertools.permutations(formats.values(), 2):
        answer = keeper.diff_alerts(str(before.relative_to(root)), str(after.relative_to(root)))
        assert answer["counts"] == {"new": 0, "fixed": 0, "updated": 0, "unchanged": total, "suppressed": 0,
                                    "silenced_by_config": 0}, (before.name, after.name)
        assert answer["verdict"] == "APPROVE"
