"""`truthplane gate --review github` end to end: a real repository and a real change gated with real ruff, the
review posted to a local server answering as GitHub's REST API does (tests/review/github_server.py): the first
post, the next push updating instead of duplicating, a finding gone, a rate limit, a line GitHub will not take,
and tokens that may not post."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import git
from tests.review.github_server import GitHubServer, PullRequestState
from truthplane.cli.main import run
from truthplane.review.plan import REVIEW_MARKER, commentable_lines, marked_fingerprint

pytestmark = pytest.mark.tool("ruff")

FILLER = "".join(f"VALUE_{n} = {n}\n" for n in range(12))
BASE = f"import os\nimport json\n\n\ndef dump():\n    return json.dumps({{}})\n\n\n{FILLER}\n\ndef name():\n" \
       "    return os.name\n"
# the change drops the only use of os (so `import os`, far above the diff, becomes unused) and adds an unused import
CHANGED = f"import os\nimport json\n\n\ndef dump():\n    return json.dumps({{}})\n\n\n{FILLER}\n\ndef name():\n" \
          "    import sys\n    return 'posix'\n"


@pytest.fixture
def pull(make_repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, GitHubServer]]:
    monkeypatch.setenv("TRUTHPLANE_CACHE_DIR", str(tmp_path / "cache"))
    root = make_repo({"app.py": BASE, "truthplane.toml": 'verifiers = ["ruff"]\n'})
    git(root, "checkout", "-q", "-b", "feature")
    state = PullRequestState(repository="octo/demo", number=7, head_sha="", token="ghs_test", files={})
    with GitHubServer(state) as server:
        event = tmp_path / "event.json"
        monkeypatch.setenv("GITHUB_API_URL", server.url)
        monkeypatch.setenv("GITHUB_REPOSITORY", "octo/demo")
        monkeypatch.setenv("GITHUB_TOKEN", "ghs_test")
        monkeypatch.setenv("GITHUB_EVENT_PATH", str(event))
        server.event = event  # type: ignore[attr-defined]
        yield root, server


def push(root: Path, server: GitHubServer, content: str) -> None:
    """Commit the change on the branch and show the pull request as GitHub would: its head, its files' patches."""
    (root / "app.py").write_text(content)
    git(root, "commit", "-qam", "change")
    head = git(root, "rev-parse", "HEAD").strip()
    diff = subprocess.run(["git", "diff", "main...HEAD", "--", "app.py"], cwd=root, capture_output=True, text=True,
                          check=True).stdout
    server.state.files = {"app.py": diff[diff.index("@@"):]}
    server.state.head_sha = head
    server.event.write_text(json.dumps({"action": "synchronize", "number": 7,  # type: ignore[attr-defined]
                                        "pull_request": {"number": 7, "head": {"sha": head}}}))


def gate(root: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict, str]:
    code = run(["gate", str(root), "--base", "main", "--format", "json", *extra])
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_first_post_then_a_push_updates_and_removes_instead_of_duplicating(pull, capsys) -> None:  # noqa: ANN001
    root, server = pull
    push(root, server, CHANGED)
    code, result, err = gate(root, capsys, "--review", "github")
    code_without, _, _ = gate(root, capsys)
    assert code == code_without  # posting a review never changes the exit code
    assert "truthplane: review posted: https://github.com/octo/demo/pull/7#pullrequestreview-" in err, err
    new = {(f["path"], f["start_line"], f["fingerprint"]) for f in result["new"]}
    in_diff = {n for n in new if n[1] in commentable_lines(server.state.files["app.py"])}
    outside = new - in_diff
    assert in_diff and outside  # `import sys` is in the diff; `import os`, now unused, is far above it
    (review,) = server.state.reviews
    assert review["commit_id"] == server.state.head_sha and f"truthplane: {result['verdict']}" in review["body"]
    assert all(f"`app.py:{line}`" in review["body"] for _, line, _ in outside)
    comments = server.state.comments
    assert {(c["path"], c["line"], marked_fingerprint(c["body"])) for c in comments} == in_diff

    # the same push gated again: nothing duplicated, nothing removed, the review's body edited in place
    first_ids = sorted(c["id"] for c in comments)
    gate(root, capsys, "--review", "github")
    assert sorted(c["id"] for c in server.state.comments) == first_ids
    assert server.state.reviews == [review] and ("PUT", f"/repos/octo/demo/pulls/7/reviews/{review['id']}") in \
        server.state.requests

    # the next push fixes the new import: its comment goes; the finding outside the diff stays in the body
    push(root, server, CHANGED.replace("    import sys\n", ""))
    code, result, err = gate(root, capsys, "--review", "github")
    assert server.state.comments == []
    assert ("DELETE", f"/repos/octo/demo/pulls/comments/{first_ids[0]}") in server.state.requests
    assert "removed (finding gone)" in err and server.state.reviews == [review]
    assert f"truthplane: {result['verdict']}" in review["body"] and "**1 new**" in review["body"]  # this run's


def test_a_rate_limit_is_waited_out_and_a_line_github_refuses_moves_into_the_body(pull, capsys) -> None:  # noqa: ANN001
    root, server = pull
    push(root, server, CHANGED)
    server.fail_next("GET", r".*/pulls/7/files", 403, "You have exceeded a secondary rate limit. Please wait a few "
                     "minutes before you try again.", headers={"Retry-After": "1"})
    server.fail_next("POST", r".*/pulls/7/reviews", 422, "Unprocessable Entity",
                     errors=["Pull request review thread line must be part of the diff and Pull request review "
                             "thread diff hunk can't be blank"])
    code, result, err = gate(root, capsys, "--review", "github")
    assert "review posted" in err, err
    (review,) = server.state.reviews
    assert server.state.comments == []  # refused as line comments: every finding is in the body instead
    assert all(f"`app.py:{f['start_line']}`" in review["body"] for f in result["new"])
    assert [r for r in server.state.requests if r[0] == "GET" and r[1].endswith("/files")][:2] == [
        ("GET", "/repos/octo/demo/pulls/7/files")] * 2  # asked again after waiting


@pytest.mark.parametrize(("setup", "message"), [
    ("read_only", "the token may not do this (403 Resource not accessible by integration): give the job "
                  "`permissions: pull-requests: write`"),
    ("bad_token", "GitHub refused the token (401 Bad credentials)"),
    ("rate_limited", "GitHub's rate limit: asked to wait 3600 s more"),
    ("no_event", "--review github: GITHUB_EVENT_PATH holds no pull request"),
])
def test_a_failed_post_says_why_and_never_changes_the_exit_code(pull, capsys, monkeypatch, setup: str,  # noqa: ANN001
                                                               message: str) -> None:
    root, server = pull
    push(root, server, CHANGED)
    if setup == "read_only":
        server.state.read_only = True
    elif setup == "bad_token":
        monkeypatch.setenv("GITHUB_TOKEN", "ghs_wrong")
    elif setup == "rate_limited":
        server.fail_next("GET", r".*/pulls/7/files", 429, "API rate limit exceeded", headers={"Retry-After": "3600"})
    else:
        server.event.write_text(json.dumps({"action": "push"}))  # type: ignore[attr-defined]
    code, _, err = gate(root, capsys, "--review", "github")
    code_without, _, _ = gate(root, capsys)
    assert code == code_without
    assert f"truthplane: the review was not posted: {message}" in err, err
    assert "the gate's verdict and exit code are unchanged" in err
    assert server.state.reviews == []


def test_a_retry_after_given_as_an_http_date_is_waited_out(pull, capsys) -> None:  # noqa: ANN001
    root, server = pull
    push(root, server, CHANGED)
    # RFC 9110 lets Retry-After be a date as well as seconds (a proxy in front of GitHub Enterprise may send one)
    server.fail_next("GET", r".*/pulls/7/files", 429, "API rate limit exceeded",
                     headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})  # in the past: no wait at all
    code, _, err = gate(root, capsys, "--review", "github")
    code_without, _, _ = gate(root, capsys)
    assert code == code_without
    assert "review posted" in err and len(server.state.reviews) == 1, err


def test_an_answer_not_shaped_as_github_documents_it_never_changes_the_exit_code(pull, capsys) -> None:  # noqa: ANN001
    from tests.review.github_server import Failure

    root, server = pull
    push(root, server, CHANGED)
    server.state.failures.append(Failure("GET", r".*/pulls/7/files", 200, ["not a file"]))  # type: ignore[arg-type]
    code, _, err = gate(root, capsys, "--review", "github")
    code_without, _, _ = gate(root, capsys)
    assert code == code_without
    assert "truthplane: the review was not posted: " in err and "exit code are unchanged" in err, err
    assert server.state.reviews == []


def test_an_unknown_review_target_is_a_usage_error(pull, capsys) -> None:  # noqa: ANN001
    root, _ = pull
    assert run(["gate", str(root), "--base", "main", "--review", "bitbucket"]) == 2
    assert "--review 'bitbucket'" in capsys.readouterr().err


def test_suggest_offers_an_approved_fix_as_a_one_click_suggestion_on_its_lines(pull, capsys) -> None:  # noqa: ANN001
    root, server = pull
    push(root, server, CHANGED)
    code, result, err = gate(root, capsys, "--review", "github", "--suggest")
    assert "approved fix(es) offered as suggestions" in err and "review posted" in err, err
    sys_line = CHANGED.splitlines().index("    import sys") + 1
    by_line = {c["line"]: c for c in server.state.comments}
    suggested = by_line[sys_line]["body"]
    # ruff's own fix, judged by the loop (rescan, tamper check): the unused import's line goes
    assert "```suggestion\n```" in suggested and "A fix the evidence approved" in suggested
    assert all("```suggestion" not in c["body"] for line, c in by_line.items() if line != sys_line)
    assert (root / "app.py").read_text() == CHANGED  # the checkout is not touched: the reviewer applies it
    assert git(root, "status", "--porcelain").strip() == ""


def test_a_comment_whose_text_changes_is_edited_in_place(pull, capsys) -> None:  # noqa: ANN001
    root, server = pull
    push(root, server, CHANGED)
    gate(root, capsys, "--review", "github")
    before = {c["id"]: c["body"] for c in server.state.comments}
    gate(root, capsys, "--review", "github", "--suggest")  # the same findings, one now with a suggestion
    after = {c["id"]: c["body"] for c in server.state.comments}
    assert set(after) == set(before)  # no comment added or removed
    edited = [i for i in after if after[i] != before[i]]
    assert len(edited) == 1 and "```suggestion" in after[edited[0]]
    assert ("PATCH", f"/repos/octo/demo/pulls/comments/{edited[0]}") in server.state.requests


SECONDARY = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."


@pytest.mark.parametrize(("failures", "waits", "message"), [
    # a secondary rate limit with no time given: a minute, as GitHub asks, then the request again
    ([{}], [60.0], None),
    # the quota exhausted: until x-ratelimit-reset (a 403 as much as a 429)
    ([{"x-ratelimit-remaining": "0", "x-ratelimit-reset": "RESET"}], [31.0], None),
    # again and again: the next wait (twice as long) would pass the run's bound; said as a rate limit
    ([{}, {}], [60.0], "GitHub's rate limit: asked to wait 120 s more after 60 s (bound 60 s); the review was not "
                       f"posted (403 {SECONDARY})"),
])
def test_a_secondary_rate_limit_is_waited_out_not_taken_for_a_permission(pull, capsys, monkeypatch,  # noqa: ANN001
                                                                        failures, waits, message) -> None:
    import time

    root, server = pull
    push(root, server, CHANGED)
    waited: list[float] = []
    monkeypatch.setattr("truthplane.review._rest.sleep", waited.append, raising=False)
    for headers in failures:
        headers = {k: str(int(time.time()) + 30) if v == "RESET" else v for k, v in headers.items()}
        server.fail_next("GET", r".*/pulls/7/files", 403, SECONDARY, headers=headers)
    code, _, err = gate(root, capsys, "--review", "github")
    code_without, _, _ = gate(root, capsys)
    assert code == code_without
    assert "may not do this" not in err and "permission" not in err, err
    assert [round(w) for w in waited] == [round(w) for w in waits] or waits == [31.0] and 29 <= waited[0] <= 31
    if message is None:
        assert "review posted" in err and len(server.state.reviews) == 1, err
    else:
        assert f"truthplane: the review was not posted: {message}" in err, err
        assert "exit code are unchanged" in err and server.state.reviews == []


@pytest.mark.parametrize(("token_user", "someone"), [
    # Actions' GITHUB_TOKEN: GET /user answers 403, truthplane posts as github-actions[bot]; a person quotes it
    (None, {"login": "octocat", "id": 583231, "type": "User"}),
    # a personal access token of a machine user: its login is what counts, not whether an author is a bot
    ({"login": "octo-ci", "id": 99, "type": "User"}, {"login": "renovate[bot]", "id": 29139614, "type": "Bot"}),
])
def test_a_reply_or_someone_elses_comment_quoting_the_marker_is_never_edited_or_removed(
        pull, capsys, token_user, someone) -> None:  # noqa: ANN001
    root, server = pull
    if token_user is not None:
        server.state.user, server.state.installation_token = token_user, False
    push(root, server, CHANGED)
    gate(root, capsys, "--review", "github")
    (own,) = server.state.comments
    # a reply quoting truthplane's whole comment, marker and all, and a comment of someone's own quoting it too
    reply = server.comment_by(someone, "> " + own["body"].replace("\n", "\n> ") + "\n\nWill fix.", reply_to=own)
    quoted = server.comment_by(someone, f"Same as here?\n\n{own['body']}", path="app.py", line=own["line"] - 1)
    theirs = {reply["id"], quoted["id"]}

    code, _, err = gate(root, capsys, "--review", "github")  # the same push again: nothing to change
    assert "review posted" in err and "0 new comment(s), 0 updated, 1 unchanged, 0 removed" in err, err
    push(root, server, CHANGED.replace("    import sys\n", ""))  # truthplane's finding is gone
    code, _, err = gate(root, capsys, "--review", "github")
    assert "0 new comment(s), 0 updated, 0 unchanged, 1 removed" in err, err
    assert {c["id"] for c in server.state.comments} == theirs
    assert [c["body"] for c in server.state.comments] == [reply["body"], quoted["body"]]
    touched = {int(p.rsplit("/", 1)[1]) for m, p in server.state.requests if m in ("PATCH", "DELETE")}
    assert touched == {own["id"]}


def test_one_verdict_reads_as_current_edited_in_place_or_superseded_by_a_new_review(pull, capsys) -> None:  # noqa: ANN001
    root, server = pull
    push(root, server, CHANGED)
    gate(root, capsys, "--review", "github")
    (first,) = server.state.reviews
    # someone's own review quoting truthplane's (marker and all) is not truthplane's to edit
    other = server.review_by({"login": "octocat", "id": 583231, "type": "User"}, "Agreed:\n\n" + first["body"])
    other_body = other["body"]

    code, _, err = gate(root, capsys, "--review", "github")  # nothing new to comment on: the body is edited
    assert "review posted: " + first["html_url"] in err, err
    assert [r["id"] for r in server.state.reviews] == [first["id"], other["id"]]
    assert ("PUT", f"/repos/octo/demo/pulls/7/reviews/{first['id']}") in server.state.requests

    # a push with a new finding on the diff: its comment goes in a new review, and the earlier one links to it
    push(root, server, CHANGED.replace("    import sys\n", "    import sys\n    import re\n"))
    code, _, err = gate(root, capsys, "--review", "github")
    assert "review posted" in err and "0 new comment(s)" not in err, err
    first_now, other_now, second = server.state.reviews
    assert REVIEW_MARKER not in first_now["body"] and f"superseded by [the latest review]({second['html_url']})" \
        in first_now["body"]
    assert other_now["body"] == other_body and REVIEW_MARKER in second["body"]

    gate(root, capsys, "--review", "github")  # and again nothing new: the new one is edited, no third
    assert len(server.state.reviews) == 3
    assert ("PUT", f"/repos/octo/demo/pulls/7/reviews/{second['id']}") in server.state.requests
    assert ("PUT", f"/repos/octo/demo/pulls/7/reviews/{other['id']}") not in server.state.requests


def test_a_finding_over_several_lines_of_the_diff_gets_a_multi_line_comment(pull, capsys) -> None:  # noqa: ANN001
    root, server = pull
    # F632: ruff reports the whole comparison, over two lines, all of them added
    push(root, server, BASE + '\n\ndef pick(x):\n    return x is (\n        "a")\n')
    code, result, err = gate(root, capsys, "--review", "github")
    assert "review posted" in err, err
    (finding,) = [f for f in result["new"] if f["rule_id"] == "F632"]
    assert finding["end_line"] == finding["start_line"] + 1
    (comment,) = [c for c in server.state.comments if marked_fingerprint(c["body"]) == finding["fingerprint"]]
    assert (comment["start_line"], comment["line"], comment["start_side"], comment["side"]) == (
        finding["start_line"], finding["end_line"], "RIGHT", "RIGHT")
    gate(root, capsys, "--review", "github")  # the next run finds it where it is: kept, not posted again
    assert [c["id"] for c in server.state.comments if marked_fingerprint(c["body"]) == finding["fingerprint"]] == [
        comment["id"]]
