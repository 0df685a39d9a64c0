"""`truthplane gate` in CI: the files a CI job uploads are always there, and a shallow clone fetches the history
the gate needs. Real git, a real remote over file://, real analysers."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import git
from tests.truth.test_sarif import validate_sarif
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
    summary, sarif = tmp_path / "step-summary.md", tmp_path / "out" / "truthplane.truth.sarif"
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


def fast_import_data(text: str) -> str:
    return f"data {len(text.encode())}\n{text}\n"


def upstream(tmp_path: Path, *, ahead: int) -> Path:
    """A bare repository: a fork point, three commits on main after it, and `ahead` commits on feature, the
    last of which adds a shell=True call. Written with one git fast-import, not a process per commit."""
    bare = tmp_path / "upstream.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    stamp = 1_700_000_000
    stream: list[str] = []

    def commit(branch: str, mark: int, parent: int | None, files: dict[str, str]) -> None:
        nonlocal stamp
        stamp += 60
        stream.append(f"commit refs/heads/{branch}\nmark :{mark}\ncommitter t <t@example.com> {stamp} +0000\n")
        stream.append(fast_import_data(f"commit {mark}"))
        if parent is not None:
            stream.append(f"from :{parent}\n")
        stream.extend(f"M 100644 inline {path}\n" + fast_import_data(text) for path, text in files.items())

    commit("main", 1, None, {"app/tool.py": CLEAN, "truthplane.toml": CONFIG})
    for n in range(2, 5):
        commit("main", n, n - 1, {"NEWS": f"release {n}\n"})
    previous = 1
    for n in range(100, 100 + ahead):
        commit("feature", n, previous, {"notes.txt": f"step {n}\n"} if n < 99 + ahead else {"app/tool.py": RISKY})
        previous = n
    subprocess.run(["git", "fast-import", "--quiet"], cwd=bare, input="".join(stream).encode(), check=True)
    return bare


def shallow_clone(tmp_path: Path, bare: Path, name: str) -> Path:
    clone = tmp_path / name
    git(tmp_path, "clone", "-q", "--depth", "1", "--branch", "feature", f"file://{bare}", str(clone))
    return clone


def test_a_shallow_clone_fetches_its_base_and_deepens_until_the_merge_base_is_there(tmp_path, capsys) -> None:
    bare = upstream(tmp_path, ahead=120)  # the fork point is deeper than the first step fetches
    clone = shallow_clone(tmp_path, bare, "clone")
    assert git(clone, "rev-parse", "--is-shallow-repository") == "true"
    summary, sarif, out = ci_files(tmp_path)
    code, err = gate(capsys, clone, "--base", "origin/main", *out)
    assert code == 1, err  # REJECT: the shell=True call is new since the fork point
    assert "origin/main is not in this shallow clone: fetching it from origin" in err
    assert "fetching 100 more commits of history from origin" in err
    assert "fetching 400 more commits of history from origin" in err  # growing steps
    fork = git(bare, "rev-parse", "main~3")
    assert f"merge-base of origin/main ({fork[:12]})" in summary.read_text()
    log = json.loads(sarif.read_text())
    validate_sarif(log)
    assert {r["ruleId"] for run_ in log["runs"] for r in run_["results"] if r["baselineState"] == "new"} == {"B602"}


def test_no_fetch_leaves_a_shallow_clone_as_it_is_and_says_why_it_cannot_verify(tmp_path, capsys) -> None:
    bare = upstream(tmp_path, ahead=3)
    clone = shallow_clone(tmp_path, bare, "clone")
    git(clone, "fetch", "-q", "--depth", "1", "origin", "+refs/heads/main:refs/remotes/origin/main")
    shallow_before = (clone / ".git" / "shallow").read_text()
    summary, sarif, out = ci_files(tmp_path)
    code, err = gate(capsys, clone, "--base", "origin/main", "--no-fetch", *out)
    assert code == 4 and "this clone is shallow" in err and "fetching" not in err
    assert (clone / ".git" / "shallow").read_text() == shallow_before
    assert "this clone is shallow" in unverified_log(sarif) and "this clone is shallow" in summary.read_text()
