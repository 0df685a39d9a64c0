"""`truthplane gate --review gitlab` end to end: a real change gated with real ruff, the review posted to a local
server answering as GitLab's REST API (v4) does (tests/review/gitlab_server.py): discussions on the diff's lines,
one summary note edited in place, a discussion resolved when its finding is gone, a rate limit, a position GitLab
refuses, and a token that may not write."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import git
from tests.review.gitlab_server import GitLabServer, MergeRequestState
from tests.review.test_github_review import BASE, CHANGED, gate
from truthplane.review.plan import REVIEW_MARKER, commentable_lines, marked_fingerprint

pytestmark = pytest.mark.tool("ruff")


@pytest.fixture
def merge_request(make_repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, GitLabServer]]:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    root = make_repo({"app.py": BASE, "truthplane.toml": 'verifiers = ["ruff"]\n'})
    git(root, "checkout", "-q", "-b", "feature")
    state = MergeRequestState(project="42", iid=3, token="glpat-test", diffs={})
    with GitLabServer(state) as server:
        monkeypatch.setenv("CI_API_V4_URL", server.url)
        monkeypatch.setenv("CI_PROJECT_ID", "42")
        monkeypatch.setenv("CI_MERGE_REQUEST_IID", "3")
        monkeypatch.setenv("GITLAB_TOKEN", "glpat-test")
        yield root, server


def push(root: Path, server: GitLabServer, content: str) -> None:
    (root / "app.py").write_text(content)
    git(root, "commit", "-qam", "change")
    diff = subprocess.run(["git", "diff", "main...HEAD", "--", "app.py"], cwd=root, capture_output=True, text=True,
                          check=True).stdout
    server.state.diffs = {"app.py": diff[diff.index("@@"):]}


def open_discussions(server: GitLabServer) -> list[dict]:
    return [d for d in server.state.discussions if not d["notes"][0]["resolved"]]


def test_discussions_on_the_diff_a_summary_note_and_a_resolved_discussion_when_its_finding_goes(
        merge_request, capsys) -> None:  # noqa: ANN001
    root, server = merge_request
    push(root, server, CHANGED)
    code, result, err = gate(root, capsys, "--review", "gitlab")
    code_without, _, _ = gate(root, capsys)
    assert code == code_without
    assert "truthplane: review posted: https://gitlab.example.com/42/-/merge_requests/3" in err, err
    new = {(f["path"], f["start_line"], f["fingerprint"]) for f in result["new"]}
    in_diff = {n for n in new if n[1] in commentable_lines(server.state.diffs["app.py"])}
    assert in_diff and new - in_diff
    found = {(d["notes"][0]["position"]["new_path"], d["notes"][0]["position"]["new_line"],
              marked_fingerprint(d["notes"][0]["body"])) for d in server.state.discussions}
    assert found == in_diff
    assert all(d["notes"][0]["position"]["head_sha"] == server.state.refs["head_sha"] for d in server.state.discussions)
    (summary,) = server.state.notes
    assert REVIEW_MARKER in summary["body"] and f"truthplane: {result['verdict']}" in summary["body"]

    gate(root, capsys, "--review", "gitlab")  # the same pipeline again: nothing new, the summary edited in place
    assert len(server.state.discussions) == len(in_diff) and len(server.state.notes) == 1

    push(root, server, CHANGED.replace("    import sys\n", ""))
    gate(root, capsys, "--review", "gitlab")
    assert open_discussions(server) == []  # resolved: the finding is gone
    assert len(server.state.discussions) == len(in_diff) and len(server.state.notes) == 1


def test_a_discussion_a_reviewer_resolved_is_not_posted_again_and_one_truthplane_resolved_reopens(
        merge_request, capsys) -> None:  # noqa: ANN001
    root, server = merge_request
    push(root, server, CHANGED)
    gate(root, capsys, "--review", "gitlab")
    (first,) = server.state.discussions[:1]
    count = len(server.state.discussions)
    # a reviewer resolves one thread ("accepted"): the next pipeline leaves it as it is, and posts no copy of it
    first["notes"][0].update(resolved=True, resolved_by={"id": 7, "username": "reviewer", "name": "Reviewer"})
    code, _, err = gate(root, capsys, "--review", "gitlab")
    assert "review posted" in err, err
    assert len(server.state.discussions) == count and first["notes"][0]["resolved"]
    # the reviewer reopens it; then its finding goes (truthplane resolves it) and comes back: the same one reopens
    first["notes"][0].update(resolved=False, resolved_by=None)
    push(root, server, CHANGED.replace("    import sys\n", ""))
    gate(root, capsys, "--review", "gitlab")
    assert first["notes"][0]["resolved"] and open_discussions(server) == []
    push(root, server, CHANGED)
    gate(root, capsys, "--review", "gitlab")
    assert len(server.state.discussions) == count and first in open_discussions(server)


def test_a_rate_limit_is_waited_out_and_a_refused_position_moves_into_the_summary(merge_request, capsys) -> None:  # noqa: ANN001
    root, server = merge_request
    push(root, server, CHANGED)
    server.fail_next("GET", r".*/merge_requests/3/diffs", 429, "429 Too Many Requests", headers={"Retry-After": "1"})
    server.fail_next("POST", r".*/merge_requests/3/discussions", 400,
                     "400 Bad request - Note {:line_code=>[\"can't be blank\", \"must be a valid line code\"]}")
    code, result, err = gate(root, capsys, "--review", "gitlab")
    assert "review posted" in err, err
    (summary,) = server.state.notes
    refused = [f for f in result["new"] if f"`app.py:{f['start_line']}`" in summary["body"]]
    assert len(refused) == len(result["new"]) - len(server.state.discussions)  # the refused one is in the summary


@pytest.mark.parametrize(("setup", "message"), [
    ("read_only", "the token may not do this (403 403 Forbidden): it needs the api scope"),
    ("bad_token", "GitLab refused the token (401 401 Unauthorized)"),
    ("no_token", "--review gitlab needs a token with the api scope in GITLAB_TOKEN"),
    ("not_an_mr", "--review gitlab runs in a GitLab CI merge request pipeline: CI_MERGE_REQUEST_IID is not set"),
])
def test_a_failed_post_says_why_and_never_changes_the_exit_code(merge_request, capsys, monkeypatch,  # noqa: ANN001
                                                               setup: str, message: str) -> None:
    root, server = merge_request
    push(root, server, CHANGED)
    if setup == "read_only":
        server.state.read_only = True
    elif setup == "bad_token":
        monkeypatch.setenv("GITLAB_TOKEN", "glpat-wrong")
    elif setup == "no_token":
        monkeypatch.delenv("GITLAB_TOKEN")
    else:
        monkeypatch.delenv("CI_MERGE_REQUEST_IID")
    code, _, err = gate(root, capsys, "--review", "gitlab")
    code_without, _, _ = gate(root, capsys)
    assert code == code_without
    assert f"truthplane: the review was not posted: {message}" in err, err
    assert server.state.discussions == [] and server.state.notes == []


def test_suggest_puts_an_approved_fix_in_gitlabs_suggestion_syntax(merge_request, capsys) -> None:  # noqa: ANN001
    root, server = merge_request
    push(root, server, CHANGED)
    code, result, err = gate(root, capsys, "--review", "gitlab", "--suggest")
    assert "review posted" in err, err
    sys_line = CHANGED.splitlines().index("    import sys") + 1
    (note,) = [d["notes"][0] for d in server.state.discussions if d["notes"][0]["position"]["new_line"] == sys_line]
    assert "```suggestion:-0+0\n```" in note["body"]  # GitLab counts the lines above the note's line
