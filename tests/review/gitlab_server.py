"""A local server answering the merge request endpoints of GitLab's REST API (v4) as GitLab does, on 127.0.0.1.

Requests and answers follow GitLab's API documentation: the merge request with its `diff_refs`, its diffs, its
discussions and notes (a discussion created on a diff line with a `text` position, a note edited, a discussion
resolved); pagination through the `Link` header (with `X-Next-Page`); the `PRIVATE-TOKEN` header; and GitLab's
error bodies: 401 "401 Unauthorized", 403 "403 Forbidden", 429 with `Retry-After`, and 400 for a position that is
not a line of the diff ("Note {:line_code=>...}").
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from tests.review._server import JsonHandler, LocalServer
from truthplane.review.plan import commentable_lines


BOT = {"id": 4242, "username": "project_42_bot_1a2b", "name": "truthplane"}  # the project access token's user


@dataclass
class MergeRequestState:
    project: str
    iid: int
    token: str
    diffs: dict[str, str]  # new_path -> the file's diff (its hunks)
    refs: dict[str, str] = field(default_factory=lambda: {"base_sha": "b" * 40, "start_sha": "b" * 40,
                                                           "head_sha": "h" * 40})
    read_only: bool = False
    page_size: int = 2
    discussions: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    failures: list[tuple[str, str, int, dict[str, Any], dict[str, str]]] = field(default_factory=list)
    next_id: int = 500


class GitLabServer(LocalServer):
    prefix = "/api/v4"

    def __init__(self, state: MergeRequestState) -> None:
        self.state = state
        super().__init__(_Handler)

    def fail_next(self, method: str, path: str, status: int, message: str,
                  headers: dict[str, str] | None = None) -> None:
        self.state.failures.append((method, path, status, {"message": message}, headers or {}))


class _Handler(JsonHandler):
    server_state: GitLabServer

    def _handle(self, method: str) -> None:
        server = self.server_state
        state = server.state
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with server.lock:
            path = unquote(url.path)
            state.requests.append((method, path))
            if self.headers.get("PRIVATE-TOKEN") != state.token:
                return self._send(401, {"message": "401 Unauthorized"})
            for failure in list(state.failures):
                if failure[0] == method and re.fullmatch(failure[1], path):
                    state.failures.remove(failure)
                    return self._send(failure[2], failure[3], failure[4])
            if method != "GET" and state.read_only:
                return self._send(403, {"message": "403 Forbidden"})
            try:
                body = json.loads(raw) if raw else {}
            except ValueError:
                return self._send(400, {"error": "body is invalid"})
            return self._route(method, path, parse_qs(url.query), body)

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> None:
        state = self.server_state.state
        mr = f"/api/v4/projects/{state.project}/merge_requests/{state.iid}"
        if method == "GET" and path == mr:
            return self._send(200, {"id": 9001, "iid": state.iid, "project_id": 42, "title": "change", "state":
                                    "opened", "sha": state.refs["head_sha"], "diff_refs": state.refs,
                                    "web_url": f"https://gitlab.example.com/{state.project}/-/merge_requests/"
                                               f"{state.iid}"})
        if method == "GET" and path == f"{mr}/diffs":
            diffs = [{"old_path": name, "new_path": name, "a_mode": "100644", "b_mode": "100644", "new_file": False,
                      "renamed_file": False, "deleted_file": False, "diff": diff}
                     for name, diff in sorted(state.diffs.items())]
            return self._page(diffs, query, path)
        if method == "GET" and path == f"{mr}/discussions":
            return self._page(state.discussions, query, path)
        if method == "POST" and path == f"{mr}/discussions":
            return self._discussion(body)
        match = re.fullmatch(rf"{mr}/discussions/([0-9a-f]+)(?:/notes/(\d+))?", path)
        if match and method == "PUT":
            discussion = next((d for d in state.discussions if d["id"] == match[1]), None)
            if discussion is None:
                return self._send(404, {"message": "404 Not found"})
            if match[2]:
                note = next((n for n in discussion["notes"] if n["id"] == int(match[2])), None)
                if note is None:
                    return self._send(404, {"message": "404 Not found"})
                note["body"] = body.get("body", note["body"])
                return self._send(200, note)
            if "resolved" not in body:
                return self._send(400, {"error": "resolved is missing"})
            for note in discussion["notes"]:
                note["resolved"] = bool(body["resolved"])
                note["resolved_by"] = BOT if note["resolved"] else None  # the token's user
            return self._send(200, discussion)
        if method == "GET" and path == f"{mr}/notes":
            return self._page(state.notes, query, path)
        if method == "POST" and path == f"{mr}/notes":
            return self._send(201, self._note(body.get("body", ""), "MergeRequest", None, state.notes))
        match = re.fullmatch(rf"{mr}/notes/(\d+)", path)
        if match and method == "PUT":
            note = next((n for n in state.notes if n["id"] == int(match[1])), None)
            if note is None:
                return self._send(404, {"message": "404 Not found"})
            note["body"] = body.get("body", note["body"])
            return self._send(200, note)
        return self._send(404, {"message": "404 Not found"})

    def _note(self, text: str, kind: str, position: dict[str, Any] | None, into: list[Any] | None) -> dict[str, Any]:
        state = self.server_state.state
        state.next_id += 1
        note = {"id": state.next_id, "type": "DiffNote" if position else None, "body": text, "system": False,
                "author": dict(BOT), "noteable_type": kind, "noteable_iid": state.iid,
                "resolvable": position is not None, "resolved": False, "resolved_by": None, "position": position}
        if into is not None:
            into.append(note)
        return note

    def _discussion(self, body: dict[str, Any]) -> None:
        state = self.server_state.state
        position = body.get("position")
        if not body.get("body"):
            return self._send(400, {"message": "400 Bad request - Note {:note=>[\"can't be blank\"]}"})
        if position is not None:
            refs_ok = all(position.get(k) == state.refs[k] for k in ("base_sha", "start_sha", "head_sha"))
            diff = state.diffs.get(position.get("new_path"))
            if (position.get("position_type") != "text" or not refs_ok or diff is None
                    or position.get("new_line") not in commentable_lines(diff)):
                return self._send(400, {"message": "400 Bad request - Note {:line_code=>[\"can't be blank\", "
                                                   "\"must be a valid line code\"]}"})
        discussion = {"id": secrets.token_hex(20), "individual_note": False,
                      "notes": [self._note(body["body"], "MergeRequest", position, None)]}
        state.discussions.append(discussion)
        return self._send(201, discussion)

    def _page(self, items: list[Any], query: dict[str, list[str]], path: str) -> None:
        state = self.server_state.state
        size = min(int(query.get("per_page", ["20"])[0]), 100, state.page_size)
        page = int(query.get("page", ["1"])[0])
        last = max(1, -(-len(items) // size))
        headers = {"X-Page": str(page), "X-Per-Page": str(size), "X-Total": str(len(items)),
                   "X-Total-Pages": str(last), "X-Next-Page": str(page + 1) if page < last else ""}
        if page < last:
            host = self.server_state.url.removesuffix("/api/v4")
            base = f"{host}{path}?per_page={size}"
            headers["Link"] = (f'<{base}&page={page + 1}>; rel="next", <{base}&page=1>; rel="first", '
                               f'<{base}&page={last}>; rel="last"')
        return self._send(200, items[(page - 1) * size: page * size], headers)
