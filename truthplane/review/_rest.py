"""What GitHub's and GitLab's REST APIs share for a review: one client, rate limits waited out within a bound
(403/429 with `Retry-After`, an exhausted quota with its reset time, or a body that says it is a rate limit: a minute,
then twice as long each time), pagination by the `Link` header, and each platform's errors turned into one clear line.
httpx is called here only."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from typing import Any

from truthplane.errors import TruthplaneError
from truthplane.llm._http import parse_retry_after

MAX_WAIT_S = 60.0  # the longest a run waits out rate limits, in all
PAGE = 100
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')
_RATE_LIMIT = re.compile(r"rate limit", re.IGNORECASE)  # GitHub's "You have exceeded a secondary rate limit..."
UNTIMED_WAIT_S = 60.0  # a rate limit that gives no time: GitHub asks for at least a minute, longer each time


class ReviewError(TruthplaneError):
    """The review could not be posted (the gate's verdict and exit code stay what they are)."""


class Refused(ReviewError):
    """The platform would not take the request as it is (GitHub's 422, GitLab's 400: a line outside the diff)."""


def ci_variables(environ: Mapping[str, str] | None, needed: tuple[str, ...], missing_message: str,
                 tokens: tuple[str, ...], no_token: str) -> tuple[Mapping[str, str], str]:
    """The CI job's variables, and the token: `missing_message` names the variables not set ({missing}),
    `no_token` says what token to give."""
    env = os.environ if environ is None else environ
    missing = [name for name in needed if not env.get(name)]
    if missing:
        raise ReviewError(missing_message.format(missing=", ".join(missing)))
    token = next((env[name] for name in tokens if env.get(name)), None)
    if not token:
        raise ReviewError(no_token)
    return env, token


class Rest:
    """A REST client for one platform; a subclass names it, gives its headers and maps its errors."""

    platform = "the platform"
    reset_header = "x-ratelimit-reset"
    remaining_header = "x-ratelimit-remaining"
    permission_hint = "check the token's permissions"  # what a token needs, said on a 403
    missing = "no such resource for this token"  # what a 404 means
    refused: tuple[int, ...] = (422,)  # the statuses that refuse a request as it is (a line outside the diff)

    def __init__(self, headers: dict[str, str], *, max_wait_s: float = MAX_WAIT_S) -> None:
        import httpx

        self.waited = 0.0
        self.untimed = 0  # the rate limits so far that gave no time to wait
        self.max_wait_s = max_wait_s
        self.client = httpx.Client(timeout=30.0, headers={"User-Agent": "truthplane", **headers})

    def close(self) -> None:
        self.client.close()

    def error(self, status: int, message: str, where: str) -> ReviewError:
        if status == 401:
            return ReviewError(f"{self.platform} refused the token (401 {message}): {where}")
        if status == 403:
            return ReviewError(f"the token may not do this (403 {message}): {self.permission_hint} ({where})")
        if status == 404:
            return ReviewError(f"{self.platform} has {self.missing} (404): {where}")
        if status in self.refused:
            return Refused(f"{self.platform} would not take it ({status} {message}): {where}")
        return ReviewError(f"{self.platform} answered {status} {message}: {where}")

    def request(self, method: str, url: str, body: dict[str, Any] | None = None, *, given: tuple[int, ...] = ()) -> Any:
        """The response of a call that succeeded (or answered one of the `given` statuses), rate limits waited
        out."""
        import httpx

        while True:
            try:
                response = self.client.request(method, url, json=body)
            except httpx.HTTPError as exc:
                raise ReviewError(f"{self.platform} did not answer ({type(exc).__name__}: {exc})") from None
            if response.status_code in (403, 429) and self._rate_limited(response, _message(response)):
                continue
            if response.status_code >= 400 and response.status_code not in given:
                raise self.error(response.status_code, _message(response), f"{method} {url.split('?')[0]}")
            return response

    def call(self, method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        response = self.request(method, url, body)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ReviewError(f"{self.platform} answered {method} {url.split('?')[0]} with something other than "
                              "JSON") from None

    def pages(self, url: str) -> list[Any]:
        """Every item of a list endpoint, following the Link header's next page."""
        items: list[Any] = []
        next_url: str | None = f"{url}{'&' if '?' in url else '?'}per_page={PAGE}"
        while next_url:
            response = self.request("GET", next_url)
            try:
                page = response.json()
            except ValueError:
                page = None
            if not isinstance(page, list):
                raise ReviewError(f"{self.platform} answered {url.split('?')[0]} with something other than a list")
            items += page
            match = _NEXT.search(response.headers.get("link", ""))
            next_url = match[1] if match else None
        return items

    def _rate_limited(self, response: Any, message: str) -> bool:
        """Wait out a rate limit (and say True), within the run's bound; False if it is not one. As GitHub documents
        it: `retry-after` first; else, the quota exhausted (remaining 0), until its reset; else (a 429, or a 403 whose
        body says rate limit: GitHub's secondary limits) a minute, twice as long at each further one."""
        headers = response.headers
        retry_after = parse_retry_after(headers.get("retry-after"))  # seconds or an HTTP date
        remaining, reset = headers.get(self.remaining_header), _number(headers.get(self.reset_header))
        if retry_after is not None:
            wait = retry_after
        elif remaining == "0" and reset is not None:
            wait = max(0.0, reset - time.time()) + 1
        elif response.status_code == 429 or _RATE_LIMIT.search(message):
            wait = UNTIMED_WAIT_S * 2 ** self.untimed
            self.untimed += 1
        else:
            return False  # a 403 that is no rate limit: a permission
        if self.waited + wait > self.max_wait_s:
            raise ReviewError(f"{self.platform}'s rate limit: asked to wait {wait:.0f} s more after {self.waited:.0f} "
                              f"s (bound {self.max_wait_s:.0f} s); the review was not posted ({response.status_code} "
                              f"{message})")
        sleep(wait)
        self.waited += wait
        return True


def sleep(seconds: float) -> None:
    """Wait out a rate limit (a test replaces it to count the waits instead)."""
    time.sleep(seconds)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _message(response: Any) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    if not isinstance(data, dict):
        return str(data)[:200]
    message = data.get("message", data.get("error", ""))
    if isinstance(message, (dict, list)):
        message = str(message)
    errors = data.get("errors")
    return str(message) + (f" ({'; '.join(map(str, errors))})" if isinstance(errors, list) and errors else "")
