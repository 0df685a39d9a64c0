"""`truthplane gate` in CI: the files a CI job uploads are always there, and a shallow clone fetches the history
the gate needs. Real git, a real remote over file://, real analysers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_sarif import validate_sarif
from truthplane.cli.main import run

pytestmark = [pytest.mark.tool("ruff"), pytest.mark.tool("bandit")]

CLEAN = "import subprocess\n\n\ndef run(args):\n    return subprocess.run(args, check=True)\n"
RISKY = "import subprocess\n\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
CONFIG = 'verifiers = ["ruff", "bandit"]\n'


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("NO_COLOR", "1")


def gate(capsys: pytest.CaptureFixture[str], root: Path, *args: str) -> tuple[int, str]:
    code = run(["gate", str(root), *args])
    return code, capsys.readouterr().err


def ci_files(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    summary, sarif = tmp_path / "step-summary.md", tmp_path / "out" / "truthplane.sarif"
    summary.write_text("## an earlier step\n")  # $GITHUB_STEP_SUMMARY holds the other steps' summaries
    return summary, sarif, ["--summary-out", str(summary), "--sarif-out", str(sarif)]


def unverified_log(sarif: Path) -> str:
    """The SARIF log of a gate that could not verify: valid, no results, the reason in a notification."""
    log = json.loads(sarif.read_text())
    validate_sarif(log)
    (run_,) = log["runs"]
    assert run_["results"] == []
    (invocation,) = run_["invocations"]
    assert invocation["executionSuccessful"] is False
    (notification,) = invocation["toolExecutionNotifications"]
    return notification["message"]["text"]


def test_a_gate_without_its_base_still_leaves_the_summary_and_a_valid_sarif_log(make_repo, tmp_path, capsys) -> None:
    root = make_repo({"app/tool.py": CLEAN, "truthplane.toml": CONFIG})
    summary, sarif, out = ci_files(tmp_path)
    code, err = gate(capsys, root, "--base", "origin/release", *out)
    assert code == 4 and "'origin/release' not found" in err
    assert "'origin/release' not found" in unverified_log(sarif)
    text = summary.read_text()
    assert text.startswith("## an earlier step\n") and "UNVERIFIED" in text and "'origin/release' not found" in text
