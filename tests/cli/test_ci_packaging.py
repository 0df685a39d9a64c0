"""action.yml and the GitLab CI template, run the way their CI systems run them, as far as that can happen here.

GitHub Actions itself cannot run here, so the composite action's shell steps are run by bash with the environment
Actions gives them: their `env:` and `run:` taken from action.yml with its `${{ inputs.* }}` expressions filled in,
GITHUB_ACTION_PATH, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY, the pull request event, and a local server answering as
GitHub's REST API. Its `uses:` steps (setup-python, cache, upload-sarif) are GitHub's own and are not run. The GitLab
template's script lines run the same way, with a merge request pipeline's variables and a local GitLab server. The
`pip install truthplane` lines are not run: the truthplane under test is on PATH instead."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import git
from tests.review.github_server import GitHubServer, PullRequestState
from tests.review.gitlab_server import GitLabServer, MergeRequestState
from tests.review.test_github_review import BASE, CHANGED

ROOT = Path(__file__).resolve().parents[2]
EXPRESSION = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")

pytestmark = pytest.mark.tool("ruff")


def pull_request_repo(make_repo, tmp_path: Path) -> Path:  # noqa: ANN001
    """A branch with a change, and an `origin` holding main, as a CI checkout has."""
    root = make_repo({"app.py": BASE, "truthplane.toml": 'verifiers = ["ruff"]\n'})
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(root), str(origin)], check=True)
    git(root, "remote", "add", "origin", str(origin))
    git(root, "fetch", "-q", "origin")
    git(root, "checkout", "-q", "-b", "feature")
    (root / "app.py").write_text(CHANGED)
    git(root, "commit", "-qam", "change")
    return root


def truthplane_on_path(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "truthplane"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} -m truthplane \"$@\"\n")
    script.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
            "TRUTHPLANE_CACHE_DIR": str(tmp_path / "cache"), "NO_COLOR": "1"}


def patch_of(root: Path) -> str:
    diff = subprocess.run(["git", "diff", "origin/main...HEAD", "--", "app.py"], cwd=root, capture_output=True,
                          text=True, check=True).stdout
    return diff[diff.index("@@"):]


def fill(text: str, inputs: dict[str, str], context: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        expression = match[1]
        if expression.startswith("inputs."):
            return inputs[expression.removeprefix("inputs.")]
        return context[expression]

    return EXPRESSION.sub(value, text)


def test_the_actions_shell_steps_annotate_review_and_summarise_a_pull_request(make_repo, tmp_path: Path) -> None:  # noqa: ANN001
    action = yaml.safe_load((ROOT / "action.yml").read_text())
    assert action["runs"]["using"] == "composite"
    root = pull_request_repo(make_repo, tmp_path)
    head = git(root, "rev-parse", "HEAD").strip()
    inputs = {name: str(spec.get("default", "")) for name, spec in action["inputs"].items()}
    inputs.update({"review": "true", "install": "", "token": "ghs_test", "fail-on": "critical"})
    state = PullRequestState(repository="octo/demo", number=7, head_sha=head, token="ghs_test",
                             files={"app.py": patch_of(root)})
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"number": 7, "pull_request": {"number": 7, "head": {"sha": head}}}))
    output, summary = tmp_path / "output", tmp_path / "summary.md"
    with GitHubServer(state) as server:
        env = {**os.environ, **truthplane_on_path(tmp_path), "GITHUB_ACTION_PATH": str(ROOT), "GITHUB_ACTIONS": "true",
               "GITHUB_BASE_REF": "main", "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary),
               "GITHUB_EVENT_PATH": str(event), "GITHUB_API_URL": server.url, "GITHUB_REPOSITORY": "octo/demo"}
        ran = []
        for step in action["runs"]["steps"]:
            if "uses" in step:
                continue  # GitHub's own actions: not runnable here
            assert step["shell"] == "bash"
            step_env = {key: fill(str(value), inputs, {"github.token": "ghs_test"})
                        for key, value in (step.get("env") or {}).items()}
            ran.append(subprocess.run(["bash", "-c", fill(step["run"], inputs, {})], cwd=root,
                                      env={**env, **step_env}, capture_output=True, text=True, timeout=300))
    install, gate = ran
    assert install.returncode == 0 and "install skipped" in install.stdout, install.stderr
    annotations = [line for line in gate.stdout.splitlines() if line.startswith("::")]
    assert annotations and all(line.startswith(("::warning file=app.py,", "::notice file=app.py,",
                                                "::error file=app.py,")) for line in annotations), gate.stdout
    verdict = dict(line.split("=", 1) for line in output.read_text().splitlines())["verdict"]
    assert {0: "APPROVE", 1: "REJECT", 3: "REVIEW", 4: "UNVERIFIED"}[gate.returncode] == verdict
    assert f"truthplane: {verdict}" in summary.read_text()
    assert (root / "truthplane.truth.sarif").is_file()
    assert len(state.reviews) == 1 and "review posted" in gate.stderr, gate.stderr


def test_the_gitlab_templates_script_writes_code_quality_and_discusses_the_merge_request(
        make_repo, tmp_path: Path) -> None:  # noqa: ANN001
    job = yaml.safe_load((ROOT / "ci" / "gitlab" / "truthplane.gitlab-ci.yml").read_text())["truthplane"]
    assert job["artifacts"]["reports"]["codequality"] == "gl-code-quality-report.json"
    assert job["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
    root = pull_request_repo(make_repo, tmp_path)
    state = MergeRequestState(project="42", iid=3, token="glpat-test", diffs={"app.py": patch_of(root)})
    with GitLabServer(state) as server:
        env = {**os.environ, **truthplane_on_path(tmp_path), "GITLAB_CI": "true",
               "CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
               "CI_API_V4_URL": server.url, "CI_PROJECT_ID": "42", "CI_MERGE_REQUEST_IID": "3",
               "CI_PROJECT_DIR": str(root), "GITLAB_TOKEN": "glpat-test"}
        env.update({key: value.replace("$CI_PROJECT_DIR", str(root)) for key, value in job["variables"].items()})
        results = [subprocess.run(["bash", "-c", line], cwd=root, env=env, capture_output=True, text=True,
                                  timeout=300)
                   for line in job["script"] if not line.startswith("pip install")]
    (gate,) = results
    assert gate.returncode in (0, 1, 3), gate.stderr
    report = json.loads((root / "gl-code-quality-report.json").read_text())
    assert report and all({"description", "check_name", "fingerprint", "severity", "location"} <= set(issue)
                          for issue in report)
    assert (root / "truthplane-summary.md").is_file()
    assert state.discussions and len(state.notes) == 1 and "review posted" in gate.stderr, gate.stderr
