"""One pull request review through GitHub's REST API, from a GitHub Actions pull_request job.

It reads what Actions provides: `GITHUB_API_URL`, `GITHUB_REPOSITORY`, `GITHUB_TOKEN` (the job needs
`permissions: pull-requests: write`) and `GITHUB_EVENT_PATH` (the pull request's number and head commit). It lists
the pull request's files (which lines a comment can go on) and truthplane's earlier comments (by their hidden
marker), then updates or removes those and posts one review with the new ones.

The verdict lives in one review body at a time. A run with no new line comment posts no review: it edits the body
of truthplane's latest review (the one with its review marker) in place. A run with new comments posts a new review
(line comments only go in a review) and edits the earlier one down to a line linking the new one.

truthplane's own comments are the top-level ones (no `in_reply_to_id`) carrying its marker whose author is the
token's user: the login `GET /user` gives for a personal access token, or, for a token that may not read /user
(Actions' GITHUB_TOKEN, a GitHub App's: 403), any author of type "Bot". A reply, or a person's comment quoting the
marker, is never edited or removed. Lines outside the diff go into the
review's body. Rate limits (403/429 with Retry-After, or an exhausted quota) are waited out within a bound;
pagination follows the Link header; a comment GitHub refuses as outside the diff (422) moves into the body.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from truthplane.models import GateResult
from truthplane.review._rest import MAX_WAIT_S, Refused, Rest, ReviewError, ci_variables
from truthplane.review.plan import (
    REVIEW_MARKER,
    Existing,
    Plan,
    SUPERSEDED,
    Suggested,
    marked_fingerprint,
    plan_review,
    review_body,
)

API_VERSION = "2022-11-28"


@dataclass
class PullRequest:
    api: str
    repository: str
    number: int
    head_sha: str
    token: str


def from_actions(environ: dict[str, str] | None = None) -> PullRequest:
    """The pull request a GitHub Actions pull_request job runs for, from the variables Actions sets."""
    env, token = ci_variables(
        environ, ("GITHUB_REPOSITORY", "GITHUB_EVENT_PATH"), "--review github runs in a GitHub Actions job: {missing} "
        "is not set", ("GITHUB_TOKEN", "TRUTHPLANE_GITHUB_TOKEN"),
        "--review github needs a token: set GITHUB_TOKEN (env: GITHUB_TOKEN: ${{ github.token }}) with "
        "pull-requests: write")
    try:
        with open(env["GITHUB_EVENT_PATH"], encoding="utf-8") as handle:
            event = json.load(handle)
        pull = event["pull_request"]
        number, head = int(pull["number"]), str(pull["head"]["sha"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ReviewError("--review github: GITHUB_EVENT_PATH holds no pull request: run it in a pull_request "
                          "(or pull_request_target) job") from None
    api = (env.get("GITHUB_API_URL") or "https://api.github.com").rstrip("/")
    return PullRequest(api, env["GITHUB_REPOSITORY"], number, head, token)


class GitHub(Rest):
    """The few REST calls a review needs, with GitHub's errors turned into one clear line each."""

    platform = "GitHub"
    permission_hint = "give the job `permissions: pull-requests: write`"
    missing = "no such pull request or repository for this token"

    def __init__(self, pull: PullRequest, *, max_wait_s: float = MAX_WAIT_S) -> None:
        super().__init__({"Authorization": f"Bearer {pull.token}", "Accept": "application/vnd.github+json",
                          "X-GitHub-Api-Version": API_VERSION}, max_wait_s=max_wait_s)
        self.pull = pull
        self._login: str | None | bool = False  # the token's login; None: an integration token (not read yet: False)

    @property
    def base(self) -> str:
        return f"{self.pull.api}/repos/{self.pull.repository}/pulls"

    # ---- the review ----------------------------------------------------------------------

    def diff_lines(self) -> dict[str, set[int]]:
        from truthplane.review.plan import commentable_lines

        return {f["filename"]: commentable_lines(f.get("patch") or "") for f in self.pages(
            f"{self.base}/{self.pull.number}/files")}

    def login(self) -> str | None:
        """The token's login, or None for an integration token (Actions' GITHUB_TOKEN, a GitHub App's), which
        GitHub does not let read /user (403)."""
        if self._login is False:
            response = self.request("GET", f"{self.pull.api}/user", given=(403, 404))
            user = response.json() if response.status_code == 200 else None
            self._login = str(user["login"]) if isinstance(user, dict) and user.get("login") else None
        return self._login if isinstance(self._login, str) else None

    def own(self, item: dict) -> bool:
        """Written by the token's user: its login, or (an integration token, whose login cannot be read) a bot."""
        user = item.get("user") or {}
        login = self.login()
        return user.get("login") == login if login is not None else user.get("type") == "Bot"

    def existing(self) -> list[Existing]:
        """truthplane's earlier comments: top-level, carrying its marker, by the token's user (see own())."""
        found = []
        for comment in self.pages(f"{self.base}/{self.pull.number}/comments"):
            fingerprint = marked_fingerprint(comment.get("body") or "")
            if fingerprint and comment.get("in_reply_to_id") is None and self.own(comment):
                found.append(Existing(str(comment["id"]), fingerprint, comment.get("path") or "", comment.get("line"),
                                      comment.get("body") or "", start_line=comment.get("start_line")))
        return found

    def post(self, result: GateResult, suggestions: Mapping[str, Suggested] | None = None,
             diff_lines: dict[str, set[int]] | None = None) -> tuple[Plan, str]:
        """Update and remove earlier comments, then post one review with the new ones; the plan and the review's
        address."""
        plan = plan_review(result, diff_lines if diff_lines is not None else self.diff_lines(), self.existing(),
                           suggestions, "github")
        for old, inline in plan.update:
            self.call("PATCH", f"{self.base}/comments/{old.id}", {"body": inline.body})
        for old in plan.remove:
            self.call("DELETE", f"{self.base}/comments/{old.id}")
        earlier = self.own_reviews()
        comments = [{"path": c.path, "line": c.line, "side": "RIGHT", "body": c.body,
                     **({"start_line": c.start_line, "start_side": "RIGHT"} if c.start_line else {})}
                    for c in plan.create]
        review = None
        if comments:
            try:
                review = self._review(review_body(result, plan), comments)
            except Refused:
                # a line GitHub will not take (outside the diff after all): every finding into the body
                plan.outside += [c.finding for c in plan.create]
                plan.create = []
        body = review_body(result, plan)
        if review is None and earlier:  # no line comment to post: the latest verdict is edited in place
            latest = earlier.pop()
            review = self.call("PUT", f"{self.base}/{self.pull.number}/reviews/{latest['id']}", {"body": body})
        elif review is None:
            review = self._review(body, [])
        url = str((review or {}).get("html_url") or "")
        for old_review in earlier:  # one verdict reads as current: the earlier ones link to it
            self.call("PUT", f"{self.base}/{self.pull.number}/reviews/{old_review['id']}",
                      {"body": superseded_body(url)})
        return plan, url

    def own_reviews(self) -> list[dict]:
        """truthplane's reviews whose body is a current verdict (its review marker), by the token's user (see
        own()), oldest first, as GitHub lists them."""
        return [r for r in self.pages(f"{self.base}/{self.pull.number}/reviews")
                if REVIEW_MARKER in (r.get("body") or "") and self.own(r)]

    def _review(self, body: str, comments: list[dict]) -> dict:
        try:
            return self.call("POST", f"{self.base}/{self.pull.number}/reviews",
                             {"commit_id": self.pull.head_sha, "body": body, "event": "COMMENT", "comments": comments})
        except Refused:
            if comments:
                raise
            raise ReviewError("GitHub refused the review (422) even without line comments") from None


def superseded_body(url: str) -> str:
    """An earlier review's body once a newer one holds the verdict: no review marker, so it is never current again."""
    return f"truthplane: superseded by {f'[the latest review]({url})' if url else 'a later review'}.\n\n{SUPERSEDED}"


__all__ = ["GitHub", "PullRequest", "ReviewError", "from_actions", "REVIEW_MARKER"]
