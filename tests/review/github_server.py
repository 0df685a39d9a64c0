"""A local server answering the pull request endpoints of GitHub's REST API as GitHub does, on 127.0.0.1.

Requests and answers follow GitHub's REST reference (API version 2022-11-28): the pull request's files with their
`patch`; its review comments (replies with `in_reply_to_id`, each with its author's `login` and `type`); its
reviews: listing them, creating one with line comments (multi-line ones over `start_line`..`line` of one hunk),
updating one's body; editing and deleting a review comment; `GET /user` (403 for an installation token such as
Actions' GITHUB_TOKEN); pagination through the `Link` header; and GitHub's own error bodies: 401 "Bad credentials",
403 "Resource not accessible by integration" (a token without the permission), 403/429 rate limits (with
`Retry-After`, with an exhausted quota's `x-ratelimit-*` headers, or a secondary rate limit's message alone), and
422 for a comment on a line that is not part of the diff. A test scripts one-off failures with `fail_next(...)`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.review._server import JsonHandler, LocalServer
from truthplane.review.plan import commentable_lines

DOCS = "https://docs.github.com/rest/pulls"
ACTIONS_BOT = {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}  # who Actions' GITHUB_TOKEN posts as


@dataclass
class Failure:
    method: str
    path: str  # a regular expression the request's path must match
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class PullRequestState:
    repository: str
    number: int
    head_sha: str
    token: str
    files: dict[str, str]  # path -> patch (GitHub's `patch` field: the file's hunks)
    read_only: bool = False
    # the token's user: Actions' GITHUB_TOKEN (an installation token, which may not read GET /user), or a personal
    # access token's user (which may)
    user: dict[str, Any] = field(default_factory=lambda: dict(ACTIONS_BOT))
    installation_token: bool = True
    page_size: int = 2  # GitHub caps per_page at 100; a small cap here makes every list span pages
    comments: list[dict[str, Any]] = field(default_factory=list)
    reviews: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    next_id: int = 1000


class GitHubServer(LocalServer):
    prefix = ""

    def __init__(self, state: PullRequestState) -> None:
        self.state = state
        super().__init__(_Handler)

    def fail_next(self, method: str, path: str, status: int, message: str, headers: dict[str, str] | None = None,
                  errors: list[str] | None = None) -> None:
        body: dict[str, Any] = {"message": message, "documentation_url": DOCS, "status": str(status)}
        if errors:
            body["errors"] = errors
        self.state.failures.append(Failure(method, path, status, body, headers or {}))

    def comment_by(self, user: dict[str, Any], body: str, *, reply_to: dict[str, Any] | None = None,
                   path: str = "", line: int = 1) -> dict[str, Any]:
        """A review comment someone else wrote: a reply in `reply_to`'s thread (GitHub sets `in_reply_to_id` and
        the thread's place), or a comment of its own on `path`:`line`."""
        state = self.state
        state.next_id += 1
        where = reply_to or {"path": path, "line": line, "start_line": None}
        comment = _comment(state, state.next_id, None, where["path"], where["line"], where.get("start_line"), body,
                           user)
        if reply_to is not None:
            comment["in_reply_to_id"] = reply_to["id"]
        state.comments.append(comment)
        return comment

    def review_by(self, user: dict[str, Any], body: str) -> dict[str, Any]:
        """A review someone else submitted, with a body and no line comments."""
        state = self.state
        state.next_id += 1
        review = {"id": state.next_id, "node_id": f"PRR_{state.next_id}", "user": dict(user), "body": body,
                  "state": "COMMENTED", "commit_id": state.head_sha, "author_association": "CONTRIBUTOR",
                  "html_url": f"https://github.com/{state.repository}/pull/{state.number}#pullrequestreview-"
                              f"{state.next_id}", "submitted_at": "2026-12-05T00:00:00Z"}
        state.reviews.append(review)
        return review


def _comment(state: PullRequestState, id_: int, review_id: int | None, path: str, line: int, start_line: int | None,
             body: str, user: dict[str, Any]) -> dict[str, Any]:
    """A review comment as GitHub lists it (the fields truthplane reads and a few more)."""
    return {"id": id_, "node_id": f"PRRC_{id_}", "pull_request_review_id": review_id, "path": path,
            "line": line, "original_line": line, "side": "RIGHT", "start_line": start_line,
            "original_start_line": start_line, "start_side": "RIGHT" if start_line else None, "body": body,
            "commit_id": state.head_sha, "user": dict(user), "author_association": "CONTRIBUTOR",
            "html_url": f"https://github.com/{state.repository}/pull/{state.number}#discussion_r{id_}",
            "created_at": "2026-12-05T00:00:00Z", "updated_at": "2026-12-05T00:00:00Z"}


class _Handler(JsonHandler):
    server_state: GitHubServer

    extra_headers = {"X-GitHub-Api-Version-Selected": "2022-11-28"}

    def _error(self, status: int, message: str, errors: list[str] | None = None) -> None:
        body: dict[str, Any] = {"message": message, "documentation_url": DOCS, "status": str(status)}
        if errors:
            body["errors"] = errors
        self._send(status, body)

    def _handle(self, method: str) -> None:
        server = self.server_state
        state = server.state
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with server.lock:
            state.requests.append((method, url.path))
            auth = self.headers.get("Authorization", "")
            if auth not in (f"Bearer {state.token}", f"token {state.token}"):
                return self._error(401, "Bad credentials")
            for failure in list(state.failures):
                if failure.method == method and re.fullmatch(failure.path, url.path):
                    state.failures.remove(failure)
                    return self._send(failure.status, failure.body, failure.headers)
            if method != "GET" and state.read_only:
                return self._error(403, "Resource not accessible by integration")
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                return self._error(400, "Problems parsing JSON")
            return self._route(method, url.path, parse_qs(url.query), body)

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> None:
        state = self.server_state.state
        prefix = f"/repos/{state.repository}/pulls"
        pull = f"{prefix}/{state.number}"
        if method == "GET" and path == "/user":
            if state.installation_token:
                return self._error(403, "Resource not accessible by integration")
            return self._send(200, {**state.user, "node_id": "U_1", "site_admin": False})
        if method == "GET" and path == f"{pull}/files":
            files = [{"sha": "0" * 40, "filename": name, "status": "modified", "additions": patch.count("\n+"),
                      "deletions": patch.count("\n-"), "changes": 0, "patch": patch}
                     for name, patch in sorted(state.files.items())]
            return self._page(files, query, path)
        if method == "GET" and path == f"{pull}/comments":
            return self._page(state.comments, query, path)
        if method == "POST" and path == f"{pull}/reviews":
            return self._create_review(body)
        if method == "GET" and path == f"{pull}/reviews":
            return self._page(state.reviews, query, path)  # in chronological order, as GitHub lists them
        match = re.fullmatch(rf"{pull}/reviews/(\d+)", path)
        if match and method == "PUT":  # "Update a review for a pull request": its summary comment, `body` required
            review = next((r for r in state.reviews if r["id"] == int(match[1])), None)
            if review is None:
                return self._error(404, "Not Found")
            if not isinstance(body, dict) or not isinstance(body.get("body"), str):
                return self._error(422, "Invalid request.", ['"body" wasn\'t supplied.'])
            review["body"] = body["body"]
            return self._send(200, review)
        match = re.fullmatch(rf"{prefix}/comments/(\d+)", path)
        if match:
            comment = next((c for c in state.comments if c["id"] == int(match[1])), None)
            if comment is None:
                return self._error(404, "Not Found")
            if method == "PATCH":
                if not isinstance(body, dict) or not isinstance(body.get("body"), str):
                    return self._error(422, "Invalid request.", ['"body" wasn\'t supplied.'])
                comment["body"] = body["body"]
                comment["updated_at"] = "2026-12-05T00:00:01Z"
                return self._send(200, comment)
            if method == "DELETE":
                state.comments.remove(comment)
                return self._send(204)
        return self._error(404, "Not Found")

    def _page(self, items: list[Any], query: dict[str, list[str]], path: str) -> None:
        state = self.server_state.state
        size = min(int(query.get("per_page", ["30"])[0]), 100, state.page_size)
        page = int(query.get("page", ["1"])[0])
        chunk = items[(page - 1) * size: page * size]
        headers = {}
        last = max(1, -(-len(items) // size))
        if page < last:
            base = f"{self.server_state.url}{path}?per_page={size}"
            headers["Link"] = f'<{base}&page={page + 1}>; rel="next", <{base}&page={last}>; rel="last"'
        return self._send(200, chunk, headers)

    def _create_review(self, body: Any) -> None:
        state = self.server_state.state
        if not isinstance(body, dict) or body.get("event") not in ("COMMENT", "APPROVE", "REQUEST_CHANGES", None):
            return self._error(422, "Unprocessable Entity", ["event is not a valid review event"])
        comments = body.get("comments") or []
        for comment in comments:
            patch = state.files.get(comment.get("path"))
            lines = commentable_lines(patch) if patch is not None else set()
            if comment.get("line") not in lines or comment.get("side", "RIGHT") != "RIGHT":
                return self._error(422, "Unprocessable Entity",
                                   ["Pull request review thread line must be part of the diff and Pull request "
                                    "review thread diff hunk can't be blank"])
            start = comment.get("start_line")
            if start is not None:  # a multi-line comment: start_line..line, all of it in one hunk of the diff
                if not isinstance(start, int) or start >= comment["line"]:
                    return self._error(422, "Unprocessable Entity", ["start_line must precede the end line."])
                if (comment.get("start_side", comment.get("side", "RIGHT")) != "RIGHT"
                        or not all(n in lines for n in range(start, comment["line"]))):
                    return self._error(422, "Unprocessable Entity",
                                       ["Pull request review thread start line must be part of the same hunk as "
                                        "the line."])
        state.next_id += 1
        review = {"id": state.next_id, "node_id": f"PRR_{state.next_id}", "user": dict(state.user),
                  "body": body.get("body") or "", "state": "COMMENTED", "commit_id": body.get("commit_id"),
                  "html_url": f"https://github.com/{state.repository}/pull/{state.number}#pullrequestreview-"
                              f"{state.next_id}", "submitted_at": "2026-12-05T00:00:00Z"}
        state.reviews.append(review)
        for comment in comments:
            state.next_id += 1
            state.comments.append(_comment(state, state.next_id, review["id"], comment["path"], comment["line"],
                                           comment.get("start_line"), comment["body"], state.user))
        return self._send(200, review)
