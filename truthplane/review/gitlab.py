"""A merge request review through GitLab's REST API (v4), from a GitLab CI merge request pipeline.

It reads what GitLab CI provides: `CI_API_V4_URL`, `CI_PROJECT_ID`, `CI_MERGE_REQUEST_IID`, and a token in
`GITLAB_TOKEN` (a project or personal access token with the `api` scope: the job token cannot write notes). A
discussion on each introduced finding's line in the merge request's diff, positioned with the merge request's
`diff_refs`; the verdict, the counts and the findings outside the diff in one summary note, edited in place on the
next pipeline. Earlier discussions are matched by the fingerprint in their hidden marker: updated, or resolved
when their finding is gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from truthplane.models import GateResult
from truthplane.review._rest import MAX_WAIT_S, Refused, Rest, ReviewError, ci_variables
from truthplane.review.plan import (
    REVIEW_MARKER,
    Existing,
    Plan,
    Suggested,
    marked_fingerprint,
    plan_review,
    review_body,
)


@dataclass
class MergeRequest:
    api: str
    project: str
    iid: int
    token: str


def from_gitlab_ci(environ: dict[str, str] | None = None) -> MergeRequest:
    """The merge request a GitLab CI merge request pipeline runs for, from the variables GitLab sets."""
    env, token = ci_variables(
        environ, ("CI_API_V4_URL", "CI_PROJECT_ID", "CI_MERGE_REQUEST_IID"),
        "--review gitlab runs in a GitLab CI merge request pipeline: {missing} is not set (rules: - if: "
        "$CI_PIPELINE_SOURCE == \"merge_request_event\")", ("GITLAB_TOKEN", "TRUTHPLANE_GITLAB_TOKEN"),
        "--review gitlab needs a token with the api scope in GITLAB_TOKEN (a project access token, as a masked "
        "CI/CD variable): the job token cannot write notes")
    try:
        iid = int(env["CI_MERGE_REQUEST_IID"])
    except ValueError:
        raise ReviewError(f"CI_MERGE_REQUEST_IID is not a number: {env['CI_MERGE_REQUEST_IID']!r}") from None
    return MergeRequest(env["CI_API_V4_URL"].rstrip("/"), env["CI_PROJECT_ID"], iid, token)


class GitLab(Rest):
    platform = "GitLab"
    reset_header = "ratelimit-reset"
    remaining_header = "ratelimit-remaining"
    permission_hint = "it needs the api scope and at least the Reporter role"
    missing = "no such merge request or project for this token"
    refused = (400, 422)

    def __init__(self, request: MergeRequest, *, max_wait_s: float = MAX_WAIT_S) -> None:
        super().__init__({"PRIVATE-TOKEN": request.token}, max_wait_s=max_wait_s)
        self.mr = request
        self.reopen: set[str] = set()  # the discussions truthplane resolved itself (filled by existing())

    @property
    def base(self) -> str:
        return f"{self.mr.api}/projects/{quote(self.mr.project, safe='')}/merge_requests/{self.mr.iid}"

    def diff_lines(self) -> dict[str, set[int]]:
        from truthplane.review.plan import commentable_lines

        return {d["new_path"]: commentable_lines(d.get("diff") or "") for d in self.pages(f"{self.base}/diffs")
                if not d.get("deleted_file")}

    def existing(self) -> list[Existing]:
        """truthplane's discussions, open or resolved: id is "<discussion id>/<note id>". One a reviewer resolved
        stays resolved while its finding lasts (it is not posted again); one truthplane resolved itself, its
        finding gone, is reopened if the finding comes back (`self.reopen`)."""
        found = []
        self.reopen = set()
        for discussion in self.pages(f"{self.base}/discussions"):
            notes = discussion.get("notes") or []
            if not notes:
                continue
            note = notes[0]
            fingerprint = marked_fingerprint(note.get("body") or "")
            if fingerprint:
                position = note.get("position") or {}
                resolved = bool(note.get("resolved"))
                found.append(Existing(f"{discussion['id']}/{note['id']}", fingerprint, position.get("new_path") or "",
                                      position.get("new_line"), note.get("body") or "", resolved))
                author, by = note.get("author") or {}, note.get("resolved_by") or {}
                if resolved and author.get("id") is not None and by.get("id") == author.get("id"):
                    self.reopen.add(found[-1].id)
        return found

    def post(self, result: GateResult, suggestions: Mapping[str, Suggested] | None = None,
             diff_lines: dict[str, set[int]] | None = None) -> tuple[Plan, str]:
        merge_request = self.call("GET", self.base) or {}
        refs: dict[str, Any] = merge_request.get("diff_refs") or {}
        if not all(refs.get(k) for k in ("base_sha", "start_sha", "head_sha")):
            raise ReviewError("GitLab gave the merge request no diff_refs: is its diff still being prepared?")
        plan = plan_review(result, diff_lines if diff_lines is not None else self.diff_lines(), self.existing(),
                           suggestions, "gitlab")
        for old, inline in plan.update:
            discussion, note = old.id.split("/", 1)
            self.call("PUT", f"{self.base}/discussions/{discussion}/notes/{note}", {"body": inline.body})
        for old in [*plan.keep, *(old for old, _ in plan.update)]:
            if old.id in self.reopen:  # resolved by truthplane when its finding went: the finding is back
                self.call("PUT", f"{self.base}/discussions/{old.id.split('/', 1)[0]}", {"resolved": False})
        for old in plan.remove:
            if not old.resolved:
                self.call("PUT", f"{self.base}/discussions/{old.id.split('/', 1)[0]}", {"resolved": True})
        placed = []
        for inline in plan.create:
            position = {"position_type": "text", "base_sha": refs["base_sha"], "start_sha": refs["start_sha"],
                        "head_sha": refs["head_sha"], "old_path": inline.path, "new_path": inline.path,
                        "new_line": inline.line}
            try:
                self.call("POST", f"{self.base}/discussions", {"body": inline.body, "position": position})
                placed.append(inline)
            except Refused:
                plan.outside.append(inline.finding)  # a line GitLab will not take: into the summary
        plan.create = placed
        body = review_body(result, plan)
        summary = next((n for n in self.pages(f"{self.base}/notes")
                        if REVIEW_MARKER in (n.get("body") or "") and not n.get("system")), None)
        if summary is not None:
            self.call("PUT", f"{self.base}/notes/{summary['id']}", {"body": body})
        else:
            self.call("POST", f"{self.base}/notes", {"body": body})
        return plan, str(merge_request.get("web_url") or "")
