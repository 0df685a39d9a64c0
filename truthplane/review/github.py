"""One pull request review through GitHub's REST API, from a GitHub Actions pull_request job.

It reads what Actions provides: `GITHUB_API_URL`, `GITHUB_REPOSITORY`, `GITHUB_TOKEN` (the job needs
`permissions: pull-requests: write`) and `GITHUB_EVENT_PATH` (the pull request's number and head commit). It lists
the pull request's files (which lines a comment can go on) and truthplane's earlier comments (by their hidden
marker), then updates or removes those and posts one review with the new ones. Lines outside the diff go into the
review's body. Rate limits (403/429 with Retry-After, or an exhausted quota) are waited out within a bound;
pagination follows the Link header; a comment GitHub refuses as outside the diff (422) moves into the body.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any

from truthplane.errors import TruthplaneError
from truthplane.models import GateResult
from truthplane.review.plan import REVIEW_MARKER, Existing, Plan, marked_fingerprint, plan_review, review_body

API_VERSION = "2022-11-28"
MAX_WAIT_S = 60.0  # the longest a run waits out rate limits, in all
PAGE = 100
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


class ReviewError(TruthplaneError):
    """The review could not be posted (the gate's verdict and exit code stay what they are)."""


@dataclass
class PullRequest:
    api: str
    repository: str
    number: int
    head_sha: str
    token: str


def from_actions(environ: dict[str, str] | None = None) -> PullRequest:
    """The pull request a GitHub Actions pull_request job runs for, from the variables Actions sets."""
    env = os.environ if environ is None else environ
    missing = [name for name in ("GITHUB_REPOSITORY", "GITHUB_EVENT_PATH") if not env.get(name)]
    if missing:
        raise ReviewError(f"--review github runs in a GitHub Actions job: {', '.join(missing)} is not set")
    token = env.get("GITHUB_TOKEN") or env.get("TRUTHPLANE_GITHUB_TOKEN")
    if not token:
        raise ReviewError("--review github needs a token: set GITHUB_TOKEN (env: GITHUB_TOKEN: ${{ github.token }}) "
                          "with pull-requests: write")
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


class GitHub:
    """The few REST calls a review needs, with GitHub's errors turned into one clear line each."""

    def __init__(self, pull: PullRequest, *, max_wait_s: float = MAX_WAIT_S) -> None:
        import httpx

        self.pull = pull
        self.waited = 0.0
        self.max_wait_s = max_wait_s
        self.client = httpx.Client(timeout=30.0, headers={
            "Authorization": f"Bearer {pull.token}", "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION, "User-Agent": "truthplane"})

    def close(self) -> None:
        self.client.close()

    @property
    def base(self) -> str:
        return f"{self.pull.api}/repos/{self.pull.repository}/pulls"

    def request(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        """The response of a call that succeeded, rate limits waited out."""
        import httpx

        while True:
            try:
                response = self.client.request(method, url, json=body)
            except httpx.HTTPError as exc:
                raise ReviewError(f"GitHub did not answer ({type(exc).__name__}: {exc})") from None
            if response.status_code in (403, 429) and self._rate_limited(response):
                continue
            if response.status_code >= 400:
                raise _error(response, method, url)
            return response

    def call(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        response = self.request(method, url, body)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ReviewError(f"GitHub answered {method} {url.split('?')[0]} with something other than JSON") from None

    def _rate_limited(self, response: Any) -> bool:
        """Wait out a rate limit (and say True), within the run's bound; False if it is not one."""
        headers = response.headers
        if "retry-after" in headers:
            wait = float(headers["retry-after"])
        elif headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in headers:
            wait = max(0.0, float(headers["x-ratelimit-reset"]) - time.time()) + 1
        elif response.status_code == 429:
            wait = 60.0
        else:
            return False  # a 403 that is no rate limit: a permission
        if self.waited + wait > self.max_wait_s:
            raise ReviewError(f"GitHub's rate limit: asked to wait {wait:.0f} s more after {self.waited:.0f} s "
                              f"(bound {self.max_wait_s:.0f} s); the review was not posted")
        time.sleep(wait)
        self.waited += wait
        return True

    def pages(self, url: str) -> list[Any]:
        """Every item of a list endpoint, following the Link header's next page."""
        items: list[Any] = []
        next_url: str | None = f"{url}?per_page={PAGE}"
        while next_url:
            response = self.request("GET", next_url)
            try:
                page = response.json()
            except ValueError:
                page = None
            if not isinstance(page, list):
                raise ReviewError(f"GitHub answered {url} with something other than a list")
            items += page
            match = _NEXT.search(response.headers.get("link", ""))
            next_url = match[1] if match else None
        return items

    # ---- the review ----------------------------------------------------------------------

    def diff_lines(self) -> dict[str, set[int]]:
        from truthplane.review.plan import commentable_lines

        return {f["filename"]: commentable_lines(f.get("patch") or "") for f in self.pages(
            f"{self.base}/{self.pull.number}/files")}

    def existing(self) -> list[Existing]:
        found = []
        for comment in self.pages(f"{self.base}/{self.pull.number}/comments"):
            fingerprint = marked_fingerprint(comment.get("body") or "")
            if fingerprint:
                found.append(Existing(str(comment["id"]), fingerprint, comment.get("path") or "", comment.get("line"),
                                      comment.get("body") or ""))
        return found

    def post(self, result: GateResult, suggestions: dict[str, str] | None = None) -> tuple[Plan, str]:
        """Update and remove earlier comments, then post one review with the new ones; the plan and the review's
        address."""
        plan = plan_review(result, self.diff_lines(), self.existing(), suggestions)
        for old, inline in plan.update:
            self.call("PATCH", f"{self.base}/comments/{old.id}", {"body": inline.body})
        for old in plan.remove:
            self.call("DELETE", f"{self.base}/comments/{old.id}")
        body = review_body(result, plan)
        comments = [{"path": c.path, "line": c.line, "side": "RIGHT", "body": c.body} for c in plan.create]
        while True:
            try:
                review = self.call("POST", f"{self.base}/{self.pull.number}/reviews",
                                   {"commit_id": self.pull.head_sha, "body": body, "event": "COMMENT",
                                    "comments": comments})
                break
            except _Unprocessable:
                if not comments:
                    raise ReviewError("GitHub refused the review (422) even without line comments") from None
                # a line GitHub will not take (outside the diff after all): every finding into the body
                plan.outside += [c.finding for c in plan.create]
                plan.create = []
                comments, body = [], review_body(result, plan)
        return plan, str((review or {}).get("html_url") or "")


class _Unprocessable(ReviewError):
    """422: GitHub would not take the request as it is (a line outside the diff)."""


def _error(response: Any, method: str, url: str) -> ReviewError:
    try:
        data = response.json()
        message = str(data.get("message", "")) + (f" ({'; '.join(map(str, data['errors']))})" if data.get("errors")
                                                   else "")
    except (ValueError, AttributeError):
        message = response.text[:200]
    status = response.status_code
    where = f"{method} {url.split('?')[0]}"
    if status == 401:
        return ReviewError(f"GitHub refused the token (401 {message}): {where}")
    if status == 403:
        return ReviewError(f"the token may not do this (403 {message}): give the job `permissions: pull-requests: "
                           f"write` ({where})")
    if status == 404:
        return ReviewError(f"GitHub has no such pull request or repository for this token (404): {where}")
    if status == 422:
        return _Unprocessable(f"GitHub would not take it (422 {message}): {where}")
    return ReviewError(f"GitHub answered {status} {message}: {where}")


__all__ = ["GitHub", "PullRequest", "ReviewError", "from_actions", "REVIEW_MARKER"]
